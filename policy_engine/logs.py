"""Structured JSON log lines on stderr (Lambda sends both streams to CloudWatch, one
line per record; stdout stays free for CLI output).

Nothing here ever receives a token: callers pass reason codes, claims they chose
(principal, issuer, kid) and counts.
"""

from __future__ import annotations

import json
import sys
import time
from json.encoder import encode_basestring_ascii as _quote
from typing import Any

__all__ = ["log", "log_decision"]

_encode = json.JSONEncoder(separators=(",", ":"), default=str).encode


def log(level: str, event: str, **fields: Any) -> None:
    """Write one JSON object: ``{"level", "event", "ts", **fields}``."""
    record = {"level": level, "event": event, "ts": round(time.time(), 3), **fields}
    sys.stderr.write(_encode(record) + "\n")


# "000" to "999": the fraction of a millisecond or second count, without float formatting.
_THOUSANDTHS = tuple(f"{i:03d}" for i in range(1000))
# Decision, reason, shape and version come from small sets: their part of the line is
# built once per combination. Bounded, in case versions keep changing in a warm container.
_middles: dict[tuple[str, str, str, str], str] = {}


def log_decision(
    decision: str, reason: str, principal: str, routes: int, version: str, latency_ns: int, shape: str = "policy",
    placeholders_refused: tuple[str, ...] = (),
    unconfigured_grant_claims: tuple[str, ...] = (),
) -> None:
    """The one line per Allow/Deny decision; formatted by hand because it runs on every decision.

    ``shape`` names the response format: ``policy``, ``per-route policy`` or ``simple``.
    ``placeholders_refused`` (claim names, never values) is written only when not empty.
    ``unconfigured_grant_claims`` (claim names, written only when there are some) says why
    a token with groups or roles was granted nothing.
    ``ts`` and ``latency_ms`` come out as in ``log`` (three decimals), from integers:
    float formatting is a noticeable part of a warm decision.
    """
    key = (decision, reason, shape, version)
    middle = _middles.get(key)
    if middle is None:
        if len(_middles) >= 64:
            _middles.clear()
        middle = _middles[key] = (
            f'"decision":{_quote(decision)},"reason":{_quote(reason)},"shape":{_quote(shape)},'
            f'"version":{_quote(version)},"principal":'
        )
    ms = time.time_ns() // 1_000_000
    us = latency_ns // 1000
    end = "}\n"
    if placeholders_refused or unconfigured_grant_claims:  # rare: claim names that say why
        extra = {"placeholders_refused": list(placeholders_refused),
                 "unconfigured_grant_claims": list(unconfigured_grant_claims)}
        end = "".join(f',"{name}":{_encode(names)}' for name, names in extra.items() if names) + end
    sys.stderr.write(
        f'{{"level":"INFO","event":"decision","ts":{ms // 1000}.{_THOUSANDTHS[ms % 1000]},{middle}{_quote(principal)},'
        f'"routes":{routes},"latency_ms":{us // 1000}.{_THOUSANDTHS[us % 1000]}{end}'
    )
