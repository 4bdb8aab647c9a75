"""Values given on the command line, checked with the rules permission files are checked with.

Each check raises ``ConfigurationError`` naming the flag, which the CLI reports with
exit code 2, so a typo on the command line is refused as it would be in a file. The
argparse types below (numbers, ports, URLs) raise ``argparse.ArgumentTypeError``, which
argparse reports the same way.
"""

from __future__ import annotations

import argparse
import re
import urllib.parse
from collections.abc import Callable
from pathlib import Path

from policy_engine.core.arn import HTTP_VERBS
from policy_engine.core.permissions import ANY_VERB, FIELD_RULES, FieldProblem
from policy_engine.errors import ConfigurationError

__all__ = ["api_arn", "api_reference", "number_in", "permissions_location", "port", "request_path", "request_stage",
           "request_verb", "stage_name", "url"]

# The last part of an API ARN (API_ARN_PATTERN): what API Gateway calls the API id.
_API_ID = re.compile(r"[A-Za-z0-9]+")


def _rule(field: str, value: str, flag: str) -> str:
    try:
        return FIELD_RULES[field](value)
    except FieldProblem as exc:
        raise ConfigurationError(flag, str(exc)) from None


def api_arn(value: str, flag: str) -> str:
    """``value`` if it is an API ARN, as a mapping's ``arn`` must be."""
    return _rule("arn", value, flag)


def api_reference(value: str, flag: str) -> str:
    """An API ARN, or an API id (the ARN's last part, as in ``a1b2c3d4e5``)."""
    if value.startswith("arn:"):
        return api_arn(value, flag)
    if _API_ID.fullmatch(value) is None:
        raise ConfigurationError(flag, f"{value!r} is neither an API ARN "
                                 "(arn:<partition>:execute-api:<region>:<account-id>:<api-id>) nor an API id")
    return value


def stage_name(value: str, flag: str, *, any_stage: bool = True) -> str:
    """A stage name as a mapping's ``stage`` must be (``*`` only when ``any_stage``)."""
    stage = _rule("stage", value, flag)
    if stage == "*" and not any_stage:
        raise ConfigurationError(flag, "a request is made on one stage; '*' is for mappings")
    return stage


def request_stage(value: str, flag: str) -> str:
    """The stage of one request: a stage name, never ``*``."""
    return stage_name(value, flag, any_stage=False)


def request_verb(value: str, flag: str) -> str:
    """The HTTP method of one request, upper-cased: one of ``HTTP_VERBS`` (not ``*`` or ``ANY``)."""
    try:
        verb = FIELD_RULES["http_verb"](value)
    except FieldProblem:
        import difflib

        close = difflib.get_close_matches(value.upper(), HTTP_VERBS, n=1, cutoff=0.65)
        hint = f"; did you mean {close[0]}?" if close else ""
        raise ConfigurationError(flag, f"{value!r} is not an HTTP method ({', '.join(HTTP_VERBS)}){hint}") from None
    if verb == ANY_VERB:
        raise ConfigurationError(flag, f"{value!r}: a request has one method ({', '.join(HTTP_VERBS)}); "
                                 "'*' and 'ANY' are for mappings")
    return verb


def request_path(value: str, flag: str) -> str:
    """The path of one request (after the stage), as a mapping's ``resource`` must be, without ``*``."""
    if "*" in value:
        raise ConfigurationError(flag, f"{value!r}: a request names one path; '*' is for mappings")
    return _rule("resource", "/" + value.lstrip("/"), flag)


def number_in(kind: type[int] | type[float], low: float, high: float | None = None) -> Callable[[str], float]:
    """An argparse type: a number of ``kind`` from ``low`` to ``high`` (``None``: no upper
    bound); anything else is a usage error (exit 2) that says which numbers are accepted."""
    what = "a whole number" if kind is int else "a number"
    bounds = f"from {low:g} to {high:g}" if high is not None else f"of at least {low:g}"

    def convert(text: str) -> float:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not {what}") from None
        if not low <= value <= (high if high is not None else value) or value != value:  # NaN too
            raise argparse.ArgumentTypeError(f"{text!r}: must be {what} {bounds}")
        return value

    return convert


#: An argparse type for a TCP port (0: any free port).
port = number_in(int, 0, 65535)


def url(text: str) -> str:
    """An argparse type: an ``http://`` or ``https://`` URL with a host."""
    parts = urllib.parse.urlsplit(text)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise argparse.ArgumentTypeError(f"{text!r} is not an http:// or https:// URL")
    try:
        parts.port  # noqa: B018 - raises on a port that is not a number from 0 to 65535
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} has a port that is not a number from 0 to 65535") from None
    return text


def permissions_location(value: str, flag: str) -> str:
    """``value`` as ``PERMISSIONS_SOURCE`` takes it; a local path (no ``scheme://``) must exist,
    so that a typo is refused before anything runs rather than decided as a store failure."""
    if "://" not in value and not Path(value).exists():
        raise ConfigurationError(flag, f"{value}: no such file or folder")
    return value
