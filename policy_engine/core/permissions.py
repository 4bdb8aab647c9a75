"""The permission model: what a mapping means, how it is validated, how it is indexed.

A mapping ``(arn, stage, httpVerb, resource, requirement)`` grants a request
``(api, stage, VERB, path)`` to a caller holding every grant of its *requirement*
when the API ARN is equal, the stage is equal (or the mapping's stage is ``*``), the
verb is equal (or the mapping's verb is ``*``/``ANY``), and the path matches
``resource`` by API Gateway's policy rule: ``*`` stands for any run of characters,
``/`` included.

A requirement is a set of grant keys (``core.grants``), all needed: one scope (the AWS
blog's ``scope:``), a group or a role, several grants of any kinds (``allOf``), or none
at all (``authenticated: true``: any valid token for the API). Written down (in
snapshots, stores and the content digest) it is its *needs* text: the scope itself for
a single scope, else the canonical JSON of the record's member (``needs_text``), which
always holds a ``"`` and so can never be read as a scope.

A resource may hold tenant placeholders, ``{claim:<path>}`` as one whole path segment,
filled at decision time with the caller's own claim value
(``core.grants.placeholder_value``): a mapping whose placeholder is refused grants
nothing.

Raw records (from YAML, a compiled snapshot, DynamoDB or S3) are validated by one
schema and compiled into a ``PermissionSet``: plain tuples indexed by grant key, so a
decision costs what the caller is granted, not what the table holds.

The schema is the pydantic model ``core.schema.MappingRecord``; its field rules are
``FIELD_RULES`` here. Building pydantic models costs about 100 ms of import at every
cold start, so ``compile_records`` first tries ``check_record``, a guard that applies
the same rules to the common shape of a record without pydantic, and hands every
other record (another shape, or a refused value) to the model, which decides and
names the problem. Every load path goes through ``compile_records``: nothing is
trusted because of where it was read.
"""

from __future__ import annotations

import hashlib
import json
import re
import unicodedata
from collections.abc import Callable, Iterable, Mapping, Sequence
from json.encoder import encode_basestring_ascii as _quote
from typing import TYPE_CHECKING, Any, NamedTuple

from policy_engine.core.arn import API_ARN_PATTERN, HTTP_VERBS, MAX_STAGE_NAME, STAGE_NAME_PATTERN, MethodArn
from policy_engine.core.compaction import compact_resources
from policy_engine.core.grants import (
    KIND_PATTERN,
    MAX_PLACEHOLDER_VALUE,
    PLACEHOLDER,
    SCOPE,
    ClaimPath,
    claim_path_text,
    grant_key,
    parse_claim_path,
    placeholder_value,
    split_grant_key,
)
from policy_engine.core.iam import glob_matches
from policy_engine.core.memo import Memo
from policy_engine.core.routes import RouteTemplate, route_for
from policy_engine.errors import PermissionsError

if TYPE_CHECKING:
    from policy_engine.core.siblings import SiblingRoutes

__all__ = [
    "ANY_VERB",
    "AUTHENTICATED",
    "FIELD_RULES",
    "GRANT_FIELDS",
    "HTTP_VERBS",
    "MAX_GRANT_VALUE",
    "MAX_RESOURCE_ARN",
    "NOBODY",
    "NOBODY_KEY",
    "Evaluation",
    "FieldProblem",
    "Fields",
    "Grant",
    "PermissionSet",
    "RecordCheck",
    "Route",
    "check_record",
    "compile_records",
    "content_digest",
    "grant_value_rule",
    "is_member_json",
    "is_route_template",
    "longest_resource_arn",
    "needs_of",
    "needs_text",
    "normalize_records",
    "placeholders_of",
    "requirement_of",
    "requirement_text",
    "resource_arn",
    "resource_glob",
]

# A mapping may name one of HTTP_VERBS, or ``*`` (or ``ANY``) for all of them.
ANY_VERB = "*"

#: API Gateway refuses a policy Resource longer than this (Lambda authorizer output,
#: API Gateway developer guide): the response fails with 500.
MAX_RESOURCE_ARN = 512

# The longest method a Resource can name: what a '*' verb is spelled out as.
_LONGEST_VERB = max(map(len, HTTP_VERBS))

# HTTP APIs also have the automatically deployed stage "$default".
# Path characters API Gateway routes, plus the policy wildcard '*'. No '?' (IAM's
# one-character wildcard would be read as a query string by people) and no '{...}'.
_RESOURCE = re.compile(r"[A-Za-z0-9\-._~!$&'()*+,;=:@%/]*")
_RESOURCE_MATCH = _RESOURCE.fullmatch
# RFC 6749 scope-token characters.
_SCOPE = re.compile(r"[\x21\x23-\x5b\x5d-\x7e]+")
# A route parameter as API Gateway writes it: {name} (one segment) or {name+} (greedy).
_PARAMETER = re.compile(r"\{[A-Za-z0-9_.-]+\+?\}")
# The claim path of a placeholder: characters a route path may hold, no '*'.
_PLACEHOLDER_PATH = re.compile(r"[A-Za-z0-9\-._~!$&'()+,;=:@%]+")

#: The members of a mapping record that say what it needs; a record has exactly one.
GRANT_FIELDS = ("scope", "group", "role", "allOf", "authenticated", "nobody")

#: The longest group, role or other non-scope grant value a mapping may name.
MAX_GRANT_VALUE = 256

#: The needs text of ``authenticated: true`` (``needs_text``).
AUTHENTICATED = '{"authenticated":true}'

#: The needs text of ``nobody: true`` (``[]`` in the grouped form): the route exists and no
#: caller is granted it. It grants nothing; it makes the route known, so that a sibling
#: template's wildcard is taken back from it (``core.siblings``).
NOBODY = '{"nobody":true}'

#: The one grant key ``NOBODY`` requires: no token can hold it (every held key without a
#: space is a scope token, every other is ``<kind> <value>`` with a lower-case kind).
NOBODY_KEY = "\x00 nobody"


def is_member_json(needs: str) -> bool:
    """True when ``needs`` is the JSON of a record's member, not a scope: JSON holds a
    ``"``, which no scope token does (RFC 6749 section 3.3), even one that starts with ``{``."""
    return needs.startswith("{") and '"' in needs


class FieldProblem(ValueError):
    """A field value the schema refuses: an error ``kind`` and a message naming ``{value}``."""

    def __init__(self, kind: str, template: str, value: str) -> None:
        # Literal replacement, as pydantic fills the template: braces elsewhere stay as written.
        super().__init__(template.replace("{value}", repr(value)))
        self.kind, self.template, self.value = kind, template, value


def _arn(value: str) -> str:
    if not API_ARN_PATTERN.fullmatch(value):
        raise FieldProblem(
            "arn", "arn {value} is not an API ARN (arn:<partition>:execute-api:<region>:<account-id>:<api-id>)", value
        )
    return value


def _stage(value: str) -> str:
    if value != "*" and not STAGE_NAME_PATTERN.fullmatch(value):
        raise FieldProblem("stage", "stage {value} is not a stage name (letters, digits, '-', '_') or '*'", value)
    return value


def _verb(value: str) -> str:
    # ASCII only: str.upper() turns 'po\u017ft' (long s) into 'POST', 'opt\u0131ons' (dotless i) into 'OPTIONS'.
    verb = value.upper() if value.isascii() else value
    if verb == "ANY":
        verb = ANY_VERB
    if verb != ANY_VERB and verb not in HTTP_VERBS:
        raise FieldProblem("httpVerb", "httpVerb {value} is not an HTTP method (or '*'/'ANY')", value)
    return verb


def _resource(value: str) -> str:
    plain = value
    if "{" in value or "}" in value:
        templated = claimed = False
        segments = value.split("/")
        for i, segment in enumerate(segments):
            if "{" not in segment and "}" not in segment:
                continue
            if _PARAMETER.fullmatch(segment):
                # A route parameter: one segment; a greedy one only last (API Gateway's rule).
                if segment.endswith("+}") and i != len(segments) - 1:
                    raise FieldProblem("resource", f"resource {{value}}: the greedy parameter {segment!r} must be "
                                       "the last path segment", value)
                templated = True
                segments[i] = "x"
                continue
            found = PLACEHOLDER.fullmatch(segment)
            if found is None or not segment.startswith("{claim:"):
                if segment.startswith("{claim:") and segment.endswith("}") and segment.count("{") == 1 \
                        and segment.count("}") == 1:
                    raise FieldProblem("resource", f"resource {{value}}: placeholder {segment!r} does not name a "
                                       "claim (a claim path, no spaces or '/')", value)
                if "{claim:" in segment:
                    raise FieldProblem(
                        "resource", "resource {value}: a '{claim:...}' placeholder must be a whole path segment "
                        "(as in /tenants/{claim:tenant_id}/*)", value)
                raise FieldProblem(
                    "resource",
                    "resource {value}: a route parameter is a whole path segment, '{name}' or '{name+}' (name: "
                    "letters, digits, '_', '-', '.')",
                    value,
                )
            path = found.group(1)
            try:
                parse_claim_path(path)
            except ValueError:
                raise FieldProblem("resource", f"resource {{value}}: placeholder claim {path!r} is not a claim path "
                                   "(names separated by single dots)", value) from None
            if _PLACEHOLDER_PATH.fullmatch(path) is None:
                raise FieldProblem("resource", f"resource {{value}}: placeholder claim {path!r} has characters a "
                                   "route path cannot have", value)
            claimed = True
            segments[i] = "x"
        plain = "/".join(segments)
        if templated and (claimed or "*" in plain):
            raise FieldProblem("resource", "resource {value}: a route template names one route; it cannot also hold "
                               "'*' or a '{claim:...}' placeholder", value)
    if not _RESOURCE.fullmatch(plain):
        raise FieldProblem("resource", "resource {value} has characters a route path cannot have", value)
    return value.removeprefix("/")


def placeholders_of(resource: str) -> tuple[ClaimPath, ...]:
    """The claim paths of ``resource``'s ``{claim:<path>}`` placeholders, in order."""
    if "{" not in resource:
        return ()
    return tuple(parse_claim_path(text) for text in PLACEHOLDER.findall(resource))


def _resource_chars(resource: str) -> int:
    # A placeholder counts as the longest value it can be filled with.
    if "{" not in resource:
        return len(resource)
    return len(PLACEHOLDER.sub("", resource)) + MAX_PLACEHOLDER_VALUE * len(PLACEHOLDER.findall(resource))


def _scope(value: str) -> str:
    if not _SCOPE.fullmatch(value):
        raise FieldProblem("scope", "scope {value} is not one scope token (no spaces, quotes or backslashes)", value)
    return value


def _control(char: str) -> bool:
    return unicodedata.category(char) in ("Cc", "Cs", "Zl", "Zp")


def grant_value_rule(kind: str) -> Callable[[str], str]:
    """The rule for a value of ``kind``: a scope token for scopes; for any other kind 1 to
    ``MAX_GRANT_VALUE`` characters, no control characters, no surrounding whitespace
    (spaces inside are kept: an Okta group may be called ``Pet Readers``)."""
    if kind == SCOPE:
        return _scope

    def rule(value: str) -> str:
        if not value or len(value) > MAX_GRANT_VALUE or value != value.strip() or any(map(_control, value)):
            raise FieldProblem(kind, f"{kind} {{value}} must be 1-{MAX_GRANT_VALUE} characters without control "
                               "characters or surrounding whitespace", value)
        return value

    return rule


def _kind(value: str) -> str:
    if KIND_PATTERN.fullmatch(value) is None:
        raise FieldProblem("kind", "grant kind {value} is not a kind name (a lower-case letter, then up to 31 of "
                           "a-z 0-9 _ -)", value)
    return value


def needs_text(member: Mapping[str, Any]) -> str:
    """The canonical JSON of a record's grant member (``{"allOf": ...}``, ``{"authenticated": true}``):
    sorted keys, no spaces between tokens, ASCII. What digests hash and stores keep."""
    return json.dumps(member, sort_keys=True, separators=(",", ":"))


def requirement_text(requirement: Iterable[str]) -> str:
    """The needs text of a requirement given as grant keys: the scope itself for one scope,
    ``AUTHENTICATED`` for none, else ``{"allOf":{kind:[sorted values]}}``."""
    keys = frozenset(requirement)
    if not keys:
        return AUTHENTICATED
    if NOBODY_KEY in keys:
        return NOBODY
    if len(keys) == 1:
        (key,) = keys
        kind, value = split_grant_key(key)
        if kind == SCOPE:
            return value
    by_kind: dict[str, list[str]] = {}
    for key in keys:
        kind, value = split_grant_key(key)
        by_kind.setdefault(kind, []).append(value)
    return needs_text({"allOf": {kind: sorted(values) for kind, values in by_kind.items()}})


def requirement_of(needs: str) -> frozenset[str]:
    """The grant keys a needs text stands for (``requirement_text``'s inverse).

    Raises:
        ValueError: ``needs`` is JSON but not a canonical member.
    """
    if not is_member_json(needs):
        return frozenset((needs,))
    member = json.loads(needs)
    if member == {"authenticated": True}:
        return frozenset()
    if member == {"nobody": True}:
        return frozenset((NOBODY_KEY,))
    all_of = member.get("allOf") if isinstance(member, dict) and len(member) == 1 else None
    if not isinstance(all_of, dict):
        raise ValueError(f"not a requirement: {needs!r}")
    return frozenset(grant_key(kind, value) for kind, values in all_of.items() for value in values)


def needs_of(record: Mapping[str, Any]) -> str | None:
    """The needs text of a record *as written* (no validation): its ``scope`` string, or the
    canonical JSON of its ``allOf``/``authenticated`` member; ``None`` for anything else
    (several members, or another shape). Readers of snapshots hash this for the digest."""
    found = [name for name in GRANT_FIELDS if name in record]
    if len(found) != 1:
        return None
    name = found[0]
    value = record[name]
    if name == "scope":
        return value if type(value) is str else None
    if name in ("allOf", "authenticated", "nobody"):
        return needs_text({name: value})
    return None


#: The rule of each field of a mapping record (by its Python name), shared by the
#: pydantic schema (``core.schema.MappingRecord``) and ``check_record``: each takes the
#: string as written and returns its canonical form, or raises ``FieldProblem``.
FIELD_RULES: Mapping[str, Callable[[str], str]] = {
    "arn": _arn, "stage": _stage, "http_verb": _verb, "resource": _resource, "scope": _scope,
    "group": grant_value_rule("group"), "role": grant_value_rule("role"), "kind": _kind,
}

#: A validated record: ``(arn, stage, verb, resource, needs)``, the verb upper-case or
#: ``*``, the resource without its leading ``/``, ``needs`` its needs text (the scope,
#: or the canonical JSON of what it needs: ``requirement_text``).
Fields = tuple[str, str, str, str, str]


class RecordCheck:
    """The schema's answer for records of the common shape, without building a model.

    The common shape is what ``compile`` and the stores write: a ``dict`` with exactly
    ``arn``, ``stage``, ``httpVerb``, ``resource`` and ``scope`` as ``str`` (and maybe a
    ``description`` that is a ``str`` or ``None``). For such a record whose values pass
    ``FIELD_RULES``, calling the check returns the fields ``core.schema.MappingRecord``
    gives; for everything else (another shape, or a value the rules refuse) it returns
    ``None``, and the pydantic model must decide and say what is wrong. So the check only
    ever shortens the schema, never widens it (a property test holds it to that).

    Records of the other forms get the same treatment when every value has its plain
    JSON type: ``group``/``role`` (a ``str``), ``allOf`` (a ``dict`` of ``str`` kinds to
    ``list``s of ``str``) and ``authenticated`` (``True``), each under the model's own
    rules, so that a snapshot or YAML file with group mappings does not import pydantic
    at a cold start either.

    One check serves one load: it remembers the rules' answers for the values that
    repeat across records (API ARN, stage, method and scope together); a value a rule
    refuses is never remembered.
    """

    __slots__ = ("_routes", "_seen")

    def __init__(self) -> None:
        self._seen: dict[tuple[str, str, str, str], tuple[str, str, str, str]] = {}
        self._routes: dict[tuple[str, str, str], tuple[str, str, str]] = {}

    def __call__(self, raw: Any) -> Fields | None:
        if type(raw) is not dict:
            return None
        try:
            arn, stage, verb, resource, scope = raw["arn"], raw["stage"], raw["httpVerb"], raw["resource"], raw["scope"]
        except KeyError:
            return self._requirement_record(raw)
        if len(raw) != 5:
            # A sixth key may only be the description, and only as the schema types it.
            if len(raw) != 6 or "description" not in raw:
                return None
            description = raw["description"]
            if description is not None and type(description) is not str:
                return None
        if type(arn) is not str or type(stage) is not str or type(verb) is not str or type(scope) is not str:
            return None
        if type(resource) is not str:
            return None
        # _resource's rule, inlined (it runs once per record): the pattern has no braces,
        # so a placeholder takes the rule itself, and a refused value goes to the model.
        if _RESOURCE_MATCH(resource) is None:
            if "{" not in resource:
                return None
            try:
                _resource(resource)
            except FieldProblem:
                return None
        key = (arn, stage, verb, scope)
        known = self._seen.get(key)
        if known is None:
            try:
                known = self._seen[key] = (_arn(arn), _stage(stage), _verb(verb), _scope(scope))
            except FieldProblem:
                return None
        return known[0], known[1], known[2], resource.removeprefix("/"), known[3]

    def _requirement_record(self, raw: dict[Any, Any]) -> Fields | None:
        # A record without ``scope``: exactly the four route fields, maybe a description,
        # and one other grant member, checked as ``core.schema.MappingRecord`` checks it.
        try:
            arn, stage, verb, resource = raw["arn"], raw["stage"], raw["httpVerb"], raw["resource"]
        except KeyError:
            return None
        size = 5
        if "description" in raw:
            description = raw["description"]
            if description is not None and type(description) is not str:
                return None
            size = 6
        if len(raw) != size:
            return None
        name = next(key for key in raw if key not in _RECORD_ROUTE_KEYS)
        if type(arn) is not str or type(stage) is not str or type(verb) is not str or type(resource) is not str:
            return None
        try:
            needs = _requirement_needs(name, raw[name])
            if needs is None:
                return None
            if _RESOURCE_MATCH(resource) is None:
                if "{" not in resource:
                    return None
                _resource(resource)
            route = self._routes.get((arn, stage, verb))
            if route is None:
                route = self._routes[(arn, stage, verb)] = (_arn(arn), _stage(stage), _verb(verb))
        except FieldProblem:
            return None
        return route[0], route[1], route[2], resource.removeprefix("/"), needs


_RECORD_ROUTE_KEYS = frozenset({"arn", "stage", "httpVerb", "resource", "description"})


def _requirement_needs(name: Any, value: Any) -> str | None:
    # The needs text of one grant member other than scope, or None when the model must
    # decide (another member, another type). Raises FieldProblem as the rules do.
    if name == "authenticated":
        return AUTHENTICATED if value is True else None
    if name == "nobody":
        return NOBODY if value is True else None
    if name == "group" or name == "role":
        return requirement_text((grant_key(name, FIELD_RULES[name](value)),)) if type(value) is str else None
    if name != "allOf" or type(value) is not dict:
        return None
    keys = []
    for kind, values in value.items():
        if type(kind) is not str or type(values) is not list:
            return None
        _kind(kind)
        rule = grant_value_rule(kind)
        for item in values:
            if type(item) is not str:
                return None
            rule(item)
            keys.append(grant_key(kind, item))
    return requirement_text(keys) if keys else None


def check_record(raw: Any) -> Fields | None:
    """``RecordCheck`` for one record: its fields in canonical form, or ``None`` when the
    pydantic schema must decide (another shape, or a value the rules refuse)."""
    return RecordCheck()(raw)


class Route(NamedTuple):
    """A granted route; ``verb`` is ``*`` for any method, ``resource`` has no leading slash."""

    api_arn: str
    stage: str
    verb: str
    resource: str


class Grant(NamedTuple):
    """A compiled mapping: the route, what it needs (its needs text: the scope, or the
    canonical JSON of a requirement, ``requirement_of`` reads it), and where it was written."""

    route: Route
    needs: str
    source: str


def resource_arn(route: Route, stage: str, verb: str) -> str:
    """The policy Resource for ``route`` on a concrete ``stage`` and ``verb`` (or ``*``).

    A route parameter is written ``*``: IAM has no one-segment wildcard, so this also
    matches sibling routes; ``PermissionSet.evaluate`` denies those the caller is not
    granted.
    """
    return f"{route.api_arn}/{stage}/{verb}/{resource_glob(route.resource)}"


def resource_glob(resource: str) -> str:
    """``resource`` as an IAM glob: each route parameter (``{id}``, ``{proxy+}``) becomes ``*``."""
    return _PARAMETER.sub("*", resource) if "{" in resource else resource


def is_route_template(route: Route) -> bool:
    """True when ``route`` names one route of the API (a path without ``*`` or placeholders,
    parameters allowed) rather than an IAM glob."""
    return "*" not in route.resource and "{claim:" not in route.resource


def longest_resource_arn(route: Route) -> int:
    """The length of the longest policy Resource ``route`` can be written as.

    A stage ``*`` is written with the request's stage, counted here as the longest
    name API Gateway allows (``MAX_STAGE_NAME``); a verb ``*`` is spelled out per
    method, counted as the longest; a ``{claim:...}`` placeholder as the longest value
    it accepts (``MAX_PLACEHOLDER_VALUE``). Compaction never lengthens a Resource: it
    drops Resources, merges ``**`` into ``*`` and writes methods as ``???`` or ``*``.
    """
    stage = MAX_STAGE_NAME if route.stage == "*" else len(route.stage)
    verb = _LONGEST_VERB if route.verb == ANY_VERB else len(route.verb)
    return len(route.api_arn) + stage + verb + _resource_chars(route.resource) + 3  # three '/'


#: ``on_oversized(api_arn, stage, resources)``: Resources left out of a policy because
#: they are longer than ``MAX_RESOURCE_ARN``.
OversizedReport = Callable[[str, str, tuple[str, ...]], None]


class _Guarded(NamedTuple):
    # A mapping that needs more than the grant it is indexed under, or has placeholders.
    route: Route
    requirement: frozenset[str]
    placeholders: tuple[tuple[str, ClaimPath], ...]  # (the text in the resource, its claim path)


_ApiIndex = dict[tuple[str, str], tuple[Any, ...]]
class Evaluation(NamedTuple):
    """What ``PermissionSet.evaluate`` answers for one caller on one API and stage."""

    #: The sorted policy Resources to allow.
    resources: tuple[str, ...]
    #: The claim names of placeholders that were refused (their mappings granted nothing).
    refused: tuple[str, ...] = ()
    #: Resources to deny explicitly: sibling routes the allowed templates' wildcards
    #: reach that the caller is not granted (``core.siblings``).
    excluded: tuple[str, ...] = ()
    #: Granted routes no single policy can allow exactly for this caller: left out of
    #: ``resources``; the engine allows only the exact request, when it is routed to one.
    per_request: tuple[RouteTemplate, ...] = ()


class PermissionSet:
    """An immutable, indexed set of grants with a version.

    Mappings are indexed by grant key, so a decision costs what the caller holds: a
    single-grant mapping without placeholders sits under its grant as a plain route (a
    scopes-only set has nothing else); a mapping needing several grants sits under one
    of them and is checked as a subset of the caller's grants; an ``authenticated``
    mapping sits under the empty key, always looked at; a mapping with placeholders is
    filled with the caller's claim values (``core.grants.placeholder_value``).

    ``evaluate()`` is memoised in this object's own memo (``core.memo``'s rules): by
    (API, stage, grant set) when no placeholder is involved, else by (API, stage, the
    grants that count, the placeholder values), so two callers with different tenants
    never share an answer. It never returns a Resource longer than
    ``MAX_RESOURCE_ARN``: such a Resource (a stage-``*`` mapping on a long stage, from
    data that skipped ``compile_records``' length rule) is left out, so its route is
    denied, and handed to ``on_oversized`` when given.
    """

    __slots__ = ("_claimed", "_guarded", "_memo", "_on_oversized", "_paths", "_plain", "_plans", "_siblings",
                 "claim_paths", "grant_keys", "grants", "scopes", "version")

    def __init__(
        self, grants: Iterable[Grant], version: str | None = None, *, on_oversized: OversizedReport | None = None
    ) -> None:
        unique: dict[tuple[Route, str], Grant] = {}
        for grant in grants:
            unique.setdefault((grant.route, grant.needs), grant)
        self.grants: tuple[Grant, ...] = tuple(unique.values())
        plain: dict[str, dict[tuple[str, str], list[Route]]] = {}
        guarded: dict[str, dict[tuple[str, str], list[_Guarded]]] = {}
        keys: set[str] = set()
        claimed: set[str] = set()
        requirements: dict[str, frozenset[str]] = {}
        for grant in self.grants:
            route, needs = grant.route, grant.needs
            if needs == NOBODY:
                continue  # grants nothing: only a known route (``siblings``)
            at = (route.api_arn, route.stage)
            has_placeholder = "{claim:" in route.resource
            if not has_placeholder and not is_member_json(needs):
                # The common case (a scope): a plain route under the scope.
                plain.setdefault(needs, {}).setdefault(at, []).append(route)
                continue
            requirement = requirements.get(needs)
            if requirement is None:
                requirement = requirements[needs] = requirement_of(needs)
            if len(requirement) == 1 and not has_placeholder:
                (key,) = requirement
                plain.setdefault(key, {}).setdefault(at, []).append(route)
                continue
            # Indexed under one of its grants (the empty key: any caller); the smallest key,
            # so the same requirement always sits in the same place.
            key = min(requirement) if requirement else ""
            holes = tuple((f"{{claim:{claim_path_text(path)}}}", path) for path in placeholders_of(route.resource))
            guarded.setdefault(key, {}).setdefault(at, []).append(_Guarded(route, requirement, holes))
            keys.update(requirement)
            if holes:
                claimed.add(key)
        self._plain = {key: {k: tuple(v) for k, v in apis.items()} for key, apis in plain.items()}
        self._guarded = {key: {k: tuple(v) for k, v in apis.items()} for key, apis in guarded.items()}
        #: Every grant key some mapping needs (the empty key is none of them).
        self.grant_keys: frozenset[str] = frozenset(keys.union(self._plain))
        #: The scope-kind keys among them.
        self.scopes: frozenset[str] = frozenset(key for key in self.grant_keys if " " not in key)
        self._claimed: frozenset[str] = frozenset(claimed)
        # The claim paths of the placeholders under each claimed key, per (API, stage):
        # what a per-tenant memo key is made of, without walking the mappings.
        self._paths: dict[str, dict[tuple[str, str], tuple[ClaimPath, ...]]] = {
            key: {at: tuple(sorted({path for entry in entries for _, path in entry.placeholders}))
                  for at, entries in self._guarded[key].items()}
            for key in claimed
        }
        #: Every claim path a placeholder of these mappings names, sorted (empty: none).
        self.claim_paths: tuple[ClaimPath, ...] = tuple(sorted(
            {path for places in self._paths.values() for paths in places.values() for path in paths}))
        self.version: str = version or content_digest((*g.route, g.needs) for g in self.grants)
        self._memo: Memo[tuple[Any, ...], Evaluation] = Memo()
        self._plans: Memo[tuple[str, str, frozenset[str]], tuple[frozenset[str], tuple[ClaimPath, ...]]] = Memo()
        self._on_oversized = on_oversized
        # The SiblingRoutes of each (API, stage) decided, built when first needed; None where
        # no named route can reach a sibling.
        self._siblings: Memo[tuple[str, str], SiblingRoutes | None] = Memo()

    def __len__(self) -> int:
        return len(self.grants)

    def siblings(self, api_arn: str, stage: str) -> SiblingRoutes | None:
        """The routes the mappings name on one API and stage: route templates and literal
        paths, stage-``*`` mappings included (``core.siblings``); ``None`` when none of them
        can reach a sibling (no route parameter, no ANY verb): then nothing is taken back."""
        key = (api_arn, stage)
        if key in self._siblings:
            return self._siblings[key]
        places = {key, (api_arn, "*")}
        named = {(g.route.verb, g.route.resource) for g in self.grants
                 if (g.route.api_arn, g.route.stage) in places and is_route_template(g.route)}
        index = None
        # Guard: only a route parameter or an ANY verb reaches past its own route; without
        # one (plain globs and literal paths) the sibling rules have nothing to do, and their
        # module is never imported.
        if any(verb == ANY_VERB or "{" in resource for verb, resource in named):
            from policy_engine.core.siblings import SiblingRoutes

            index = SiblingRoutes(named, resource_glob)
        return self._siblings.remember(key, index)

    def request_resource(self, evaluation: Evaluation, request: MethodArn) -> str | None:
        """The Resource that allows ``request`` alone, when API Gateway routes it to one of
        ``evaluation.per_request`` (granted routes no single policy allows exactly): its
        methodArn as it is, when that holds no IAM wildcard, fits ``MAX_RESOURCE_ARN`` and
        no Deny of the evaluation matches it. ``None`` otherwise."""
        arn = str(request)
        if "*" in arn or "?" in arn or len(arn) > MAX_RESOURCE_ARN:
            return None
        siblings = self.siblings(request.api_arn, request.stage)
        if siblings is None:
            return None
        route = route_for(request.verb, "/" + request.path, siblings.templates)
        if route not in evaluation.per_request or any(glob_matches(r, arn) for r in evaluation.excluded):
            return None
        return arn

    def _reach(self, held: frozenset[str]) -> Iterable[str]:
        # The index keys to look at: the grants held, and the empty key of 'authenticated' mappings.
        return (*held, "") if "" in self._guarded else held

    def _granted(
        self, held: frozenset[str], api_arn: str, stage: str, claims: Mapping[str, Any] | None
    ) -> tuple[list[Route], set[str]]:
        found: list[Route] = []
        refused: set[str] = set()
        places = ((api_arn, stage), (api_arn, "*"))
        for key in self._reach(held):
            by_api = self._plain.get(key)
            if by_api is not None:
                found.extend(by_api.get(places[0], ()))
                found.extend(by_api.get(places[1], ()))
            guarded = self._guarded.get(key)
            if guarded is None:
                continue
            for place in places:
                for entry in guarded.get(place, ()):
                    if not entry.requirement <= held:
                        continue
                    route = entry.route
                    if entry.placeholders:
                        resource, missing = route.resource, False
                        for text, path in entry.placeholders:
                            value = None if claims is None else placeholder_value(claims, path)
                            if value is None:
                                refused.add(claim_path_text(path))
                                missing = True
                            else:
                                resource = resource.replace(text, value)
                        if missing:
                            continue
                        route = route._replace(resource=resource)
                    found.append(route)
        return found, refused

    def routes(
        self, grants: frozenset[str], api_arn: str, stage: str, claims: Mapping[str, Any] | None = None
    ) -> list[Route]:
        """Routes granted to ``grants`` on one API and stage (stage-``*`` mappings included),
        placeholders filled from ``claims`` (a mapping with a refused one is left out)."""
        return self._granted(grants & self.grant_keys, api_arn, stage, claims)[0]

    def granting(self, grants: frozenset[str], api_arn: str, stage: str) -> frozenset[str]:
        """Those of ``grants`` that take part in granting something on one API and stage
        (placeholders aside)."""
        held = grants & self.grant_keys
        places = ((api_arn, stage), (api_arn, "*"))
        out: set[str] = set()
        for key in held:
            by_api = self._plain.get(key)
            if by_api is not None and (places[0] in by_api or places[1] in by_api):
                out.add(key)
        for key in self._reach(held):
            guarded = self._guarded.get(key)
            if guarded is not None:
                for place in places:
                    for entry in guarded.get(place, ()):
                        if entry.requirement <= held:
                            out.update(entry.requirement)
        return frozenset(out)

    def resources(
        self, grants: frozenset[str], api_arn: str, stage: str, *, claims: Mapping[str, Any] | None = None,
        compacted: bool = True,
    ) -> tuple[str, ...]:
        """Sorted policy Resources granted to ``grants`` on ``api_arn``/``stage``: ``evaluate``'s first part."""
        return self.evaluate(grants, api_arn, stage, claims=claims, compacted=compacted)[0]

    def evaluate(
        self, grants: frozenset[str], api_arn: str, stage: str, *, claims: Mapping[str, Any] | None = None,
        compacted: bool = True,
    ) -> Evaluation:
        """Sorted policy Resources granted to ``grants`` (the caller's grant keys) on
        ``api_arn``/``stage``, and the claim names of the placeholders refused on the way.

        The result grants exactly what the mappings grant: a ``*`` verb is spelled out
        per method unless the resource is ``*`` too, because in a policy ``*`` also
        crosses ``/`` and ``stage/*/pets`` would allow ``GET /x/pets``. With
        ``compacted`` (the default, memoised) the list is then shrunk by
        ``core.compaction.compact_resources``, which allows exactly the same requests.
        Placeholders are filled from ``claims`` (the token's claims); without them,
        every placeholder is refused.
        """
        if compacted:
            # Guard: first by the caller's own grant set (the same object for every token
            # with the same grant claims); only answers no placeholder took part in are here.
            cached = self._memo.get((api_arn, stage, grants))
            if cached is not None:
                return cached
        # Which placeholders this grant set reaches depends on the grant set only: remembered
        # per grant set (the same rules), so a tenant's decision only reads its claim values.
        plan = self._plans.get((api_arn, stage, grants))
        if plan is None:
            held = grants & self.grant_keys
            claimed = self._claimed
            found: tuple[ClaimPath, ...] = ()
            if claimed and any(k in claimed for k in self._reach(held)):
                found = tuple(sorted({path for k in self._reach(held) if k in claimed
                                      for place in ((api_arn, stage), (api_arn, "*"))
                                      for path in self._paths[k].get(place, ())}))
            plan = self._plans.remember((api_arn, stage, grants), (held, found))
        held, paths = plan
        key: tuple[Any, ...] = (api_arn, stage, held)
        per_claims = bool(paths)
        if per_claims:
            values = tuple(None if claims is None else placeholder_value(claims, p) for p in paths)
            key = (api_arn, stage, held, paths, values)
        if compacted:
            cached = self._memo.get(key)
            if cached is not None:
                if not per_claims:
                    self._memo.remember((api_arn, stage, grants), cached)
                return cached
        routes, refused = self._granted(held, api_arn, stage, claims)
        excluded: tuple[str, ...] = ()
        per_request: tuple[RouteTemplate, ...] = ()
        arns: set[str] = set()
        siblings = self.siblings(api_arn, stage)
        if siblings is not None:
            named = [(route.verb, route.resource) for route in routes if (route.verb, route.resource) in siblings]
            # Guard: only a route parameter or an ANY verb reaches past its own route.
            if any(verb == ANY_VERB or "{" in resource for verb, resource in named):
                prefix = f"{api_arn}/{stage}/"
                globs = tuple(arn[len(prefix):] for route in routes if (route.verb, route.resource) not in siblings
                              for arn in _route_arns(route, stage))
                verdict = siblings.verdict(named, globs)
                excluded = tuple(prefix + tail for tail in verdict.denied)
                unsafe = set(verdict.unsafe)
                if any(len(arn) > MAX_RESOURCE_ARN for arn in excluded):
                    # A Deny API Gateway would refuse (the whole response fails): allow the
                    # reaching templates per request instead, and deny nothing.
                    unsafe |= {key for key in named if key[0] == ANY_VERB or "{" in key[1]}
                    excluded = ()
                per_request = tuple(siblings.template(key) for key in sorted(unsafe))
                # The named routes as SiblingRoutes writes them (its globs are what it reasoned about).
                routed = {key for key in named if key not in unsafe}
                routes = [route for route in routes if (route.verb, route.resource) not in siblings]
                arns.update(prefix + glob for key in routed for glob in siblings.globs(key))
        for route in routes:
            arns.update(_route_arns(route, stage))
        # Left out before compaction: a merged Resource may stand for shorter ones too,
        # and dropping it would deny routes that fit. Never replaced by a wider pattern.
        oversized = [arn for arn in arns if len(arn) > MAX_RESOURCE_ARN]
        if oversized:
            arns.difference_update(oversized)
            if self._on_oversized is not None:
                self._on_oversized(api_arn, stage, tuple(sorted(oversized)))
        gone = tuple(sorted(refused))
        if not compacted:
            return Evaluation(tuple(sorted(arns)), gone, excluded, per_request)
        result = Evaluation(compact_resources(arns), gone, compact_resources(excluded) if excluded else (), per_request)
        self._memo.remember(key, result)
        if not per_claims:
            self._memo.remember((api_arn, stage, grants), result)
        return result


def _route_arns(route: Route, stage: str) -> tuple[str, ...]:
    # A '*' verb is spelled out per method unless the resource is '*' too: in a policy '*'
    # also crosses '/', and stage/*/pets would allow GET /x/pets.
    if route.verb != ANY_VERB:
        return (resource_arn(route, stage, route.verb),)
    if route.resource == "*":
        return (resource_arn(route, stage, "*"),)
    return tuple(resource_arn(route, stage, verb) for verb in HTTP_VERBS)


def content_digest(rows: Iterable[tuple[str, str, str, str, str]]) -> str:
    """The content hash of mappings given as ``(arn, stage, verb, resource, needs)`` rows,
    the resource without its leading ``/``: equal sets of mappings give equal digests,
    whatever their order or repetition. This is a loaded ``PermissionSet``'s version and
    a published snapshot's digest: one function, so a reader can prove it loaded exactly
    what was published.

    It hashes the sorted distinct rows, each written as ``json.dumps`` writes a list of
    strings; built from ``json``'s own string encoder, which is three times faster than
    calling ``json.dumps`` per row (a test holds the two equal).
    """
    lines = sorted({f"[{_quote(a)}, {_quote(b)}, {_quote(c)}, {_quote(d)}, {_quote(e)}]" for a, b, c, d, e in rows})
    return "sha256:" + hashlib.sha256("\n".join(lines).encode()).hexdigest()[:16]



Locate = Callable[[tuple[int | str, ...]], str]

_new_tuple = tuple.__new__


def compile_records(
    records: Sequence[Any],
    locate: Locate,
    *,
    version: str | None = None,
    on_oversized: OversizedReport | None = None,
) -> PermissionSet:
    """Validate raw mapping records and compile them into a ``PermissionSet``.

    ``locate(path)`` turns a path inside ``records`` (index, field) into a place a
    person can find, such as ``permissions/pets.yaml:14``.

    A mapping whose longest Resource (``longest_resource_arn``) passes
    ``MAX_RESOURCE_ARN`` is refused, unless ``on_oversized`` is given: the runtime's
    loader passes it, so that a store published by an older release still loads and
    only the Resources that are too long for the request's stage are left out of
    policies (and reported), instead of every caller failing closed.

    Raises:
        PermissionsError: every problem found, each prefixed with its place; nothing is
            compiled unless all records are valid.
    """
    problems: list[str] = []
    grants: list[Grant] = []
    check = RecordCheck()
    for index, raw in enumerate(records):
        fields = check(raw)
        if fields is None:
            # Another shape, or a refused value: the pydantic schema decides and names the problem.
            from policy_engine.core.schema import SchemaError, describe, schema_fields

            try:
                fields = schema_fields(raw)
            except SchemaError as exc:
                problems.extend(describe(exc, (index,), locate))
                continue
        arn, stage, verb, resource, needs = fields
        # tuple.__new__ builds the same NamedTuples without their Python-level __new__:
        # a cold start builds one per mapping (10,000 of them in a large table).
        route = _new_tuple(Route, (arn, stage, verb, resource))
        # A cheap upper bound first (a method is at most _LONGEST_VERB characters).
        chars = len(resource) if "{" not in resource else _resource_chars(resource)
        bound = len(arn) + chars + (MAX_STAGE_NAME if stage == "*" else len(stage)) + _LONGEST_VERB + 3
        if bound > MAX_RESOURCE_ARN and on_oversized is None:
            longest = longest_resource_arn(route)
            if longest > MAX_RESOURCE_ARN:
                why = (f" (stage '*' is written with the request's stage, up to {MAX_STAGE_NAME} characters)"
                       if route.stage == "*" else "")
                if "{claim:" in resource:
                    why += f" (a placeholder counts as its longest value, {MAX_PLACEHOLDER_VALUE} characters)"
                problems.append(
                    f"{locate((index, 'resource'))}: resource makes a policy Resource of up to {longest} characters"
                    f"{why}; API Gateway allows {MAX_RESOURCE_ARN}"
                )
                continue
        grants.append(_new_tuple(Grant, (route, needs, locate((index,)))))
    if problems:
        raise PermissionsError(problems)
    return PermissionSet(grants, version, on_oversized=on_oversized)


def normalize_records(
    document: Any, locate: Locate, problems: list[str] | None = None
) -> tuple[list[Any], Locate]:
    """Flatten one permission document into mapping records.

    Accepts the AWS blog form (a list of mappings, bare or under ``permissions:``) and
    the grouped form::

        apis:
          - arn: arn:aws:execute-api:us-east-1:123456789012:a1b2c3d4e5
            stages: [dev, prod]
            routes:
              GET /pets: [pets:read, {group: pet-readers}]
              POST /pets: [{allOf: {scope: [pets:write, pets:read]}}]
              GET /health: [{authenticated: true}]

    A route's items are OR'd: each is a scope, or an object with exactly one grant
    member of a record (``scope``, ``group``, ``role``, ``allOf``, ``authenticated``).
    An empty list is ``nobody: true``: the route exists and no caller is granted it.

    Returns the records and a ``locate`` for paths into those records. With
    ``problems``, the grouped form's shape problems (a bad group, route or item) are
    added to it and the records of everything else are returned, so that one run can
    report those records' own problems too; the caller must then refuse the whole load.

    Raises:
        PermissionsError: the document has neither shape; without ``problems``, also any
            problem of the grouped form's shape.
    """
    if isinstance(document, list):
        return document, locate
    if not isinstance(document, dict):
        raise PermissionsError(f"{locate(())}: expected a list of mappings, 'permissions:' or 'apis:'")
    unknown = sorted(set(document) - {"permissions", "apis"})
    if unknown:
        raise PermissionsError(
            f"{locate((unknown[0],))}: unknown top-level key {unknown[0]!r} (expected 'permissions' or 'apis')"
        )
    records: list[Any] = []
    origins: list[Callable[[tuple[int | str, ...]], str]] = []
    if "permissions" in document:
        listed = document["permissions"]
        if not isinstance(listed, list):
            raise PermissionsError(f"{locate(('permissions',))}: 'permissions' must be a list of mappings")
        for i, item in enumerate(listed):
            records.append(item)

            def origin(sub: tuple[int | str, ...], i: int = i) -> str:
                return locate(("permissions", i, *sub))

            origins.append(origin)
    if "apis" in document:
        found = _expand_grouped(document["apis"], locate, records, origins)
        if found and problems is None:
            raise PermissionsError(found)
        if problems is not None:
            problems.extend(found)

    def locate_record(path: tuple[int | str, ...]) -> str:
        if not path:
            return locate(())
        index = path[0]
        assert isinstance(index, int)
        return origins[index](path[1:])

    return records, locate_record


def _expand_grouped(apis: Any, locate: Locate, records: list[Any], origins: list[Locate]) -> list[str]:
    # The records of every well-formed group, route and item; the problems of the others.
    if not isinstance(apis, list):
        return [f"{locate(('apis',))}: 'apis' must be a list of API groups"]
    problems = []
    for a, group in enumerate(apis):
        where = ("apis", a)
        if not isinstance(group, dict):
            problems.append(f"{locate(where)}: an API group must have arn, stages and routes")
            continue
        extra = sorted(set(group) - {"arn", "stages", "routes", "description"})
        missing = [k for k in ("arn", "stages", "routes") if k not in group]
        if extra or missing:
            what = f"unknown field {extra[0]!r}" if extra else f"{missing[0]} is required"
            problems.append(f"{locate((*where, (extra or [None])[0]) if extra else where)}: {what}")
            continue
        stages, routes = group["stages"], group["routes"]
        if isinstance(stages, str):
            stages = [stages]
        if not isinstance(stages, list) or not stages:
            problems.append(f"{locate((*where, 'stages'))}: stages must be a non-empty list")
            continue
        if not isinstance(routes, dict) or not routes:
            problems.append(f"{locate((*where, 'routes'))}: routes must map 'VERB /path' to a list of scopes or grants")
            continue
        for route_key, items in routes.items():
            route_where = (*where, "routes", route_key)
            verb, _, path = str(route_key).partition(" ")
            if not path or " " in path.strip():
                problems.append(f"{locate(route_where)}: route {route_key!r} must read 'VERB /path'")
                continue
            if isinstance(items, (str, dict)):
                items = [items]
            if not isinstance(items, list):
                problems.append(f"{locate(route_where)}: route {route_key!r} needs a list of scopes or grants "
                                "([] when the route exists and no caller is granted it)")
                continue
            if not items:
                items = [{"nobody": True}]
            for s_i, item in enumerate(items):
                # An item is a scope, or an object with one of the record's grant members.
                member = {"scope": item} if not isinstance(item, dict) else item
                if isinstance(item, dict) and len(item) != 1:
                    given = [name for name in GRANT_FIELDS if name in item]
                    problems.append(
                        f"{locate((*route_where, s_i))}: an item has {' and '.join(given)}: one grant per item "
                        "(a route's items are OR'd; for several grants at once use allOf)" if len(given) > 1 else
                        f"{locate((*route_where, s_i))}: an item is a scope or an object with exactly "
                        f"one of {', '.join(GRANT_FIELDS)}")
                    continue
                for stage in stages:
                    records.append({
                        "arn": group["arn"], "stage": stage, "httpVerb": verb, "resource": path.strip(), **member,
                    })

                    def origin(sub: tuple[int | str, ...], route_where: tuple[Any, ...] = route_where, s_i: int = s_i,
                               where: tuple[int | str, ...] = where, nested: bool = isinstance(item, dict)) -> str:
                        field = sub[0] if sub else None
                        if field == "arn":
                            return locate((*where, "arn"))
                        if field == "stage":
                            return locate((*where, "stages"))
                        if field is None or field in ("httpVerb", "resource"):
                            return locate(route_where)
                        return locate((*route_where, s_i, *sub) if nested else (*route_where, s_i))

                    origins.append(origin)
    return problems
