"""Warm decision latency of the authorizer, against the floor and PyJWT.

    .venv/bin/python benchmarks/decision.py [--tokens 24000] [--sizes 10,1000,100000] [--buffered-log]

Every decision uses a fresh token (never the same one twice). Keys come from a real
JWKS over HTTP on 127.0.0.1 (fetched once, as in a warm container); mappings from an
in-memory source of N mappings over N/10 scopes; callers belong to 50 client
profiles of 2 scopes each. Measured, in microseconds:

* floor: RSA-2048 signature check + base64url/JSON decoding of the token's parts
* pyjwt: ``jwt.decode`` with the key in hand (signature + its claim checks)
* handler: ``lambda_handler(event)`` end to end (parse, verify, claims, policy,
  render, one JSON log line written to /dev/null with one write(2) per line, as
  Lambda's unbuffered log stream does)

Each of pyjwt and handler is compared with the floor on its own, in rounds that
alternate the two (a third workload in the same rounds warms code it shares with only
one of them: PyJWT and the floor share base64 and json helpers). Two ways to alternate:

* blocks: 100 calls of one, then 100 of the other; each runs with caches warmed by
  itself, which favours small code such as the floor;
* calls: one call of each in turn; every call runs after different code, as in Lambda,
  where the runtime's own polling and JSON work runs between two invocations.

"× floor" is the median over rounds of (median of the round's calls ÷ median of the
round's floor calls), which cancels the machine's drift between rounds.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import random
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import jwt
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding

from policy_engine.adapters.memory import MemoryPermissionSource
from policy_engine.admin.local.idp import LocalIdentityProvider
from policy_engine.bootstrap import key_source
from policy_engine.cache import PermissionCache
from policy_engine.engine import Authorizer
from policy_engine.settings import Settings

API = "arn:aws:execute-api:us-east-1:123456789012:a1b2c3d4e5"
VERBS = ("GET", "POST", "PUT", "DELETE")


def mappings(n: int) -> list[dict[str, str]]:
    scopes = max(1, n // 10)
    return [
        {"arn": API, "stage": "prod", "httpVerb": VERBS[i % 4], "resource": f"/svc{i % scopes}/items{i}/*",
         "scope": f"svc{i % scopes}:scope"}
        for i in range(n)
    ]


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def timed(fn, items) -> list[float]:
    out = []
    for item in items:
        start = time.perf_counter_ns()
        fn(item)
        out.append((time.perf_counter_ns() - start) / 1000)
    return out


def b64d(segment: str) -> bytes:
    return base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tokens", type=int, default=24000)
    parser.add_argument("--sizes", default="10,1000,100000")
    parser.add_argument("--buffered-log", action="store_true",
                        help="buffer the log lines instead (no system call per decision), to see what it costs")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    rng = random.Random(7)

    with LocalIdentityProvider() as idp:
        settings = Settings.from_environ({"ISSUER": idp.issuer, "AUDIENCE": "bench", "JWKS_URI": idp.jwks_uri})
        keys = key_source(settings)
        public_key = idp.keys[0].private_key.public_key()
        rows = []
        for size in sizes:
            scope_count = max(1, size // 10)
            profiles = [" ".join(f"svc{rng.randrange(scope_count)}:scope" for _ in range(2)) for _ in range(50)]
            tokens = [idp.mint(scope=rng.choice(profiles), audience="bench", subject=f"client{i}")
                      for i in range(args.tokens)]
            events = [{"type": "TOKEN", "authorizationToken": f"Bearer {t}", "methodArn": f"{API}/prod/GET/svc1/x"}
                      for t in tokens]
            built = time.perf_counter()
            cache = PermissionCache(MemoryPermissionSource(mappings(size)), ttl=3600, max_stale=3600)
            cache.get()
            load_s = time.perf_counter() - built
            authorizer = Authorizer(settings, keys=keys, permissions=cache)
            # One decision per profile warms keys and memo the way a warm container is.
            for event in events[:50]:
                authorizer.answer(event)

            def floor(token: str) -> None:
                head, body, sig = token.split(".")
                json.loads(b64d(head))
                json.loads(b64d(body))
                public_key.verify(b64d(sig), f"{head}.{body}".encode(), padding.PKCS1v15(), hashes.SHA256())

            def pyjwt(token: str) -> None:
                jwt.decode(token, public_key, algorithms=["RS256"], audience="bench", issuer=idp.issuer)

            from policy_engine.admin.local.invoke import load_handler

            handler = load_handler({"ISSUER": idp.issuer, "AUDIENCE": "bench", "JWKS_URI": idp.jwks_uri})
            handler.AUTHORIZER = authorizer
            candidates = {
                "pyjwt": (pyjwt, lambda event: event["authorizationToken"][7:]),
                "handler": (lambda event, handler=handler: handler.lambda_handler(event, None), lambda event: event),
            }
            # Line-buffered: a write(2) per log line, as Lambda's unbuffered log stream does.
            with open(os.devnull, "w", buffering=-1 if args.buffered_log else 1) as devnull:
                stderr, sys.stderr = sys.stderr, devnull
                fresh = iter(events[50:])
                try:
                    for mode in ("blocks", "calls"):
                        for name, (fn, arg) in candidates.items():
                            floor_all, other_all, ratios = [], [], []
                            for _ in range((args.tokens - 50) // 800):
                                pairs = [(next(fresh), next(fresh)) for _ in range(100)]
                                if mode == "blocks":
                                    base = timed(floor, [f["authorizationToken"][7:] for f, _ in pairs])
                                    other = timed(fn, [arg(o) for _, o in pairs])
                                else:
                                    base, other = [], []
                                    for f, o in pairs:
                                        base += timed(floor, [f["authorizationToken"][7:]])
                                        other += timed(fn, [arg(o)])
                                floor_all += base
                                other_all += other
                                ratios.append(statistics.median(other) / statistics.median(base))
                            rows.append((size, mode, name, statistics.median(other_all), percentile(other_all, 0.99),
                                         statistics.median(ratios), statistics.median(floor_all)))
                finally:
                    sys.stderr = stderr
            rows.append((size, f"(cold load of {size} mappings: {load_s * 1000:.0f} ms)", None, None, None, None, None))

    print(f"{'mappings':>9}  {'alternating':<11} {'what':<8} {'median µs':>10} {'p99 µs':>8} {'floor µs':>9} "
          f"{'× floor':>8}")
    for size, mode, name, median, p99, ratio, floor_median in rows:
        if name is None:
            print(f"{size:>9}  {mode}")
        else:
            print(f"{size:>9}  {mode:<11} {name:<8} {median:>10.1f} {p99:>8.1f} {floor_median:>9.1f} {ratio:>8.2f}")


if __name__ == "__main__":
    main()
