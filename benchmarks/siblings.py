"""The cost of a first decision when an API has many route templates side by side.

    .venv/bin/python benchmarks/siblings.py [--routes 2000] [--callers 20] [--seed 1]

A caller granted a route template whose IAM glob also reaches sibling routes costs a
sibling check the first time its grant set is decided on a container (the answer is
then memoised with the mappings). This script builds one API and stage with
``--routes`` random route templates (parameters at any depth, greedy tails, ``ANY`` and
single methods, literal segments from a small vocabulary so that templates overlap a
lot), each granted by one of 40 scopes, and times ``PermissionSet.evaluate`` for
``--callers`` fresh callers of 3 scopes each: the first decision of each grant set, in a
fresh permission set every time, so nothing is memoised between callers.

No timed target: it reports the median and the slowest first decision, to compare two
trees on the same machine (run it in each).
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from policy_engine.core.permissions import compile_records

API = "arn:aws:execute-api:eu-west-1:210987654321:zz9yy8xx7w"
WORDS = ("pets", "store", "orders", "items", "photos", "v2", "a.b", "x-y", "u_1", "Z", "1")
METHODS = ("GET", "POST", "PUT", "DELETE", "PATCH", "ANY")


def random_template(rng: random.Random) -> tuple[str, str]:
    depth = rng.randint(1, 5)
    segments = [f"{{p{i}}}" if rng.random() < 0.35 else rng.choice(WORDS) for i in range(depth)]
    if rng.random() < 0.2:
        segments.append("{proxy+}")
    return rng.choice(METHODS), "/" + "/".join(segments)


def records(count: int, rng: random.Random) -> list[dict[str, str]]:
    routes = sorted({random_template(rng) for _ in range(count)})
    return [{"arn": API, "stage": "prod", "httpVerb": method, "resource": path, "scope": f"s{rng.randrange(40)}"}
            for method, path in routes]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--routes", type=int, default=2000)
    parser.add_argument("--callers", type=int, default=20)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    mappings = records(args.routes, rng)
    times = []
    for _ in range(args.callers):
        permissions = compile_records(mappings, str)
        held = frozenset(f"s{n}" for n in rng.sample(range(40), 3))
        started = time.perf_counter()
        permissions.evaluate(held, API, "prod")
        times.append(time.perf_counter() - started)
    print(f"{len(mappings)} route templates, {args.callers} callers of 3 scopes: first decision median "
          f"{statistics.median(times) * 1000:.0f} ms, slowest {max(times) * 1000:.0f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
