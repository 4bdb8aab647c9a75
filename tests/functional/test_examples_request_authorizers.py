"""The walk-through script of docs/events.md keeps running and keeps showing the right outcomes."""

from __future__ import annotations

import subprocess
import sys

from tests.conftest import ROOT


def test_request_authorizers_example_runs():
    done = subprocess.run([sys.executable, str(ROOT / "examples" / "request_authorizers.py")],
                          capture_output=True, text=True, timeout=120, check=True)
    rows = [line for line in done.stdout.splitlines() if "GET /pets/12 ->" in line]
    assert len(rows) == 15
    for row in rows:
        expected = "401" if "revoked" in row else "200"
        assert f"-> {expected}" in row, row
        if "(same answer" in row:
            assert "POST /pets: 403" in row
