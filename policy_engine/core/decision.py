"""A decision as a value, and its rendering into API Gateway's response format."""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from json.encoder import encode_basestring_ascii as _quote
from typing import Any

from policy_engine.core.compaction import globs_intersect
from policy_engine.core.iam import glob_matches
from policy_engine.core.memo import Memo
from policy_engine.core.routes import RouteTemplate, route_coverage

__all__ = [
    "CONTEXT_OMITTED_KEY",
    "MAX_CLAIM_CHARS",
    "MAX_CONTEXT_BYTES",
    "MAX_CONTEXT_VALUE",
    "MAX_PRINCIPAL",
    "MAX_PRINCIPAL_BYTES",
    "MAX_RESPONSE_BYTES",
    "MAX_SCOPE_CHARS",
    "OWN_CONTEXT_KEYS",
    "OWN_CONTEXT_KEY_CHARS",
    "SCOPE_COUNT_KEY",
    "SCOPE_KEY",
    "SCOPE_TRUNCATED_KEY",
    "VERSION_KEY",
    "Answer",
    "Decision",
    "bound_context",
    "bounded_principal",
    "context_chars",
    "context_within_bounds",
    "digest_principal",
    "listable_scopes",
    "narrow_to_route",
    "render_iam_response",
    "render_simple_response",
    "response_size",
    "scalar_context",
    "scalar_context_counted",
    "scope_count",
    "simple_answer",
]

ALLOW = "Allow"
DENY = "Deny"

#: The one documented authorizer-result limit (WebSocket, 8 KB) is kept for every API
#: type: REST and HTTP quota tables give no number
#: (https://docs.aws.amazon.com/apigateway/latest/developerguide/limits.html).
MAX_RESPONSE_BYTES = 8192

#: Context keys the engine sets itself, after the claims: the caller's scopes, the
#: mappings' version, and the marks of a bounded context (``bound_context``). A claim of
#: the same name is never copied.
SCOPE_KEY = "scope"
VERSION_KEY = "policyVersion"
SCOPE_TRUNCATED_KEY = "scopeTruncated"
SCOPE_COUNT_KEY = "scopeCount"
CONTEXT_OMITTED_KEY = "contextOmitted"
OWN_CONTEXT_KEYS = (SCOPE_KEY, VERSION_KEY, SCOPE_TRUNCATED_KEY, SCOPE_COUNT_KEY, CONTEXT_OMITTED_KEY)
#: The characters of the two every context has, as ``response_size_bound`` counts them.
OWN_CONTEXT_KEY_CHARS = len(SCOPE_KEY) + len(VERSION_KEY)

# What is copied into ``context`` is bounded so that a valid token never fails for its
# size, and the policy never shrinks for it. docs/decisions.md ("Outcomes") states these rules.
#: ``principalId``, in characters. A longer one is replaced by ``bounded_principal``.
MAX_PRINCIPAL = 256
#: ``principalId`` as JSON writes it, in bytes: 256 characters that each take a 6-byte
#: escape (``\u00e9``). Characters outside the Basic Multilingual Plane take 12 (two
#: escaped surrogates), so 256 of them would leave a policy 3 KB less room.
MAX_PRINCIPAL_BYTES = 6 * MAX_PRINCIPAL
#: One copied claim value, in characters of its string form. A longer value is left out
#: whole: cut, a ``sub`` or ``username`` could name someone else.
MAX_CONTEXT_VALUE = 256
#: The copied claims together, names and values, in characters.
MAX_CLAIM_CHARS = 1024
#: The ``scope`` entry, in characters: whole scopes only.
MAX_SCOPE_CHARS = 1024
#: The whole context as ``json.dumps`` writes it (bytes), which only characters that JSON
#: escapes (non-ASCII, controls) bring near: a simple response (``{"isAuthorized": ...,
#: "context": ...}``) always fits ``MAX_RESPONSE_BYTES``. A policy response gives the
#: context only the room its policy leaves.
MAX_CONTEXT_BYTES = MAX_RESPONSE_BYTES - 192


@dataclass(slots=True)
class Decision:
    """What the engine decided for one caller on one API and stage.

    ``resources`` are the policy Resources granted (empty for a Deny); ``denied`` are
    Resources refused even when granted (routes that need an API key the caller does not
    have); ``deny_resource`` is what a Deny covers; ``reason`` is a short code for logs.
    ``text_chars`` is what ``response_size_bound`` counts of the principal, usage key
    and context, when whoever built the context counted it on the way (``None``: it
    is counted when needed). ``placeholders_refused`` names the claims whose values a
    tenant placeholder refused (the mappings holding them granted nothing), for the log.
    ``unconfigured_grant_claims``, on a Deny that grants
    nothing, names the common grant claims the token carries that no source reads
    (for the log line; never their contents). ``excluded`` are Resources of sibling
    routes the granted templates' wildcards reach but the caller is not granted
    (``core.siblings``), denied explicitly like ``denied``.
    """

    effect: str
    principal_id: str
    api_arn: str
    stage: str
    resources: tuple[str, ...]
    reason: str
    version: str
    context: dict[str, str | int | float | bool] = field(default_factory=dict)
    usage_identifier_key: str | None = None
    denied: tuple[str, ...] = ()
    text_chars: int | None = None
    placeholders_refused: tuple[str, ...] = ()
    unconfigured_grant_claims: tuple[str, ...] = ()
    excluded: tuple[str, ...] = ()

    @property
    def allowed(self) -> bool:
        return self.effect == ALLOW

    @property
    def deny_resource(self) -> str:
        # The authorizer cache serves every route of this API and stage, so the Deny
        # has to cover all of them, not just the route that was called.
        return f"{self.api_arn}/{self.stage}/*"


# Built on every request: a plain slotted dataclass costs half of a NamedTuple or a
# frozen dataclass. Nothing mutates it.
@dataclass(slots=True)
class Answer:
    """The response for API Gateway and the decision behind it; ``shape`` names the format.

    For the decision line (the engine fills them in): ``outcome``, what API Gateway does
    with the request given ``response`` (true: it goes through); ``grants``, the caller's
    grant keys; ``claims``, the caller's values of the permission sets' placeholder
    claims (``None`` when the sets have no placeholders). ``basis`` is the engine's own
    record of how it decided (for shadow evaluation), opaque to everyone else.
    """

    decision: Decision
    response: dict[str, Any]
    shape: str
    outcome: bool = False
    grants: frozenset[str] = frozenset()
    claims: dict[str, str] | None = None
    basis: Any = None


def render_iam_response(decision: Decision) -> dict[str, Any]:
    """The IAM-policy response API Gateway expects (REST, and HTTP API IAM mode).

    Allow: one statement listing every granted Resource, plus one Deny statement for
    ``excluded`` and ``denied`` Resources (an explicit Deny wins over the Allow). Deny: one statement
    denying every route of the API and stage.
    """
    if decision.effect == ALLOW and decision.resources:
        statements = [{"Action": "execute-api:Invoke", "Effect": ALLOW, "Resource": list(decision.resources)}]
        if decision.denied or decision.excluded:
            statements.append({"Action": "execute-api:Invoke", "Effect": DENY,
                               "Resource": [*decision.excluded, *decision.denied]})
    else:
        statements = [{"Action": "execute-api:Invoke", "Effect": DENY, "Resource": [decision.deny_resource]}]
    response: dict[str, Any] = {
        "principalId": decision.principal_id,
        "policyDocument": {"Version": "2012-10-17", "Statement": statements},
        "context": decision.context,
    }
    if decision.usage_identifier_key is not None:
        response["usageIdentifierKey"] = decision.usage_identifier_key
    return response


# Everything of the rendered response that is not a resource, a context entry, the
# principal or the usage key, with room to spare (two statements, keys, punctuation).
_FIXED_OVERHEAD = 400


def response_size_bound(decision: Decision, known: Memo[tuple[str, ...], int] | None = None) -> int:
    """An upper bound of ``response_size(render_iam_response(decision))``, cheaper to get.

    Resources are validated ASCII without characters JSON escapes (4 bytes of quotes
    and separator each). Every other character (principal, usage key, context keys and
    values) is counted at 12 bytes, its worst-case escaping (a character outside the
    BMP becomes a surrogate pair); a context value that is not a string by its
    ``str()``, never shorter than its JSON (``True``/``true``, digits, ``repr`` of
    floats). Generous for text, which is short; exact enough for resources, which are
    what fills a policy. Lets the common policy skip serialising the response on the
    request path.

    ``known`` is the caller's memo of what the granted Resources count (see
    ``core.memo``), keyed by the exact tuple: a policy memoised by ``PermissionSet`` is
    the same tuple for every caller of its scope set, so it is counted once.
    """
    context = decision.context
    chars = decision.text_chars
    if chars is None:
        chars = len(decision.principal_id) + len(decision.usage_identifier_key or "") + context_chars(context)
    resources = decision.resources
    # Guard: a tuple of Resources counted before counts the same again.
    counted = known.get(resources) if known is not None else None
    if counted is None:
        counted = sum(map(len, resources)) + 4 * len(resources)
        if known is not None:
            known.remember(resources, counted)
    size = (
        _FIXED_OVERHEAD
        + 12 * chars
        + 8 * len(context)  # per entry: two pairs of quotes, ": " and ", "
        + counted
        + len(decision.api_arn) + len(decision.stage) + 7  # the Deny-all Resource, when there is one
    )
    if decision.denied:
        size += sum(map(len, decision.denied)) + 4 * len(decision.denied)
    if decision.excluded:
        size += sum(map(len, decision.excluded)) + 4 * len(decision.excluded)
    return size


def context_chars(context: Mapping[str, Any]) -> int:
    """The characters of ``context``'s keys and values (values written with ``str``): what
    ``response_size_bound`` counts of it."""
    # A plain loop: for the handful of entries a context has, it is cheaper than
    # sum(map(len, ...)) over keys and values, measured inside real decisions.
    chars = 0
    for name, value in context.items():
        chars += len(name) + len(value if value.__class__ is str else str(value))
    return chars


def response_size(response: Mapping[str, Any]) -> int:
    """Bytes of ``response`` as the Lambda Python runtime serialises it (``json.dumps``).

    ``json.dumps`` escapes everything outside ASCII, so characters are bytes.
    """
    return len(json.dumps(response))


def narrow_to_route(decision: Decision, route_arn: str) -> Decision:
    """The part of ``decision`` that decides one route: a subset, never more.

    Keeps only the granted Resources that match ``route_arn``; with none granted, the
    result is a Deny. Used when the answer serves this route alone (simple responses,
    per-route cache keys).

    Every Deny Resource (a sibling route the caller is not granted, a route that needs
    an API key) that some request under the kept Allow Resources can meet is kept too:
    API Gateway reuses the answer for every request with the same cache key, which may
    be coarser than the mappings' routes (a ``{proxy+}`` resource, ``$default``), and
    without them the narrowed policy would allow what the full one denies.
    """
    allowed = tuple(r for r in decision.resources if glob_matches(r, route_arn)) if decision.allowed else ()
    if allowed and any(glob_matches(r, route_arn) for r in decision.excluded):
        allowed = ()  # a sibling route's request: the caller is not granted its route
    if not allowed:
        return replace(decision, effect=DENY, resources=(), denied=(), excluded=(),
                       reason=decision.reason if not decision.allowed else "no_grant_for_route")
    excluded = tuple(r for r in decision.excluded if any(globs_intersect(a, r) for a in allowed))
    denied = tuple(r for r in decision.denied if any(globs_intersect(a, r) for a in allowed))
    needs_key = any(glob_matches(r, route_arn) for r in denied)
    return replace(decision, resources=allowed, denied=denied, excluded=excluded,
                   reason="route_needs_api_key" if needs_key else decision.reason)


# Why a simple response says false although the request itself is granted.
_NOT_WHOLE_ROUTE = {
    "not_granted": "route_not_fully_granted",
    "denied": "route_needs_api_key",
    "undecided": "route_coverage_undecided",
}


def simple_answer(decision: Decision, route_arn: str, route: RouteTemplate | None = None,
                  per_request: tuple[RouteTemplate, ...] = ()) -> Answer:
    """HTTP API's simple response for the requested route, and the decision it carries.

    API Gateway reuses the boolean for every request with the same identity sources,
    so it must hold for all of them. With ``route`` (the cache key is the route key,
    ``$context.routeKey``) ``isAuthorized`` is true only when the caller's policy allows
    every request the route can carry and denies none of them
    (``core.routes.route_coverage``), not just ``route_arn``. Keeping the cache key per
    route is the caller's job (``Settings`` refuses simple responses otherwise).

    ``per_request`` are the caller's granted routes that no policy can write without
    reaching a sibling route (``Evaluation.per_request``): the policy holds only this
    request of them. When ``route`` is one of them, every request API Gateway routes to
    it is granted by its own mapping (the mappings name the API's routes, as
    docs/permissions.md asks; a sibling route takes its own requests), so the answer is
    ``true`` all the same.

    The answer's decision says what the response says: a ``false`` is a Deny, with the
    reason (``no_grant``, ``no_grant_for_route``, ``route_needs_api_key``,
    ``route_not_fully_granted``, ``route_coverage_undecided``).
    """
    narrowed = narrow_to_route(decision, route_arn)
    reason = None
    # This very request needs an API key the caller lacks. (The narrowed Deny statements
    # also hold routes near it that need one: those do not decide this request.)
    if narrowed.reason == "route_needs_api_key":
        reason = narrowed.reason
    elif route is not None and any(granted.methods == route.methods and granted.path == route.path
                                   for granted in per_request):
        # Granted by its own mapping, request by request: true for every request of the
        # route, this one too when no Resource could name it exactly (a path holding an
        # IAM wildcard character, ``*`` or ``?``).
        if not narrowed.allowed:
            narrowed = replace(narrowed, effect=ALLOW, reason="granted_this_request")
    elif narrowed.allowed and route is not None:
        # The whole policy, not its part for route_arn: other methods and paths of the
        # route are granted by Resources that do not match this one request.
        coverage = route_coverage(decision.resources, decision.denied, f"{decision.api_arn}/{decision.stage}/", route)
        if not coverage.granted:
            reason = _NOT_WHOLE_ROUTE[coverage.reason]
    if reason is not None:
        narrowed = replace(narrowed, effect=DENY, resources=(), denied=(), reason=reason)
    return Answer(narrowed, {"isAuthorized": narrowed.allowed, "context": dict(decision.context)}, "simple")


def render_simple_response(decision: Decision, route_arn: str, route: RouteTemplate | None = None) -> dict[str, Any]:
    """``{isAuthorized, context}`` for the requested route: ``simple_answer``'s response."""
    return simple_answer(decision, route_arn, route).response


def scalar_context(
    values: Mapping[str, Any], names: Iterable[str] | None = None
) -> dict[str, str | int | float | bool]:
    """Keep only values API Gateway accepts in ``context``: strings, numbers, booleans.

    With ``names``, only those keys of ``values`` are considered (in that order).
    Lists of strings (``scp``, ``aud``) are joined with spaces; objects, nulls, mixed
    lists and non-finite numbers are dropped, because any of them makes API Gateway
    answer 500.
    """
    return scalar_context_counted(values, names)[0]


def scalar_context_counted(
    values: Mapping[str, Any], names: Iterable[str] | None = None
) -> tuple[dict[str, str | int | float | bool], int]:
    """``scalar_context``, and the characters of its keys and values written as ``str``
    (what ``response_size_bound`` counts), counted while it is built: on every decision
    that saves a second pass over the context."""
    out: dict[str, str | int | float | bool] = {}
    chars = 0
    for key in values if names is None else names:
        value = values.get(key)
        if value.__class__ is str:  # the usual case, first
            out[key] = value
            chars += len(key) + len(value)
            continue
        if value is None:
            continue
        if isinstance(value, (str, bool, int)):
            out[key] = value
        elif isinstance(value, float):
            # 1e999 parses to inf, which json.dumps writes as the non-JSON 'Infinity'.
            if not math.isfinite(value):
                continue
            out[key] = value
        elif isinstance(value, list) and value and all(isinstance(v, str) for v in value):
            out[key] = " ".join(value)
        else:
            continue
        kept = out[key]
        chars += len(key) + len(kept if kept.__class__ is str else str(kept))
    return out, chars


def bounded_principal(principal: str) -> str:
    """``principal``, or ``sha256:<hex>`` of it when it is longer than ``MAX_PRINCIPAL``
    characters or ``MAX_PRINCIPAL_BYTES`` bytes as JSON writes it (``digest_principal``:
    as distinct as the subject itself).
    """
    # Guard: ASCII (nearly every subject) is one byte a character, but for the few
    # characters JSON escapes (quote, backslash, controls: at most 6 bytes each).
    if len(principal) <= MAX_PRINCIPAL and (principal.isascii() or len(_quote(principal)) - 2 <= MAX_PRINCIPAL_BYTES):
        return principal
    return digest_principal(principal)


def digest_principal(principal: str) -> str:
    """``sha256:<hex>`` of ``principal`` (71 characters): what is sent for a principal too
    long for its bounds, or too long for the room a policy leaves. Never a prefix: two long
    subjects that share one would become one principal."""
    # surrogatepass: a JSON string may hold a lone surrogate, which UTF-8 cannot encode.
    return "sha256:" + hashlib.sha256(principal.encode("utf-8", "surrogatepass")).hexdigest()


def listable_scopes(scopes: Collection[str]) -> list[str]:
    """The scopes among grant keys ``scopes`` that ``scope`` can list, sorted: not
    empty, no whitespace.

    A key with a space is another kind's grant (``group pet-readers``,
    ``core.grants.grant_key``); a scope with other whitespace (``"pets:read\tx"``, one
    scope by RFC 6749's single-space rule) is the caller's, but a reader splitting on any
    whitespace would read names it may not hold (``pets:read``): it is left out, and
    counted so (``scope_count``).
    """
    return sorted(scope for scope in scopes if scope and " " not in scope and scope.split() == [scope])


def scope_count(grants: Collection[str]) -> int:
    """How many scopes the caller holds: the grant keys, not empty, without a space
    (``core.grants``: another kind's keys are ``"<kind> <value>"``)."""
    return sum(1 for key in grants if key and " " not in key)


def _json_chars(value: Any) -> int:
    # Bytes json.dumps writes for a context key or value: str, or int/float/bool, whose
    # str() has the length of their JSON ("True"/"true", repr of floats).
    return len(_quote(value)) if value.__class__ is str else len(str(value))


def _entry_chars(key: str, value: Any) -> int:
    # The entry, its ": " and the ", " before the next one.
    return _json_chars(key) + _json_chars(value) + 4


def context_within_bounds(context: Mapping[str, Any], claim_chars: int, chars: int) -> bool:
    """True when ``context`` keeps every bound as it is: each copied claim value at most
    ``MAX_CONTEXT_VALUE`` characters, the claims at most ``MAX_CLAIM_CHARS``, the whole at
    most ``MAX_CONTEXT_BYTES`` of JSON. (``scope`` is the caller's to keep within
    ``MAX_SCOPE_CHARS``.)

    ``claim_chars`` and ``chars`` are the characters, names and values, of the claims and
    of the whole context: in the usual case they settle it without looking at a value.
    """
    if claim_chars > MAX_CLAIM_CHARS:
        return False
    if claim_chars > MAX_CONTEXT_VALUE:
        for key, value in context.items():
            if key not in OWN_CONTEXT_KEYS and len(value if value.__class__ is str else str(value)) > MAX_CONTEXT_VALUE:
                return False
    # At most 12 bytes of JSON per character (a character outside the BMP is a pair of
    # \uXXXX escapes), 8 per entry for quotes and separators.
    if 12 * chars + 8 * len(context) + 2 <= MAX_CONTEXT_BYTES:
        return True
    return 2 + sum(_entry_chars(key, value) for key, value in context.items()) <= MAX_CONTEXT_BYTES


def bound_context(
    claims: Mapping[str, str | int | float | bool],
    sorted_scopes: Sequence[str],
    scope_count: int,
    granting: Collection[str],
    version: str,
    budget: int = MAX_CONTEXT_BYTES,
) -> dict[str, str | int | float | bool]:
    """The context within every bound, and within ``budget`` bytes of JSON when that
    leaves room for ``policyVersion`` and the marks; only whole entries and whole
    scopes are ever dropped.

    ``claims`` are the scalar claims to copy, in ``CONTEXT_CLAIMS`` order;
    ``sorted_scopes`` the caller's ``listable_scopes``; ``scope_count`` how many scopes
    the caller holds in all; ``granting`` those that grant something on this API and
    stage.

    In order: each claim whose value has at most ``MAX_CONTEXT_VALUE`` characters, while
    the claims stay within ``MAX_CLAIM_CHARS`` and the budget; ``scope``: the granting
    scopes first, then the others, each whole, while they stay within
    ``MAX_SCOPE_CHARS`` and the budget, written sorted; ``policyVersion``. Then the
    marks: ``scopeTruncated: true`` and ``scopeCount`` when ``scope`` does not list every
    scope, ``contextOmitted`` (the names of the claims left out, space-separated) when a
    claim is. Room for ``policyVersion`` and the marks is set aside first.
    """
    names = " ".join(claims)
    used = 2 + _entry_chars(VERSION_KEY, version) + _entry_chars(SCOPE_KEY, "")
    used += _entry_chars(SCOPE_TRUNCATED_KEY, True) + _entry_chars(SCOPE_COUNT_KEY, scope_count)
    used += _entry_chars(CONTEXT_OMITTED_KEY, names) if names else 0
    out: dict[str, str | int | float | bool] = {}
    omitted = []
    claim_chars = 0
    for name, value in claims.items():
        size = len(name) + len(value if value.__class__ is str else str(value))
        cost = _entry_chars(name, value)
        if (size - len(name) > MAX_CONTEXT_VALUE or claim_chars + size > MAX_CLAIM_CHARS
                or used + cost > budget):
            omitted.append(name)
            continue
        out[name] = value
        claim_chars += size
        used += cost
    kept: list[str] = []
    scope_chars = 0
    granted = [scope for scope in sorted_scopes if scope in granting]
    for scope in (*granted, *(scope for scope in sorted_scopes if scope not in granting)):
        gap = 1 if kept else 0  # the space before every scope but the first
        cost = _json_chars(scope) - 2 + gap  # no quotes of its own inside the list
        if scope_chars + gap + len(scope) > MAX_SCOPE_CHARS or used + cost > budget:
            break
        kept.append(scope)
        scope_chars += gap + len(scope)
        used += cost
    out[SCOPE_KEY] = " ".join(sorted(kept))
    out[VERSION_KEY] = version
    if len(kept) < scope_count:
        out[SCOPE_TRUNCATED_KEY] = True
        out[SCOPE_COUNT_KEY] = scope_count
    if omitted:
        out[CONTEXT_OMITTED_KEY] = " ".join(omitted)
    return out
