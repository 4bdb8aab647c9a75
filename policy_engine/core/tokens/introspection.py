"""Introspection answers (RFC 7662 §2.2) judged by the JWT claim rules, for the members
they carry."""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Any

from policy_engine.core.tokens.claims import check_audience, check_times
from policy_engine.errors import InvalidClaimsError

__all__ = ["validate_introspection"]

# RFC 7662 §2.2 token_type values meaning "an access token" (RFC 6749 §7.1 names "bearer").
_ACCESS_TOKEN_TYPES = frozenset({"bearer", "access_token"})


def validate_introspection(
    answer: Mapping[str, Any],
    *,
    issuers: Collection[str],
    audiences: Collection[str],
    now: float,
    leeway: float,
) -> None:
    """Apply the JWT claim rules to an introspection answer, for the members it carries.

    ``active`` must be the boolean ``true``. ``iss``, ``aud``, ``exp``, ``nbf``, ``iat`` are
    optional in RFC 7662, so each is checked only when present, exactly as for a JWT;
    ``token_type``, when present, must name an access token (a refresh token is not one).
    A member that is present is checked, whatever its type: a ``null``, list or object
    where RFC 7662 §2.2 says string or number makes the answer untrustworthy, so the
    token is refused like an inactive one (401), never a crash on the unexpected type.

    Raises:
        ExpiredTokenError: ``exp`` has passed (beyond ``leeway``).
        InvalidClaimsError: any member present is mistyped or wrong.
    """
    if answer.get("active") is not True:
        raise InvalidClaimsError("introspection answer is not active")
    if "iss" in answer:
        iss = answer["iss"]
        if iss.__class__ is not str:  # a list is unhashable: the set lookup below would raise
            raise InvalidClaimsError("iss member is not a string")
        if iss not in issuers:
            raise InvalidClaimsError("iss is not a configured issuer")
    check_times(answer, now, leeway, False)
    if "aud" in answer:
        check_audience(answer["aud"], audiences)
    token_use = answer.get("token_use")
    if token_use is not None and token_use != "access":  # a Cognito-style ID token, as for a JWT
        raise InvalidClaimsError("token_use is not 'access'")
    if "token_type" in answer:
        token_type = answer["token_type"]
        if not isinstance(token_type, str) or token_type.lower() not in _ACCESS_TOKEN_TYPES:
            raise InvalidClaimsError("token_type is not an access token")
    for name in ("sub", "client_id", "scope", "username"):
        if name in answer and not isinstance(answer[name], str):
            raise InvalidClaimsError(f"{name} member is not a string")
