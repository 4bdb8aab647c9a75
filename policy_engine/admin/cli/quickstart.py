"""``policy-engine quickstart``: the authorizer's main job on the shipped example."""

from __future__ import annotations

import argparse
import json
from typing import Any

from policy_engine.admin.cli._arguments import permissions_location
from policy_engine.admin.cli._common import add_command
from policy_engine.admin.local.idp import LocalIdentityProvider
from policy_engine.admin.local.invoke import invoke, load_handler
from policy_engine.admin.resources import EXAMPLE_PERMISSIONS
from policy_engine.bootstrap import permission_source
from policy_engine.core.iam import evaluate_response
from policy_engine.core.permissions import compile_records

API = "arn:aws:execute-api:us-east-1:123456789012:a1b2c3d4e5"


DESCRIPTION = """\
See the authorizer's main job in a few seconds, without AWS.

Starts a local identity provider on 127.0.0.1, mints access tokens with a few
scopes, runs the real Lambda handler on API Gateway events for the example pet
store API, and prints each policy it returns and what API Gateway would answer
(200 or 403) for a few routes, and a malformed token (401).

Exit codes: 0 every outcome as expected; 1 an unexpected outcome; 2 could not run
(a --permissions path that does not exist).
"""


def register(subparsers: Any) -> None:
    parser = add_command(
        subparsers, "quickstart", summary="mint a local token and run the handler on sample events",
        description=DESCRIPTION, examples=(
            "policy-engine quickstart",
            "policy-engine quickstart --permissions permissions/",
        ),
    )
    parser.add_argument("--permissions", default=str(EXAMPLE_PERMISSIONS),
                        help="YAML file or folder (default: the shipped pet store example)")
    parser.set_defaults(run=run)


def _event(token: str | None, verb: str, path: str) -> dict[str, Any]:
    return {"type": "TOKEN", "authorizationToken": f"Bearer {token}" if token else "",
            "methodArn": f"{API}/dev/{verb}/{path.lstrip('/')}"}


def run(args: argparse.Namespace) -> int:
    location = permissions_location(args.permissions, "--permissions")
    # Files the handler would refuse are one error here, with file and line (exit 2), not
    # a 500 for every request of the walk-through.
    raw = permission_source(location).fetch(None)
    assert raw is not None  # no etag given: a source always answers
    compile_records(raw.records, raw.locate, version=raw.version)
    failures = 0
    with LocalIdentityProvider() as idp:
        handler = load_handler({
            "ISSUER": idp.issuer, "AUDIENCE": "policy-engine-demo", "PERMISSIONS_SOURCE": args.permissions,
        })
        print(f"local identity provider: {idp.issuer} (JWKS {idp.jwks_uri})")
        print(f"permissions: {args.permissions}\n")
        cases = [
            ("reader", "pets:read",
             [("GET", "/pets/12", 200), ("POST", "/pets", 403), ("GET", "/store/inventory", 403)]),
            ("writer", "pets:write store:write", [("POST", "/pets", 200), ("DELETE", "/pets/12", 403),
                                                  ("PATCH", "/store/orders/7", 200)]),
            ("nobody", "email", [("GET", "/pets", 403)]),
        ]
        for who, scope, requests in cases:
            token = idp.mint(scope=scope, subject=f"{who}-client")
            first_verb, first_path, _ = requests[0]
            result = invoke(handler, _event(token, first_verb, first_path))
            print(f"== token for {who!r} with scope {scope!r}; authorizer called for {first_verb} {first_path}")
            if result.response is None:
                print(f"   handler failed: {result.error}")
                failures += 1
                continue
            print(json.dumps(result.response, indent=2))
            for verb, path, expected in requests:
                arn = f"{API}/dev/{verb}/{path.lstrip('/')}"
                status = evaluate_response(result.response, arn).status
                mark = "ok" if status == expected else "UNEXPECTED"
                failures += status != expected
                print(f"   {verb:6} {path:20} -> {status}  ({mark})")
            print()
        result = invoke(handler, _event("not-a-jwt", "GET", "/pets"))
        ok = result.unauthorized
        failures += not ok
        print(f"== malformed token -> {'401 Unauthorized' if ok else result.error}  ({'ok' if ok else 'UNEXPECTED'})")
    print("\nall outcomes as expected" if not failures else f"\n{failures} unexpected outcome(s)")
    return 1 if failures else 0
