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
between authorizers, and no module reads another's as a trust decision. Some are keyed
by the identity of what they describe (a policy's Resource tuple, a pair of
evaluations): they hold that object too, so an entry is only ever found for it.

After the decision (``shadow``, ``health``; the handler calls them once the decision line
is written, and neither ever raises):

* Shadow evaluation: with a candidate permission set loaded (``PERMISSIONS_CANDIDATE``,
  ``cache.CandidateCache``), the same caller (grants, claims, API, stage, request) is
  evaluated against it. Where the candidate's outcome for the request, or the caller's
  whole policy (Allow and Deny Resources, per-request routes), differs from the live
  one, one ``shadow_diff`` line is written and counted (``ShadowDifferences``). The live
  answer is never touched. A candidate whose content digest is the live one's is not
  evaluated, and comparisons are memoised per pair of evaluations.
* Health: at most once per ``HEALTH_INTERVAL`` seconds (and after a container's first
  decision), a ``health`` line with the versions in use and the ages of the mappings and
  the keys (``PermissionVersionAge``, ``PermissionsRefreshAge``, ``JwksRefreshAge``).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from policy_engine import metrics as _metrics
from policy_engine.budget import InvocationBudget, RemainingMillis
from policy_engine.cache import CandidateCache, PermissionCache
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
    digest_principal,
    listable_scopes,
    narrow_to_route,
    render_iam_response,
    response_size,
    response_size_bound,
    scalar_context,
    scalar_context_counted,
    scope_count,
    simple_answer,
)
from policy_engine.core.grants import ClaimPath, claim_path_text, placeholder_value, read_grants
from policy_engine.core.iam import ResourceMatcher, request_allowed
from policy_engine.core.lastgood import Clock
from policy_engine.core.memo import Memo
from policy_engine.core.permissions import Evaluation, PermissionSet
from policy_engine.core.routes import RouteTemplate, parse_route_key
from policy_engine.core.tokens import (
    IssuerRules,
    JwtVerifier,
    VerifiedToken,
    check_issuer_claims,
    extract_bearer,
    hints_for,
    may_be_jwt_of,
    principal_of,
    validate_introspection,
)
from policy_engine.errors import MalformedTokenError, PolicyTooLargeError
from policy_engine.events import HTTP_V2, REQUEST, TOKEN, AuthorizerRequest, read_event
from policy_engine.logs import log, log_shadow_diff, note_target
from policy_engine.ports import KeySource, TokenIntrospector
from policy_engine.settings import Settings

__all__ = ["HEALTH_INTERVAL", "Answer", "Authorizer", "VerifiedToken"]

#: Seconds between two ``health`` lines of a container (the first follows its first decision).
HEALTH_INTERVAL = 60.0

_NO_DENY = ResourceMatcher(())
_SHADOW_LISTED = 5  # Resources named in a shadow_diff line's gained and lost, each


class _Basis:
    """How one request was decided: what shadow evaluation repeats with the candidate."""

    __slots__ = ("alone", "arn", "evaluation", "method_arn", "needs_key", "permissions", "route", "simple",
                 "token")

    def __init__(self, token: VerifiedToken, method_arn: MethodArn, permissions: PermissionSet,
                 evaluation: Evaluation, alone: str | None, needs_key: bool) -> None:
        self.token = token
        self.method_arn = method_arn
        self.permissions = permissions
        self.evaluation = evaluation
        self.alone = alone  # the per-request Resource allowed beside evaluation.resources
        self.needs_key = needs_key  # routes that need an API key are denied (the caller has none)
        self.simple = False  # answered with a simple response, for ``route`` (None: this request only)
        self.route: RouteTemplate | None = None
        self.arn = ""  # the methodArn as API Gateway sent it


class _Difference:
    """How a candidate's evaluation differs from the live one, for one caller; ``text``
    is its part of the ``shadow_diff`` line (JSON members)."""

    __slots__ = ("denied_added", "denied_removed", "gained", "lost", "text")

    def __init__(self, live: Evaluation, candidate: Evaluation, prefix: str) -> None:
        def tails(resources: set[str]) -> list[str]:
            return sorted(r.removeprefix(prefix) for r in resources)

        allowed, allowing = set(live.resources), set(candidate.resources)
        # Per-request routes are named by their route key (they are not Resources).
        routed = {t.key for t in live.per_request}
        routing = {t.key for t in candidate.per_request}
        self.gained = tails(allowing - allowed) + sorted(routing - routed)
        self.lost = tails(allowed - allowing) + sorted(routed - routing)
        denied, denying = set(live.excluded), set(candidate.excluded)
        self.denied_added = tails(denying - denied)
        self.denied_removed = tails(denied - denying)
        members: dict[str, Any] = {"gained": self.gained[:_SHADOW_LISTED], "lost": self.lost[:_SHADOW_LISTED],
                                   "gained_count": len(self.gained), "lost_count": len(self.lost)}
        if self.denied_added:
            members["denied_added"] = self.denied_added[:_SHADOW_LISTED]
        if self.denied_removed:
            members["denied_removed"] = self.denied_removed[:_SHADOW_LISTED]
        self.text = _members(members)


def _members(members: dict[str, Any]) -> str:
    # JSON members without the braces, to splice into a hand-formatted line.
    return json.dumps(members, separators=(",", ":"))[1:-1]


_NO_DIFFERENCE = _members({"gained": [], "lost": [], "gained_count": 0, "lost_count": 0})


class Authorizer:
    """Decides authorizer events with the given keys and permission mappings; with a
    ``candidate``, also evaluates it beside them (``shadow``)."""

    def __init__(
        self,
        settings: Settings,
        *,
        keys: KeySource,
        permissions: PermissionCache,
        introspection: TokenIntrospector | None = None,
        api_keys: ApiKeyRules | None = None,
        candidate: CandidateCache | None = None,
        clock: Callable[[], float] = time.time,
        monotonic: Clock = time.monotonic,
        budget: InvocationBudget | None = None,
    ) -> None:
        self.settings = settings
        # Shared with the adapters that wait on the network (bootstrap wires them together).
        self._budget = InvocationBudget() if budget is None else budget
        self.keys = keys
        self.permissions = permissions
        self.introspection = introspection
        self.api_keys = api_keys
        self.candidate = candidate
        self._clock = clock
        self._monotonic = monotonic
        self._health_due = float("-inf")
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
        self._api_stages: Memo[str, bool] = Memo()
        self._scope_texts: Memo[frozenset[str], str] = Memo()
        self._resource_chars: Memo[tuple[str, ...], int] = Memo()
        # For the decision line's outcome: a matcher per policy's Allow Resources and per
        # pair of Deny Resource tuples, and the outcome per policy and methodArn, keyed by
        # the tuples' identity (a memoised evaluation's tuples are the same objects for
        # every caller of its grant set).
        self._outcomes: Memo[tuple[int, int, int, str], tuple[tuple[str, ...], tuple[str, ...], tuple[str, ...],
                                                              bool]] = Memo()
        self._allow_matchers: Memo[int, tuple[tuple[str, ...], ResourceMatcher]] = Memo()
        self._deny_matchers: Memo[tuple[int, int], tuple[tuple[str, ...], tuple[str, ...], ResourceMatcher]] = Memo()
        # Shadow evaluation: per pair of evaluations (by identity), how they differ (None: not).
        self._differences: Memo[tuple[int, int], tuple[Evaluation, Evaluation, _Difference | None]] = Memo()
        # The last (live, candidate) pair seen, with whether their contents are equal and
        # the placeholder claim paths they name (the decision line's ``claims``).
        self._same: tuple[object, object, bool, str] = (None, None, False, "")
        self._claim_paths: tuple[object, object, tuple[tuple[str, ClaimPath], ...]] = (None, None, ())
        self._shadow_failing = ""

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
        # The issuer's provider checks (Keycloak's typ, an Entra tenant's tid and client),
        # as for its JWTs: a refresh token introspected is no access token either.
        check_issuer_claims(answer, rules)
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
        return self._decide(token, method_arn, api_keys)[0]

    def _decide(self, token: VerifiedToken, method_arn: MethodArn, api_keys: bool) -> tuple[Decision, _Basis]:
        permissions = self.permissions.get()
        api_arn, stage, version = method_arn.api_arn, method_arn.stage, permissions.version
        evaluation = permissions.evaluate(token.grants, api_arn, stage, claims=token.claims)
        resources, refused, excluded, per_request = evaluation
        reason = "granted"
        alone = None
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
        needs_key = False
        if self.api_keys is not None and api_keys:
            key = self.api_keys.key_for(token.claims)
            if key is not None:
                chars += len(key)
            else:
                needs_key = True
                if resources:
                    denied = self.api_keys.required_resources(api_arn, stage)
        basis = _Basis(token, method_arn, permissions, evaluation, alone, needs_key)
        if resources:
            return Decision(ALLOW, principal, api_arn, stage, resources, reason, version, context,
                            key, denied, chars, refused, (), excluded), basis
        return Decision(DENY, principal, api_arn, stage, (), "no_grant", version, context, key, (), chars, refused,
                        token.hints), basis

    def _scope_text(self, grants: frozenset[str]) -> str | None:
        # The whole "scope" entry (the scope-kind grants: keys without a space), or None
        # when it cannot be sent whole (more than the context may carry, or a scope it
        # cannot list: the bounded context marks it). Only whole texts are remembered.
        listed = listable_scopes(grants)
        text = " ".join(listed)
        if len(text) <= MAX_SCOPE_CHARS and len(listed) == scope_count(grants):
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
        return bound_context(claims, listed, scope_count(grants), granting, version, budget)

    def _fit_context(self, decision: Decision, token: VerifiedToken) -> tuple[Decision, dict[str, Any]] | None:
        # The policy may fit on its own: then the context gets the room it leaves, so a
        # valid token never fails (or loses its policy) because of what the context or the
        # principal carries. In turn: the bounded context in that room; an empty context
        # (the room cannot hold policyVersion and the marks); and with it the principal as
        # its digest. None: the policy alone is too large.
        bare = replace(decision, context={}, text_chars=None)
        size = response_size(render_iam_response(bare))
        room = min(MAX_CONTEXT_BYTES, MAX_RESPONSE_BYTES - size + 2)  # "{}" is already counted
        if room > 2:
            context = self._bounded_context(token, decision.api_arn, decision.stage, decision.version, room)
            fitted = replace(decision, context=context, text_chars=None)
            response = render_iam_response(fitted)
            if response_size(response) <= MAX_RESPONSE_BYTES:
                return fitted, response
        for candidate in (bare, replace(bare, principal_id=digest_principal(decision.principal_id))):
            response = render_iam_response(candidate)
            if response_size(response) <= MAX_RESPONSE_BYTES:
                return candidate, response
        return None

    def answer(self, event: Any, remaining_millis: RemainingMillis | None = None) -> Answer:
        """Read, verify and decide one authorizer event, and render the response it needs.

        ``remaining_millis`` is the Lambda context's ``get_remaining_time_in_millis``: no
        wait this answer makes on the network (keys, introspection, mappings) outlasts the
        invocation (``budget``). ``None``: each wait keeps its own deadline.

        REST events and HTTP API IAM mode get a policy for every route the caller may
        use (API Gateway caches it for all routes). Payload 2.0 with ``SIMPLE_RESPONSES``
        gets ``{isAuthorized, context}`` for the requested route (every request of its
        route key, when that is the cache key), with a Deny decision when it is false. A
        policy too large for API Gateway is narrowed to the requested route when the
        identity sources make the cache key per route; otherwise ``PolicyTooLargeError``.

        The answer also says what the decision line needs (``Answer.outcome``, ``grants``,
        ``claims``) and how it was decided, for ``shadow``.

        Raises:
            EventError, TokenError: the request is refused (401).
            KeySourceError, IntrospectionError, StoreError: the decision cannot be made.
            PolicyTooLargeError: the policy is too large and no per-route answer is safe.
        """
        self._budget.begin(remaining_millis)
        request = read_event(event, self._identity_source)
        method_arn = parse_method_arn(request.method_arn, self._api_stages)
        note_target(method_arn)
        token = self.authenticate(request)
        # Usage plans and API keys exist on REST APIs only.
        decision, basis = self._decide(token, method_arn, request.kind in (TOKEN, REQUEST))
        basis.arn = request.method_arn
        answer = self._respond(request, method_arn, token, decision, basis)
        answer.basis = basis
        answer.grants = token.grants
        claim_paths = self._claim_paths
        if claim_paths[0] is not basis.permissions or (self.candidate is not None
                                                        and claim_paths[1] is not self.candidate.peek()):
            claim_paths = self._placeholder_paths(basis.permissions)
        if claim_paths[2]:
            claims = token.claims
            values = {text: placeholder_value(claims, path) for text, path in claim_paths[2]}
            answer.claims = {text: value for text, value in values.items() if value is not None}
        return answer

    def _respond(
        self, request: AuthorizerRequest, method_arn: MethodArn, token: VerifiedToken, decision: Decision,
        basis: _Basis,
    ) -> Answer:
        # The response in its shape, and its outcome for this request.
        if request.kind == HTTP_V2 and self.settings.simple_responses:
            route = None
            if self._identity_source.cache_scope == "route":
                route = parse_route_key(request.route_key or "")
            basis.simple, basis.route = True, route
            answer = simple_answer(decision, str(method_arn), route, basis.evaluation.per_request)
            answer.outcome = answer.response["isAuthorized"] is True
            return answer
        response = render_iam_response(decision)
        if response_size_bound(decision, self._resource_chars) <= MAX_RESPONSE_BYTES:
            return self._policy_answer(decision, response, basis)
        size = response_size(response)
        if size <= MAX_RESPONSE_BYTES:
            return self._policy_answer(decision, response, basis)
        fitted = self._fit_context(decision, token)
        if fitted is not None:
            return self._policy_answer(fitted[0], fitted[1], basis)
        if request.kind == TOKEN or not self._identity_source.per_route:
            log("ERROR", "policy_too_large", principal=decision.principal_id, size=size, limit=MAX_RESPONSE_BYTES,
                event_kind=request.kind, fix="use a REQUEST authorizer with method and path identity sources")
            raise PolicyTooLargeError(
                f"policy of {size} bytes exceeds {MAX_RESPONSE_BYTES} and the cache key is not per route"
            )
        narrowed = narrow_to_route(decision, str(method_arn))
        response = render_iam_response(narrowed)
        # A per-route policy that fits on its own gets, like a whole one, the room it leaves.
        fitted = ((narrowed, response) if response_size(response) <= MAX_RESPONSE_BYTES
                  else self._fit_context(narrowed, token))
        log("WARN", "policy_narrowed_to_route", principal=decision.principal_id, size=size,
            limit=MAX_RESPONSE_BYTES, route_size=response_size(response if fitted is None else fitted[1]))
        if fitted is None:
            raise PolicyTooLargeError("even the per-route policy exceeds the response budget")
        narrowed, response = fitted
        answer = Answer(narrowed, response, "per-route policy")
        # A policy for this request alone: its tuples are new, so nothing is remembered.
        answer.outcome = narrowed.allowed and self._allows(
            narrowed.resources, None, narrowed.excluded, narrowed.denied, basis.arn, remember=False)
        return answer

    def _policy_answer(self, decision: Decision, response: dict[str, Any], basis: _Basis) -> Answer:
        if not decision.resources:  # a Deny: no Allow matches the request
            return Answer(decision, response, "policy")
        # The policy's Allow Resources are the evaluation's (the same tuple for every
        # caller of the grant set), and the per-request Resource when there is one.
        resources, excluded, denied, arn = basis.evaluation.resources, decision.excluded, decision.denied, basis.arn
        if basis.alone is None:
            # Guard (``_allows``'s, on every request): a policy and methodArn answered before.
            known = self._outcomes.get((id(resources), id(excluded), id(denied), arn))
            if known is not None and known[0] is resources and known[1] is excluded and known[2] is denied:
                return Answer(decision, response, "policy", known[3])
        return Answer(decision, response, "policy", self._allows(resources, basis.alone, excluded, denied, arn))

    def _allows(self, resources: tuple[str, ...], alone: str | None, excluded: tuple[str, ...],
                denied: tuple[str, ...], arn: str, *, remember: bool = True) -> bool:
        """What API Gateway does with the request ``arn`` under a policy allowing
        ``resources`` (and ``alone``) and denying ``excluded`` and ``denied``
        (``core.iam.request_allowed``)."""
        if alone is None:
            # Guard: a policy and methodArn answered before get the same answer.
            key = (id(resources), id(excluded), id(denied), arn)
            known = self._outcomes.get(key)
            if known is not None and known[0] is resources and known[1] is excluded and known[2] is denied:
                return known[3]
            allowed = self._allowed(resources, None, excluded, denied, arn, remember)
            if remember:
                self._outcomes.remember(key, (resources, excluded, denied, allowed))
            return allowed
        return self._allowed(resources, alone, excluded, denied, arn, remember)

    def _allowed(self, resources: tuple[str, ...], alone: str | None, excluded: tuple[str, ...],
                 denied: tuple[str, ...], arn: str, remember: bool) -> bool:
        entry = self._allow_matchers.get(id(resources))
        if entry is None or entry[0] is not resources:
            entry = (resources, ResourceMatcher(resources))
            if remember:
                self._allow_matchers.remember(id(resources), entry)
        if not excluded and not denied:
            deny = _NO_DENY
        else:
            both = self._deny_matchers.get((id(excluded), id(denied)))
            if both is None or both[0] is not excluded or both[1] is not denied:
                both = (excluded, denied, ResourceMatcher((*excluded, *denied)))
                if remember:
                    self._deny_matchers.remember((id(excluded), id(denied)), both)
            deny = both[2]
        if request_allowed(entry[1], deny, arn):
            return True
        return alone is not None and request_allowed(ResourceMatcher((alone,)), deny, arn)

    def _candidate_seen(self) -> PermissionSet | None:
        return None if self.candidate is None else self.candidate.peek()

    def _placeholder_paths(self, live: PermissionSet) -> tuple[object, object, tuple[tuple[str, ClaimPath], ...]]:
        # The claim paths the live and candidate sets' placeholders name, with their text.
        candidate = self._candidate_seen()
        paths = set(live.claim_paths) | set(() if candidate is None else candidate.claim_paths)
        self._claim_paths = (live, candidate, tuple((claim_path_text(path), path) for path in sorted(paths)))
        return self._claim_paths

    def shadow(self, answer: Answer) -> None:
        """Evaluate the candidate permission set for the request ``answer`` answered, and
        log a ``shadow_diff`` line where it differs from the live one (see the module's
        docstring). Never raises and never changes ``answer``; a failure is logged once
        per kind (``shadow_failed``)."""
        candidate = self.candidate
        basis = answer.basis
        if candidate is None or basis is None:
            return
        try:
            self._shadow(answer, basis, candidate)
        except Exception as exc:  # noqa: BLE001 - the live decision is made; nothing here may undo it
            kind = type(exc).__name__
            if kind != self._shadow_failing:
                self._shadow_failing = kind
                log("WARN", "shadow_failed", error=kind)

    def _shadow(self, answer: Answer, basis: _Basis, cache: CandidateCache) -> None:
        candidate = cache.get()
        if candidate is None:
            return
        live = basis.permissions
        same = self._same
        if same[0] is not live or same[1] is not candidate:
            versions = _members({"live_version": live.version, "candidate_version": candidate.version})
            same = self._same = (live, candidate, self.permissions.digest(live) == cache.digest, versions)
        if same[2]:
            return
        token, method_arn = basis.token, basis.method_arn
        api_arn, stage = method_arn.api_arn, method_arn.stage
        live_evaluation = basis.evaluation
        evaluation = candidate.evaluate(token.grants, api_arn, stage, claims=token.claims)
        pair = (id(live_evaluation), id(evaluation))
        entry = self._differences.get(pair)
        if entry is None or entry[0] is not live_evaluation or entry[1] is not evaluation:
            # The policy is what may differ; the placeholder claims each set refused do not
            # change what the caller may call.
            same_policy = (live_evaluation.resources == evaluation.resources
                           and live_evaluation.excluded == evaluation.excluded
                           and live_evaluation.per_request == evaluation.per_request)
            difference = (None if same_policy
                          else _Difference(live_evaluation, evaluation, f"{api_arn}/{stage}/"))
            entry = self._differences.remember(pair, (live_evaluation, evaluation, difference))
        difference = entry[2]
        if difference is None and not evaluation.per_request:
            return  # the same policy: the same outcome
        outcome = self._candidate_outcome(candidate, evaluation, basis, answer.decision.principal_id)
        if difference is None and outcome == answer.outcome:
            return
        log_shadow_diff(answer.decision.principal_id, same[3], answer.outcome, outcome,
                        _NO_DIFFERENCE if difference is None else difference.text)

    def _candidate_outcome(self, candidate: PermissionSet, evaluation: Evaluation, basis: _Basis,
                           principal: str) -> bool:
        # What API Gateway would do with the request had the candidate decided, through
        # the same rules as the live answer (API keys, simple responses).
        method_arn, arn = basis.method_arn, basis.arn
        resources, _, excluded, per_request = evaluation
        alone = candidate.request_resource(evaluation, method_arn) if per_request else None
        if not resources and alone is None:
            return False
        denied: tuple[str, ...] = ()
        if basis.needs_key and self.api_keys is not None:
            denied = self.api_keys.required_resources(method_arn.api_arn, method_arn.stage)
        if basis.simple:
            granted = resources if alone is None else (*resources, alone)
            decision = Decision(ALLOW, principal, method_arn.api_arn, method_arn.stage, granted, "granted",
                                candidate.version, denied=denied, excluded=excluded)
            return simple_answer(decision, arn, basis.route, per_request).response["isAuthorized"] is True
        return self._allows(resources, alone, excluded, denied, arn)

    def health(self) -> None:
        """Write the ``health`` line when it is due (at most once per ``HEALTH_INTERVAL``
        seconds; the first after the container's first decision). Never raises."""
        now = self._monotonic()
        if now < self._health_due:
            return
        self._health_due = now + HEALTH_INTERVAL
        try:
            self._write_health()
        except Exception as exc:  # noqa: BLE001 - a report that cannot be written is not worth a failure
            log("WARN", "health_failed", error=type(exc).__name__)

    def _write_health(self) -> None:
        fields: dict[str, Any] = {}
        ages: dict[str, float] = {}
        live = self.permissions.peek()
        if live is not None:
            fields["version"] = live.version
            published = self.permissions.published_at(live)
            if published is not None:
                ages[_metrics.PERMISSION_VERSION_AGE] = round(max(0.0, self._clock() - _epoch(published)), 3)
            refreshed = self.permissions.refresh_age()
            if refreshed is not None:
                ages[_metrics.PERMISSIONS_REFRESH_AGE] = round(refreshed, 3)
        candidate = self._candidate_seen()
        if candidate is not None:
            fields["candidate_version"] = candidate.version
        refresh_age = getattr(self.keys, "refresh_age", None)
        keys_age = refresh_age() if callable(refresh_age) else None
        if keys_age is not None:
            ages[_metrics.JWKS_REFRESH_AGE] = round(keys_age, 3)
        if not _metrics.config.enabled:
            fields.update(ages)  # the ages as plain members
        log("INFO", "health", metrics=ages or None, **fields)


_epochs: dict[str, float] = {}


def _epoch(text: str) -> float:
    # An ISO 8601 time as the stores record it (UTC, maybe with a "Z"), in epoch seconds.
    seconds = _epochs.get(text)
    if seconds is None:
        from datetime import UTC, datetime

        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)
        if len(_epochs) >= 16:
            _epochs.clear()
        seconds = _epochs[text] = moment.timestamp()
    return seconds
