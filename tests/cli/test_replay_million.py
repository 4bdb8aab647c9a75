"""``replay`` on a million decision lines: streamed, in bounded memory, every line counted.

The log is piped into a ``policy-engine replay -`` process as it is generated, so
neither side ever holds it (about 280 MB). The replay process reports its own peak
resident set (``VmHWM`` of ``/proc/self/status``, which starts afresh at ``exec``;
``getrusage`` would also count the pages of the forked test process before it). The
bound asserted, 150 MiB, is docs/replay.md's: about three times what a million lines
measured (44 MiB), and far below what holding the log would take. No time is asserted
(a busy machine would make it flaky); the benchmark (``benchmarks/replay.py``)
reports it.
"""

from __future__ import annotations

import json
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


# Runs the command, then writes the process's peak resident set (kB) to the file named first.
_REPORTING_PEAK = """
import sys
from policy_engine.admin.cli import main
code = main(sys.argv[2:])
peak = next(line for line in open("/proc/self/status") if line.startswith("VmHWM:"))
open(sys.argv[1], "w").write(peak.split()[1])
sys.exit(code)
"""


@pytest.mark.slow
def test_a_million_lines_are_replayed_in_bounded_memory(tmp_path):
    errors = (tmp_path / "stderr").open("wb")
    peak_file = tmp_path / "peak-kb"
    process = subprocess.Popen(
        [sys.executable, "-c", _REPORTING_PEAK, str(peak_file), "replay", "-", "--against", str(NEXT),
         "--format", "json", "--progress", "never", "--max-keys", "100000"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=errors, cwd=ROOT)
    assert process.stdin is not None and process.stdout is not None
    feeder = threading.Thread(target=_feed, args=(process.stdin,), daemon=True)
    feeder.start()
    with process.stdout:
        output = process.stdout.read()
    feeder.join()
    process.wait()
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
    peak_mib = int(peak_file.read_text()) / 1024
    print(f"replay of {LINES:,} lines: peak RSS {peak_mib:.0f} MiB")
    assert peak_mib < PEAK_RSS_BOUND_MIB
