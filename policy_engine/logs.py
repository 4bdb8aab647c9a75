"""Structured JSON log lines on stderr (Lambda sends both streams to CloudWatch, one
line per record; stdout stays free for CLI output).

Nothing here ever receives a token: callers pass reason codes, claims they chose
(principal, issuer, kid, placeholder values) and counts.

The request being handled: the handler calls ``begin_request`` before it decides and
``end_request`` after; in between, every line (``log``, ``log_decision``,
``log_refusal``) carries the Lambda request id, API Gateway's request id and the route
(``aws_request_id``, ``request_id``, ``route``: each left out when unknown), right after
``ts``. The engine names the request's methodArn (``note_target``) once it has parsed
it, for the decision line.

Lines that count something carry CloudWatch metrics (``policy_engine.metrics``): the
``FunctionName`` dimension, the metric members and ``_aws``, last.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Mapping
from json.encoder import encode_basestring_ascii as _quote
from typing import TYPE_CHECKING, Any

from policy_engine import metrics as _metrics
from policy_engine.core.urls import redact_url_secrets

if TYPE_CHECKING:
    from policy_engine.core.arn import MethodArn
    from policy_engine.core.decision import Answer

__all__ = [
    "begin_request", "end_request", "log", "log_decision", "log_refusal", "log_shadow_diff", "note_target", "raised_at",
]

_encode = json.JSONEncoder(separators=(",", ":"), default=str).encode

# The request being handled: its three values, the same as JSON members (each followed
# by a comma) for the hand-formatted lines, and its methodArn once parsed.
_request: tuple[object, object, object] = (None, None, None)
_request_text = ""
_target: MethodArn | None = None
_REQUEST_FIELDS = ("aws_request_id", "request_id", "route")


def begin_request(aws_request_id: object, request_id: str | None, route: str | None) -> None:
    """Start the lines of one request: each carries these three (those that are strings)."""
    global _request, _request_text, _target
    text = f'"aws_request_id":{_quote(aws_request_id)},' if aws_request_id.__class__ is str else ""
    if request_id is not None:
        text += f'"request_id":{_quote(request_id)},'
    if route is not None:
        text += f'"route":{_quote(route)},'
    _request, _request_text, _target = (aws_request_id, request_id, route), text, None


def end_request() -> None:
    """Lines written from now on belong to no request."""
    global _request, _request_text, _target
    _request, _request_text, _target = (None, None, None), "", None


def note_target(method_arn: MethodArn) -> None:
    """The parsed methodArn of the request being handled (its decision line names it)."""
    global _target
    _target = method_arn


def log(level: str, event: str, /, *, metrics: Mapping[str, float] | None = None, **fields: Any) -> None:
    """Write one JSON object: ``{"level", "event", "ts", <request>, **fields}``.

    ``metrics`` (names of ``policy_engine.metrics.METRICS``, finite numbers) are added in
    the Embedded Metric Format, unless ``METRICS`` is off.
    """
    ms = time.time_ns() // 1_000_000
    record: dict[str, Any] = {"level": level, "event": event, "ts": ms / 1000}
    for name, value in zip(_REQUEST_FIELDS, _request, strict=True):
        if value.__class__ is str:
            record[name] = value
    # Errors quote URLs (endpoints, settings): their user information and query strings may
    # be credentials. The decision line of a granted request (log_decision) holds none.
    for name, value in fields.items():
        record[name] = _redacted(value)
    text = _encode(record)
    config = _metrics.config
    if metrics and config.enabled:
        members = "".join(f",{_quote(name)}:{_encode(value)}" for name, value in metrics.items())
        text = f'{text[:-1]},{config.function}{members},"_aws":{{"Timestamp":{ms}{config.tail(tuple(metrics))}}}'
    sys.stderr.write(text + "\n")


def _redacted(value: Any) -> Any:
    # ``value`` with the URL secrets of its texts hidden, redacted before it is encoded:
    # in encoded JSON an escaped quote (``\\"``) would look like part of a URL. Other objects
    # are shown as their text, as the encoder's ``default`` would show them.
    if value.__class__ is str:
        return redact_url_secrets(value)
    if value is None or isinstance(value, (bool, int, float)):
        return value
    if isinstance(value, (list, tuple)):
        return [_redacted(item) for item in value]
    if isinstance(value, dict):
        return {key: _redacted(item) for key, item in value.items()}
    return redact_url_secrets(str(value))


# "000" to "999": the fraction of a millisecond or second count, without float formatting.
_THOUSANDTHS = tuple(f"{i:03d}" for i in range(1000))
# Parts of the decision line from small sets, built once per combination: decision,
# reason, shape and version; API, stage and method; a caller's grant set. Bounded, in
# case versions keep changing in a warm container (or callers' grant sets differ).
_middles: dict[tuple[str, str, str, str], str] = {}
_places: dict[tuple[str, str, str], str] = {}
_grant_lists: dict[frozenset[str], str] = {}


def log_decision(answer: Answer, latency_ns: int) -> None:
    """The one line per Allow/Deny decision; formatted by hand because it runs on every decision.

    After the request fields: ``decision``, ``reason``, ``shape`` (``policy``, ``per-route
    policy`` or ``simple``), ``version``, ``principal``; ``api``, ``stage``, ``verb`` and
    ``path`` of the request; ``outcome`` (``allow``/``deny``: what API Gateway does with
    this request given the response); ``grants`` (the caller's grant keys, sorted);
    ``claims`` (the placeholder claim values, only when the permission sets have
    placeholders); ``routes`` (policy Resources granted) and ``latency_ms``. Then, only
    when not empty, ``placeholders_refused`` (claim names, never values) and
    ``unconfigured_grant_claims`` (claim names that say why a token with groups or roles
    was granted nothing). Then the metrics ``Decisions`` and ``DecisionLatency``.

    ``ts`` and ``latency_ms`` come out as in ``log`` (three decimals), from integers:
    float formatting is a noticeable part of a warm decision.
    """
    decision = answer.decision
    key = (decision.effect, decision.reason, answer.shape, decision.version)
    middle = _middles.get(key)
    if middle is None:
        if len(_middles) >= 64:
            _middles.clear()
        middle = _middles[key] = (
            f'"decision":{_quote(key[0])},"reason":{_quote(key[1])},"shape":{_quote(key[2])},'
            f'"version":{_quote(key[3])},"principal":'
        )
    place = _place()
    grants = _grant_lists.get(answer.grants)
    if grants is None:
        if len(_grant_lists) >= 256:
            _grant_lists.clear()
        grants = _grant_lists[answer.grants] = _encode(sorted(answer.grants))
    claims = "" if answer.claims is None else ',"claims":' + _encode(answer.claims)
    ms = time.time_ns() // 1_000_000
    us = latency_ns // 1000
    latency = f"{us // 1000}.{_THOUSANDTHS[us % 1000]}"
    end = "}\n"
    config = _metrics.config
    if config.enabled:
        end = (f',{config.function},"Decisions":1,"DecisionLatency":{latency},'
               f'"_aws":{{"Timestamp":{ms}{config.decision_tail}}}\n')
    refused, unconfigured = decision.placeholders_refused, decision.unconfigured_grant_claims
    if refused or unconfigured:  # rare: claim names that say why
        extra = {"placeholders_refused": list(refused), "unconfigured_grant_claims": list(unconfigured)}
        end = "".join(f',"{name}":{_encode(names)}' for name, names in extra.items() if names) + end
    sys.stderr.write(
        f'{{"level":"INFO","event":"decision","ts":{ms // 1000}.{_THOUSANDTHS[ms % 1000]},{_request_text}{middle}'
        f'{_quote(decision.principal_id)}{place},"outcome":{_OUTCOMES[answer.outcome]},"grants":{grants}{claims},'
        f'"routes":{len(decision.resources)},"latency_ms":{latency}{end}'
    )


_OUTCOMES = {True: '"allow"', False: '"deny"'}


def _place() -> str:
    # ',"api":...,"stage":...,"verb":...,"path":"/..."' of the request's methodArn, if parsed.
    target = _target
    if target is None:
        return ""
    at = (target.api_arn, target.stage, target.verb)
    head = _places.get(at)
    if head is None:
        if len(_places) >= 64:
            _places.clear()
        head = _places[at] = f',"api":{_quote(at[0])},"stage":{_quote(at[1])},"verb":{_quote(at[2])},"path":'
    return head + _quote("/" + target.path)


_SHADOW_METRICS = (_metrics.SHADOW_DIFFERENCES,)


def log_shadow_diff(principal: str, versions: str, live: bool, candidate: bool, difference: str) -> None:
    """The ``shadow_diff`` line of the request being handled, hand-formatted like the
    decision line (a candidate may differ for every request): ``principal``, the
    request's API, stage, method and path, ``versions`` (the JSON members
    ``"live_version":...,"candidate_version":...``), the live and candidate outcomes
    (true: allow), ``route_changed``, ``difference`` (the JSON members ``"gained":...``
    onwards), and the metric ``ShadowDifferences``."""
    ms = time.time_ns() // 1_000_000
    end = "}\n"
    config = _metrics.config
    if config.enabled:
        end = (f',{config.function},"ShadowDifferences":1,'
               f'"_aws":{{"Timestamp":{ms}{config.tail(_SHADOW_METRICS)}}}\n')
    sys.stderr.write(
        f'{{"level":"INFO","event":"shadow_diff","ts":{ms // 1000}.{_THOUSANDTHS[ms % 1000]},{_request_text}'
        f'"principal":{_quote(principal)}{_place()},{versions},"live_outcome":{_OUTCOMES[live]},'
        f'"candidate_outcome":{_OUTCOMES[candidate]},"route_changed":{"true" if live != candidate else "false"},'
        f'{difference}{end}'
    )


def log_refusal(level: str, outcome: str, reason: str, detail: str, latency_ns: int,
                where: tuple[str, ...] = ()) -> None:
    """The decision line of a request refused with 401 (``outcome`` ``Unauthorized``) or
    500 (``Error``): ``reason`` (an error code), ``detail`` (a fixed text, never the
    token), ``where`` (for an unexpected error: ``raised_at``'s frames) when not empty,
    the request's API, stage, method and path when its methodArn was parsed,
    ``latency_ms``, and the same metrics as every decision line."""
    latency = round(latency_ns / 1e6, 3)
    fields: dict[str, Any] = {"decision": outcome, "reason": reason, "detail": detail}
    if where:
        fields["where"] = list(where)
    target = _target
    if target is not None:
        fields.update(api=target.api_arn, stage=target.stage, verb=target.verb, path="/" + target.path)
    fields["latency_ms"] = latency
    log(level, "decision", metrics={_metrics.DECISIONS: 1, _metrics.DECISION_LATENCY: latency}, **fields)


#: Frames of an unexpected error's traceback a refusal line names, innermost last.
MAX_FRAMES = 12


def raised_at(exc: BaseException) -> tuple[str, ...]:
    """Where ``exc`` was raised, as ``"module/file.py:line in function"`` frames (the last
    ``MAX_FRAMES``, innermost last): enough to find a bug, without the exception's message
    or any variable's value, which may quote what it failed on (a claim, a token)."""
    import traceback  # only when a bug is met: it is not on the cold-start path

    frames = traceback.extract_tb(exc.__traceback__)[-MAX_FRAMES:]
    return tuple(f"{_short_path(frame.filename)}:{frame.lineno} in {frame.name}" for frame in frames)


def _short_path(filename: str) -> str:
    # The file's last two path parts ("policy_engine/engine.py"), not the machine's layout.
    parts = filename.replace("\\", "/").rsplit("/", 2)
    return "/".join(parts[-2:])
