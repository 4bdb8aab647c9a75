"""Every event kind and token kind through the real handler, on the shipped sample events.

Starts the local identity provider (JWKS and an RFC 7662 introspection endpoint) on
127.0.0.1, then feeds ``events/*.json`` to ``handler/app.py`` with a JWT and with an
opaque token, under the configurations docs/events.md describes, and prints what API
Gateway would answer.

Usage: .venv/bin/python examples/request_authorizers.py
"""

from __future__ import annotations

import contextlib
import io
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from policy_engine.admin.local.idp import LocalIdentityProvider  # noqa: E402
from policy_engine.admin.local.invoke import invoke, load_handler  # noqa: E402
from policy_engine.core.iam import evaluate_response  # noqa: E402

API = "arn:aws:execute-api:us-east-1:123456789012:a1b2c3d4e5"


def with_token(name: str, token: str) -> dict:
    text = (ROOT / "events" / name).read_text().replace("REPLACE_WITH_TOKEN", token)
    return json.loads(text)


def outcome(result, arn: str) -> str:
    if result.response is None:
        return {"Unauthorized": "401"}.get(result.error or "", "500")
    if "isAuthorized" in result.response:
        return "200" if result.response["isAuthorized"] else "403"
    return str(evaluate_response(result.response, arn).status)


def main() -> int:
    logs = io.StringIO()
    with LocalIdentityProvider() as idp, contextlib.redirect_stderr(logs):
        idp.register_client("authorizer", "example-secret")
        base = {"ISSUER": idp.issuer, "AUDIENCE": "policy-engine-demo", "PERMISSIONS_SOURCE": str(ROOT / "permissions"),
                "INTROSPECTION_URL": idp.introspection_endpoint, "INTROSPECTION_CLIENT_ID": "authorizer",
                "INTROSPECTION_CLIENT_SECRET": "example-secret"}
        configs = {
            "REST TOKEN": ({}, "token-get-pet.json"),
            "REST REQUEST": ({"IDENTITY_SOURCE": "method.request.header.Authorization"}, "request-get-pet.json"),
            "HTTP API 1.0": ({"IDENTITY_SOURCE": "$request.header.Authorization"}, "http-v1-get-pet.json"),
            "HTTP API 2.0 (IAM policy)": ({"IDENTITY_SOURCE": "$request.header.Authorization"}, "http-v2-get-pet.json"),
            "HTTP API 2.0 (simple)": ({"IDENTITY_SOURCE": "$request.header.Authorization,$context.routeKey",
                                       "SIMPLE_RESPONSES": "true"}, "http-v2-get-pet.json"),
        }
        tokens = {"JWT": idp.mint(scope="pets:read", subject="jwt-client"),
                  "opaque": idp.issue_opaque(scope="pets:read", subject="opaque-client"),
                  "revoked": idp.issue_opaque(scope="pets:read")}
        idp.revoke(tokens["revoked"])
        rows = []
        shown = False
        for label, (env, sample) in configs.items():
            handler = load_handler({**base, **env})
            for kind, token in tokens.items():
                event = with_token(sample, token)
                result = invoke(handler, event)
                arn = event.get("methodArn") or event["routeArn"]
                post_pets = f"{API}/dev/POST/pets"
                also = "" if result.response is None or "isAuthorized" in result.response else (
                    f"  (same answer, POST /pets: {evaluate_response(result.response, post_pets).status})")
                rows.append(f"{label:26} {kind:8} GET /pets/12 -> {outcome(result, arn)}{also}")
                if kind == "opaque" and label == "HTTP API 2.0 (simple)" and not shown:
                    shown = True
                    simple = result.response
        policy = invoke(load_handler(base), with_token("request-get-pet.json", tokens["opaque"])).response
    print("\n".join(rows))
    print("\nREST REQUEST answer for the opaque token:")
    print(json.dumps(policy, indent=2))
    print("\nHTTP API 2.0 simple answer for the opaque token:")
    print(json.dumps(simple, indent=2))
    introspected = [json.loads(line) for line in logs.getvalue().splitlines() if '"reason"' in line]
    print(f"\n{len(introspected)} decisions logged; reasons: "
          + ", ".join(sorted({r['reason'] for r in introspected})))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
