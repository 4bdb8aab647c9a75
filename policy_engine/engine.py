"""The authorizer facade: verify the caller, look up their grants, return a Decision.

No I/O of its own: keys and mappings come through the ports it is given.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from policy_engine.cache import PermissionCache
from policy_engine.core.arn import MethodArn, parse_method_arn
from policy_engine.core.decision import ALLOW, DENY, Decision, scalar_context
from policy_engine.core.tokens import (
    extract_bearer,
    parse_jwt,
    principal_of,
    read_scopes,
    validate_claims,
    verify_signature,
)
from policy_engine.errors import InvalidClaimsError
from policy_engine.events import read_event
from policy_engine.ports import KeySource
from policy_engine.settings import Settings

__all__ = ["Authorizer", "VerifiedToken"]


@dataclass(frozen=True, slots=True)
class VerifiedToken:
    """A token whose signature and claims checked out."""

    issuer: str
    principal_id: str
    scopes: frozenset[str]
    claims: Mapping[str, Any]


class Authorizer:
    """Decides authorizer events with the given keys and permission mappings."""

    def __init__(
        self,
        settings: Settings,
        *,
        keys: KeySource,
        permissions: PermissionCache,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.settings = settings
        self.keys = keys
        self.permissions = permissions
        self._clock = clock
        self._issuers = frozenset(settings.issuers)
        self._audiences = frozenset(settings.audiences)
        self._context_claims = settings.context_claims
        self._token_types = frozenset(t.lower().removeprefix("application/") for t in settings.token_types)

    def verify(self, authorization: object) -> VerifiedToken:
        """Verify an ``Authorization`` header value.

        Raises:
            TokenError: any problem with the token (API Gateway answers 401).
            KeySourceError: the issuer's keys cannot be obtained.
        """
        settings = self.settings
        token = parse_jwt(
            extract_bearer(authorization, settings.max_token_length),
            max_length=settings.max_token_length,
            algorithms=settings.algorithms,
        )
        issuer = token.payload.get("iss")
        if not isinstance(issuer, str) or issuer not in self._issuers:
            # Keys are chosen by the configured issuer, never by what an unknown token says.
            raise InvalidClaimsError("iss is not a configured issuer")
        verify_signature(token, self.keys.get_key(issuer, token.kid))
        validate_claims(
            token,
            issuer=issuer,
            audiences=self._audiences,
            now=self._clock(),
            leeway=settings.leeway,
            token_types=self._token_types,
        )
        return VerifiedToken(
            issuer, principal_of(token.payload), read_scopes(token.payload, settings.scope_claims), token.payload
        )

    def decide(self, token: VerifiedToken, method_arn: MethodArn) -> Decision:
        """Allow every route ``token`` may use on the API and stage of ``method_arn``, or Deny.

        Raises:
            StoreError: no usable mappings are loaded.
        """
        permissions = self.permissions.get()
        resources = permissions.resources(token.scopes, method_arn.api_arn, method_arn.stage)
        claims = token.claims
        context = scalar_context({name: claims[name] for name in self._context_claims if name in claims})
        context["scope"] = " ".join(sorted(token.scopes))
        context["policyVersion"] = permissions.version
        return Decision(
            effect=ALLOW if resources else DENY,
            principal_id=token.principal_id,
            api_arn=method_arn.api_arn,
            stage=method_arn.stage,
            resources=resources,
            reason="granted" if resources else "no_grant",
            version=permissions.version,
            context=context,
        )

    def decide_event(self, event: Any) -> Decision:
        """Read, verify and decide one authorizer event.

        Raises:
            EventError, TokenError: the request is refused (401).
            KeySourceError, StoreError: the decision cannot be made (fail closed).
        """
        request = read_event(event)
        method_arn = parse_method_arn(request.method_arn)
        return self.decide(self.verify(request.authorization), method_arn)
