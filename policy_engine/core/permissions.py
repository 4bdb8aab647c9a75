"""The permission model: what a mapping means, how it is validated, how it is indexed.

A mapping ``(arn, stage, httpVerb, resource, scope)`` grants a request
``(api, stage, VERB, path)`` to a caller holding ``scope`` when the API ARN is equal,
the stage is equal (or the mapping's stage is ``*``), the verb is equal (or the
mapping's verb is ``*``/``ANY``), and the path matches ``resource`` by API Gateway's
policy rule: ``*`` stands for any run of characters, ``/`` included.

Raw records (from YAML, a compiled snapshot, DynamoDB or S3) are validated by one
schema and compiled into a ``PermissionSet``: plain tuples indexed by scope, so a
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
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from json.encoder import encode_basestring_ascii as _quote
from typing import Any, NamedTuple

from policy_engine.core.arn import API_ARN_PATTERN, HTTP_VERBS, MAX_STAGE_NAME
from policy_engine.core.compaction import compact_resources
from policy_engine.core.memo import Memo
from policy_engine.errors import PermissionsError

__all__ = [
    "ANY_VERB",
    "FIELD_RULES",
    "HTTP_VERBS",
    "MAX_RESOURCE_ARN",
    "FieldProblem",
    "Fields",
    "Grant",
    "PermissionSet",
    "RecordCheck",
    "Route",
    "check_record",
    "compile_records",
    "content_digest",
    "longest_resource_arn",
    "normalize_records",
    "resource_arn",
]

# A mapping may name one of HTTP_VERBS, or ``*`` (or ``ANY``) for all of them.
ANY_VERB = "*"

#: API Gateway refuses a policy Resource longer than this (Lambda authorizer output,
#: API Gateway developer guide): the response fails with 500.
MAX_RESOURCE_ARN = 512

# The longest method a Resource can name: what a '*' verb is spelled out as.
_LONGEST_VERB = max(map(len, HTTP_VERBS))

# HTTP APIs also have the automatically deployed stage "$default".
_STAGE = re.compile(rf"\$default|[A-Za-z0-9_-]{{1,{MAX_STAGE_NAME}}}")
# Path characters API Gateway routes, plus the policy wildcard '*'. No '?' (IAM's
# one-character wildcard would be read as a query string by people) and no '{...}'.
_RESOURCE = re.compile(r"[A-Za-z0-9\-._~!$&'()*+,;=:@%/]*")
_RESOURCE_MATCH = _RESOURCE.fullmatch
# RFC 6749 scope-token characters.
_SCOPE = re.compile(r"[\x21\x23-\x5b\x5d-\x7e]+")


class FieldProblem(ValueError):
    """A field value the schema refuses: an error ``kind`` and a message naming ``{value}``."""

    def __init__(self, kind: str, template: str, value: str) -> None:
        super().__init__(template.format(value=repr(value)))
        self.kind, self.template, self.value = kind, template, value


def _arn(value: str) -> str:
    if not API_ARN_PATTERN.fullmatch(value):
        raise FieldProblem(
            "arn", "arn {value} is not an API ARN (arn:<partition>:execute-api:<region>:<account-id>:<api-id>)", value
        )
    return value


def _stage(value: str) -> str:
    if value != "*" and not _STAGE.fullmatch(value):
        raise FieldProblem("stage", "stage {value} is not a stage name (letters, digits, '-', '_') or '*'", value)
    return value


def _verb(value: str) -> str:
    verb = value.upper()
    if verb == "ANY":
        verb = ANY_VERB
    if verb != ANY_VERB and verb not in HTTP_VERBS:
        raise FieldProblem("httpVerb", "httpVerb {value} is not an HTTP method (or '*'/'ANY')", value)
    return verb


def _resource(value: str) -> str:
    if "{" in value or "}" in value:
        raise FieldProblem(
            "resource",
            "resource {value} uses a path template; API Gateway's methodArn carries the real path, "
            "so write '*' where the parameter goes",
            value,
        )
    if not _RESOURCE.fullmatch(value):
        raise FieldProblem("resource", "resource {value} has characters a route path cannot have", value)
    return value.removeprefix("/")


def _scope(value: str) -> str:
    if not _SCOPE.fullmatch(value):
        raise FieldProblem("scope", "scope {value} is not one scope token (no spaces, quotes or backslashes)", value)
    return value


#: The rule of each field of a mapping record (by its Python name), shared by the
#: pydantic schema (``core.schema.MappingRecord``) and ``check_record``: each takes the
#: string as written and returns its canonical form, or raises ``FieldProblem``.
FIELD_RULES: Mapping[str, Callable[[str], str]] = {
    "arn": _arn, "stage": _stage, "http_verb": _verb, "resource": _resource, "scope": _scope,
}

#: A validated record: ``(arn, stage, verb, resource, scope)``, the verb upper-case or
#: ``*``, the resource without its leading ``/``.
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

    One check serves one load: it remembers the rules' answers for the values that
    repeat across records (API ARN, stage, method and scope together); a value a rule
    refuses is never remembered.
    """

    __slots__ = ("_seen",)

    def __init__(self) -> None:
        self._seen: dict[tuple[str, str, str, str], tuple[str, str, str, str]] = {}

    def __call__(self, raw: Any) -> Fields | None:
        if type(raw) is not dict:
            return None
        try:
            arn, stage, verb, resource, scope = raw["arn"], raw["stage"], raw["httpVerb"], raw["resource"], raw["scope"]
        except KeyError:
            return None
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
        # so a path template fails here too, and the model words why.
        if _RESOURCE_MATCH(resource) is None:
            return None
        key = (arn, stage, verb, scope)
        known = self._seen.get(key)
        if known is None:
            try:
                known = self._seen[key] = (_arn(arn), _stage(stage), _verb(verb), _scope(scope))
            except FieldProblem:
                return None
        return known[0], known[1], known[2], resource.removeprefix("/"), known[3]


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
    """A compiled mapping: the route, the scope that grants it, and where it was written."""

    route: Route
    scope: str
    source: str


def resource_arn(route: Route, stage: str, verb: str) -> str:
    """The policy Resource for ``route`` on a concrete ``stage`` and ``verb`` (or ``*``)."""
    return f"{route.api_arn}/{stage}/{verb}/{route.resource}"


def longest_resource_arn(route: Route) -> int:
    """The length of the longest policy Resource ``route`` can be written as.

    A stage ``*`` is written with the request's stage, counted here as the longest
    name API Gateway allows (``MAX_STAGE_NAME``); a verb ``*`` is spelled out per
    method, counted as the longest. Compaction never lengthens a Resource: it drops
    Resources, merges ``**`` into ``*`` and writes methods as ``???`` or ``*``.
    """
    stage = MAX_STAGE_NAME if route.stage == "*" else len(route.stage)
    verb = _LONGEST_VERB if route.verb == ANY_VERB else len(route.verb)
    return len(route.api_arn) + stage + verb + len(route.resource) + 3  # three '/'


#: ``on_oversized(api_arn, stage, resources)``: Resources left out of a policy because
#: they are longer than ``MAX_RESOURCE_ARN``.
OversizedReport = Callable[[str, str, tuple[str, ...]], None]


class PermissionSet:
    """An immutable, indexed set of grants with a version.

    ``resources()`` is memoised per (API, stage, scope set) in this object's own memo
    (``core.memo``'s rules): the same callers hit the same answer until a new version
    replaces the whole object. It never returns a Resource longer than
    ``MAX_RESOURCE_ARN``: such a Resource (a stage-``*`` mapping on a long stage, from
    data that skipped ``compile_records``' length rule) is left out, so its route is
    denied, and handed to ``on_oversized`` when given.
    """

    __slots__ = ("_index", "_memo", "_on_oversized", "grants", "scopes", "version")

    def __init__(
        self, grants: Iterable[Grant], version: str | None = None, *, on_oversized: OversizedReport | None = None
    ) -> None:
        unique: dict[tuple[Route, str], Grant] = {}
        for grant in grants:
            unique.setdefault((grant.route, grant.scope), grant)
        self.grants: tuple[Grant, ...] = tuple(unique.values())
        index: dict[str, dict[tuple[str, str], list[Route]]] = {}
        for grant in self.grants:
            by_api = index.setdefault(grant.scope, {})
            by_api.setdefault((grant.route.api_arn, grant.route.stage), []).append(grant.route)
        self._index = {scope: {k: tuple(v) for k, v in apis.items()} for scope, apis in index.items()}
        self.scopes: frozenset[str] = frozenset(self._index)
        self.version: str = version or content_digest((*g.route, g.scope) for g in self.grants)
        self._memo: Memo[tuple[str, str, frozenset[str]], tuple[str, ...]] = Memo()
        self._on_oversized = on_oversized

    def __len__(self) -> int:
        return len(self.grants)

    def routes(self, scopes: frozenset[str], api_arn: str, stage: str) -> list[Route]:
        """Routes granted to ``scopes`` on one API and stage (stage-``*`` mappings included)."""
        found: list[Route] = []
        for scope in scopes & self.scopes:
            by_api = self._index[scope]
            found.extend(by_api.get((api_arn, stage), ()))
            found.extend(by_api.get((api_arn, "*"), ()))
        return found

    def granting_scopes(self, scopes: frozenset[str], api_arn: str, stage: str) -> frozenset[str]:
        """Those of ``scopes`` that grant something on one API and stage."""
        return frozenset(
            scope for scope in scopes & self.scopes
            if (api_arn, stage) in self._index[scope] or (api_arn, "*") in self._index[scope]
        )

    def resources(
        self, scopes: frozenset[str], api_arn: str, stage: str, *, compacted: bool = True
    ) -> tuple[str, ...]:
        """Sorted policy Resources granted to ``scopes`` on ``api_arn``/``stage``.

        The result grants exactly what the mappings grant: a ``*`` verb is spelled out
        per method unless the resource is ``*`` too, because in a policy ``*`` also
        crosses ``/`` and ``stage/*/pets`` would allow ``GET /x/pets``. With
        ``compacted`` (the default, memoised) the list is then shrunk by
        ``core.compaction.compact_resources``, which allows exactly the same requests.
        """
        if compacted:
            # Guard: first by the caller's own scope set (the same object for every token
            # with the same scope claim), then by the part of it that grants anything.
            cached = self._memo.get((api_arn, stage, scopes))
            if cached is not None:
                return cached
        key = (api_arn, stage, scopes & self.scopes)
        if compacted:
            cached = self._memo.get(key)
            if cached is not None:
                self._memo.remember((api_arn, stage, scopes), cached)
                return cached
        arns: set[str] = set()
        for route in self.routes(key[2], api_arn, stage):
            if route.verb != ANY_VERB:
                arns.add(resource_arn(route, stage, route.verb))
            elif route.resource == "*":
                arns.add(resource_arn(route, stage, "*"))
            else:
                arns.update(resource_arn(route, stage, verb) for verb in HTTP_VERBS)
        # Left out before compaction: a merged Resource may stand for shorter ones too,
        # and dropping it would deny routes that fit. Never replaced by a wider pattern.
        oversized = [arn for arn in arns if len(arn) > MAX_RESOURCE_ARN]
        if oversized:
            arns.difference_update(oversized)
            if self._on_oversized is not None:
                self._on_oversized(api_arn, stage, tuple(sorted(oversized)))
        if not compacted:
            return tuple(sorted(arns))
        result = compact_resources(arns)
        self._memo.remember(key, result)
        self._memo.remember((api_arn, stage, scopes), result)
        return result


def content_digest(rows: Iterable[tuple[str, str, str, str, str]]) -> str:
    """The content hash of mappings given as ``(arn, stage, verb, resource, scope)`` rows,
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
        arn, stage, verb, resource, scope = fields
        # tuple.__new__ builds the same NamedTuples without their Python-level __new__:
        # a cold start builds one per mapping (10,000 of them in a large table).
        route = _new_tuple(Route, (arn, stage, verb, resource))
        # A cheap upper bound first (a method is at most _LONGEST_VERB characters).
        bound = len(arn) + len(resource) + (MAX_STAGE_NAME if stage == "*" else len(stage)) + _LONGEST_VERB + 3
        if bound > MAX_RESOURCE_ARN and on_oversized is None:
            longest = longest_resource_arn(route)
            if longest > MAX_RESOURCE_ARN:
                why = (f" (stage '*' is written with the request's stage, up to {MAX_STAGE_NAME} characters)"
                       if route.stage == "*" else "")
                problems.append(
                    f"{locate((index, 'resource'))}: resource makes a policy Resource of up to {longest} characters"
                    f"{why}; API Gateway allows {MAX_RESOURCE_ARN}"
                )
                continue
        grants.append(_new_tuple(Grant, (route, scope, locate((index,)))))
    if problems:
        raise PermissionsError(problems)
    return PermissionSet(grants, version, on_oversized=on_oversized)


def normalize_records(document: Any, locate: Locate) -> tuple[list[Any], Locate]:
    """Flatten one permission document into mapping records.

    Accepts the AWS blog form (a list of mappings, bare or under ``permissions:``) and
    the grouped form::

        apis:
          - arn: arn:aws:execute-api:us-east-1:123456789012:a1b2c3d4e5
            stages: [dev, prod]
            routes:
              GET /pets: [pets:read]
              POST /pets: [pets:write]

    Returns the records and a ``locate`` for paths into those records.

    Raises:
        PermissionsError: the document has neither shape.
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
        _expand_grouped(document["apis"], locate, records, origins)

    def locate_record(path: tuple[int | str, ...]) -> str:
        if not path:
            return locate(())
        index = path[0]
        assert isinstance(index, int)
        return origins[index](path[1:])

    return records, locate_record


def _expand_grouped(apis: Any, locate: Locate, records: list[Any], origins: list[Locate]) -> None:
    if not isinstance(apis, list):
        raise PermissionsError(f"{locate(('apis',))}: 'apis' must be a list of API groups")
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
            problems.append(f"{locate((*where, 'routes'))}: routes must map 'VERB /path' to a list of scopes")
            continue
        for route_key, scopes in routes.items():
            route_where = (*where, "routes", route_key)
            verb, _, path = str(route_key).partition(" ")
            if not path or " " in path.strip():
                problems.append(f"{locate(route_where)}: route {route_key!r} must read 'VERB /path'")
                continue
            if isinstance(scopes, str):
                scopes = [scopes]
            if not isinstance(scopes, list) or not scopes:
                problems.append(f"{locate(route_where)}: route {route_key!r} needs a list of scopes")
                continue
            for s_i, scope in enumerate(scopes):
                for stage in stages:
                    records.append({
                        "arn": group["arn"], "stage": stage, "httpVerb": verb, "resource": path.strip(), "scope": scope,
                    })

                    def origin(sub: tuple[int | str, ...], route_where: tuple[Any, ...] = route_where, s_i: int = s_i,
                               where: tuple[int | str, ...] = where) -> str:
                        field = sub[0] if sub else None
                        if field == "arn":
                            return locate((*where, "arn"))
                        if field == "stage":
                            return locate((*where, "stages"))
                        if field == "scope":
                            return locate((*route_where, s_i))
                        return locate(route_where)

                    origins.append(origin)
    if problems:
        raise PermissionsError(problems)
