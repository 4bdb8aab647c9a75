"""Warm latency of an introspected (opaque-token) decision through the real handler.

Starts the local identity provider on 127.0.0.1 as the RFC 7662 endpoint, loads the real
Lambda handler configured for introspection, and times ``lambda_handler`` on TOKEN
events (the handler's JSON log lines go to /dev/null while timing):

* cache hit:  the same token again and again (answered from the per-container cache);
* cache miss: a new token on every call (one POST to the endpoint each time);
* for scale, a locally verified JWT on the same handler.

Usage: .venv/bin/python benchmarks/introspection.py [--hits N] [--misses N]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import platform
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from policy_engine.admin.local.idp import LocalIdentityProvider  # noqa: E402
from policy_engine.admin.local.invoke import load_handler  # noqa: E402

API = "arn:aws:execute-api:us-east-1:123456789012:a1b2c3d4e5"


def event(token: str) -> dict:
    return {"type": "TOKEN", "authorizationToken": f"Bearer {token}", "methodArn": f"{API}/dev/GET/pets/12"}


def timed(handler, events) -> list[float]:
    out = []
    with open(os.devnull, "w") as sink, contextlib.redirect_stderr(sink):
        for e in events:
            started = time.perf_counter()
            response = handler.lambda_handler(e, None)
            out.append((time.perf_counter() - started) * 1000)
            assert response["policyDocument"]["Statement"][0]["Effect"] == "Allow"
    return out


def report(name: str, samples: list[float]) -> None:
    ordered = sorted(samples)
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
    print(f"{name:34} n={len(samples):5}  median {statistics.median(ordered):7.3f} ms   p99 {p99:7.3f} ms")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--hits", type=int, default=5000)
    parser.add_argument("--misses", type=int, default=1000)
    args = parser.parse_args()
    with LocalIdentityProvider() as idp:
        idp.register_client("authorizer", "bench-secret")
        with open(os.devnull, "w") as sink, contextlib.redirect_stderr(sink):
            handler = load_handler({
                "ISSUER": idp.issuer, "AUDIENCE": "policy-engine-demo",
                "PERMISSIONS_SOURCE": str(ROOT / "permissions"),
                "INTROSPECTION_URL": idp.introspection_endpoint,
                "INTROSPECTION_CLIENT_ID": "authorizer", "INTROSPECTION_CLIENT_SECRET": "bench-secret",
            })
        print(f"python {platform.python_version()} on {platform.machine()}, endpoint {idp.introspection_endpoint}")
        hit_token = idp.issue_opaque(scope="pets:read")
        timed(handler, [event(hit_token)] * 50)  # warm: first introspection, permissions, code paths
        report("opaque, introspection cache hit", timed(handler, [event(hit_token)] * args.hits))
        fresh = [event(idp.issue_opaque(scope="pets:read")) for _ in range(args.misses)]
        before = idp.requests.count("POST /introspect")
        report("opaque, cache miss (POST to IdP)", timed(handler, fresh))
        assert idp.requests.count("POST /introspect") - before == args.misses, "every miss must reach the endpoint"
        jwt = idp.mint(scope="pets:read")
        timed(handler, [event(jwt)] * 50)
        report("JWT, verified locally", timed(handler, [event(jwt)] * args.hits))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
