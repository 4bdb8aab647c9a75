"""What shadow evaluation costs a warm decision: the handler with a candidate loaded, against it without.

    .venv/bin/python benchmarks/shadow.py [--tokens 8000] [--sizes 10,1000]

As in ``benchmarks/decision.py``: every decision uses a fresh token, keys come from a
real JWKS over HTTP on 127.0.0.1 (fetched once), mappings from an in-memory source of N
mappings over N/10 scopes, callers belong to 50 client profiles of 2 scopes each, and
each log line is one write(2) to /dev/null. The candidate is the same mappings with one
change (the first mapping's method), so a few callers differ under it (a ``shadow_diff``
line each time) and the rest cost the comparison only.

Measured per call: ``lambda_handler(event)`` end to end, the shadow evaluation and the
health line included. The two handlers alternate call by call (every call runs after
different code, as in Lambda). "× without" is the median over rounds of (median with a
candidate ÷ median without), which cancels the machine's drift between rounds. The
issue's bound is 1.3.
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

# The same mappings, API and statistics as the warm-decision benchmark beside this script.
from decision import API, mappings, percentile

from policy_engine.adapters.memory import MemoryPermissionSource
from policy_engine.admin.local.idp import LocalIdentityProvider
from policy_engine.admin.local.invoke import load_handler
from policy_engine.bootstrap import key_source
from policy_engine.cache import CandidateCache, PermissionCache
from policy_engine.engine import Authorizer
from policy_engine.settings import Settings


def timed(fn, item) -> float:
    start = time.perf_counter_ns()
    fn(item)
    return (time.perf_counter_ns() - start) / 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tokens", type=int, default=8000)
    parser.add_argument("--sizes", default="10,1000")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    rng = random.Random(7)
    rows = []
    with LocalIdentityProvider() as idp:
        env = {"ISSUER": idp.issuer, "AUDIENCE": "bench", "JWKS_URI": idp.jwks_uri}
        settings = Settings.from_environ(env)
        keys = key_source(settings)
        for size in sizes:
            scope_count = max(1, size // 10)
            profiles = [" ".join(f"svc{rng.randrange(scope_count)}:scope" for _ in range(2)) for _ in range(50)]
            tokens = [idp.mint(scope=rng.choice(profiles), audience="bench", subject=f"client{i}")
                      for i in range(args.tokens)]
            events = [{"type": "TOKEN", "authorizationToken": f"Bearer {t}", "methodArn": f"{API}/prod/GET/svc0/x"}
                      for t in tokens]
            live = mappings(size)
            changed = [dict(live[0], httpVerb="PATCH"), *live[1:]]

            def authorizer(candidate: CandidateCache | None, live: list[dict[str, str]] = live) -> Authorizer:
                cache = PermissionCache(MemoryPermissionSource(live), ttl=3600, max_stale=3600,
                                        digests=candidate is not None)
                cache.get()
                if candidate is not None:
                    candidate.get()
                return Authorizer(settings, keys=keys, permissions=cache, candidate=candidate)

            candidate = CandidateCache(lambda changed=changed: MemoryPermissionSource(changed), "memory candidate",
                                       ttl=3600, max_stale=3600, background=False)
            handlers = {}
            for name, shadow in (("without", None), ("with", candidate)):
                handler = load_handler(env)
                handler.AUTHORIZER = authorizer(shadow)
                handlers[name] = handler
            with open(os.devnull, "w", buffering=1) as devnull:
                counted = Counting(devnull)
                stderr, sys.stderr = sys.stderr, counted
                try:
                    # One decision per profile warms keys and memos the way a warm container is.
                    for event in events[:50]:
                        for handler in handlers.values():
                            handler.lambda_handler(event, None)
                    fresh = iter(events[50:])
                    times: dict[str, list[float]] = {"without": [], "with": []}
                    ratios = []
                    for _ in range((args.tokens - 50) // 200):
                        round_times: dict[str, list[float]] = {"without": [], "with": []}
                        for _ in range(100):
                            for name, handler in handlers.items():
                                round_times[name].append(timed(lambda e, h=handler: h.lambda_handler(e, None),
                                                               next(fresh)))
                        for name in times:
                            times[name] += round_times[name]
                        with_, without = round_times["with"], round_times["without"]
                        ratios.append(statistics.median(with_) / statistics.median(without))
                finally:
                    sys.stderr = stderr
            share = counted.diffs / (50 + len(times["with"]))  # of the requests the shadowed handler saw
            for name in ("without", "with"):
                rows.append((size, name, statistics.median(times[name]), percentile(times[name], 0.99),
                             statistics.median(ratios) if name == "with" else 1.0, share if name == "with" else 0.0))
    print(f"{'mappings':>9}  {'candidate':<9} {'median µs':>10} {'p99 µs':>8} {'× without':>10} {'shadow_diff':>12}")
    for size, name, median, p99, ratio, share in rows:
        print(f"{size:>9}  {name:<9} {median:>10.1f} {p99:>8.1f} {ratio:>10.3f} {share:>11.0%}")


class Counting:
    """Passes log lines on, counting the shadow_diff lines (the share of requests a candidate changes)."""

    def __init__(self, out) -> None:
        self.out = out
        self.diffs = 0

    def write(self, text: str) -> int:
        if '"shadow_diff"' in text:
            self.diffs += 1
        return self.out.write(text)

    def flush(self) -> None:
        self.out.flush()


if __name__ == "__main__":
    main()
