"""Structured JSON log lines on stderr (Lambda sends both streams to CloudWatch, one line per record; stdout stays free for CLI output).

Nothing here ever receives a token: callers pass reason codes, claims they chose
(principal, issuer, kid) and counts.
"""

from __future__ import annotations

import json
import sys
import time
from typing import Any

__all__ = ["log"]


def log(level: str, event: str, **fields: Any) -> None:
    """Write one JSON object: ``{"level", "event", "ts", **fields}``."""
    record = {"level": level, "event": event, "ts": round(time.time(), 3), **fields}
    sys.stderr.write(json.dumps(record, separators=(",", ":"), default=str) + "\n")
