"""What a user gets from ``pip install``: not the repository, only what the package ships.

The sdist is built from a copy of the working tree, the wheel from the sdist (as a release
is built), and the wheel is installed, not editable, into a new virtual environment that
sees neither the repository nor this test environment. Every command then runs in a folder
outside the repository: ``init``, ``validate``, ``quickstart``, ``demo``, ``invoke``,
``migrate`` and ``sync`` against DynamoDB Local, and ``bundle``.

The dependencies come from ``.cache/install-wheels``: offline when it holds them; otherwise
``pip download`` fills it from the package index once.
"""

from __future__ import annotations

import importlib.metadata
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tarfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

import pytest

from policy_engine.admin.packaging import PYTHON_VERSIONS
from tests.stores import CREDENTIALS

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
WHEELHOUSE = ROOT / ".cache" / "install-wheels"
BUNDLE_WHEELS = ROOT / ".cache" / "wheels"
PYTHON = f"{sys.version_info.major}.{sys.version_info.minor}"
NATIVE_ARCH = {"x86_64": "x86_64", "aarch64": "arm64", "arm64": "arm64"}.get(platform.machine())
#: What the working-tree copy leaves out: environments, caches and build output.
UNSHIPPED = (".venv", ".cache", ".git", "build", "dist", "*.egg-info", "__pycache__", ".pytest_cache", ".hypothesis",
             ".mypy_cache", ".ruff_cache", "node_modules")
SHIPPED = [
    "policy_engine/admin/shipped/migrations/0001_create_table.py",
    "policy_engine/admin/shipped/permissions/pets.yaml",
    "policy_engine/admin/shipped/catalog/scopes.yaml",
    "policy_engine/admin/shipped/template.yaml",
    "policy_engine/admin/shipped/scaffold/github-workflow.yaml",
    "policy_engine/admin/local/clients.yaml",
    "handler/app.py",
]


@dataclass(frozen=True)
class Dist:
    sdist: Path
    wheel: Path
    #: What setuptools printed while building both.
    log: str


@dataclass(frozen=True)
class Installed:
    venv: Path
    #: Outside the repository; the commands run here unless told otherwise.
    home: Path

    def env(self, **extra: str) -> dict[str, str]:
        # Nothing of this process's configuration leaks in: no PYTHONPATH, no AWS settings.
        base = {"PATH": f"{self.venv / 'bin'}{os.pathsep}/usr/bin:/bin", "HOME": str(self.home),
                "LANG": "C.UTF-8", "NO_COLOR": "1"}
        return {**base, **extra}

    def run(self, *args: str, cwd: Path | None = None, timeout: float = 180,
            **env: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([str(self.venv / "bin" / "policy-engine"), *args], cwd=cwd or self.home,
                              env=self.env(**env), capture_output=True, text=True, timeout=timeout, check=False)


def _run(command: list[str], cwd: Path, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=timeout, check=False)


def _ok(done: subprocess.CompletedProcess[str]) -> str:
    assert done.returncode == 0, f"exit {done.returncode}\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return done.stdout


@pytest.fixture(scope="module")
def dist(tmp_path_factory: pytest.TempPathFactory) -> Dist:
    # A copy: an in-tree build leaves build/ behind, whose stale files a later wheel would carry.
    source = tmp_path_factory.mktemp("source") / "policy-engine"
    shutil.copytree(ROOT, source, symlinks=True, ignore=shutil.ignore_patterns(*UNSHIPPED))
    out = tmp_path_factory.mktemp("dist")
    hook = f"from setuptools import build_meta; print(build_meta.build_sdist({str(out)!r}))"
    sdist_build = _run([sys.executable, "-c", hook], cwd=source)
    _ok(sdist_build)
    (sdist,) = out.glob("*.tar.gz")
    wheel_build = _run([sys.executable, "-m", "pip", "wheel", "-v", "--no-deps", "--no-build-isolation",
                        "--disable-pip-version-check", "-w", str(out), str(sdist)], cwd=out)
    _ok(wheel_build)
    (wheel,) = out.glob("*.whl")
    return Dist(sdist, wheel, sdist_build.stdout + sdist_build.stderr + wheel_build.stdout + wheel_build.stderr)


def _install(python: Path, wheel: Path) -> None:
    offline = [str(python), "-m", "pip", "install", "--disable-pip-version-check", "--no-index",
               "--find-links", str(WHEELHOUSE), str(wheel)]
    if _run(offline, cwd=wheel.parent).returncode == 0:
        return
    WHEELHOUSE.mkdir(parents=True, exist_ok=True)
    _ok(_run([str(python), "-m", "pip", "download", "--disable-pip-version-check", "--only-binary=:all:",
              "--dest", str(WHEELHOUSE), str(wheel)], cwd=wheel.parent))
    for ours in WHEELHOUSE.glob("policy_engine-*.whl"):
        ours.unlink()
    _ok(_run(offline, cwd=wheel.parent))


@pytest.fixture(scope="module")
def installed(dist: Dist, tmp_path_factory: pytest.TempPathFactory) -> Installed:
    venv = tmp_path_factory.mktemp("venv") / "env"
    # Made from this venv's interpreter, it is based on the same Python and sees none of its packages.
    _ok(_run([sys.executable, "-m", "venv", str(venv)], cwd=venv.parent))
    _install(venv / "bin" / "python", dist.wheel)
    return Installed(venv, tmp_path_factory.mktemp("elsewhere"))


@pytest.fixture(scope="module")
def team(installed: Installed) -> Path:
    """A permissions repository made by ``init`` in a folder that did not exist."""
    _ok(installed.run("init", "team-permissions"))
    return installed.home / "team-permissions"


def test_the_build_warns_of_nothing_and_ships_the_data_as_files(dist):
    assert not re.search(r"deprecat|SetuptoolsWarning", dist.log, re.IGNORECASE), dist.log[-3000:]
    with zipfile.ZipFile(dist.wheel) as wheel:
        names = set(wheel.namelist())
        metadata = wheel.read(next(n for n in names if n.endswith(".dist-info/METADATA"))).decode()
        # The links of the repository become the files themselves.
        assert wheel.read("policy_engine/admin/shipped/permissions/pets.yaml") == (
            ROOT / "permissions" / "pets.yaml").read_bytes()
    assert set(SHIPPED) <= names
    assert any(n.endswith(".dist-info/licenses/LICENSE") for n in names)
    assert "License-Expression: Apache-2.0" in metadata.splitlines()
    # Of the repository's top level, only the two packages.
    assert {n.split("/")[0] for n in names if ".dist-info/" not in n} == {"policy_engine", "handler"}
    with tarfile.open(dist.sdist) as sdist:
        members = {m.name.split("/", 1)[1]: m for m in sdist.getmembers() if "/" in m.name}
    assert set(SHIPPED) <= set(members)
    assert not [name for name, m in members.items() if m.issym() or m.islnk()]


def test_the_installed_package_is_the_one_that_runs(installed):
    done = subprocess.run([str(installed.venv / "bin" / "python"), "-c",
                           "import policy_engine, handler.app; print(policy_engine.__file__)"],
                          cwd=installed.home, env=installed.env(ISSUER="https://idp.example.com", AUDIENCE="api"),
                          capture_output=True, text=True, timeout=60, check=False)
    assert Path(_ok(done).strip()).is_relative_to(installed.venv)
    pip = subprocess.run([str(installed.venv / "bin" / "python"), "-m", "pip", "list", "--format", "json"],
                         env=installed.env(), capture_output=True, text=True, timeout=60, check=True)
    packages = {p["name"].lower() for p in json.loads(pip.stdout)}
    assert not packages & {"pytest", "moto", "hypothesis", "cfn-lint"}


def test_version(installed):
    done = installed.run("--version")
    if done.returncode != 0 and "--version" not in installed.run("--help").stdout:
        pytest.skip("policy-engine has no --version yet (it comes with the CLI work of the same issue)")
    assert importlib.metadata.version("policy-engine") in _ok(done)


def test_init_writes_a_repository_that_validates_and_refuses_to_overwrite_it(installed, team):
    for name in ("permissions/pets.yaml", "catalog/scopes.yaml", "template.yaml", ".github/workflows/permissions.yaml",
                 ".pre-commit-config.yaml", "README.md"):
        assert (team / name).is_file(), name
    report = _ok(installed.run("validate", "--catalog", "catalog", "permissions", cwd=team))
    assert "clean" in report.splitlines()[-1]
    # What the workflow and the hook run, exactly.
    assert "policy-engine validate --catalog catalog permissions" in (team / ".pre-commit-config.yaml").read_text()
    assert "policy-engine validate --catalog catalog permissions" in (
        team / ".github/workflows/permissions.yaml").read_text()
    again = installed.run("init", "team-permissions")
    assert again.returncode == 1
    assert "team-permissions/permissions/pets.yaml" in again.stderr


def test_quickstart_and_demo_use_the_shipped_example(installed):
    assert "all outcomes as expected" in _ok(installed.run("quickstart"))
    # The [local] extra (moto) is not installed: the demo's files are read directly.
    assert "every answer as expected" in _ok(installed.run("demo", "--store", "yaml"))


def test_invoke_reads_the_permissions_of_the_current_folder(installed, team):
    event = team / "get-pet.json"
    shutil.copy(ROOT / "events" / "token-get-pet.json", event)
    done = installed.run("invoke", "--event", event.name, "--local-idp", "--scopes", "pets:read", cwd=team)
    assert "answers 200" in _ok(done)
    # Without permissions here, a clear refusal instead of a handler that answers 500.
    elsewhere = installed.run("invoke", "--event", str(event), "--local-idp")
    assert elsewhere.returncode == 2
    assert "PERMISSIONS_SOURCE" in elsewhere.stderr


def test_migrate_and_sync_against_dynamodb_local(installed, team, dynamodb_local_endpoint):
    aws = {**CREDENTIALS, "AWS_ENDPOINT_URL_DYNAMODB": dynamodb_local_endpoint}
    target = "dynamodb://team-permissions"
    migrated = _ok(installed.run("migrate", target, cwd=team, **aws))
    assert "0001" in migrated and "0002" in migrated
    assert "up to date" in _ok(installed.run("migrate", target, cwd=team, **aws))
    planned = _ok(installed.run("sync", target, "--dry-run", cwd=team, **aws))
    assert "+" in planned
    _ok(installed.run("sync", target, cwd=team, **aws))
    unchanged = _ok(installed.run("sync", target, "--dry-run", cwd=team, **aws))
    assert not [line for line in unchanged.splitlines() if line.startswith(("+", "-"))]


def test_bundle_ships_the_permissions_of_the_current_folder(installed, team):
    if NATIVE_ARCH is None or PYTHON not in PYTHON_VERSIONS:
        pytest.skip(f"no Lambda runtime matches this machine ({platform.machine()}, Python {PYTHON})")
    done = installed.run("bundle", "--arch", NATIVE_ARCH, "--python", PYTHON, "--wheel-cache", str(BUNDLE_WHEELS),
                         cwd=team, timeout=600)
    _ok(done)
    (zipped,) = (team / "dist").glob("*.zip")
    with zipfile.ZipFile(zipped) as bundle:
        names = set(bundle.namelist())
    assert {"handler/app.py", "permissions", "policy_engine/bootstrap.py"} <= names
    assert not [n for n in names if n.startswith("policy_engine/admin/")]
