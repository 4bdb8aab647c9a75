"""``replay`` on a million decision lines: streamed, in bounded memory, every line counted.

The log is piped into a ``policy-engine replay -`` process as it is generated, so
neither side ever holds it (about 280 MB); the replay process's own peak resident set
comes from ``wait4``. The bound asserted, 150 MiB, is docs/replay.md's: about three
times what a million lines measured (44 MiB), and far below what holding the log
would take. No time is asserted (a busy machine would make it flaky); the benchmark
(``benchmarks/replay.py``) reports it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from typing import IO

import pytest

from tests.cli.test_replay import GAINED, KEPT, LOST, NEXT
from tests.conftest import ROOT

LINES = 1_000_000
#: docs/replay.md, "Time and memory on a million lines".
PEAK_RSS_BOUND_MIB = 150


def _feed(stdin: IO[bytes]) -> None:
    # Four lines per round: one lost, one gained, two unchanged; 250,000 distinct principals
    # for each change, so the per-principal table passes its bound (--max-keys 100000).
    lost, gained = json.loads(LOST), json.loads(GAINED)
    try:
        for start in range(0, LINES // 4, 5_000):
            chunk = []
            for i in range(start, start + 5_000):
                lost["principal"], gained["principal"] = f"reader-{i}", f"writer-{i}"
                chunk.extend((json.dumps(lost, separators=(",", ":")), json.dumps(gained, separators=(",", ":")),
                              KEPT, KEPT))
            stdin.write(("\n".join(chunk) + "\n").encode())
    finally:
        stdin.close()


@pytest.mark.slow
def test_a_million_lines_are_replayed_in_bounded_memory(tmp_path):
    errors = (tmp_path / "stderr").open("wb")
    process = subprocess.Popen(
        [sys.executable, "-m", "policy_engine.admin.cli", "replay", "-", "--against", str(NEXT), "--format", "json",
         "--progress", "never", "--max-keys", "100000"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=errors, cwd=ROOT)
    assert process.stdin is not None and process.stdout is not None
    feeder = threading.Thread(target=_feed, args=(process.stdin,), daemon=True)
    feeder.start()
    with process.stdout:
        output = process.stdout.read()
    feeder.join()
    _, status, usage = os.wait4(process.pid, 0)
    process.returncode = os.waitstatus_to_exitcode(status)
    errors.close()
    assert process.returncode == 1, (tmp_path / "stderr").read_text()  # differences found
    report = json.loads(output)
    assert (report["lines"], report["decisions"]) == (LINES, LINES)
    assert (report["gained"], report["lost"], report["unchanged"]) == (LINES // 4, LINES // 4, LINES // 2)
    assert report["skipped"] == {"not_decision": 0, "refusal": 0, "older_release": 0, "damaged": 0}
    # The table stopped at its bound; the changes past it are in the totals only.
    assert report["pairs"] == 100_000
    beyond = report["beyond_max_keys"]["pairs"]
    assert beyond["gained"] + beyond["lost"] == LINES // 2 - 100_000
    peak_mib = usage.ru_maxrss / 1024  # kilobytes on Linux
    print(f"replay of {LINES:,} lines: peak RSS {peak_mib:.0f} MiB")
    assert peak_mib < PEAK_RSS_BOUND_MIB
