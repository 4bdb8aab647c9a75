"""Command-line tools the tests run from their own cached virtual environments in ``.cache``.

Some tools pin versions that would downgrade this project's test dependencies (checkov
pins boto3 and an old ``packaging``; the SAM CLI pins its own stack), so each gets a
venv of its own, installed once from PyPI and reused. A cached venv that no longer runs
(missing, or a script whose interpreter path is gone, as when it was created through
another path to the same folder) is built again.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest


def _runs(executable: Path) -> bool:
    try:
        done = subprocess.run([str(executable), "--version"], capture_output=True, timeout=120, check=False)
    except OSError:
        return False
    return done.returncode == 0


def tool(venv: Path, command: str, requirement: str) -> Path:
    """``venv/bin/command``, installing ``requirement`` into ``venv`` first when it does not
    run; skips the calling test, naming pip's error, when it cannot be installed."""
    executable = venv / "bin" / command
    if not _runs(executable):
        shutil.rmtree(venv, ignore_errors=True)
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        done = subprocess.run([str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet",
                               "--disable-pip-version-check", requirement],
                              capture_output=True, text=True, timeout=900, check=False)
        if done.returncode != 0:
            shutil.rmtree(venv, ignore_errors=True)
            pytest.skip(f"{requirement} does not install here: {done.stderr[-300:]}")
    return executable
