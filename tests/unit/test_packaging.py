"""Bundle building rules that need no network: requirements, platform tags, ELF checks, zip form."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import pytest

from policy_engine.admin.packaging import (
    MYPYC_MODULES,
    _zip_bytes,
    glibc_needed,
    manylinux_platforms,
    mypyc_problems,
    native_problems,
    runtime_requirements,
)
from policy_engine.errors import BundleError


def _names(requirements: list[str]) -> set[str]:
    return {r.split(">")[0].split("<")[0].split("=")[0].split(";")[0].strip().lower() for r in requirements}


def test_runtime_requirements_leave_boto3_and_test_tools_out_unless_asked():
    assert _names(runtime_requirements()) == {"pyjwt", "cryptography", "pydantic", "pyyaml"}
    assert "boto3" in _names(runtime_requirements(include_boto3=True))
    assert not _names(runtime_requirements(include_boto3=True)) & {"pytest", "moto", "hypothesis", "cfn-lint"}


def test_platform_tags_follow_the_runtimes_glibc():
    # python3.11 runs on Amazon Linux 2 (glibc 2.26); 3.12+ on Amazon Linux 2023 (2.34)
    al2 = manylinux_platforms("arm64", "3.11")
    assert al2[0] == "manylinux_2_26_aarch64"
    assert "manylinux_2_28_aarch64" not in al2
    assert {"manylinux_2_17_aarch64", "manylinux2014_aarch64"} <= set(al2)
    assert all(tag.endswith("_aarch64") for tag in al2)
    al2023 = manylinux_platforms("x86_64", "3.12")
    assert al2023[0] == "manylinux_2_34_x86_64"
    assert {"manylinux_2_28_x86_64", "manylinux2014_x86_64", "manylinux1_x86_64"} <= set(al2023)


def test_the_newest_glibc_a_shared_object_names_is_read_from_its_version_strings():
    # the strings of a dynamic string table, as the linker writes them beside symbol names
    table = b"\x00memcpy\x00GLIBC_2.14\x00GLIBC_2.2.5\x00strlen\x00GLIBC_2.34\x00GLIBC_2.3.4\x00"
    assert glibc_needed(b"\x7fELF" + table) == 34
    assert glibc_needed(b"\x7fELF\x00no versions\x00") == 0
    # a real one: an extension module of Python's, linked against this machine's glibc
    import _socket

    assert glibc_needed(Path(_socket.__file__).read_bytes()) >= 2


def test_mypyc_output_needs_every_extension_within_the_runtimes_glibc():
    def output(python: str, runtime_glibc: int) -> dict[str, bytes]:
        tag = f".cpython-{python.replace('.', '')}-x86_64-linux-gnu.so"
        stub = b"\x7fELF\x02\x00GLIBC_2.2.5\x00GLIBC_2.14\x00"
        built = {module[:-3] + tag: stub for module in MYPYC_MODULES}
        built["0123__mypyc" + tag] = b"\x7fELF\x02\x00" + f"GLIBC_2.{runtime_glibc}".encode() + b"\x00"
        return built

    assert mypyc_problems(output("3.11", 17), python="3.11") == []
    # python3.11 runs on Amazon Linux 2 (glibc 2.26); 3.12 on Amazon Linux 2023 (2.34)
    assert mypyc_problems(output("3.11", 28), python="3.11") == [
        "0123__mypyc.cpython-311-x86_64-linux-gnu.so needs glibc 2.28; python3.11 runs on glibc 2.26: build on a "
        "system with an older glibc (for example in the runtime's own image)"]
    assert mypyc_problems(output("3.12", 28), python="3.12") == []
    # every listed module needs its extension, built for the target's Python
    missing = output("3.11", 17)
    del missing["policy_engine/engine.cpython-311-x86_64-linux-gnu.so"]
    assert mypyc_problems(missing, python="3.11") == ["mypyc built no extension for policy_engine/engine.py"]
    assert len(mypyc_problems(output("3.11", 17), python="3.12")) == len(MYPYC_MODULES)


@pytest.mark.parametrize("arch, python", [("aarch64", "3.12"), ("x86_64", "3.10"), ("arm64", "3")])
def test_unknown_targets_are_refused(arch, python):
    with pytest.raises(BundleError):
        manylinux_platforms(arch, python)


def _elf(machine: int, bits: int = 64) -> bytes:
    header = bytearray(64)
    header[:4] = b"\x7fELF"
    header[4] = 2 if bits == 64 else 1
    header[18:20] = machine.to_bytes(2, "little")
    return bytes(header)


def test_native_problems_name_each_library_built_for_another_target():
    files = {
        "pkg/_fast.cpython-312-aarch64-linux-gnu.so": _elf(183),
        "pkg/_wrong_arch.cpython-312-x86_64-linux-gnu.so": _elf(62),
        "pkg/_wrong_python.cpython-311-aarch64-linux-gnu.so": _elf(183),
        "pkg/_rust.abi3.so": _elf(183),
        "pkg.libs/libffi-1a2b.so.8.1.0": _elf(183),
        "pkg/_32bit.so": _elf(183, bits=32),
        "pkg/not_elf.so": b"MZ\x90\x00",
        "pkg/module.py": b"print('not native')",
    }
    problems = native_problems(files, arch="arm64", python="3.12")
    flagged = {problem.split(":")[0] for problem in problems}
    assert flagged == {"pkg/_wrong_arch.cpython-312-x86_64-linux-gnu.so",
                       "pkg/_wrong_python.cpython-311-aarch64-linux-gnu.so", "pkg/_32bit.so", "pkg/not_elf.so"}
    assert native_problems({"pkg/_rust.abi3.so": _elf(183)}, arch="arm64", python="3.13") == []


def test_zip_bytes_ignore_insertion_order_and_normalise_metadata():
    one = _zip_bytes({"b/x.py": b"x = 1\n", "a.py": b"a = 1\n"})
    two = _zip_bytes({"a.py": b"a = 1\n", "b/x.py": b"x = 1\n"})
    assert one == two
    with zipfile.ZipFile(io.BytesIO(one)) as archive:
        infos = archive.infolist()
        assert [i.filename for i in infos] == ["a.py", "b/x.py"]
        assert {(i.date_time, i.external_attr >> 16, i.compress_type) for i in infos} == {
            ((1980, 1, 1, 0, 0, 0), 0o100644, zipfile.ZIP_DEFLATED)
        }
        assert archive.read("b/x.py") == b"x = 1\n"


def test_the_bundle_carries_the_handlers_import_closure_and_no_admin_code():
    from policy_engine.admin.packaging import PROJECT_ROOT, runtime_modules

    modules = set(runtime_modules())
    # The stores' readers are imported lazily by bootstrap: they are reached all the same.
    assert {"handler/app.py", "policy_engine/adapters/dynamodb.py", "policy_engine/adapters/s3.py",
            "policy_engine/adapters/yaml_files.py", "policy_engine/adapters/snapshot_file.py",
            "policy_engine/adapters/introspection.py", "policy_engine/core/tokens/keys.py"} <= modules
    assert not [m for m in modules if m.startswith("policy_engine/admin/")]
    # The count the deployment page gives.
    assert f"({len(modules)} files go in today" in (PROJECT_ROOT / "docs" / "deployment.md").read_text()
    # A module outside admin/ that the handler cannot reach is misplaced admin code or dead
    # weight. The one exception: the in-memory permission source, for embedding the engine.
    root = Path(__file__).resolve().parents[2]
    runtime_tree = {p.relative_to(root).as_posix() for folder in ("policy_engine", "handler")
                    for p in (root / folder).rglob("*.py")
                    if not p.relative_to(root).as_posix().startswith("policy_engine/admin/")}
    assert runtime_tree - modules == {"policy_engine/adapters/memory.py"}


def test_every_module_the_running_handler_loads_is_in_the_closure():
    # The static closure must over-approximate what really runs: import the handler, then
    # every lazily imported reader, and compare with what the interpreter loaded.
    import json
    import subprocess
    import sys
    from pathlib import Path

    from policy_engine.admin.packaging import PROJECT_ROOT, runtime_modules

    script = (
        "import json, sys\n"
        "import handler.app\n"
        "import policy_engine.adapters.dynamodb, policy_engine.adapters.s3, policy_engine.adapters.yaml_files\n"
        "import policy_engine.adapters.snapshot_file, policy_engine.adapters.introspection\n"
        "import policy_engine.adapters.api_keys_yaml\n"
        "print(json.dumps(sorted(getattr(m, '__file__', None) or '' for m in list(sys.modules.values()))))\n"
    )
    env = {"ISSUER": "https://idp.example.com", "AUDIENCE": "api", "JWKS_URI": "http://127.0.0.1:9/jwks.json",
           "JWKS_TIMEOUT": "0.2", "PATH": "/usr/bin:/bin"}
    done = subprocess.run([sys.executable, "-c", script], cwd=PROJECT_ROOT, env=env, capture_output=True, text=True,
                          timeout=60, check=True)
    loaded = {Path(f).resolve() for f in json.loads(done.stdout.splitlines()[-1]) if f}
    ours = {p.relative_to(PROJECT_ROOT).as_posix() for p in loaded
            if p.is_relative_to(PROJECT_ROOT / "policy_engine") or p.is_relative_to(PROJECT_ROOT / "handler")}
    assert ours and ours <= set(runtime_modules())


def test_a_runtime_module_that_imports_admin_code_is_refused(tmp_path):
    from policy_engine.admin.packaging import runtime_modules
    from policy_engine.errors import BundleError

    files = {
        "handler/__init__.py": "",
        "handler/app.py": "from policy_engine import wiring\n",
        "policy_engine/__init__.py": "",
        "policy_engine/wiring.py": "def build():\n    from policy_engine.admin.lint import check\n",
        "policy_engine/admin/__init__.py": "",
        "policy_engine/admin/lint.py": "",
    }
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    with pytest.raises(BundleError, match=r"policy_engine/wiring.py, line 2: .*policy_engine.admin.lint"):
        runtime_modules(tmp_path)


def test_the_closure_follows_lazy_relative_and_submodule_imports(tmp_path):
    from policy_engine.admin.packaging import runtime_modules

    files = {
        "handler/__init__.py": "",
        "handler/app.py": "from policy_engine import wiring\n",
        "policy_engine/__init__.py": "",
        "policy_engine/wiring.py": "def build():\n    from policy_engine.stores import reader\n",
        "policy_engine/stores/__init__.py": "",
        "policy_engine/stores/reader.py": "from . import formats\nfrom ..errors import Problem\n",
        "policy_engine/stores/formats.py": "",
        "policy_engine/errors.py": "",
        "policy_engine/stores/publisher.py": "from policy_engine.stores import reader\n",  # reaches in, never reached
        "policy_engine/admin/cli.py": "import policy_engine.stores.publisher\n",
    }
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    assert runtime_modules(tmp_path) == sorted(
        ["handler/__init__.py", "handler/app.py", "policy_engine/__init__.py", "policy_engine/wiring.py",
         "policy_engine/stores/__init__.py", "policy_engine/stores/reader.py", "policy_engine/stores/formats.py",
         "policy_engine/errors.py"])
