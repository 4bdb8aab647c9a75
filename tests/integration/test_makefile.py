"""The Makefile's two entry points: what each installs, and a broken .venv made again.

``make -n`` prints the commands a run would execute without running them; the
environment's ``python`` is a stub script, so no test here installs anything.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT

pytestmark = pytest.mark.skipif(shutil.which("make") is None, reason="needs make")


@pytest.fixture
def clone(tmp_path: Path) -> Path:
    for name in ("Makefile", "pyproject.toml"):
        shutil.copy(ROOT / name, tmp_path / name)
    return tmp_path


def make(folder: Path, *args: str) -> str:
    # Run as a top-level make: under `make test` the inherited MAKELEVEL/MAKEFLAGS would make
    # this one print "Entering directory" lines.
    env = {k: v for k, v in os.environ.items() if k not in ("MAKELEVEL", "MAKEFLAGS", "MFLAGS", "MAKEOVERRIDES")}
    done = subprocess.run(["make", f"PYTHON={sys.executable}", *args], cwd=folder, capture_output=True, text=True,
                          timeout=60, check=False, env=env)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def venv(folder: Path, python: str, *stamps: str) -> None:
    """A .venv whose ``python`` runs ``python`` (a shell body), holding ``stamps``."""
    bin_dir = folder / ".venv" / "bin"
    bin_dir.mkdir(parents=True)
    (bin_dir / "python").write_text(f"#!/bin/sh\n{python}\n")
    (bin_dir / "python").chmod(0o755)
    (bin_dir / "policy-engine").write_text("#!/bin/sh\necho \"policy-engine $*\"\n")
    (bin_dir / "policy-engine").chmod(0o755)
    for stamp in stamps:
        (folder / stamp).touch()


def stamp(folder: Path, target: str) -> str:
    """The stamp ``target`` writes (named after pyproject.toml's checksum)."""
    found = re.search(r"touch (\.venv/\.installed-\S+)", make(folder, "-n", target))
    assert found is not None
    return found.group(1)


def test_demo_installs_the_local_extra_and_test_the_test_extra(clone):
    demo = make(clone, "-n", "demo")
    assert "-m venv .venv" in demo
    assert "-e '.[local]'" in demo and "[test]" not in demo
    test = make(clone, "-n", "test")
    assert "-e '.[test]'" in test and "[local]" not in test


def test_nothing_is_installed_again_into_a_working_venv(clone):
    venv(clone, "exit 0", stamp(clone, "demo"))
    assert make(clone, "-n", "demo").splitlines() == [".venv/bin/policy-engine demo"]


@pytest.mark.parametrize("python", ["exit 1", "exec /nonexistent/python3 \"$@\""], ids=["no-pip", "python-gone"])
def test_a_broken_venv_is_made_again_although_its_stamp_is_there(clone, python):
    venv(clone, python, stamp(clone, "demo"), stamp(clone, "test"))
    for target in ("demo", "test"):
        planned = make(clone, "-n", target)
        assert "-m venv .venv" in planned and "pip install" in planned


def test_after_make_test_make_demo_installs_nothing(clone):
    # The test extras include the demo's: only the demo's stamp is written.
    tested = stamp(clone, "test")
    venv(clone, "exit 0", tested)
    out = make(clone, "demo")
    assert "installing" not in out and "policy-engine demo" in out
    assert (clone / tested).exists()
    assert make(clone, "-n", "demo").splitlines() == [".venv/bin/policy-engine demo"]
