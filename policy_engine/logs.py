"""Structured JSON log lines on stderr (Lambda sends both streams to CloudWatch, one
line per record; stdout stays free for CLI output).

Nothing here ever receives a token: callers pass reason codes, claims they chose
(principal, issuer, kid) and counts.
"""

from __future__ import annotations

import json
import sys
import time
from json.encoder import encode_basestring_ascii as _quote  # type: ignore[attr-defined]
from typing import Any

__all__ = ["log", "log_decision"]

_encode = json.JSONEncoder(separators=(",", ":"), default=str).encode


def log(level: str, event: str, **fields: Any) -> None:
    """Write one JSON object: ``{"level", "event", "ts", **fields}``."""
    record = {"level": level, "event": event, "ts": round(time.time(), 3), **fields}
    sys.stderr.write(_encode(record) + "\n")


def log_decision(
    decision: str, reason: str, principal: str, routes: int, version: str, latency_ms: float, shape: str = "policy"
) -> None:
    """The one line per Allow/Deny decision; formatted by hand because it is on the warm path.

    ``shape`` names the response format: ``policy``, ``per-route policy`` or ``simple``.
    """
    sys.stderr.write(
        '{"level":"INFO","event":"decision","ts":%.3f,"decision":%s,"reason":%s,"principal":%s,'
        '"routes":%d,"shape":%s,"version":%s,"latency_ms":%.3f}\n'
        % (time.time(), _quote(decision), _quote(reason), _quote(principal), routes, _quote(shape), _quote(version),
           latency_ms)
    )
