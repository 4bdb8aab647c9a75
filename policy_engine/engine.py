"""The authorizer facade: verify the caller, look up their grants, answer API Gateway.

No I/O of its own: keys, introspection and mappings come through what it is given.

Which token goes where: a token that is, or may be, a JWT of a configured ``ISSUER``
(judged by its shape, ``core.tokens.may_be_jwt_of``, so a damaged one counts too) is
verified locally, and its failures are final; any other token goes to introspection
when ``INTROSPECTION_URL`` is set, so JWTs and opaque tokens work side by side during
a migration.

One decision path: every event goes through ``Authorizer.answer``, in one pipeline
(read the event, parse the methodArn, verify the credential, decide, render, bound the
size). Where a step has a guard for the common shape (a JOSE header already checked,
an API ARN already matched, an integer ``exp``, a plain string ``aud``, a scope string
already split, a scope set already written as text, a policy already computed, a
policy's Resources already counted for the size bound), the guard sits in that step's
module right beside the rule it shortens and falls through to it: nothing restarts,
the signature is checked once, and every refusal is raised by the rule that finds it.

Memos: each ``Authorizer`` owns its memos (``core.memo``: at most ``MEMO_ENTRIES``
entries each, emptied when full), directly or through the verifier and permission set
it holds. Each is read only beside the rule whose answers it holds; none is shared
between authorizers, and no module reads another's as a trust decision.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from policy_engine.cache import PermissionCache
from policy_engine.core.apikeys import ApiKeyRules
from policy_engine.core.arn import MethodArn, parse_method_arn
from policy_engine.core.decision import (
    ALLOW,
    DENY,
    MAX_CONTEXT_BYTES,
    MAX_RESPONSE_BYTES,
    MAX_SCOPE_CHARS,
    OWN_CONTEXT_KEY_CHARS,
    OWN_CONTEXT_KEYS,
    SCOPE_KEY,
    VERSION_KEY,
    Answer,
    Decision,
    bound_context,
    bounded_principal,
    context_chars,
    context_within_bounds,
    listable_scopes,
    narrow_to_route,
    render_iam_response,
    response_size,
    response_size_bound,
    scalar_context,
    scalar_context_counted,
    simple_answer,
)
from policy_engine.core.grants import read_grants
from policy_engine.core.memo import Memo
from policy_engine.core.routes import parse_route_key
from policy_engine.core.tokens import (
    IssuerRules,
    JwtVerifier,
    VerifiedToken,
    extract_bearer,
    hints_for,
    may_be_jwt_of,
    principal_of,
    validate_introspection,
)
from policy_engine.errors import MalformedTokenError, PolicyTooLargeError
from policy_engine.events import HTTP_V2, REQUEST, TOKEN, AuthorizerRequest, read_event
from policy_engine.logs import log
from policy_engine.ports import KeySource, TokenIntrospector
from policy_engine.settings import Settings

__all__ = ["Answer", "Authorizer", "VerifiedToken"]


class Authorizer:
    """Decides authorizer events with the given keys and permission mappings."""

    def __init__(
        self,
        settings: Settings,
        *,
        keys: KeySource,
        permissions: PermissionCache,
        introspection: TokenIntrospector | None = None,
        api_keys: ApiKeyRules | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.settings = settings
        self.keys = keys
        self.permissions = permissions
        self.introspection = introspection
        self.api_keys = api_keys
        self._clock = clock
        rules = settings.issuer_rules()
        self._jwt = JwtVerifier(
            rules=rules,
            algorithms=settings.algorithms,
            leeway=settings.leeway,
            max_length=settings.max_token_length,
        )
        # Every concrete issuer (ISSUER, IDENTITY_PROVIDERS, Entra tenants expanded).
        self._issuers = self._jwt.issuers
        self._introspection_issuers = self._issuers | (
            {settings.introspection_issuer} if settings.introspection_issuer else set()
        )
        # Introspection answers: their issuer's rules when it is a configured one, else these.
        self._introspection_rules = {rule.issuer: rule for rule in rules}
        self._default_rules = IssuerRules(settings.introspection_issuer or "", frozenset(settings.audiences),
                                          settings.default_grant_sources)
        self._context_claims = tuple(c for c in settings.context_claims if c not in OWN_CONTEXT_KEYS)
        # Read on every request: kept as plain attributes rather than looked up in settings.
        self._max_token_length = settings.max_token_length
        self._leeway = settings.leeway
        self._identity_source = settings.identity_source
        # This authorizer's own memos (core.memo's rules): API ARNs parse_method_arn
        # found valid, the context's "scope" text per scope set that can be sent whole,
        # and what response_size_bound counts of each policy's Resources.
        self._api_arns: Memo[str, bool] = Memo()
        self._scope_texts: Memo[frozenset[str], str] = Memo()
        self._resource_chars: Memo[tuple[str, ...], int] = Memo()

    def verify(self, authorization: object) -> VerifiedToken:
        """Verify an ``Authorization`` header value.

        Raises:
            TokenError: any problem with the token (API Gateway answers 401).
            KeySourceError: the issuer's keys cannot be obtained.
        """
        return self._jwt.verify(extract_bearer(authorization, self._max_token_length), self.keys.get_key, self._clock())

    def authenticate(self, request: AuthorizerRequest) -> VerifiedToken:
        """Verify the credential of an event: locally for JWTs of an ``ISSUER``, else by introspection.

        Raises:
            TokenError: any problem with the token (401).
            KeySourceError, IntrospectionError: the token cannot be checked now (fail closed).
        """
        limit = self._max_token_length
        if request.in_query:
            # RFC 6750 §2.3: the same b64token as in the header, without the scheme.
            if not isinstance(request.authorization, str):
                raise MalformedTokenError("query string token is not a string")
            token = extract_bearer("Bearer " + request.authorization, limit)
        else:
            token = extract_bearer(request.authorization, limit)
        if self.introspection is not None and not may_be_jwt_of(token, self._issuers):
            return self._introspect(token)
        return self._jwt.verify(token, self.keys.get_key, self._clock())

    def _introspect(self, token: str) -> VerifiedToken:
        assert self.introspection is not None
        answer = self.introspection.introspect(token)
        iss = answer.get("iss")
        rules = (self._introspection_rules.get(iss) if iss.__class__ is str else None) or self._default_rules
        validate_introspection(
            answer,
            issuers=self._introspection_issuers,
            audiences=rules.audiences,
            now=self._clock(),
            leeway=self._leeway,
        )
        issuer = answer.get("iss") or self.settings.introspection_issuer or ""
        grants = read_grants(answer, rules.sources)
        return VerifiedToken(issuer, principal_of(answer), grants, answer, "opaque",
                             () if grants else hints_for(answer, rules))

    def decide(self, token: VerifiedToken, method_arn: MethodArn, *, api_keys: bool = True) -> Decision:
        """Allow every route ``token`` may use on the API and stage of ``method_arn``, or Deny.

        The routes are those whose mapping's requirement the token's grants hold, tenant
        placeholders filled from the token's claims; the claims a placeholder refused
        are named in the decision (``placeholders_refused``, for the log line).

        With API key rules (and ``api_keys``, true for REST APIs), the caller's key is
        returned as ``usageIdentifierKey``; a caller without one is denied the routes
        that need one. The principal and context are bounded (``decision.bound_context``
        and ``bounded_principal``); the resources never are.

        Raises:
            StoreError: no usable mappings are loaded.
        """
        permissions = self.permissions.get()
        api_arn, stage, version = method_arn.api_arn, method_arn.stage, permissions.version
        evaluation = permissions.evaluate(token.grants, api_arn, stage, claims=token.claims)
        resources, refused, excluded, per_request = evaluation
        reason = "granted"
        if per_request:
            alone = permissions.request_resource(evaluation, method_arn)
            if alone is not None:
                resources = (*resources, alone)
                reason = "granted_this_request"
        principal = bounded_principal(token.principal_id)
        context, chars = scalar_context_counted(token.claims, self._context_claims)
        # Guard: a scope set whose text was made before gets the same text.
        scope_text = self._scope_texts.get(token.grants)
        if scope_text is None:
            scope_text = self._scope_text(token.grants)
        whole = False
        if scope_text is not None:
            context[SCOPE_KEY] = scope_text
            context[VERSION_KEY] = version
            claim_chars, chars = chars, chars + OWN_CONTEXT_KEY_CHARS + len(scope_text) + len(version)
            whole = context_within_bounds(context, claim_chars, chars)
        if not whole:  # too large to send whole: the bounded context (docs/decisions.md's rules)
            context = self._bounded_context(token, api_arn, stage, version, MAX_CONTEXT_BYTES)
            chars = context_chars(context)
        # What response_size_bound counts, added up here instead of in a second pass.
        chars += len(principal)
        key: str | None = None
        denied: tuple[str, ...] = ()
        if self.api_keys is not None and api_keys:
            key = self.api_keys.key_for(token.claims)
            if key is not None:
                chars += len(key)
            elif resources:
                denied = self.api_keys.required_resources(api_arn, stage)
        if resources:
            return Decision(ALLOW, principal, api_arn, stage, resources, reason, version, context,
                            key, denied, chars, refused, (), excluded)
        return Decision(DENY, principal, api_arn, stage, (), "no_grant", version, context, key, (), chars, refused,
                        token.hints)

    def _scope_text(self, grants: frozenset[str]) -> str | None:
        # The whole "scope" entry (the scope-kind grants: keys without a space), or None
        # when it cannot be sent whole (more than the context may carry). Only whole texts
        # are remembered.
        text = " ".join(listable_scopes(grants))
        if len(text) <= MAX_SCOPE_CHARS:
            return self._scope_texts.remember(grants, text)
        return None

    def _bounded_context(
        self, token: VerifiedToken, api_arn: str, stage: str, version: str, budget: int
    ) -> dict[str, str | int | float | bool]:
        grants = token.grants
        text = self._scope_texts.get(grants)
        listed = tuple(text.split(" ")) if text else tuple(listable_scopes(grants))
        granting = self.permissions.get().granting(grants, api_arn, stage)
        claims = scalar_context(token.claims, self._context_claims)
        return bound_context(claims, listed, len(listed), granting, version, budget)

    def _fit_context(self, decision: Decision, token: VerifiedToken) -> tuple[Decision, dict[str, Any]] | None:
        # The policy may fit on its own: then the context gets the room it leaves, so a
        # valid token never fails (or loses its policy) because of what the context carries.
        bare = response_size(render_iam_response(replace(decision, context={})))
        room = min(MAX_CONTEXT_BYTES, MAX_RESPONSE_BYTES - bare + 2)  # "{}" is already counted
        if room <= 2:
            return None
        context = self._bounded_context(token, decision.api_arn, decision.stage, decision.version, room)
        fitted = replace(decision, context=context, text_chars=None)
        response = render_iam_response(fitted)
        if response_size(response) > MAX_RESPONSE_BYTES:
            return None
        return fitted, response

    def answer(self, event: Any) -> Answer:
        """Read, verify and decide one authorizer event, and render the response it needs.

        REST events and HTTP API IAM mode get a policy for every route the caller may
        use (API Gateway caches it for all routes). Payload 2.0 with ``SIMPLE_RESPONSES``
        gets ``{isAuthorized, context}`` for the requested route (every request of its
        route key, when that is the cache key), with a Deny decision when it is false. A
        policy too large for API Gateway is narrowed to the requested route when the
        identity sources make the cache key per route; otherwise ``PolicyTooLargeError``.

        Raises:
            EventError, TokenError: the request is refused (401).
            KeySourceError, IntrospectionError, StoreError: the decision cannot be made.
            PolicyTooLargeError: the policy is too large and no per-route answer is safe.
        """
        request = read_event(event, self._identity_source)
        method_arn = parse_method_arn(request.method_arn, self._api_arns)
        token = self.authenticate(request)
        # Usage plans and API keys exist on REST APIs only.
        decision = self.decide(token, method_arn, api_keys=request.kind in (TOKEN, REQUEST))
        if request.kind == HTTP_V2 and self.settings.simple_responses:
            route = None
            if self._identity_source.cache_scope == "route":
                route = parse_route_key(request.route_key or "")
            return simple_answer(decision, str(method_arn), route)
        response = render_iam_response(decision)
        if response_size_bound(decision, self._resource_chars) <= MAX_RESPONSE_BYTES:
            return Answer(decision, response, "policy")
        size = response_size(response)
        if size <= MAX_RESPONSE_BYTES:
            return Answer(decision, response, "policy")
        fitted = self._fit_context(decision, token)
        if fitted is not None:
            return Answer(fitted[0], fitted[1], "policy")
        if request.kind == TOKEN or not self._identity_source.per_route:
            log("ERROR", "policy_too_large", principal=decision.principal_id, size=size, limit=MAX_RESPONSE_BYTES,
                event_kind=request.kind, fix="use a REQUEST authorizer with method and path identity sources")
            raise PolicyTooLargeError(
                f"policy of {size} bytes exceeds {MAX_RESPONSE_BYTES} and the cache key is not per route"
            )
        narrowed = narrow_to_route(decision, str(method_arn))
        response = render_iam_response(narrowed)
        log("WARN", "policy_narrowed_to_route", principal=decision.principal_id, size=size,
            limit=MAX_RESPONSE_BYTES, route_size=response_size(response))
        if response_size(response) > MAX_RESPONSE_BYTES:
            raise PolicyTooLargeError("even the per-route policy exceeds the response budget")
        return Answer(narrowed, response, "per-route policy")
