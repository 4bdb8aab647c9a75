"""Bundle size and the handler's cold import time from the bundle.

    .venv/bin/python benchmarks/bundle.py [--runs 9]

Builds the bundle for this machine (and the template's default target, x86_64 /
python3.12, for its size), unpacks it, and times, in fresh isolated interpreters that
see only the unpacked bundle (``-I -S -B``: no site-packages, no bytecode written, as on
Lambda's read-only ``/var/task``):

- ``import policy_engine.bootstrap``: every module the handler needs, no I/O;
- ``import handler.app``: the same plus the init Lambda runs once per container (read
  settings, fetch the JWKS from a local IdP over loopback, load the YAML permissions);
- the same two from the default bundle, which ships bytecode (tied to one Python
  version, so it needs an interpreter of the target version to build), against one
  built with ``--no-compile``;
- first answer through ``awslambdaric``: process start to the first decision.

Medians of ``--runs`` runs. Timings on a shared 2-core machine vary by about 20 %.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from policy_engine.admin.local.idp import LocalIdentityProvider  # noqa: E402
from policy_engine.admin.local.runtime_api import (  # noqa: E402
    RuntimeApi,
    ensure_runtime_client,
    isolated_command,
    start_runtime,
)
from policy_engine.admin.packaging import build_bundle  # noqa: E402

CACHE = ROOT / ".cache"
API = "arn:aws:execute-api:us-east-1:123456789012:a1b2c3d4e5"
TIMED_IMPORT = "import time; t = time.perf_counter(); import {module}; print(time.perf_counter() - t)"


def _median_ms(values: list[float]) -> str:
    return (f"median {statistics.median(values) * 1000:7.1f} ms  "
            f"(min {min(values) * 1000:.1f}, max {max(values) * 1000:.1f})")


def time_import(task: Path, module: str, env: dict[str, str], runs: int) -> list[float]:
    results = []
    for _ in range(runs):
        out = subprocess.run(isolated_command([task], TIMED_IMPORT.format(module=module)), cwd=task, env=env,
                             capture_output=True, text=True, check=True)
        results.append(float(out.stdout.strip().splitlines()[-1]))
    return results


def import_breakdown(task: Path, env: dict[str, str], count: int = 8) -> list[tuple[int, str]]:
    """Self time of ``import handler.app`` summed per top-level package (``-X importtime``)."""
    command = isolated_command([task], "import handler.app")
    command.insert(1, "-Ximporttime")
    err = subprocess.run(command, cwd=task, env=env, capture_output=True, text=True, check=True).stderr
    totals: dict[str, int] = {}
    for line in err.splitlines():
        parts = line.split("|")
        if not line.startswith("import time:") or len(parts) != 3 or not parts[1].strip().isdigit():
            continue
        package = parts[2].strip().split(".")[0]
        totals[package] = totals.get(package, 0) + int(parts[0].split(":")[1])
    return sorted(((us, name) for name, us in totals.items()), reverse=True)[:count]


def first_answer(task: Path, client: Path, env: dict[str, str], runs: int, log: Path) -> list[float]:
    results = []
    for _ in range(runs):
        with LocalIdentityProvider() as idp, RuntimeApi() as api:
            token = idp.mint(scope="pets:read")
            started = time.perf_counter()
            process = start_runtime(task, client, "handler.app.lambda_handler", api,
                                    {**env, "ISSUER": idp.issuer}, log)
            try:
                result = api.invoke({"type": "TOKEN", "authorizationToken": f"Bearer {token}",
                                     "methodArn": f"{API}/dev/GET/pets/12"}, timeout=60)
                results.append(time.perf_counter() - started)
                assert result.error is None, result.error
            finally:
                process.terminate()
                process.wait()
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=9)
    args = parser.parse_args()
    arch = {"x86_64": "x86_64", "aarch64": "arm64"}[platform.machine()]
    python = f"{sys.version_info.major}.{sys.version_info.minor}"

    with tempfile.TemporaryDirectory() as scratch_name:
        scratch = Path(scratch_name)
        print("bundle sizes (policy-engine bundle --no-compile; boto3 left out)")
        bundles = {}
        for target_arch, target_python in sorted({(arch, python), ("x86_64", "3.12"), ("arm64", "3.12")}):
            bundle = build_bundle(scratch / f"{target_arch}-{target_python}.zip", arch=target_arch,
                                  python=target_python, wheel_cache=CACHE / "wheels", bytecode=False)
            bundles[(target_arch, target_python)] = bundle
            print(f"  {target_arch:7} python{target_python}: {bundle.size / 1e6:5.2f} MB zipped, "
                  f"{bundle.unzipped_size / 1e6:5.2f} MB unzipped, {bundle.files} files")

        task = scratch / "task"
        with zipfile.ZipFile(bundles[(arch, python)].path) as archive:
            archive.extractall(task)
        client = ensure_runtime_client(CACHE)
        print(f"\ncold imports from the unpacked {arch} python{python} bundle, {args.runs} fresh interpreters each")
        with LocalIdentityProvider() as idp:
            env = {"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8", "ISSUER": idp.issuer, "AUDIENCE": "policy-engine-demo"}
            modules = time_import(task, "policy_engine.bootstrap", env, args.runs)
            print(f"  import policy_engine.bootstrap (no .pyc)   {_median_ms(modules)}")
            handler = time_import(task, "handler.app", env, args.runs)
            print(f"  import handler.app + init (no .pyc)        {_median_ms(handler)}")
            print("  where the import time goes (self time per top-level package, one run, no .pyc):")
            for micros, name in import_breakdown(task, env):
                print(f"    {micros / 1000:7.1f} ms  {name}")
            with_pyc = build_bundle(scratch / "compiled.zip", arch=arch, python=python,
                                    wheel_cache=CACHE / "wheels", compile_with=sys.executable)
            print(f"  (default bundle, with bytecode: {with_pyc.size / 1e6:.2f} MB zipped, "
                  f"{with_pyc.unzipped_size / 1e6:.2f} MB unzipped)")
            compiled = scratch / "task-pyc"
            with zipfile.ZipFile(with_pyc.path) as archive:
                archive.extractall(compiled)
            modules_pyc = time_import(compiled, "policy_engine.bootstrap", env, args.runs)
            print(f"  import policy_engine.bootstrap (with .pyc) {_median_ms(modules_pyc)}")
            handler_pyc = time_import(compiled, "handler.app", env, args.runs)
            print(f"  import handler.app + init (with .pyc)      {_median_ms(handler_pyc)}")
        runs = max(3, args.runs // 2)
        print(f"\nfirst decision through awslambdaric ({runs} cold processes; spawn, init, one TOKEN event)")
        answers = first_answer(task, client, {"AUDIENCE": "policy-engine-demo"}, runs, scratch / "function.log")
        print(f"  no .pyc    {_median_ms(answers)}")
        answers_pyc = first_answer(compiled, client, {"AUDIENCE": "policy-engine-demo"}, runs, scratch / "function.log")
        print(f"  with .pyc  {_median_ms(answers_pyc)}")
        print(json.dumps({"zip_bytes": bundles[(arch, python)].size,
                          "handler_import_ms": round(statistics.median(handler) * 1000, 1),
                          "handler_import_pyc_ms": round(statistics.median(handler_pyc) * 1000, 1)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
