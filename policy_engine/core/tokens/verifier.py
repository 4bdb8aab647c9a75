"""The JWT verifier of one authorizer: every token rule, in one pass, in order."""

from __future__ import annotations

from collections.abc import Callable, Collection, Hashable, Mapping
from dataclasses import dataclass
from typing import Any

from policy_engine.core.grants import GrantSource, read_grants, unconfigured_grant_claims
from policy_engine.core.memo import Memo
from policy_engine.core.tokens.claims import check_jwt_claims, principal_of
from policy_engine.core.tokens.issuers import IssuerRules, check_issuer_claims
from policy_engine.core.tokens.jws import decode_jws
from policy_engine.core.tokens.keys import VerificationKey, check_signature
from policy_engine.errors import InvalidClaimsError

__all__ = ["JwtVerifier", "VerifiedToken", "hints_for"]


@dataclass(slots=True)
class VerifiedToken:
    """A token whose signature and claims checked out (``kind``: ``jwt`` or ``opaque``).

    ``grants`` are the caller's grant keys (``core.grants``): with the default sources,
    exactly its scopes. ``hints``, for a token with no grants at all, name the common grant
    claims it carries that no configured source reads
    (``core.grants.unconfigured_grant_claims``): claim names only, for the decision log and
    ``explain``.
    """

    issuer: str
    principal_id: str
    grants: frozenset[str]
    claims: Mapping[str, Any]
    kind: str = "jwt"
    hints: tuple[str, ...] = ()


def hints_for(payload: Mapping[str, Any], rules: IssuerRules) -> tuple[str, ...]:
    """``unconfigured_grant_claims`` of ``payload`` under ``rules``.

    Guard: one set intersection answers ``()`` for a token holding none of the claims
    (most tokens), without the rule's walk over every source."""
    if payload.keys() & rules.hint_claims:
        return unconfigured_grant_claims(payload, rules.sources)
    return ()


class JwtVerifier:
    """Every JWT rule of one configuration, applied in one pass.

    The same rules as ``parse_jwt``, ``verify_signature``, ``validate_claims``,
    ``principal_of`` and ``read_grants`` in turn (it calls them, or the functions they
    are made of), without the intermediate objects. Each refusal is raised by the rule
    that finds it, and the signature is checked once. The token's ``iss`` picks its
    issuer's rules (``core.tokens.issuers``: audiences, grant sources, token types,
    provider checks) with one dict lookup; an unknown ``iss`` is refused before any key
    is looked up.

    It owns its memos (see ``core.memo``), read only by the rules they shorten: the
    headers ``jws.read_header`` accepted, and the grant sets ``grants.read_grants`` read,
    one memo per distinct list of grant sources (the same claim values mean other grants
    under other sources). None is shared with another verifier or read by another module.
    """

    __slots__ = (
        "_algorithms",
        "_grant_sets",
        "_headers",
        "_leeway",
        "_max_length",
        "_rules",
    )

    def __init__(
        self,
        *,
        rules: Collection[IssuerRules],
        algorithms: Collection[str],
        leeway: float,
        max_length: int,
    ) -> None:
        self._rules = {rule.issuer: rule for rule in rules}
        self._algorithms = tuple(algorithms)
        self._leeway = leeway
        self._max_length = max_length
        self._headers: Memo[bytes, dict[str, Any]] = Memo()
        by_sources: dict[tuple[GrantSource, ...], Memo[Hashable, frozenset[str]]] = {}
        self._grant_sets = {rule.issuer: by_sources.setdefault(rule.sources, Memo()) for rule in rules}

    @property
    def issuers(self) -> frozenset[str]:
        """Every concrete issuer this verifier accepts."""
        return frozenset(self._rules)

    def verify(self, token: str, get_key: Callable[[str, str], VerificationKey], now: float) -> VerifiedToken:
        """Verify a compact JWS with the key ``get_key(issuer, kid)`` returns.

        Raises:
            TokenError: any problem with the token (API Gateway answers 401).
            KeySourceError: raised by ``get_key`` when the issuer's keys cannot be had.
        """
        header, payload, signing_input, signature = decode_jws(token, self._max_length, self._algorithms,
                                                               self._headers)
        iss = payload.get("iss")
        rules = self._rules.get(iss) if iss.__class__ is str else None
        if rules is None:
            # Keys are chosen by a configured issuer, never by what an unknown token says.
            raise InvalidClaimsError("iss is not a configured issuer")
        issuer = rules.issuer
        check_signature(header["alg"], get_key(issuer, header["kid"]), signing_input, signature)
        check_jwt_claims(header, payload, issuer, rules.audiences, now, self._leeway, rules.token_types)
        if rules.checks:
            check_issuer_claims(payload, rules)
        grants = read_grants(payload, rules.sources, self._grant_sets[issuer])
        # Hints only for a token none of whose configured claims granted anything: the
        # case they explain, kept off the path of every token that holds a grant.
        return VerifiedToken(issuer, principal_of(payload), grants, payload, "jwt",
                             () if grants else hints_for(payload, rules))
