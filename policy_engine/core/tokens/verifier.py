"""The JWT verifier of one authorizer: every token rule, in one pass, in order."""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from typing import Any

from policy_engine.core.grants import SCOPE, GrantSource, read_grants
from policy_engine.core.memo import Memo
from policy_engine.core.tokens.claims import check_jwt_claims, principal_of
from policy_engine.core.tokens.jws import decode_jws
from policy_engine.core.tokens.keys import VerificationKey, check_signature
from policy_engine.errors import InvalidClaimsError

__all__ = ["JwtVerifier", "VerifiedToken"]


@dataclass(slots=True)
class VerifiedToken:
    """A token whose signature and claims checked out (``kind``: ``jwt`` or ``opaque``).

    ``grants`` are the caller's grant keys (``core.grants``): with the default sources,
    exactly its scopes.
    """

    issuer: str
    principal_id: str
    grants: frozenset[str]
    claims: Mapping[str, Any]
    kind: str = "jwt"


class JwtVerifier:
    """Every JWT rule of one configuration, applied in one pass.

    The same rules as ``parse_jwt``, ``verify_signature``, ``validate_claims``,
    ``principal_of`` and ``read_scopes`` in turn (it calls them, or the functions they
    are made of), without the intermediate objects. Each refusal is raised by the rule
    that finds it, and the signature is checked once.

    It owns two memos (see ``core.memo``), read only by the rules they shorten: the
    headers ``jws.read_header`` accepted, and the scope strings ``claims.read_scopes``
    split. Neither is shared with another verifier or read by another module.
    """

    __slots__ = (
        "_algorithms",
        "_audiences",
        "_grant_sources",
        "_headers",
        "_issuers",
        "_leeway",
        "_max_length",
        "_scope_sets",
        "_token_types",
    )

    def __init__(
        self,
        *,
        issuers: Collection[str],
        audiences: Collection[str],
        algorithms: Collection[str],
        leeway: float,
        max_length: int,
        scope_claims: Collection[str],
        token_types: Collection[str],
    ) -> None:
        self._issuers = frozenset(issuers)
        self._audiences = frozenset(audiences)
        self._algorithms = tuple(algorithms)
        self._leeway = leeway
        self._max_length = max_length
        self._token_types = frozenset(t.lower().removeprefix("application/") for t in token_types)
        # SCOPE_CLAIMS: literal top-level names, the first present one read.
        self._grant_sources = (GrantSource(SCOPE, tuple((name,) for name in scope_claims)),)
        self._headers: Memo[bytes, dict[str, Any]] = Memo()
        self._scope_sets: Memo[str, frozenset[str]] = Memo()

    def verify(self, token: str, get_key: Callable[[str, str], VerificationKey], now: float) -> VerifiedToken:
        """Verify a compact JWS with the key ``get_key(issuer, kid)`` returns.

        Raises:
            TokenError: any problem with the token (API Gateway answers 401).
            KeySourceError: raised by ``get_key`` when the issuer's keys cannot be had.
        """
        header, payload, signing_input, signature = decode_jws(token, self._max_length, self._algorithms,
                                                               self._headers)
        issuer = payload.get("iss")
        if issuer.__class__ is not str or issuer not in self._issuers:
            # Keys are chosen by a configured issuer, never by what an unknown token says.
            raise InvalidClaimsError("iss is not a configured issuer")
        check_signature(header["alg"], get_key(issuer, header["kid"]), signing_input, signature)
        check_jwt_claims(header, payload, issuer, self._audiences, now, self._leeway, self._token_types)
        return VerifiedToken(issuer, principal_of(payload), read_grants(payload, self._grant_sources, self._scope_sets),
                             payload)
