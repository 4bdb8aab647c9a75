"""Import time and policy sizes of OpenAPI documents, as `import openapi` and the runtime see them.

    .venv/bin/python benchmarks/openapi.py SPEC [SPEC ...] [--runs 5]

For each document: the time to read it and write the permission YAML (``read_openapi``
and ``render``, what ``policy-engine import openapi`` does besides file I/O), the time to
load that YAML into a ``PermissionSet``, and, for every caller the document describes
(one per security alternative, and one holding every scope), the first evaluation on
one stage (sibling routes included: ``core.siblings``), a remembered one, and the
authorizer response's size in bytes as the runtime renders it. Times are medians over
``--runs`` fresh loads.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from policy_engine.admin.lint import estimate_response
from policy_engine.admin.openapi import read_openapi
from policy_engine.admin.openapi_import import render
from policy_engine.core.decision import MAX_RESPONSE_BYTES, response_size
from policy_engine.core.permissions import compile_records, normalize_records

API = "arn:aws:execute-api:us-east-1:123456789012:a1b2c3d4e5"
STAGE = "prod"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("specs", nargs="+", metavar="SPEC")
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    print(f"{'document':<28} {'ops':>4} {'import ms':>10} {'load ms':>8} {'callers':>8} {'first ms':>9} "
          f"{'max first':>10} {'memo µs':>8} {'max bytes':>10} {'Deny':>5} {'per-req':>8}")
    for spec in args.specs:
        imports, loads, firsts, worst_first, memos = [], [], [], [], []
        sizes: list[tuple[int, int, int]] = []
        for run in range(args.runs):
            started = time.perf_counter()
            document = read_openapi(spec)
            text = render(document, arn=API, stages=[STAGE], command="benchmark", base_path="ignore")
            imports.append(time.perf_counter() - started)
            started = time.perf_counter()
            records, locate = normalize_records(yaml.safe_load(text), lambda path: str(path))
            permissions = compile_records(records, locate)
            loads.append(time.perf_counter() - started)
            alternatives = {a for op in document.operations for a in op.requirements or ()}
            callers = sorted({*alternatives, frozenset().union(*alternatives)}, key=sorted)
            times = []
            for held in callers:
                started = time.perf_counter()
                evaluation = permissions.evaluate(held, API, STAGE)
                times.append(time.perf_counter() - started)
                started = time.perf_counter()
                permissions.evaluate(held, API, STAGE)
                memos.append(time.perf_counter() - started)
                if run == 0:
                    response = estimate_response(evaluation.resources, api_arn=API, stage=STAGE, scopes=held,
                                                 version=permissions.version, excluded=evaluation.excluded)
                    sizes.append((response_size(response), len(evaluation.excluded), len(evaluation.per_request)))
            firsts.append(statistics.median(times) if times else 0.0)
            worst_first.append(max(times, default=0.0))
        largest = max(sizes, default=(0, 0, 0))
        print(f"{Path(spec).name[:28]:<28} {len(document.operations):>4} {statistics.median(imports) * 1000:>10.1f} "
              f"{statistics.median(loads) * 1000:>8.1f} {len(sizes):>8} {statistics.median(firsts) * 1000:>9.2f} "
              f"{statistics.median(worst_first) * 1000:>10.2f} {statistics.median(memos) * 1e6:>8.1f} "
              f"{largest[0]:>10} {max((s[1] for s in sizes), default=0):>5} "
              f"{sum(1 for s in sizes if s[2]):>8}")
    print(f"\nmax bytes: the largest authorizer response among the callers (limit {MAX_RESPONSE_BYTES}); "
          "Deny: most sibling Denies in one policy; per-req: callers with a route allowed per request only")


if __name__ == "__main__":
    main()
