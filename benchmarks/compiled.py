"""Warm decisions in-process with the decision path compiled by mypyc, against the same code interpreted.

    .venv/bin/python benchmarks/compiled.py [--tokens 4000] [--sizes 10,1000] [--runs 2] [--no-node]

``policy-engine bundle --mypyc`` ships the modules every warm decision runs through
(``policy_engine.admin.packaging.MYPYC_MODULES``) as C extensions. This script measures
what that buys in-process: it copies this checkout's code into a temporary folder, adds
the extensions ``compile_mypyc`` builds (as the bundle does; mypyc comes with mypy, a
test dependency, and needs a C compiler and Python's headers) and checks that the copy
imports them. Then it runs ``benchmarks/decision.py`` and, when Node.js is available,
``benchmarks/node_warm.py`` in both trees, alternating tree by tree ``--runs`` times,
each a fresh process, and prints their rows side by side:

* ``× floor``: the handler against the floor, call by call (``decision.py``'s "calls");
* ``× node``: the handler against aws-jwt-verify plus the same mapping lookup.

The sources are the same in both trees, so the difference is what the interpreter costs
on this path. (``lambda_runtime.py --mypyc`` measures the bundle under the runtime client.)
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from policy_engine.admin.packaging import MYPYC_MODULES, compile_mypyc  # noqa: E402
from policy_engine.errors import BundleError  # noqa: E402

# "      10  calls       handler        70.8    138.7      48.4     1.46"
_DECISION_ROW = re.compile(r"^\s*(\d+)\s+calls\s+handler\s+([\d.]+)\s+[\d.]+\s+([\d.]+)\s+([\d.]+)\s*$")
# "      10        66.2   190.9      62.3   179.4    1.16  4500 each"
_NODE_ROW = re.compile(r"^\s*(\d+)\s+([\d.]+)\s+[\d.]+\s+([\d.]+)\s+[\d.]+\s+([\d.]+)\s+\d+ each\s*$")


def compiled_copy(into: Path) -> None:
    """This checkout's code in ``into``, with the extensions of ``MYPYC_MODULES`` beside their sources."""
    for folder in ("policy_engine", "handler", "benchmarks", "permissions"):
        shutil.copytree(ROOT / folder, into / folder, ignore=shutil.ignore_patterns("__pycache__"))
    (ROOT / ".cache").mkdir(exist_ok=True)
    (into / ".cache").symlink_to(ROOT / ".cache")  # node_warm.py's aws-jwt-verify install
    sources = {path.relative_to(into).as_posix(): path.read_bytes()
               for folder in ("policy_engine", "handler") for path in (into / folder).rglob("*.py")}
    arch = {"x86_64": "x86_64", "aarch64": "arm64"}.get(platform.machine(), platform.machine())
    python = f"{sys.version_info.major}.{sys.version_info.minor}"
    try:
        built = compile_mypyc(sources, arch=arch, python=python, interpreter=sys.executable)
    except BundleError as exc:
        sys.exit(str(exc))
    for name, data in built.items():
        (into / name).write_bytes(data)
    names = [m.removesuffix(".py").replace("/", ".") for m in MYPYC_MODULES]
    # Found as an import would find them (handler.app's init needs configuration).
    check = ("import importlib.util, sys\n"
             f"bad = [n for n in {names!r} if not importlib.util.find_spec(n).origin.endswith('.so')]\n"
             "sys.exit(f'not compiled: {bad}' if bad else 0)\n")
    imported = subprocess.run([sys.executable, "-c", check], cwd=into, env=_env(into), capture_output=True, text=True)
    if imported.returncode != 0:
        sys.exit(f"the compiled copy does not import its extensions: {imported.stdout}{imported.stderr}")


def _env(tree: Path) -> dict[str, str]:
    # The tree's own package first, ahead of the editable install of this checkout.
    return {**os.environ, "PYTHONPATH": str(tree)}


def run(tree: Path, script: str, args: list[str], pattern: re.Pattern[str]) -> dict[int, tuple[float, float]]:
    """``{size: (handler median µs, ratio)}`` from one run of a benchmark script in ``tree``."""
    done = subprocess.run([sys.executable, f"benchmarks/{script}", *args], cwd=tree, env=_env(tree),
                          capture_output=True, text=True)
    if done.returncode != 0:
        sys.exit(f"{script} failed in {tree}:\n{done.stderr[-3000:]}")
    rows = {}
    for line in done.stdout.splitlines():
        match = pattern.match(line)
        if match:
            rows[int(match.group(1))] = (float(match.group(2)), float(match.group(4)))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tokens", type=int, default=4000)
    parser.add_argument("--sizes", default="10,1000")
    parser.add_argument("--runs", type=int, default=2, help="runs of each script in each tree, alternating")
    parser.add_argument("--no-node", action="store_true", help="skip the comparison with aws-jwt-verify")
    args = parser.parse_args()
    node = not args.no_node and shutil.which("node") is not None and shutil.which("npm") is not None
    with tempfile.TemporaryDirectory(prefix="policy-engine-mypyc-") as tmp:
        compiled = Path(tmp)
        compiled_copy(compiled)
        trees = {"interpreted": ROOT, "compiled": compiled}
        results: dict[tuple[str, str, int], list[tuple[float, float]]] = {}
        common = ["--tokens", str(args.tokens), "--sizes", args.sizes]
        for _ in range(args.runs):
            for name, tree in trees.items():
                for size, row in run(tree, "decision.py", common, _DECISION_ROW).items():
                    results.setdefault(("floor", name, size), []).append(row)
                if node:
                    for size, row in run(tree, "node_warm.py", common, _NODE_ROW).items():
                        results.setdefault(("node", name, size), []).append(row)
    print(f"warm decisions, {args.runs} run(s) of each script per tree, medians over runs")
    print(f"{'mappings':>9}  {'tree':<12} {'handler µs':>10} {'× floor':>8} {'handler µs':>11} {'× node':>7}")
    for size in (int(s) for s in args.sizes.split(",")):
        for name in trees:
            cells = []
            for kind in ("floor", "node"):
                rows = results.get((kind, name, size))
                if rows:
                    cells.append((f"{statistics.median(r[0] for r in rows):.1f}",
                                  f"{statistics.median(r[1] for r in rows):.2f}"))
                else:
                    cells.append(("-", "-"))
            (floor_us, floor_x), (node_us, node_x) = cells
            print(f"{size:>9}  {name:<12} {floor_us:>10} {floor_x:>8} {node_us:>11} {node_x:>7}")


if __name__ == "__main__":
    main()
