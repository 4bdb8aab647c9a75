"""JWT claim rules, written once: times, audience, claim types, token type, scopes and
the principal (RFC 7519 §4.1, RFC 9068; Cognito access tokens carry ``client_id`` and
``token_use`` instead of ``aud``).

Two rules have a guard for the common shape right beside them, which gives the rule's
own answer without running it: an integer ``exp``/``nbf``/``iat`` is its own
NumericDate (``numeric_date``), and a plain string ``aud`` is judged by one set lookup
(``check_audience``). Everything else falls through to the rule.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Mapping
from typing import Any

from policy_engine.core.tokens.jws import ParsedJwt
from policy_engine.errors import ExpiredTokenError, InvalidClaimsError

__all__ = [
    "check_audience",
    "check_jwt_claims",
    "check_times",
    "numeric_date",
    "principal_of",
    "validate_claims",
]

# Claims that, when present, must be strings: they name the principal. (``scope`` is read
# as a grant source, which accepts a string or a list of strings: RFC 8693 §4.2 writes it
# as a string, and some identity providers send a JSON array.)
_STRING_CLAIMS = ("sub", "client_id")


def numeric_date(payload: Mapping[str, Any], name: str, required: bool = False) -> float | None:
    """The NumericDate (RFC 7519 §2) ``payload[name]``: a finite JSON number, not a boolean.

    ``None`` when absent and not ``required``.

    Raises:
        InvalidClaimsError: missing when required, ``null``, or not a number.
    """
    value = payload.get(name)
    if value is None:
        if required or name in payload:
            raise InvalidClaimsError(f"{name} claim is {'missing' if name not in payload else 'null'}")
        return None
    # bool is an int in Python; a JSON true is not a date. Any int is finite (one past
    # a float's range included: math.isfinite would raise on it).
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise InvalidClaimsError(f"{name} claim is not a number")
    if isinstance(value, int):
        return value
    if not math.isfinite(value):
        raise InvalidClaimsError(f"{name} claim is not a number")
    return float(value)


def check_times(payload: Mapping[str, Any], now: float, leeway: float, exp_required: bool) -> None:
    """``exp`` has not passed, ``nbf`` and ``iat`` are not in the future (each ``leeway``
    seconds generous); ``exp`` must be present when ``exp_required``.

    Raises:
        ExpiredTokenError: ``exp`` has passed.
        InvalidClaimsError: a time claim is missing (``exp`` only), null, not a number,
            or in the future.
    """
    # Guard, for each claim: an int (by class, so never a bool) is its own NumericDate.
    exp = payload.get("exp")
    if exp.__class__ is not int:
        exp = numeric_date(payload, "exp", exp_required)
    if exp is not None and exp <= now - leeway:
        raise ExpiredTokenError("token has expired")
    limit = now + leeway
    if "nbf" in payload:
        nbf = payload["nbf"]
        if nbf.__class__ is not int:
            nbf = numeric_date(payload, "nbf")  # present, so never None: a null is refused
        if nbf > limit:
            raise InvalidClaimsError("token is not valid yet (nbf)")
    if "iat" in payload:
        iat = payload["iat"]
        if iat.__class__ is not int:
            iat = numeric_date(payload, "iat")
        if iat > limit:
            raise InvalidClaimsError("token was issued in the future (iat)")


def check_audience(aud: Any, audiences: Collection[str]) -> None:
    """``aud`` (a string, or a list of strings) names one of ``audiences``.

    Raises:
        InvalidClaimsError: it names none of them, or has another type.
    """
    if aud.__class__ is str:
        if aud in audiences:
            return
        raise InvalidClaimsError("aud does not name this API")
    if not isinstance(aud, list) or not all(isinstance(a, str) for a in aud):
        raise InvalidClaimsError("aud claim is not a string or list of strings")
    if not any(a in audiences for a in aud):
        raise InvalidClaimsError("aud does not name this API")


def validate_claims(
    token: ParsedJwt,
    *,
    issuer: str,
    audiences: Collection[str],
    now: float,
    leeway: float,
    token_types: Collection[str] = (),
) -> None:
    """Check issuer, times, audience, claim types and token type of a verified token.

    ``exp`` is required; ``nbf`` and ``iat`` are honoured when present. ``aud`` must
    name one of ``audiences``. Cognito access tokens carry no ``aud``: for them
    ``token_use`` must be ``access`` and ``client_id`` one of ``audiences``. A
    ``token_use`` other than ``access`` (Cognito ID tokens) is always refused. ``sub`` and
    ``client_id``, when present, must be strings. With ``token_types``, the
    header's ``typ`` (without ``application/``, any case) must be one of them.

    Raises:
        ExpiredTokenError: ``exp`` has passed (beyond ``leeway``).
        InvalidClaimsError: any other claim is missing, mistyped or wrong.
    """
    types = frozenset(t.lower().removeprefix("application/") for t in token_types)
    check_jwt_claims(token.header, token.payload, issuer, audiences, now, leeway, types)


def check_jwt_claims(
    header: Mapping[str, Any],
    payload: Mapping[str, Any],
    issuer: str,
    audiences: Collection[str],
    now: float,
    leeway: float,
    token_types: Collection[str],
) -> None:
    """``validate_claims`` for a decoded header and payload; ``token_types`` already
    lower-case and without ``application/``.

    Raises:
        ExpiredTokenError, InvalidClaimsError: as ``validate_claims``.
    """
    if payload.get("iss") != issuer:
        raise InvalidClaimsError("iss is not the expected issuer")
    check_times(payload, now, leeway, True)
    token_use = payload.get("token_use")
    if token_use is not None and token_use != "access":
        raise InvalidClaimsError("token_use is not 'access'")
    if "aud" in payload:
        aud = payload["aud"]
        # Guard: a plain string naming an audience is what check_audience accepts.
        if aud.__class__ is not str or aud not in audiences:
            check_audience(aud, audiences)
    elif token_use == "access":
        client_id = payload.get("client_id")
        if not isinstance(client_id, str) or client_id not in audiences:
            raise InvalidClaimsError("client_id is not an accepted audience")
    else:
        raise InvalidClaimsError("token has no aud claim")
    for name in _STRING_CLAIMS:
        if payload.get(name, "").__class__ is not str:  # absent, or a string (never null)
            raise InvalidClaimsError(f"{name} claim is not a string")
    if token_types:
        typ = header.get("typ")
        normalized = typ.lower().removeprefix("application/") if isinstance(typ, str) else None
        if normalized not in token_types:
            raise InvalidClaimsError("token typ is not an accepted token type")


def principal_of(payload: Mapping[str, Any]) -> str:
    """``sub``, or ``client_id`` for machine clients whose tokens have no subject.

    Raises:
        InvalidClaimsError: neither is a non-empty string.
    """
    sub = payload.get("sub")
    if isinstance(sub, str) and sub:
        return sub
    client_id = payload.get("client_id")
    if isinstance(client_id, str) and client_id:
        return client_id
    raise InvalidClaimsError("token has neither sub nor client_id")
