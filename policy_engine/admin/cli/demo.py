"""``policy-engine demo``: the walk-through over a local ``serve`` stack."""

from __future__ import annotations

import argparse
import contextlib
import io
import sys
from typing import Any

from policy_engine.admin.cli._arguments import url
from policy_engine.admin.cli._common import add_command
from policy_engine.admin.cli.serve import add_stack_arguments, options_from
from policy_engine.admin.local.serve import LocalStack
from policy_engine.admin.local.walkthrough import Walkthrough, http_request

DESCRIPTION = """\
A guided tour of the authorizer, on this machine only.

Starts what 'policy-engine serve' starts (a local identity provider, permission
table and API Gateway, all on 127.0.0.1), or uses a running one with --url, then
sends real HTTP requests and prints each request and answer: tokens with and
without the right scope (200, 403), a bad token (401), the authorizer cache, key
rotation. Nothing reaches AWS.

Exit codes: 0 every answer was the expected one; 1 one was not; 2 could not run.
"""


def register(subparsers: Any) -> None:
    parser = add_command(
        subparsers, "demo", summary="walk through serve: tokens, 200, 403, 401, cache, rotation",
        description=DESCRIPTION, examples=(
            "policy-engine demo",
            "policy-engine demo --verbose                  # with the authorizer's JSON log lines",
            "policy-engine demo --url http://127.0.0.1:8080  # against a running 'policy-engine serve'",
        ),
    )
    parser.add_argument("--url", type=url, help="gateway URL of a running 'policy-engine serve' (default: start one)")
    parser.add_argument("--verbose", action="store_true", help="show the authorizer's JSON log lines")
    add_stack_arguments(parser, default_port=0, default_idp_port=0)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    if args.url:
        try:
            info = http_request("GET", f"{args.url.rstrip('/')}/_local/info").json()
        except OSError:
            info = None
        if not isinstance(info, dict) or "token_endpoint" not in info:
            print(f"policy-engine demo: {args.url} is not a running 'policy-engine serve'", file=sys.stderr)
            return 2
        print(f"using the gateway at {args.url}")
        return 0 if Walkthrough(args.url.rstrip("/"), info, sys.stdout).run() else 1
    logs = io.StringIO()
    # The handler logs one JSON line per decision on stderr; keep them for --verbose.
    with contextlib.redirect_stderr(sys.stderr if args.verbose else logs):
        stack = LocalStack(options_from(args)).start()
        try:
            print(stack.describe().split("\n\nTry it")[0])
            print(f"started in {stack.startup_seconds:.2f} s")
            assert stack.gateway is not None and stack.gateway.info is not None
            ok = Walkthrough(stack.gateway_url, stack.gateway.info(), sys.stdout).run()
        finally:
            stack.stop()
    return 0 if ok else 1
