"""Warm decisions with several grant sources and a tenant placeholder, against scopes only.

    .venv/bin/python benchmarks/grants.py [--mappings 10000] [--tokens 20000] [--round 100]

Two authorizers decide side by side in this process, with the same keys (a real JWKS
on 127.0.0.1, fetched once), a fresh RS256 token for every decision, and N mappings
each:

* scopes: today's default, grants from ``scope``; N mappings over N/10 scopes; callers
  in 50 client profiles of 2 scopes;
* grants: ``GRANT_SOURCES=scope:scope,group:cognito:groups,role:realm_access.roles``;
  the N mappings are a third each granted by a scope, a group and a role, and one in
  ten of them is a tenant path ``/tenants/{claim:tenant_id}/...``; callers in 50
  profiles holding 2 scopes, 2 groups and 2 roles, each of 50 tenants.

Each decision is ``lambda_handler(event)`` end to end (parse, verify, read grants,
policy, render, one JSON log line to /dev/null). Rounds of ``--round`` decisions
alternate which side goes first; each side's round median is taken, and "× scopes" is
the median over rounds of (grants median ÷ scopes median), which cancels a shared
machine's drift. The target (issue 15) is at most 1.15×.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from policy_engine.adapters.memory import MemoryPermissionSource
from policy_engine.admin.local.idp import LocalIdentityProvider
from policy_engine.admin.local.invoke import load_handler
from policy_engine.bootstrap import key_source
from policy_engine.cache import PermissionCache
from policy_engine.engine import Authorizer
from policy_engine.settings import Settings

API = "arn:aws:execute-api:us-east-1:123456789012:a1b2c3d4e5"
VERBS = ("GET", "POST", "PUT", "DELETE")
SOURCES = "scope:scope,group:cognito:groups,role:realm_access.roles"


def scope_mappings(n: int) -> list[dict[str, Any]]:
    names = max(1, n // 10)
    return [{"arn": API, "stage": "prod", "httpVerb": VERBS[i % 4], "resource": f"/svc{i % names}/items{i}/*",
             "scope": f"svc{i % names}:scope"} for i in range(n)]


def grant_mappings(n: int) -> list[dict[str, Any]]:
    names = max(1, n // 10)
    out: list[dict[str, Any]] = []
    for i in range(n):
        name = i % names
        tenant_path = i % 10 == 0
        resource = f"/tenants/{{claim:tenant_id}}/svc{name}/items{i}/*" if tenant_path else f"/svc{name}/items{i}/*"
        record: dict[str, Any] = {"arn": API, "stage": "prod", "httpVerb": VERBS[i % 4], "resource": resource}
        kind = i % 3
        if kind == 0:
            record["scope"] = f"svc{name}:scope"
        elif kind == 1:
            record["group"] = f"group{name}"
        else:
            record["role"] = f"role{name}"
        out.append(record)
    return out


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mappings", type=int, default=10000)
    parser.add_argument("--tokens", type=int, default=20000, help="decisions per side")
    parser.add_argument("--round", type=int, default=100)
    args = parser.parse_args()
    rng = random.Random(15)
    names = max(1, args.mappings // 10)

    with LocalIdentityProvider() as idp:
        base_env = {"ISSUER": idp.issuer, "AUDIENCE": "bench", "JWKS_URI": idp.jwks_uri}
        sides: dict[str, tuple[Any, list[dict[str, Any]]]] = {}
        for side, env, records in (
            ("scopes", base_env, scope_mappings(args.mappings)),
            ("grants", {**base_env, "GRANT_SOURCES": SOURCES}, grant_mappings(args.mappings)),
        ):
            settings = Settings.from_environ(env)
            cache = PermissionCache(MemoryPermissionSource(records), ttl=3600, max_stale=3600)
            cache.get()
            authorizer = Authorizer(settings, keys=key_source(settings), permissions=cache)
            handler = load_handler(env)
            handler.AUTHORIZER = authorizer
            profiles = []
            for _ in range(50):
                claims: dict[str, Any] = {"scope": " ".join(f"svc{rng.randrange(names)}:scope" for _ in range(2))}
                if side == "grants":
                    claims["cognito:groups"] = [f"group{rng.randrange(names)}" for _ in range(2)]
                    claims["realm_access"] = {"roles": [f"role{rng.randrange(names)}" for _ in range(2)]}
                    claims["tenant_id"] = f"tenant{rng.randrange(50)}"
                profiles.append(claims)
            events = []
            for i in range(args.tokens + 50):
                profile = dict(profiles[i % 50])
                scope = profile.pop("scope")
                token = idp.mint(scope=scope, audience="bench", subject=f"client{i}", **profile)
                events.append({"type": "TOKEN", "authorizationToken": f"Bearer {token}",
                               "methodArn": f"{API}/prod/GET/svc1/x"})
            for event in events[:50]:  # one decision per profile: keys and memos warm
                handler.lambda_handler(event, None)
            sides[side] = (handler, events[50:])

        timings: dict[str, list[float]] = {"scopes": [], "grants": []}
        ratios = []
        with open(os.devnull, "w", buffering=1) as devnull:
            stderr, sys.stderr = sys.stderr, devnull
            try:
                for start in range(0, args.tokens - args.round + 1, args.round):
                    order = ("scopes", "grants") if (start // args.round) % 2 == 0 else ("grants", "scopes")
                    medians = {}
                    for side in order:
                        handler, events = sides[side]
                        spent = []
                        for event in events[start:start + args.round]:
                            began = time.perf_counter_ns()
                            handler.lambda_handler(event, None)
                            spent.append((time.perf_counter_ns() - began) / 1000)
                        timings[side] += spent
                        medians[side] = statistics.median(spent)
                    ratios.append(medians["grants"] / medians["scopes"])
            finally:
                sys.stderr = stderr

    print(f"{args.mappings} mappings, {args.tokens} decisions per side, rounds of {args.round}")
    print(f"{'side':<8} {'median µs':>10} {'p99 µs':>8}")
    for side in ("scopes", "grants"):
        print(f"{side:<8} {statistics.median(timings[side]):>10.1f} {percentile(timings[side], 0.99):>8.1f}")
    print(f"grants × scopes (median over rounds): {statistics.median(ratios):.3f}  (target ≤ 1.15)")


if __name__ == "__main__":
    main()
