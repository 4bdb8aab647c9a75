"""How `validate --openapi` scales with the size of the document (whole processes).

    .venv/bin/python benchmarks/coverage.py [--sizes 1250,2500,5000] [--runs 3]

For each size N, a generated OpenAPI 3.0 document of N operations (GET and PUT on N/2
template paths spread over 50 services, each with its own scope requirement) is imported
with `policy-engine import openapi`, then checked against it with
`policy-engine validate OUT --openapi DOC --sizes 0`: the median wall time of ``--runs``
validate processes. "× first" compares each size with the first one, measured in the
same run: with N doubling, about 2 is linear, 4 quadratic.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ARN = "arn:aws:execute-api:us-east-1:123456789012:a1b2c3d4e5"
CLI = [sys.executable, "-m", "policy_engine.admin.cli"]


def document(operations: int) -> dict[str, object]:
    paths = {}
    for i in range(operations // 2):
        paths[f"/svc{i % 50}/items{i}/{{id}}"] = {
            "get": {"security": [{"oauth": [f"read{i % 97}"]}]},
            "put": {"security": [{"oauth": [f"write{i % 89}", "write"]}]},
        }
    flows = {"clientCredentials": {"tokenUrl": "https://idp.example.com/token", "scopes": {}}}
    return {"openapi": "3.0.3", "info": {"title": f"{operations} operations", "version": "1"},
            "components": {"securitySchemes": {"oauth": {"type": "oauth2", "flows": flows}}}, "paths": paths}


def timed(command: list[str]) -> float:
    started = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    elapsed = time.perf_counter() - started
    if done.returncode != 0:
        sys.exit(f"{' '.join(command)} exited {done.returncode}:\n{done.stderr}")
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1250,2500,5000")
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    sizes = [int(size) for size in args.sizes.split(",")]
    print(f"{'operations':>10}  {'validate --openapi s':>20}  {'× first':>7}  {'µs per operation':>16}")
    first = None
    with tempfile.TemporaryDirectory() as scratch:
        for size in sizes:
            spec = Path(scratch) / f"doc{size}.json"
            spec.write_text(json.dumps(document(size)))
            out = Path(scratch) / f"out{size}" / "api.yaml"
            timed([*CLI, "import", "openapi", str(spec), "--arn", ARN, "--stages", "dev", "-o", str(out)])
            seconds = statistics.median(
                timed([*CLI, "validate", str(out.parent), "--openapi", str(spec), "--sizes", "0"])
                for _ in range(args.runs))
            first = first or seconds
            print(f"{size:>10}  {seconds:>20.2f}  {seconds / first:>7.2f}  {seconds / size * 1e6:>16.0f}")


if __name__ == "__main__":
    main()
