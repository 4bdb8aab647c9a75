"""The command docs/stores.md gives for a DynamoDB Local to try things against, run as written."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request

from tests.conftest import ROOT
from tests.stores import _free_port


def test_the_documented_command_serves_from_the_repository_with_its_relative_cache():
    # From the repository, as the docs run it: the cache folder is relative (.cache), and
    # Java runs in the emulator's folder, so a relative path handed on did not resolve.
    port = _free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "policy_engine.admin.local.dynamodb_local", "--port", str(port)],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    try:
        assert process.stdout is not None
        banner = process.stdout.readline()
        assert banner.startswith(f"DynamoDB Local (in memory) at http://127.0.0.1:{port}"), (
            banner, process.stderr.read() if process.poll() is not None and process.stderr else "")
        with contextlib.suppress(urllib.error.HTTPError):  # any HTTP answer: it is serving
            urllib.request.urlopen(f"http://127.0.0.1:{port}", timeout=5)
    finally:
        process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 20
        while process.poll() is None and time.monotonic() < deadline:
            time.sleep(0.1)
        if process.poll() is None:
            process.kill()
        process.wait()
        for stream in (process.stdout, process.stderr):
            if stream is not None:
                stream.close()
    assert process.returncode == 0
