"""``policy-engine invoke --event FILE``: run the real Lambda handler on an event file.

The handler is loaded the way Lambda loads it: a fresh import of ``handler/app.py``
with the function's environment, here the process environment plus ``--env-file``
and ``--env KEY=VALUE`` (later wins). It prints the response (or the failure) and
what API Gateway would answer for the event's methodArn.

To verify a real signature locally, ``--local-idp`` starts a local OpenID provider on
127.0.0.1, points ``ISSUER`` and ``JWKS_URI`` at it, mints a token with ``--scopes``
and puts it in the event (``--token`` puts a token you already have).

Exit codes: 0 the request is allowed; 1 refused (401, 403 or 500); 2 could not run
(unreadable event, invalid configuration).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from policy_engine.admin.cli._common import (
    Palette,
    authorization_value,
    parse_env_assignments,
)
from policy_engine.errors import ConfigurationError, EventError

__all__ = ["put_token", "register", "run"]

PLACEHOLDER = "REPLACE_WITH_TOKEN"
DEFAULT_AUDIENCE = "policy-engine-demo"


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "invoke", help="run the real handler on an API Gateway event file",
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--event", required=True, metavar="FILE", help="event JSON (see events/)")
    parser.add_argument("--env", action="append", default=[], metavar="KEY=VALUE",
                        help="an environment variable of the function (repeatable)")
    parser.add_argument("--env-file", metavar="FILE", help="KEY=VALUE lines (# comments allowed)")
    parser.add_argument("--permissions", metavar="LOCATION", help="shorthand for --env PERMISSIONS_SOURCE=...")
    parser.add_argument("--local-idp", action="store_true",
                        help="start a local identity provider, mint a token and use it as ISSUER/JWKS_URI")
    parser.add_argument("--scopes", default="pets:read", help="scopes of the minted token ('pets:read')")
    parser.add_argument("--subject", default="local-client", help="sub/client_id of the minted token")
    parser.add_argument("--token", metavar="JWT", help="put this token in the event")
    parser.add_argument("--format", choices=("text", "json"), default="text")
    parser.add_argument("--color", choices=("auto", "always", "never"), default="auto")
    parser.set_defaults(run=run)


def _read_event(path: str) -> Any:
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise EventError(f"{path}: cannot read ({exc.strerror or exc})") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise EventError(f"{path}: not a JSON event ({exc})") from None


def _environment(args: argparse.Namespace) -> dict[str, str]:
    environ: dict[str, str] = {}
    if args.env_file:
        try:
            lines = Path(args.env_file).read_text(encoding="utf-8").splitlines()
        except OSError as exc:
            raise ConfigurationError("--env-file", f"{args.env_file}: cannot read ({exc.strerror or exc})") from None
        environ.update(parse_env_assignments(lines, f"--env-file {args.env_file}"))
    environ.update(parse_env_assignments(args.env, "--env"))
    if args.permissions:
        environ["PERMISSIONS_SOURCE"] = args.permissions
    return environ


def put_token(event: Any, token: str) -> Any:
    """A copy of ``event`` carrying ``Bearer <token>`` where its type expects the credential.

    ``token`` may already carry the scheme; it is passed on unjudged, for the handler to judge.
    """
    if not isinstance(event, dict):
        raise EventError("the event is not a JSON object")
    event = json.loads(json.dumps(event))
    value = authorization_value(token)
    if event.get("type") == "TOKEN":
        event["authorizationToken"] = value
        return event
    headers = event.setdefault("headers", {}) or {}
    name = next((k for k in headers if k.lower() == "authorization"), "authorization")
    headers[name] = value
    event["headers"] = headers
    if isinstance(event.get("identitySource"), list):
        event["identitySource"] = [value]
    elif "identitySource" in event or "authorizationToken" in event:
        event["identitySource"] = value
        event["authorizationToken"] = value
    return event


@contextlib.contextmanager
def _identity_provider(args: argparse.Namespace, environ: dict[str, str]) -> Iterator[str | None]:
    if not args.local_idp:
        yield None
        return
    from policy_engine.admin.local.idp import LocalIdentityProvider

    with LocalIdentityProvider() as idp:
        environ["ISSUER"] = idp.issuer
        environ["JWKS_URI"] = idp.jwks_uri
        audiences = environ.get("AUDIENCE") or os.environ.get("AUDIENCE") or DEFAULT_AUDIENCE
        environ.setdefault("AUDIENCE", audiences)
        audience = audiences.split(",")[0].strip()
        yield idp.mint(scope=args.scopes, audience=audience, subject=args.subject)


def run(args: argparse.Namespace) -> int:
    event = _read_event(args.event)
    environ = _environment(args)
    with _identity_provider(args, environ) as minted:
        token = args.token or minted
        if token:
            event = put_token(event, token)
        elif PLACEHOLDER in json.dumps(event):
            print(f"note: {args.event} holds the placeholder {PLACEHOLDER}; pass --local-idp or --token",
                  file=sys.stderr)
        from policy_engine.admin.local.invoke import invoke, load_handler

        try:
            handler = load_handler(environ)
        except ConfigurationError as exc:
            raise ConfigurationError(exc.variable, f"{exc.problem} (the handler refused to start)") from None
        result = invoke(handler, event)
    outcome = _outcome(event, result.response, result.error)
    if args.format == "json":
        print(json.dumps({"environment": _shown_env(environ, minted), "response": result.response,
                          "error": result.error, **outcome}, indent=2))
    else:
        _print(args, environ, minted, result.response, result.error, outcome)
    return 0 if outcome["status"] == 200 else 1


def _outcome(event: Any, response: dict[str, Any] | None, error: str | None) -> dict[str, Any]:
    from policy_engine.core.iam import MalformedResponseError, evaluate_response

    arn = (event.get("methodArn") or event.get("routeArn")) if isinstance(event, dict) else None
    if response is None:
        status = 401 if error == "Unauthorized" else 500
        return {"method_arn": arn, "status": status, "verdict": "Unauthorized" if status == 401 else "Error"}
    if not isinstance(arn, str):
        return {"method_arn": arn, "status": 500, "verdict": "no methodArn in the event"}
    try:
        verdict = evaluate_response(response, arn)
    except MalformedResponseError as exc:
        return {"method_arn": arn, "status": 500, "verdict": f"malformed response: {exc}"}
    return {"method_arn": arn, "status": verdict.status, "verdict": verdict.value}


def _shown_env(environ: dict[str, str], minted: str | None) -> dict[str, str]:
    shown = {k: v for k, v in sorted(environ.items())}
    if minted:
        shown["(token)"] = "minted by the local identity provider"
    return shown


def _print(args: argparse.Namespace, environ: dict[str, str], minted: str | None,
           response: dict[str, Any] | None, error: str | None, outcome: dict[str, Any]) -> None:
    paint = Palette(sys.stdout, args.color)
    if environ:
        print("environment (on top of the process environment):")
        for key, value in sorted(environ.items()):
            print(f"  {key}={value}")
    if minted:
        print(f"token: minted by the local identity provider for {args.subject!r} with scope {args.scopes!r}")
    if response is not None:
        print("response:")
        print(json.dumps(response, indent=2))
    else:
        print(f"the handler raised: {error!r}")
    ok = outcome["status"] == 200
    arn = outcome["method_arn"]
    print(f"API Gateway answers {paint(str(outcome['status']), 'green' if ok else 'red')} ({outcome['verdict']}) "
          f"for {arn}")

