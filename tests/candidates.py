"""What every store's candidate tests share: the same live version and candidate, and
the races whose outcome does not depend on the store."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from policy_engine.admin.publish import history, open_target, promote, sync
from tests.faults import write_permissions


def publish_live_and_candidate(target: str, folder: Path) -> tuple[str, Path, Path, Any]:
    """v1 live with /a and /b; candidate c1 drops /b and adds /c. ``(target, live, shadow, result)``."""
    live = write_permissions(folder / "live.yaml", [("GET", "/a", "s:read"), ("GET", "/b", "s:read")])
    sync(live, target)
    shadow = write_permissions(folder / "candidate.yaml", [("GET", "/a", "s:read"), ("GET", "/c", "s:read")])
    result = sync(shadow, target, candidate=True, note="PR 43")
    return target, live, shadow, result


def check_a_discard_that_loses_to_a_promote(target: str) -> None:
    """The discard read the candidate, then a promote ran to the end before it wrote: the
    discard neither ends the candidate nor rewrites its record."""
    late = open_target(target)
    candidate = late.candidate()
    assert candidate is not None
    promoted = promote(target)
    assert late.end_candidate(candidate, "discarded") is False
    [record] = [entry for entry in history(target) if entry.get("candidate")]
    assert (record["status"], record["promoted_to"]) == ("promoted", promoted.version_after)
