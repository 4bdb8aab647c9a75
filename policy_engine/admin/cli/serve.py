"""``policy-engine serve``: a local IdP, permission table and REST API Gateway around the real authorizer."""

from __future__ import annotations

import argparse
import signal
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from policy_engine.admin.cli._arguments import api_arn, port, request_stage
from policy_engine.admin.cli._common import add_command
from policy_engine.admin.local.gateway import MAX_CACHE_TTL
from policy_engine.admin.local.idp import CLIENTS_FILE
from policy_engine.admin.local.serve import DEFAULT_PERMISSIONS, LocalStack, ServeOptions
from policy_engine.admin.openapi import BASE_PATH_MODES
from policy_engine.errors import ConfigurationError
from policy_engine.events import parse_identity_source

__all__ = ["add_stack_arguments", "options_from", "register"]


DESCRIPTION = """\
Run the real authorizer locally, behind a stand-in for API Gateway.

Starts, on 127.0.0.1, an OpenID identity provider that mints tokens, a permission
table filled from --permissions, and a REST API gateway that calls the authorizer
the way API Gateway does (identity sources, cache, 401/403) in front of a small
pets backend or your own (--backend). Prints where each listens and curl commands
to paste; runs until Ctrl-C (or SIGTERM), its normal stop: exit code 0.
"""


def register(subparsers: Any) -> None:
    parser = add_command(
        subparsers, "serve", summary="run a local IdP, permission table and API Gateway", description=DESCRIPTION,
        examples=(
            "policy-engine serve",
            "policy-engine serve --permissions my-permissions/ --store yaml",
            "policy-engine serve --openapi openapi.yaml --stage dev --backend http://127.0.0.1:3000",
        ),
    )
    add_stack_arguments(parser, default_port=8080, default_idp_port=8081)
    parser.set_defaults(run=run)


def _checked(check: Callable[[str, str], str], flag: str) -> Callable[[str], str]:
    # An argparse type: a refused value is a usage error (exit 2) naming the flag.
    def convert(text: str) -> str:
        try:
            return check(text, flag)
        except ConfigurationError as exc:
            raise argparse.ArgumentTypeError(exc.problem) from None

    return convert


def _ttl(text: str) -> float:
    value = float(text)
    if not 0 <= value <= MAX_CACHE_TTL:
        raise argparse.ArgumentTypeError(f"must be between 0 and {MAX_CACHE_TTL} (API Gateway's limit)")
    return value


def add_stack_arguments(parser: argparse.ArgumentParser, *, default_port: int, default_idp_port: int) -> None:
    """The options ``serve`` and ``demo`` share."""
    parser.add_argument("--permissions", type=Path, default=DEFAULT_PERMISSIONS,
                        help="permission YAML file or folder: routes of the gateway, contents of the table")
    parser.add_argument("--clients", type=Path, default=CLIENTS_FILE, help="OAuth clients of the local IdP")
    parser.add_argument("--port", type=port, default=default_port, help="gateway port (0: any free port)")
    parser.add_argument("--idp-port", type=port, default=default_idp_port, help="identity provider port")
    parser.add_argument("--store", choices=("dynamodb", "yaml"), default=None,
                        help="where the handler reads permissions: a table synced from --permissions "
                             "(default; moto unless AWS_ENDPOINT_URL is set) or the files themselves")
    parser.add_argument("--table", default="policy-engine-permissions", help="table name (--store dynamodb)")
    parser.add_argument("--api", type=_checked(api_arn, "--api"),
                        help="API ARN to serve when the files name several (default: the first)")
    parser.add_argument("--openapi", type=Path,
                        help="route as API Gateway would deploy this OpenAPI/Swagger document, instead of the "
                             "permissions' routes; its operations with 'security: []' skip the authorizer")
    parser.add_argument("--base-path", choices=BASE_PATH_MODES, default="ignore",
                        help="API Gateway's import mode for the --openapi document's base path (ignore)")
    parser.add_argument("--stage", action="append", default=[], type=_checked(request_stage, "--stage"),
                        help="stage to deploy --openapi routes on (repeatable)")
    parser.add_argument("--token-regex", help="token validation regex (whole header value must match); a TOKEN "
                                              "authorizer's, so not used with --identity-source, as in API Gateway")
    parser.add_argument("--identity-source", action="append", default=[], metavar="SOURCE",
                        help="use a REQUEST authorizer with this identity source, as API Gateway writes it "
                             "(repeat or comma-separate: method.request.header.Authorization,context.httpMethod)")
    parser.add_argument("--cache-ttl", type=_ttl, default=300.0,
                        help="authorizer cache TTL in seconds, 0 disables (300)")
    parser.add_argument("--backend", dest="backend_url", help="proxy allowed requests to this URL "
                        "instead of the built-in pets backend")


def options_from(args: argparse.Namespace) -> ServeOptions:
    """The stack's options; identity sources are checked here, so a bad one names the flag."""
    sources = tuple(p.strip() for arg in args.identity_source for p in arg.split(",") if p.strip())
    if sources:
        parse_identity_source(sources, "--identity-source")
    options = ServeOptions(
        permissions=args.permissions, clients_file=args.clients, port=args.port, idp_port=args.idp_port,
        table=args.table, api=args.api, openapi=args.openapi, base_path=args.base_path, stages=tuple(args.stage),
        token_regex=args.token_regex,
        identity_sources=sources,
        cache_ttl=args.cache_ttl, backend_url=args.backend_url,
    )
    if args.store:
        options.store = args.store
    return options


def run(args: argparse.Namespace) -> int:
    stop = threading.Event()
    # SIGTERM (a process manager, `kill`) stops as cleanly as Ctrl-C does.
    previous = signal.signal(signal.SIGTERM, lambda signum, frame: stop.set())
    try:
        stack = LocalStack(options_from(args)).start()
        try:
            print(stack.describe())
            print(f"\nready in {stack.startup_seconds:.2f} s; Ctrl-C stops everything", flush=True)
            stop.wait()
        except KeyboardInterrupt:
            pass
        finally:
            print("\nstopping", flush=True)
            stack.stop()
    finally:
        signal.signal(signal.SIGTERM, previous)
    return 0
