"""The Lambda bundle, run the way Lambda runs it.

The bundle for this machine's platform and this interpreter's Python is unpacked into an
empty folder and driven by AWS's Runtime Interface Client (``awslambdaric`` from PyPI)
against a Runtime API endpoint on 127.0.0.1, in an interpreter that sees only the
unpacked folder and the client: a file or dependency missing from the zip fails here.
"""

from __future__ import annotations

import contextlib
import json
import platform
import re
import shutil
import subprocess
import sys
import zipfile
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

from policy_engine.admin.cli import main
from policy_engine.admin.local.idp import LocalIdentityProvider
from policy_engine.admin.local.runtime_api import RuntimeApi, ensure_runtime_client, isolated_command, start_runtime
from policy_engine.admin.packaging import (
    MYPYC_MODULES,
    PYTHON_VERSIONS,
    Bundle,
    build_bundle,
    compile_mypyc,
    find_interpreter,
    glibc_needed,
    native_problems,
)
from policy_engine.admin.publish import compile_snapshot
from policy_engine.core.iam import Verdict, evaluate_response
from policy_engine.core.snapshot import decode_snapshot
from policy_engine.errors import BundleError
from tests.conftest import API, AUDIENCE
from tests.integration.cfn import ROOT, load_template, resources

pytestmark = pytest.mark.slow

CACHE = ROOT / ".cache"
WHEELS = CACHE / "wheels"
NATIVE_ARCH = {"x86_64": "x86_64", "aarch64": "arm64", "arm64": "arm64"}.get(platform.machine())
PYTHON = f"{sys.version_info.major}.{sys.version_info.minor}"
#: The other architecture, for the cross-build check.
CROSS_ARCH = "x86_64" if NATIVE_ARCH == "arm64" else "arm64"


@pytest.fixture(scope="module")
def native_bundle(tmp_path_factory: pytest.TempPathFactory) -> Bundle:
    """The default bundle for this machine: with bytecode, written by this interpreter
    (the target's Python, so ``find_interpreter`` picks it)."""
    if NATIVE_ARCH is None or PYTHON not in PYTHON_VERSIONS:
        pytest.skip(f"no Lambda runtime matches this machine ({platform.machine()}, Python {PYTHON})")
    return build_bundle(tmp_path_factory.mktemp("bundle") / "authorizer.zip",
                        arch=NATIVE_ARCH, python=PYTHON, wheel_cache=WHEELS)


@pytest.fixture(scope="module")
def plain_bundle(tmp_path_factory: pytest.TempPathFactory, native_bundle: Bundle) -> Bundle:
    """The same without bytecode (``--no-compile``)."""
    return build_bundle(tmp_path_factory.mktemp("plain") / "authorizer.zip", arch=NATIVE_ARCH, python=PYTHON,
                        wheel_cache=WHEELS, bytecode=False)


@pytest.fixture(scope="module")
def mypyc_bundle(tmp_path_factory: pytest.TempPathFactory, native_bundle: Bundle) -> Bundle:
    """The same with the decision path compiled by mypyc (``--mypyc``)."""
    if shutil.which("cc") is None and shutil.which("gcc") is None:
        pytest.skip("no C compiler here: mypyc cannot build extensions")
    return build_bundle(tmp_path_factory.mktemp("mypyc") / "authorizer.zip", arch=NATIVE_ARCH, python=PYTHON,
                        wheel_cache=WHEELS, mypyc=True)


@pytest.fixture(scope="module")
def runtime_client() -> Path:
    return ensure_runtime_client(CACHE)


@pytest.fixture(scope="module")
def handler_name() -> str:
    (function,) = [body for name, body in resources(load_template(), "AWS::Serverless::Function").items()
                   if name == "AuthorizerFunction"]
    return function["Properties"]["Handler"]


def unpack(bundle: Path, into: Path) -> Path:
    into.mkdir()
    assert not any(into.iterdir())
    with zipfile.ZipFile(bundle) as archive:
        archive.extractall(into)
    return into


@contextlib.contextmanager
def running(task: Path, client: Path, handler: str, environ: Mapping[str, str], log: Path) -> Iterator[RuntimeApi]:
    with RuntimeApi() as api:
        process = start_runtime(task, client, handler, api, environ, log)
        try:
            yield api
        finally:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def token_event(token: str, verb: str, path: str) -> dict[str, str]:
    return {"type": "TOKEN", "authorizationToken": f"Bearer {token}", "methodArn": f"{API}/dev/{verb}{path}"}


def http_v2_event(token: str, verb: str, path: str) -> dict[str, Any]:
    """An HTTP API payload 2.0 authorizer event, as the template's HTTP API sends it."""
    event = json.loads((ROOT / "events" / "http-v2-get-pet.json").read_text())
    event.update(routeArn=f"{API}/dev/{verb}{path}", identitySource=[f"Bearer {token}"], routeKey=f"{verb} {path}")
    event["headers"]["authorization"] = f"Bearer {token}"
    return event


def test_the_isolated_interpreter_sees_only_the_bundle_and_the_runtime_client(native_bundle, runtime_client, tmp_path):
    task = unpack(native_bundle.path, tmp_path / "task")
    probe = """
import importlib, json
found = {}
for name in ["jwt", "yaml", "yaml._yaml", "cryptography.hazmat.bindings._rust", "pydantic_core._pydantic_core",
             "cffi", "policy_engine", "policy_engine.bootstrap", "handler", "awslambdaric",
             "boto3", "botocore", "policy_engine.admin",
             "policy_engine.adapters.dynamodb", "policy_engine.adapters.s3", "pytest", "moto"]:
    try:
        found[name] = importlib.import_module(name).__file__
    except ImportError:
        found[name] = None
print(json.dumps({"found": found, "prefix": sys.prefix, "base": sys.base_prefix}))
"""
    out = subprocess.run(isolated_command([task, runtime_client], probe), cwd=task, env={"PATH": "/usr/bin:/bin"},
                         capture_output=True, text=True, check=True, timeout=60)
    report = json.loads(out.stdout)
    found = report["found"]
    assert report["prefix"] == report["base"], "the interpreter runs inside a virtual environment"
    for name in ["jwt", "yaml", "yaml._yaml", "cryptography.hazmat.bindings._rust", "pydantic_core._pydantic_core",
                 "cffi", "policy_engine", "policy_engine.bootstrap", "handler", "policy_engine.adapters.dynamodb",
                 "policy_engine.adapters.s3"]:
        assert found[name] is not None and Path(found[name]).is_relative_to(task.resolve()), (name, found[name])
    assert Path(found["awslambdaric"]).is_relative_to(runtime_client.resolve())
    # Lambda supplies boto3; the CLI, the local tools and the publisher never ship (the store
    # readers import without them); the venv stays invisible.
    for name in ["boto3", "botocore", "policy_engine.admin", "pytest", "moto"]:
        assert found[name] is None, (name, found[name])


@pytest.mark.parametrize("flavour", ["native_bundle", "plain_bundle", "mypyc_bundle"])
def test_the_bundle_decides_through_the_runtime_interface_client(
    flavour, request, runtime_client, handler_name, tmp_path
):
    # GIVEN the unpacked bundle, a local IdP and the default permissions (those in the zip)
    task = unpack(request.getfixturevalue(flavour).path, tmp_path / "task")
    log = tmp_path / "function.log"
    with LocalIdentityProvider() as idp, running(
        task, runtime_client, handler_name, {"ISSUER": idp.issuer, "AUDIENCE": AUDIENCE}, log
    ) as api:
        # WHEN API Gateway would call the authorizer
        reader = api.invoke(token_event(idp.mint(scope="pets:read"), "GET", "/pets/12"))
        nobody = api.invoke(token_event(idp.mint(scope="email"), "GET", "/pets"))
        forged = api.invoke(token_event(idp.mint(scope="pets:admin")[:-4] + "AAAA", "DELETE", "/pets/1"))
        garbage = api.invoke({"type": "TOKEN", "authorizationToken": "Bearer not-a-jwt",
                              "methodArn": f"{API}/dev/GET/pets"})
        http_api = api.invoke(http_v2_event(idp.mint(scope="pets:read"), "GET", "/pets/12"))
        # validly signed, with claims of the wrong type: where a compiled build checks types
        # itself, a refusal must stay a 401 (not become a 500)
        ill_typed = [api.invoke(token_event(idp.mint(**claims), "GET", "/pets/12"))
                     for claims in ({"exp": "9999999999"}, {"sub": 12345}, {"scope": None, "scp": 7},
                                    {"audience": None, "aud": [1, 2]})]
    # THEN the decisions are what API Gateway would enforce
    assert reader.error is None, reader.error
    assert evaluate_response(reader.payload, f"{API}/dev/GET/pets/12") is Verdict.ALLOW
    assert evaluate_response(reader.payload, f"{API}/dev/GET/pets") is Verdict.ALLOW
    assert evaluate_response(reader.payload, f"{API}/dev/POST/pets") is Verdict.IMPLICIT_DENY
    assert evaluate_response(nobody.payload, f"{API}/dev/GET/pets") is Verdict.EXPLICIT_DENY
    assert evaluate_response(http_api.payload, f"{API}/dev/GET/pets/12") is Verdict.ALLOW  # the template's HTTP API
    assert evaluate_response(http_api.payload, f"{API}/dev/DELETE/pets/12") is Verdict.IMPLICIT_DENY
    assert forged.error_message == "Unauthorized"
    assert garbage.error_message == "Unauthorized"
    assert [answer.error_message for answer in ill_typed] == ["Unauthorized"] * 4
    # and the mappings came from the compiled permissions inside the bundle (the default source)
    lines = [json.loads(line) for line in log.read_text().splitlines() if line.startswith("{")]
    loaded = [line for line in lines if line.get("event") == "permissions_loaded"]
    assert loaded and Path(loaded[0]["source"]) == (task / "permissions").resolve()
    assert loaded[0]["version"] == decode_snapshot((task / "permissions").read_bytes(), "", "").digest


def test_a_dependency_missing_from_the_bundle_fails_the_run(native_bundle, runtime_client, handler_name, tmp_path):
    task = unpack(native_bundle.path, tmp_path / "task")
    # (PyJWT is needed only for keys other than RS256/384/512, which the local IdP never signs with)
    shutil.rmtree(task / "cryptography")
    with LocalIdentityProvider() as idp, running(
        task, runtime_client, handler_name, {"ISSUER": idp.issuer, "AUDIENCE": AUDIENCE}, tmp_path / "function.log"
    ) as api, pytest.raises(RuntimeError, match="No module named 'cryptography'"):
        api.invoke(token_event(idp.mint(), "GET", "/pets"), timeout=60)


def test_bundle_contents_are_lean_and_normalised(plain_bundle):
    with zipfile.ZipFile(plain_bundle.path) as archive:
        infos = archive.infolist()
        files = {info.filename: archive.read(info) for info in infos}
    names = [info.filename for info in infos]
    assert names == sorted(names)
    assert all(info.date_time == (1980, 1, 1, 0, 0, 0) for info in infos)
    assert all(info.external_attr >> 16 == 0o100644 for info in infos)
    assert not [n for n in names if "__pycache__" in n or n.endswith((".pyc", ".pyo"))]  # --no-compile
    admin_only = ("policy_engine/admin/", "boto3/", "botocore/")
    assert not [n for n in names if n.startswith(admin_only)]
    for required in ["handler/app.py", "policy_engine/bootstrap.py", "policy_engine/py.typed", "permissions"]:
        assert required in files
    # the permissions ship compiled, exactly as `policy-engine compile` writes them; no YAML
    assert files["permissions"] == compile_snapshot([ROOT / "permissions"])[0]
    assert not [n for n in names if n.endswith((".yaml", ".yml")) and not n.startswith(("yaml/", "pydantic"))]
    dists = {n.split("-")[0].lower() for n in names if ".dist-info/" in n}
    assert {"pyjwt", "cryptography", "pydantic", "pydantic_core", "pyyaml"} <= dists
    shared = [n for n in names if n.endswith(".so") or ".so." in n]
    assert len(shared) >= 4, shared
    assert native_problems(files, arch=NATIVE_ARCH, python=PYTHON) == []
    assert len(plain_bundle.wheels) == len(dists)
    for wheel in plain_bundle.wheels:
        assert _loads_on(wheel, PYTHON_VERSIONS[PYTHON]), wheel


def test_same_inputs_give_the_same_bytes_through_the_cli(native_bundle, tmp_path, capsys):
    again = tmp_path / "again.zip"
    code = main(["bundle", "--arch", NATIVE_ARCH, "--python", PYTHON, "--output", str(again),
                 "--wheel-cache", str(WHEELS)])
    assert code == 0
    assert again.read_bytes() == native_bundle.path.read_bytes()
    assert f"sha256    {native_bundle.sha256}" in capsys.readouterr().out


def test_the_default_bundle_ships_bytecode_for_every_module_deterministically(native_bundle, plain_bundle, tmp_path):
    with zipfile.ZipFile(plain_bundle.path) as plain, zipfile.ZipFile(native_bundle.path) as compiled:
        sources = {n for n in plain.namelist() if n.endswith(".py")}
        names = set(compiled.namelist())
        tag = f"cpython-{PYTHON.replace('.', '')}"
        # a source that does not compile is left without bytecode; ours and our dependencies' all do
        for source in sources:
            folder, _, base = source.rpartition("/")
            assert f"{folder}/__pycache__/{base[:-3]}.{tag}.pyc".lstrip("/") in names, source
        assert names - set(plain.namelist()) == {n for n in names if n.endswith(".pyc")}
        pyc = compiled.read(f"handler/__pycache__/app.{tag}.pyc")
        assert int.from_bytes(pyc[4:8], "little") == 0b01  # PEP 552: hash-based, unchecked
    again = build_bundle(tmp_path / "again.zip", arch=NATIVE_ARCH, python=PYTHON, wheel_cache=WHEELS,
                         compile_with=sys.executable)
    assert again.sha256 == native_bundle.sha256


def test_a_mypyc_bundle_runs_its_decision_path_compiled(mypyc_bundle, native_bundle, runtime_client, tmp_path):
    with zipfile.ZipFile(mypyc_bundle.path) as compiled, zipfile.ZipFile(native_bundle.path) as interpreted:
        added = set(compiled.namelist()) - set(interpreted.namelist())
        files = {name: compiled.read(name) for name in added}
    tag = f".cpython-{PYTHON.replace('.', '')}-"
    # one extension beside each module's source, mypyc's runtime library at the top, nothing else
    for module in MYPYC_MODULES:
        assert [name for name in added if name.startswith(module[:-3] + tag) and name.endswith(".so")], module
    assert len(added) == len(MYPYC_MODULES) + 1
    assert [name for name in added if "/" not in name and name.endswith(".so")]
    assert native_problems(files, arch=NATIVE_ARCH, python=PYTHON) == []
    # within the runtime's glibc (mypyc's runtime library names glibc versions; the small
    # per-module stubs may name none)
    assert max(glibc_needed(data) for data in files.values()) > 0
    assert all(glibc_needed(data) <= PYTHON_VERSIONS[PYTHON] for data in files.values())
    # the isolated interpreter imports the extensions, not the sources beside them (found as
    # an import would find them: handler.app's init needs configuration, and runs through
    # the runtime client in the decision test)
    task = unpack(mypyc_bundle.path, tmp_path / "task")
    names = [module[:-3].replace("/", ".") for module in MYPYC_MODULES]
    probe = ("import importlib, importlib.util, json; importlib.import_module('policy_engine.engine'); "
             f"print(json.dumps([importlib.util.find_spec(n).origin for n in {names!r}]))")
    out = subprocess.run(isolated_command([task, runtime_client], probe), cwd=task, env={"PATH": "/usr/bin:/bin"},
                         capture_output=True, text=True, check=True, timeout=60)
    loaded = json.loads(out.stdout)
    assert all(path.endswith(".so") and Path(path).is_relative_to(task.resolve()) for path in loaded), loaded


def test_mypyc_builds_only_for_this_machine_and_the_interpreters_python(tmp_path):
    with pytest.raises(BundleError, match="--mypyc builds C extensions for this machine"):
        compile_mypyc({}, arch=CROSS_ARCH, python=PYTHON, interpreter=sys.executable)
    other = "3.13" if PYTHON != "3.13" else "3.12"
    with pytest.raises(BundleError, match=f"the bundle targets {other}"):
        compile_mypyc({}, arch=NATIVE_ARCH or "x86_64", python=other, interpreter=sys.executable)
    with pytest.raises(BundleError, match="--mypyc builds C extensions for this machine"):
        build_bundle(tmp_path / "cross.zip", arch=CROSS_ARCH, python=PYTHON, wheel_cache=WHEELS, mypyc=True)
    assert not (tmp_path / "cross.zip").exists()


def test_compiling_with_another_python_is_refused(tmp_path):
    other = "3.13" if PYTHON != "3.13" else "3.12"
    with pytest.raises(BundleError, match=f"the bundle targets {other}"):
        build_bundle(tmp_path / "x.zip", arch=NATIVE_ARCH or "x86_64", python=other, wheel_cache=WHEELS,
                     compile_with=sys.executable)


def test_cli_reports_what_it_cannot_build_with_exit_code_2(tmp_path, capsys):
    assert main(["bundle", "--permissions", str(tmp_path / "missing"), "--output", str(tmp_path / "x.zip")]) == 2
    assert "no such file or folder" in capsys.readouterr().err
    assert not (tmp_path / "x.zip").exists()
    # invalid permissions are never shipped: every problem is listed, no zip is written
    assert main(["bundle", "--python", PYTHON, "--permissions", str(ROOT / "tests" / "data" / "flawed"),
                 "--output", str(tmp_path / "x.zip"), "--wheel-cache", str(WHEELS)]) == 2
    err = capsys.readouterr().err
    assert "flawed/pets.yaml:27: httpVerb 'FETCH' is not an HTTP method" in err and "(and 2 more)" in err
    assert not (tmp_path / "x.zip").exists()
    with pytest.raises(SystemExit) as exited:
        main(["bundle", "--python", "3.10"])
    assert exited.value.code == 2


def test_cross_build_carries_the_target_architectures_native_code(tmp_path):
    # 3.12 is the default runtime; its wheels may need glibc up to 2.34 (Amazon Linux 2023).
    bundle = build_bundle(tmp_path / "cross.zip", arch=CROSS_ARCH, python="3.12", wheel_cache=WHEELS, bytecode=False)
    with zipfile.ZipFile(bundle.path) as archive:
        files = {name: archive.read(name) for name in archive.namelist()}
    extensions = [n for n in files if n.endswith(".so")]
    assert any(n.startswith("pydantic_core/") and "cpython-312" in n for n in extensions), extensions
    assert any(n.startswith("cryptography/") for n in extensions), extensions
    assert native_problems(files, arch=CROSS_ARCH, python="3.12") == []
    # the check itself can fail: none of this code loads on the other architecture or Python
    wrong = native_problems(files, arch="x86_64" if CROSS_ARCH == "arm64" else "arm64", python="3.13")
    assert len(wrong) >= len(extensions)
    for wheel in bundle.wheels:
        assert _loads_on(wheel, PYTHON_VERSIONS["3.12"]), wheel


def _loads_on(wheel: str, glibc_minor: int) -> bool:
    """Whether a wheel's platform tags allow a system with glibc 2.<glibc_minor>."""
    platforms = wheel[:-4].split("-")[-1].split(".")
    if platforms == ["any"]:
        return True
    legacy = {"manylinux1": 5, "manylinux2010": 12, "manylinux2014": 17}
    for tag in platforms:
        match = re.fullmatch(r"manylinux_2_(\d+)_\w+", tag)
        needed = int(match.group(1)) if match else legacy.get(tag.split("_")[0])
        if needed is not None and needed <= glibc_minor:
            return True
    return False


def fake_python(folder: Path, name: str, prints: str, exit_code: int = 0) -> Path:
    """An executable answering the version probe as an interpreter (or a broken pyenv shim) would."""
    folder.mkdir(parents=True, exist_ok=True)
    script = folder / name
    script.write_text(f"#!/bin/sh\necho '{prints}'\nexit {exit_code}\n")
    script.chmod(0o755)
    return script


def test_the_target_interpreter_is_found_on_path_or_in_pyenv_or_uv_installations(tmp_path):
    # a pyenv shim of an installed but unselected version fails to run: it is skipped
    shims = tmp_path / "shims"
    fake_python(shims, "python3.99", "pyenv: python3.99: command not found", exit_code=127)
    pyenv, uv = tmp_path / "pyenv" / "versions", tmp_path / "uv" / "python"
    fake_python(pyenv / "3.99.1" / "bin", "python3.99", "3.99")
    newest = fake_python(pyenv / "3.99.12" / "bin", "python3.99", "3.99")
    fake_python(pyenv / "3.98.0" / "bin", "python3.98", "3.98")
    assert find_interpreter("3.99", search_path=str(shims), homes=[pyenv, uv]) == str(newest)
    on_uv = fake_python(uv / "cpython-3.97.4-linux-x86_64-gnu" / "bin", "python3.97", "3.97")
    assert find_interpreter("3.97", search_path=str(shims), homes=[pyenv, uv]) == str(on_uv)
    on_path = fake_python(tmp_path / "bin", "python3.99", "3.99")
    assert find_interpreter("3.99", search_path=str(on_path.parent), homes=[pyenv]) == str(on_path)
    assert find_interpreter(PYTHON, search_path="", homes=[]) == sys.executable


def test_without_an_interpreter_of_the_target_version_one_error_says_how_to_get_one(tmp_path):
    fake_python(tmp_path / "shims", "python3.96", "pyenv: python3.96: command not found", exit_code=127)
    fake_python(tmp_path / "liar" / "3.96.0" / "bin", "python3.96", "3.11")  # not the version it is named for
    with pytest.raises(BundleError) as info:
        find_interpreter("3.96", search_path=str(tmp_path / "shims"), homes=[tmp_path / "liar"])
    message = str(info.value)
    assert "needs a Python 3.96 interpreter" in message
    assert "pyenv install 3.96" in message and "uv python install 3.96" in message and "--no-compile" in message


def test_bundle_builds_bytecode_with_another_pythons_interpreter_when_one_is_installed(tmp_path):
    other = "3.12" if PYTHON != "3.12" else "3.13"  # the template's runtime, else the next one
    try:
        interpreter = find_interpreter(other)
    except BundleError as exc:
        pytest.skip(f"no Python {other} here: {exc}")
    bundle = build_bundle(tmp_path / "other.zip", arch=NATIVE_ARCH or "x86_64", python=other, wheel_cache=WHEELS)
    tag = f"cpython-{other.replace('.', '')}"
    with zipfile.ZipFile(bundle.path) as archive:
        pyc = archive.read(f"handler/__pycache__/app.{tag}.pyc")
    probe = "import importlib.util, sys; sys.stdout.write(importlib.util.MAGIC_NUMBER.hex())"
    magic = subprocess.run([interpreter, "-I", "-S", "-c", probe],
                           capture_output=True, text=True, check=True, timeout=60).stdout
    assert pyc[:4].hex() == magic  # written by that Python, for that Python
