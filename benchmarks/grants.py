"""Warm decisions with groups, roles and a tenant placeholder, against scopes only.

    .venv/bin/python benchmarks/grants.py [--tokens 16000] [--mappings 10000]

Two authorizers behind the real handler, keys from a real JWKS on 127.0.0.1, every
decision a fresh token, calls alternating between the two (one of each in turn):

* scopes: N mappings over N/10 scopes; tokens carry 2 scopes (one grant source);
* grants: N mappings, a third by scope, a third by group, a third by role, and one in
  ten of them with a ``{claim:tenant_id}`` segment; three grant sources (``scope``,
  ``cognito:groups``, ``roles``); tokens carry a scope, a group, a role and one of 50
  tenants.

Prints the median and p99 (µs) of each and the grants/scopes ratio of the medians.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from policy_engine.adapters.memory import MemoryPermissionSource
from policy_engine.admin.local.idp import LocalIdentityProvider
from policy_engine.admin.local.invoke import load_handler
from policy_engine.bootstrap import key_source
from policy_engine.cache import PermissionCache
from policy_engine.core.grants import SCOPE, GrantSource
from policy_engine.engine import Authorizer
from policy_engine.settings import Settings

API = "arn:aws:execute-api:us-east-1:123456789012:a1b2c3d4e5"
VERBS = ("GET", "POST", "PUT", "DELETE")
KINDS = ("scope", "group", "role")


def scope_mappings(n: int) -> list[dict[str, object]]:
    names = max(1, n // 10)
    return [{"arn": API, "stage": "prod", "httpVerb": VERBS[i % 4], "resource": f"/svc{i % names}/items{i}/*",
             "scope": f"svc{i % names}:scope"} for i in range(n)]


def grant_mappings(n: int) -> list[dict[str, object]]:
    names = max(1, n // 10)
    out: list[dict[str, object]] = []
    for i in range(n):
        kind = KINDS[i % 3]
        resource = f"/tenants/{{claim:tenant_id}}/svc{i % names}/items{i}/*" if i % 10 == 0 else \
            f"/svc{i % names}/items{i}/*"
        out.append({"arn": API, "stage": "prod", "httpVerb": VERBS[i % 4], "resource": resource,
                    kind: f"svc{i % names}:{kind}"})
    return out


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tokens", type=int, default=16000)
    parser.add_argument("--mappings", type=int, default=10000)
    args = parser.parse_args()
    rng = random.Random(7)
    names = max(1, args.mappings // 10)
    with LocalIdentityProvider() as idp:
        environ = {"ISSUER": idp.issuer, "AUDIENCE": "bench", "JWKS_URI": idp.jwks_uri}
        settings = Settings.from_environ(environ)
        keys = key_source(settings)
        handlers = {}
        for label, records in (("scopes", scope_mappings(args.mappings)), ("grants", grant_mappings(args.mappings))):
            cache = PermissionCache(MemoryPermissionSource(records), ttl=3600, max_stale=3600)
            cache.get()
            authorizer = Authorizer(settings, keys=keys, permissions=cache)
            if label == "grants":
                # Three grant sources, given to the verifier directly (GRANT_SOURCES' job).
                authorizer._jwt._grant_sources = (
                    GrantSource(SCOPE, (("scope",),)), GrantSource("group", (("cognito:groups",),)),
                    GrantSource("role", (("roles",),)))
            handler = load_handler(environ)
            handler.AUTHORIZER = authorizer
            handlers[label] = handler
        profiles = [(f"svc{rng.randrange(names)}:scope svc{rng.randrange(names)}:scope",
                     f"svc{rng.randrange(names)}:group", f"svc{rng.randrange(names)}:role", f"t{p}")
                    for p in range(50)]

        def event(label: str, i: int) -> dict[str, object]:
            scope, group, role, tenant = rng.choice(profiles)
            claims = {} if label == "scopes" else {"cognito:groups": [group], "roles": [role], "tenant_id": tenant}
            token = idp.mint(scope=scope if label == "scopes" else scope.split()[0], audience="bench",
                             subject=f"client{i}", **claims)
            return {"type": "TOKEN", "authorizationToken": f"Bearer {token}", "methodArn": f"{API}/prod/GET/svc1/x"}

        events = [(event("scopes", i), event("grants", i)) for i in range(args.tokens)]
        times: dict[str, list[float]] = {"scopes": [], "grants": []}
        with open(os.devnull, "w", buffering=1) as devnull:
            stderr, sys.stderr = sys.stderr, devnull
            try:
                for n, (plain, rich) in enumerate(events):
                    for label, ev in (("scopes", plain), ("grants", rich)):
                        start = time.perf_counter_ns()
                        handlers[label].lambda_handler(ev, None)
                        if n >= 200:  # the first ones warm keys and memos
                            times[label].append((time.perf_counter_ns() - start) / 1000)
            finally:
                sys.stderr = stderr
    for label, values in times.items():
        print(f"{label:<7} {args.mappings} mappings: median {statistics.median(values):7.1f} µs  "
              f"p99 {percentile(values, 0.99):7.1f} µs")
    print(f"grants/scopes: median {statistics.median(times['grants']) / statistics.median(times['scopes']):.3f}x  "
          f"p99 {percentile(times['grants'], 0.99) / percentile(times['scopes'], 0.99):.3f}x")


if __name__ == "__main__":
    main()
