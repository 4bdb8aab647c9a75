"""Build the Lambda deployment zip: our code plus manylinux wheels for the target runtime.

The zip holds, at its root (Lambda's ``/var/task``):

- ``handler/app.py`` and every module of ours it can import (``runtime_modules``: its
  import closure, lazy imports included), and nothing else: the CLI, the local tools,
  publishing, migrations and this module are left out because the handler never
  reaches them, which keeps the test servers and the admin tool out of production;
- ``permissions``: the example (or a chosen) mappings compiled into one snapshot file
  (``policy-engine compile``), where the default ``PERMISSIONS_SOURCE`` (``permissions``
  beside the package) finds it: a cold start reads one JSON document, no YAML;
- the runtime dependencies as unpacked wheels resolved by pip **for the target**
  (``--platform manylinux_*_<arch> --python-version X.Y --implementation cp
  --only-binary=:all:``), never copied from this machine's site-packages: cryptography,
  cffi, pydantic-core and PyYAML are compiled, and a zip built from an x86_64
  site-packages fails on arm64 at the first import.

The newest manylinux tag accepted follows the runtime's operating system: python3.11
runs on Amazon Linux 2 (glibc 2.26), python3.12 and 3.13 on Amazon Linux 2023 (glibc
2.34). A ``manylinux_2_28`` wheel in a 3.11 bundle would fail to load on AWS.

- bytecode for every module (``__pycache__/*.pyc``), written by an interpreter of the
  target's Python version (``find_interpreter``), unless turned off: Lambda's
  ``/var/task`` is read-only, so a module shipped without it is compiled again at
  every cold start.
- with ``mypyc``, C extensions of the modules every warm decision runs through
  (``MYPYC_MODULES``), compiled from the same sources by mypyc (mypy's compiler of
  type-annotated Python) beside them: Python imports an extension before a source of
  the same name. They are built on this machine, so only for its architecture, by an
  interpreter of the target's version, and refused if they need a newer glibc than the
  runtime's operating system has.

Deterministic: entries sorted by name, every timestamp 1980-01-01 00:00, mode 0644,
hash-based bytecode (PEP 552), one compression level. The same sources and the same
wheels give the same bytes (on one zlib version; a different zlib may compress differently).
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import io
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from policy_engine.admin.files import write_output
from policy_engine.errors import BundleError

__all__ = [
    "ARCHITECTURES",
    "ENTRY_POINT",
    "MYPYC_MODULES",
    "PERMISSIONS_FILE",
    "PYTHON_VERSIONS",
    "Bundle",
    "build_bundle",
    "compile_bytecode",
    "compile_mypyc",
    "default_output",
    "find_interpreter",
    "glibc_needed",
    "manylinux_platforms",
    "mypyc_problems",
    "native_problems",
    "runtime_modules",
    "runtime_requirements",
]

#: Lambda architecture name -> the machine name in wheel platform tags.
ARCHITECTURES: Mapping[str, str] = {"x86_64": "x86_64", "arm64": "aarch64"}
#: Lambda Python runtimes -> glibc minor version of the operating system they run on.
PYTHON_VERSIONS: Mapping[str, int] = {"3.11": 26, "3.12": 34, "3.13": 34}
#: ELF ``e_machine`` of each architecture (EM_X86_64, EM_AARCH64).
_ELF_MACHINE = {"x86_64": 62, "arm64": 183}

#: The folder holding the installed ``policy_engine`` and ``handler`` packages (site-packages,
#: or the repository for an editable install): the bundle's code is read from there.
PROJECT_ROOT = Path(__file__).resolve().parents[2]
#: Where the Lambda starts: the bundle carries this module and every module of ours it
#: can import, eagerly or lazily (``runtime_modules``), and nothing else.
ENTRY_POINT = "handler/app.py"
#: Where the compiled permissions go: the default ``PERMISSIONS_SOURCE`` (``permissions``
#: beside the package) is this file in the task root.
PERMISSIONS_FILE = "permissions"
_ZIP_DATE = (1980, 1, 1, 0, 0, 0)
_FILE_MODE = 0o100644
#: The modules every warm decision runs through (the handler, event, token, claims, grants,
#: keys, permission lookup and cache, decision, log line and metrics), which ``mypyc``
#: bundles carry as C extensions. They must stay mypy-strict (``make test`` checks it) for
#: mypyc to compile them.
MYPYC_MODULES = (
    "handler/app.py",
    "policy_engine/adapters/jwks_http.py",
    "policy_engine/cache.py",
    "policy_engine/core/arn.py",
    "policy_engine/core/decision.py",
    "policy_engine/core/grants.py",
    "policy_engine/core/iam.py",
    "policy_engine/core/lastgood.py",
    "policy_engine/core/memo.py",
    "policy_engine/core/permissions.py",
    "policy_engine/core/tokens/claims.py",
    "policy_engine/core/tokens/issuers.py",
    "policy_engine/core/tokens/jws.py",
    "policy_engine/core/tokens/keys.py",
    "policy_engine/core/tokens/verifier.py",
    "policy_engine/engine.py",
    "policy_engine/events.py",
    "policy_engine/logs.py",
    "policy_engine/metrics.py",
)
#: Lambda's limit on the unzipped size of a function and its layers.
UNZIPPED_LIMIT = 250 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class Bundle:
    """What ``build_bundle`` wrote."""

    path: Path
    sha256: str
    size: int
    unzipped_size: int
    files: int
    wheels: tuple[str, ...] = field(default=())


def default_output(arch: str, python: str) -> Path:
    """Where ``policy-engine bundle`` writes by default (``template.yaml``'s ``CodeUri``)."""
    return Path("dist") / f"policy-engine-lambda-{arch}-py{python}.zip"


def runtime_requirements(*, include_boto3: bool = False) -> list[str]:
    """The project's runtime requirements (from its installed metadata, i.e. pyproject).

    boto3 is left out unless asked: every Lambda Python runtime ships it, and it is
    the largest dependency by far.

    Raises:
        BundleError: the project is not installed, so its requirements are unknown.
    """
    try:
        declared = importlib.metadata.requires("policy-engine") or []
    except importlib.metadata.PackageNotFoundError as exc:
        raise BundleError("policy-engine is not installed (pip install -e .); its requirements are unknown") from exc
    wanted = []
    for requirement in declared:
        spec, _, marker = requirement.partition(";")
        if re.search(r"\bextra\s*==", marker):
            continue
        name = re.match(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)", spec)
        if name and name.group(1).lower() in ("boto3", "botocore") and not include_boto3:
            continue
        wanted.append(requirement.strip())
    return sorted(wanted, key=str.lower)


def manylinux_platforms(arch: str, python: str) -> list[str]:
    """Platform tags a wheel may carry to load on the Lambda OS of ``python``, newest first.

    Raises:
        BundleError: unknown architecture or Python version.
    """
    machine = _machine(arch)
    glibc = _glibc(python)
    oldest = 5 if machine == "x86_64" else 17  # aarch64 wheels start at manylinux2014
    tags = [f"manylinux_2_{minor}_{machine}" for minor in range(glibc, oldest - 1, -1)]
    # pip matches tags literally: wheels tagged only with the legacy aliases need them too.
    tags.append(f"manylinux2014_{machine}")
    if machine == "x86_64":
        tags += [f"manylinux2010_{machine}", f"manylinux1_{machine}"]
    return tags


def _check_writable(output: Path, wheel_cache: Path) -> None:
    """Refuse an output that is not a file to write (a folder, a device) or whose folder
    cannot be made, and a wheel cache that cannot be made.

    Raises:
        BundleError: naming the path and why.
    """
    if output.is_dir():
        raise BundleError(f"{output}: is a folder; --output names the zip file to write")
    if output.exists() and not output.is_file():
        raise BundleError(f"{output}: is not a regular file; --output names the zip file to write")
    for folder, what in ((output.parent, "the bundle"), (wheel_cache, "the wheel cache")):
        if folder.exists() and not folder.is_dir():
            raise BundleError(f"{folder}: is not a folder, so it cannot hold {what}")
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise BundleError(f"{folder}: cannot create the folder for {what} ({exc.strerror or exc})") from None
        if not os.access(folder, os.W_OK):
            raise BundleError(f"{folder}: cannot write {what} there")


def build_bundle(
    output: Path,
    *,
    arch: str = "x86_64",
    python: str = "3.12",
    include_boto3: bool = False,
    permissions: Path | None = Path("permissions"),
    wheel_cache: Path = Path(".cache/wheels"),
    refresh: bool = False,
    bytecode: bool = True,
    compile_with: str | None = None,
    mypyc: bool = False,
    phase: Callable[[str], None] = lambda name: None,
) -> Bundle:
    """Resolve, download (or reuse cached) wheels and write the deployment zip to ``output``.

    Wheels are resolved from ``wheel_cache`` alone first, so a warm cache builds
    offline; ``refresh`` (or a cache miss) asks the package index and adds what it
    downloads to the cache. ``permissions`` (a YAML file or folder) is validated and
    shipped compiled, as the file ``permissions``. With ``bytecode`` every module is
    shipped with its bytecode (``compile_bytecode``), written by ``compile_with`` or,
    when that is ``None``, by the interpreter ``find_interpreter`` finds. With ``mypyc``
    the modules of ``MYPYC_MODULES`` are also shipped as C extensions (``compile_mypyc``,
    by the same interpreter). ``phase`` is told the name of each step as it starts (the
    CLI's progress line).

    Raises:
        BundleError: pip cannot resolve the requirements for the target, two wheels
            write the same file, a native file is built for another platform or Python,
            no interpreter of the target's version is found, ``compile_with`` is not a
            Python ``python`` or fails, ``compile_mypyc`` cannot build the extensions, or
            the unzipped bundle exceeds Lambda's 250 MB.
        PermissionsError: the permissions are invalid (every problem, with file and line).
    """
    _machine(arch)
    _glibc(python)
    _check_writable(output, wheel_cache)  # before any work: refused in a moment, not after a download
    interpreter: str | None = None
    if bytecode or mypyc:
        if compile_with is None:
            interpreter = find_interpreter(python)
        else:
            _check_interpreter(compile_with, python)
            interpreter = compile_with
    if mypyc:
        assert interpreter is not None
        _check_mypyc(interpreter, arch, python)  # before the wheels: refused in a second, not after a download
    requirements = runtime_requirements(include_boto3=include_boto3)
    phase("parse permissions and collect modules")
    project = _project_files(permissions)
    phase("resolve and unpack wheels")
    with tempfile.TemporaryDirectory(prefix="policy-engine-wheels-") as scratch:
        wheels = _download(requirements, arch, python, Path(wheel_cache), Path(scratch), refresh=refresh)
        files = _wheel_files(wheels)
        wheel_names = tuple(sorted(w.name for w in wheels))
    for name, data in project.items():
        if name in files:
            raise BundleError(f"{name} is written both by a dependency and by the project")
        files[name] = data
    if mypyc:
        assert interpreter is not None
        phase("compile with mypyc")
        files.update(compile_mypyc(project, arch=arch, python=python, interpreter=interpreter))
    if bytecode:
        assert interpreter is not None
        phase("compile bytecode")
        files.update(compile_bytecode(files, python=python, interpreter=interpreter))
    phase("check and zip")
    problems = native_problems(files, arch=arch, python=python)
    if problems:
        raise BundleError(f"native code for the wrong platform: {problems[0]}"
                          + (f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""))
    unzipped = sum(len(data) for data in files.values())
    if unzipped > UNZIPPED_LIMIT:
        raise BundleError(f"unzipped size {unzipped} bytes exceeds Lambda's limit of {UNZIPPED_LIMIT}")
    payload = _zip_bytes(files)
    write_output(output, payload, str(output), BundleError)
    return Bundle(path=output, sha256=hashlib.sha256(payload).hexdigest(), size=len(payload),
                  unzipped_size=unzipped, files=len(files), wheels=wheel_names)


def find_interpreter(python: str, *, search_path: str | None = None, homes: Sequence[Path] | None = None) -> str:
    """An interpreter of CPython ``python`` (``"3.12"``) that runs, to write the bundle's bytecode.

    Tried in order: this interpreter; ``pythonX.Y`` on ``search_path`` (default ``PATH``;
    a pyenv shim of a version that is installed but not selected fails to run and is
    skipped); ``bin/pythonX.Y`` of the installations under ``homes`` (default: pyenv's
    ``$PYENV_ROOT/versions`` or ``~/.pyenv/versions``, and uv's ``~/.local/share/uv/python``),
    newest patch release first.

    Raises:
        BundleError: none is found; the message says how to get one or how to build without.
    """
    if f"{sys.version_info.major}.{sys.version_info.minor}" == python:
        return sys.executable
    command = f"python{python}"
    candidates: list[str] = []
    on_path = shutil.which(command, path=search_path)
    if on_path is not None:
        candidates.append(on_path)
    if homes is None:
        pyenv = Path(os.environ.get("PYENV_ROOT") or Path.home() / ".pyenv")
        homes = (pyenv / "versions", Path.home() / ".local" / "share" / "uv" / "python")
    for home in homes:
        installed = [folder for folder in (home.iterdir() if home.is_dir() else ())
                     if re.fullmatch(rf"(cpython-)?{re.escape(python)}\.\d+([-.].*)?", folder.name)]
        installed.sort(key=lambda folder: _patch_level(folder.name), reverse=True)
        candidates += [str(folder / "bin" / command) for folder in installed if (folder / "bin" / command).is_file()]
    for candidate in candidates:
        try:
            _check_interpreter(candidate, python)
        except BundleError:
            continue
        return candidate
    raise BundleError(
        f"the bundle ships bytecode for python{python} and needs a Python {python} interpreter to write it; "
        f"none runs here (tried this Python {sys.version_info.major}.{sys.version_info.minor}, {command} on PATH, "
        f"pyenv and uv installations). Install one (pyenv install {python}, uv python install {python}, or your "
        f"system's {command} package), or build with --no-compile (every cold start then compiles every module)"
    )


def _patch_level(name: str) -> int:
    found = re.search(r"\d+\.\d+\.(\d+)", name)
    return int(found.group(1)) if found else -1


def _ask(interpreter: str, code: str, *flags: str) -> str:
    """What ``code``, run by ``interpreter`` (with ``flags``), prints, stripped.

    Raises:
        BundleError: ``interpreter`` cannot run, fails, or takes more than a minute.
    """
    try:
        done = subprocess.run([interpreter, *flags, "-c", code], capture_output=True, text=True, check=False,
                              timeout=60)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise BundleError(f"cannot run {interpreter}: {exc}") from exc
    if done.returncode != 0:
        raise BundleError(f"cannot run {interpreter}: {done.stderr.strip()[-300:]}")
    return done.stdout.strip()


def _check_version(interpreter: str, version: str, python: str) -> None:
    if version != python:
        raise BundleError(f"{interpreter} is Python {version}, the bundle targets {python}")


def _check_interpreter(interpreter: str, python: str) -> None:
    # Isolated and without site-packages: only the interpreter itself has to work.
    version = _ask(interpreter, "import sys; print('%d.%d' % sys.version_info[:2])", "-I", "-S")
    _check_version(interpreter, version, python)


# Run by the target interpreter: compile each listed source into its __pycache__ path.
_COMPILER = """
import json, os, py_compile, sys
root = sys.argv[1]
done = {}
for name in json.load(sys.stdin):
    cached = os.path.join(os.path.dirname(name), "__pycache__",
                          os.path.basename(name)[:-3] + "." + sys.implementation.cache_tag + ".pyc")
    try:
        py_compile.compile(os.path.join(root, name), cfile=os.path.join(root, cached), dfile=name, doraise=True,
                           invalidation_mode=py_compile.PycInvalidationMode.UNCHECKED_HASH)
    except py_compile.PyCompileError:
        continue
    done[name] = cached
print(json.dumps({"version": "%d.%d" % sys.version_info[:2], "compiled": done}))
"""


def compile_bytecode(files: Mapping[str, bytes], *, python: str, interpreter: str) -> dict[str, bytes]:
    """``__pycache__/*.pyc`` for every ``.py`` in ``files``, compiled by ``interpreter``.

    Lambda's ``/var/task`` is read-only, so without shipped bytecode every cold start
    compiles every module it imports. The files use unchecked-hash invalidation
    (PEP 552): no timestamps inside, and Python never compares them with the sources,
    which in a deployed zip cannot change. Sources that do not compile for the target
    are left without bytecode, as ``compileall`` does.

    Raises:
        BundleError: ``interpreter`` cannot run or is not CPython ``python``.
    """
    sources = sorted(name for name in files if name.endswith(".py"))
    with tempfile.TemporaryDirectory(prefix="policy-engine-pyc-") as scratch:
        root = Path(scratch)
        for name in sources:
            (root / name).parent.mkdir(parents=True, exist_ok=True)
            (root / name).write_bytes(files[name])
        try:
            done = subprocess.run([interpreter, "-I", "-S", "-c", _COMPILER, str(root)], input=json.dumps(sources),
                                  capture_output=True, text=True, check=False, timeout=600)
        except OSError as exc:
            raise BundleError(f"cannot run {interpreter}: {exc}") from exc
        if done.returncode != 0:
            raise BundleError(f"{interpreter} could not compile the bundle: {done.stderr.strip()[-300:]}")
        report = json.loads(done.stdout)
        _check_version(interpreter, report["version"], python)
        return {cached: (root / cached).read_bytes() for cached in report["compiled"].values()}


# Run by the target interpreter: whether it can import mypyc and setuptools, its version and machine.
_MYPYC_PROBE = """
import importlib.util, json, platform, sys
print(json.dumps({"mypyc": all(importlib.util.find_spec(name) is not None for name in ("mypyc", "setuptools")),
                  "machine": platform.machine(),
                  "platform": sys.platform, "version": "%d.%d" % sys.version_info[:2]}))
"""


def _check_mypyc(interpreter: str, arch: str, python: str) -> None:
    # mypyc builds for the machine it runs on, with the interpreter it runs in (and the
    # packages of its site-packages, mypyc among them).
    probe = json.loads(_ask(interpreter, _MYPYC_PROBE))
    _check_version(interpreter, probe["version"], python)
    if probe["platform"] != "linux" or probe["machine"] != ARCHITECTURES[arch]:
        raise BundleError(f"--mypyc builds C extensions for this machine ({probe['platform']} {probe['machine']}); "
                          f"build the {arch} bundle on a Linux {arch} machine, or without --mypyc")
    if not probe["mypyc"]:
        raise BundleError(f"--mypyc needs mypyc, which comes with mypy, and setuptools, which it builds with, in "
                          f"{interpreter} (pip install mypy setuptools; the project's test extras have both); or "
                          "build without --mypyc")


def compile_mypyc(project: Mapping[str, bytes], *, arch: str, python: str, interpreter: str) -> dict[str, bytes]:
    """C extensions of ``MYPYC_MODULES`` built by mypyc in ``interpreter`` from ``project``
    (the bundle's own modules, by name), named as the bundle ships them: one per module
    beside its source, and mypyc's shared runtime library at the top.

    mypyc type-checks the modules as it compiles them (third-party packages come from
    ``interpreter``'s environment) and needs a C compiler and ``interpreter``'s headers.

    Raises:
        BundleError: ``interpreter`` is not Python ``python`` for this ``arch`` on Linux,
            has no mypyc, the compilation fails, or an extension needs a newer glibc
            than the runtime's operating system.
    """
    _check_mypyc(interpreter, arch, python)
    with tempfile.TemporaryDirectory(prefix="policy-engine-mypyc-") as scratch:
        root = Path(scratch)
        for name, data in project.items():
            if name.endswith(".py"):
                (root / name).parent.mkdir(parents=True, exist_ok=True)
                (root / name).write_bytes(data)
        (root / "mypy.ini").write_text(f"[mypy]\npython_version = {python}\nignore_missing_imports = True\n")
        # No build folder in the debug information: the same sources give the same bytes.
        flags = f"{os.environ.get('CFLAGS', '')} -ffile-prefix-map={root}=.".strip()
        try:
            done = subprocess.run([interpreter, "-m", "mypyc", *MYPYC_MODULES], cwd=root, capture_output=True,
                                  text=True, check=False, timeout=900, env={**os.environ, "CFLAGS": flags})
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise BundleError(f"mypyc did not finish in {interpreter}: {exc}") from exc
        if done.returncode != 0:
            output = (done.stdout + done.stderr).strip()
            raise BundleError(f"mypyc could not compile the decision path (it needs a C compiler and the Python "
                              f"{python} headers): {output[-600:]}")
        built = {path.relative_to(root).as_posix(): path.read_bytes() for path in sorted(root.rglob("*.so"))
                 if path.relative_to(root).parts[0] != "build"}
    problems = mypyc_problems(built, python=python)
    if problems:
        raise BundleError(problems[0] + (f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""))
    return built


def mypyc_problems(built: Mapping[str, bytes], *, python: str) -> list[str]:
    """Why mypyc's output ``built`` (names as the bundle ships them) cannot go into a
    python``python`` bundle: a module of ``MYPYC_MODULES`` without its extension, or an
    extension that names a newer glibc than the runtime's operating system has."""
    tag = f".cpython-{python.replace('.', '')}-"
    problems = [f"mypyc built no extension for {module}" for module in MYPYC_MODULES
                if not any(name.startswith(module[:-3] + tag) for name in built)]
    newest = _glibc(python)
    for name, data in sorted(built.items()):
        needed = glibc_needed(data)
        if needed > newest:
            problems.append(f"{name} needs glibc 2.{needed}; python{python} runs on glibc 2.{newest}: build on a "
                            "system with an older glibc (for example in the runtime's own image)")
    return problems


def glibc_needed(shared_object: bytes) -> int:
    """The newest glibc 2.N whose symbol versions a shared object names (0: none): the
    version names (``GLIBC_2.14``) are strings of its dynamic string table."""
    return max((int(minor) for minor in re.findall(rb"GLIBC_2\.(\d+)", shared_object)), default=0)


def native_problems(files: Mapping[str, bytes], *, arch: str, python: str) -> list[str]:
    """Shared libraries in ``files`` that cannot load on ``arch`` / CPython ``python``.

    Checks the ELF header of every ``*.so`` (class 64-bit, machine) and that a
    version-tagged extension (``*.cpython-312-*.so``) matches ``python``.
    """
    expected = _ELF_MACHINE[arch]
    tag = "cpython-" + python.replace(".", "")
    problems = []
    for name, data in sorted(files.items()):
        base = PurePosixPath(name).name
        if not (base.endswith(".so") or ".so." in base):
            continue
        if data[:4] != b"\x7fELF" or data[4] != 2:
            problems.append(f"{name}: not a 64-bit ELF shared object")
            continue
        machine = int.from_bytes(data[18:20], "little")
        if machine != expected:
            problems.append(f"{name}: ELF machine {machine}, {arch} needs {expected}")
        if ".cpython-" in base and tag not in base:
            problems.append(f"{name}: built for another Python than {python}")
    return problems


def _machine(arch: str) -> str:
    try:
        return ARCHITECTURES[arch]
    except KeyError:
        raise BundleError(f"architecture {arch!r} is not a Lambda architecture ({', '.join(ARCHITECTURES)})") from None


def _glibc(python: str) -> int:
    try:
        return PYTHON_VERSIONS[python]
    except KeyError:
        raise BundleError(f"Python {python!r} is not supported ({', '.join(PYTHON_VERSIONS)})") from None


def _download(
    requirements: list[str], arch: str, python: str, cache: Path, dest: Path, *, refresh: bool
) -> list[Path]:
    target = ["--only-binary=:all:", "--implementation", "cp", "--python-version", python]
    for platform in manylinux_platforms(arch, python):
        target += ["--platform", platform]
    base = [sys.executable, "-m", "pip", "download", "--disable-pip-version-check", "--dest", str(dest), *target]
    cached = None
    if not refresh and cache.is_dir():
        cached = _pip([*base, "--no-index", "--find-links", str(cache), *requirements])
    if cached is None or cached.returncode != 0:
        for stale in dest.glob("*.whl"):
            stale.unlink()
        fetched = _pip([*base, *requirements])
        if fetched.returncode != 0:
            lines = [line for line in fetched.stderr.splitlines() if "is ignored" not in line]
            raise BundleError(f"pip could not resolve {', '.join(requirements)} for {arch}/python{python}: "
                              + " | ".join(lines[-3:]))
        cache.mkdir(parents=True, exist_ok=True)
        for wheel in dest.glob("*.whl"):
            if not (cache / wheel.name).exists():
                shutil.copyfile(wheel, cache / wheel.name)
    wheels = sorted(dest.glob("*.whl"))
    if not wheels:
        raise BundleError(f"pip resolved no wheels for {arch}/python{python}")
    return wheels


def _pip(command: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command, capture_output=True, text=True, check=False)


def _wheel_files(wheels: Iterable[Path]) -> dict[str, bytes]:
    """Unpack wheels the way an installer places them in a target folder."""
    files: dict[str, bytes] = {}
    owners: dict[str, str] = {}
    for wheel in wheels:
        with zipfile.ZipFile(wheel) as archive:
            for info in archive.infolist():
                if info.is_dir():
                    continue
                name = _installed_name(info.filename)
                if name is None or _is_bytecode(name):
                    continue
                if name in files:
                    raise BundleError(f"{name} is written by both {owners[name]} and {wheel.name}")
                files[name] = archive.read(info)
                owners[name] = wheel.name
    return files


def _installed_name(member: str) -> str | None:
    top, _, rest = member.partition("/")
    if top.endswith(".data"):
        kind, _, inner = rest.partition("/")
        # scripts, headers and data files have no place in a Lambda task root
        return inner if kind in ("purelib", "platlib") and inner else None
    return member


def _is_bytecode(name: str) -> bool:
    return "__pycache__/" in name or name.endswith((".pyc", ".pyo"))


# Admin-only code (CLI, validation, publishing, migrations, packaging, local tools):
# never part of the handler's import closure.
ADMIN_PACKAGE = "policy_engine.admin"


def runtime_modules(root: Path = PROJECT_ROOT, entry: str = ENTRY_POINT) -> list[str]:
    """Our modules the Lambda can import, as paths relative to ``root``, sorted.

    The closure of ``entry``'s imports over ``policy_engine`` and ``handler``: every
    ``import``/``from ... import`` statement counts, at module level or inside a function
    (the stores' readers are imported lazily), with the ``__init__.py`` of each package
    on the way. Whatever no path from the handler reaches stays out of the bundle
    because nothing imports it, not because a list names it; everything admin-only lives
    under ``policy_engine/admin/``, and a runtime module that imports from there is refused.

    Raises:
        BundleError: ``entry`` is missing, a module cannot be parsed, or the closure
            reaches ``policy_engine.admin``.
    """
    import ast

    def module_file(dotted: str) -> str | None:
        base = root.joinpath(*dotted.split("."))
        for candidate in (base.with_suffix(".py"), base / "__init__.py"):
            if candidate.is_file():
                return candidate.relative_to(root).as_posix()
        return None

    def with_packages(dotted: str) -> list[str]:
        parts = dotted.split(".")
        found = [module_file(".".join(parts[:i])) for i in range(1, len(parts) + 1)]
        return [name for name in found if name is not None]

    if not (root / entry).is_file():
        raise BundleError(f"{root / entry} is missing")
    seen: set[str] = set()
    # The entry's own packages are imported before it (Lambda imports ``handler.app``).
    pending = [entry, *with_packages(PurePosixPath(entry).with_suffix("").as_posix().replace("/", "."))]
    while pending:
        name = pending.pop()
        if name in seen:
            continue
        seen.add(name)
        try:
            tree = ast.parse((root / name).read_bytes(), filename=name)
        except SyntaxError as exc:
            raise BundleError(f"{name}: cannot be parsed ({exc.msg}, line {exc.lineno})") from None
        package = PurePosixPath(name).parent.as_posix().replace("/", ".")
        for node in ast.walk(tree):
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                if node.level:  # relative: from the module's own package upwards
                    anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                    stem = ".".join([*anchor, node.module] if node.module else anchor)
                else:
                    stem = node.module or ""
                # ``from pkg import name`` may name a submodule as well as an attribute.
                targets = [stem, *(f"{stem}.{alias.name}" for alias in node.names)]
            for dotted in targets:
                if dotted == ADMIN_PACKAGE or dotted.startswith(ADMIN_PACKAGE + "."):
                    line = getattr(node, "lineno", 0)
                    raise BundleError(f"{name}, line {line}: the runtime imports admin-only {dotted}")
                if dotted.split(".")[0] in ("policy_engine", "handler"):
                    pending.extend(with_packages(dotted))
    return sorted(seen)


def _project_files(permissions: Path | None) -> dict[str, bytes]:
    if not (PROJECT_ROOT / "policy_engine" / "__init__.py").is_file():
        raise BundleError(f"{PROJECT_ROOT / 'policy_engine'} is not a package; run the bundle from an installed "
                          "policy-engine")
    files = {name: (PROJECT_ROOT / name).read_bytes() for name in runtime_modules()}
    # The package's type marker, for tools that read the bundle; no code.
    files["policy_engine/py.typed"] = (PROJECT_ROOT / "policy_engine" / "py.typed").read_bytes()
    if permissions is not None:
        files.update(_permission_files(Path(permissions)))
    return files


def _permission_files(path: Path) -> dict[str, bytes]:
    # Compiled here, so a bundle never ships mappings that do not validate, and its cold
    # start reads one JSON document instead of parsing YAML.
    from policy_engine.admin.publish import compile_snapshot

    if not path.exists():
        raise BundleError(f"permissions {path}: no such file or folder (run in the folder that holds them, pass "
                          "--permissions PATH, or --no-permissions for a function that reads a store)")
    return {PERMISSIONS_FILE: compile_snapshot([path])[0]}


def _zip_bytes(files: Mapping[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name in sorted(files):
            info = zipfile.ZipInfo(name, date_time=_ZIP_DATE)
            info.create_system = 3  # Unix, so external_attr carries the mode
            info.external_attr = _FILE_MODE << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(info, files[name], compresslevel=6)
    return buffer.getvalue()
