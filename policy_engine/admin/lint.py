"""What ``policy-engine validate`` finds in a permission set, as pure data.

Input: the raw records a store hands over (with their ``locate``), and optional
catalogs (scopes, clients, APIs) already read by an adapter. Output: findings, each
with a severity, a stable code, a place (``file:line``) and a message, plus the size
of the authorizer response every scope and every catalogued client would get.

Codes (severity):

==================  =======  ===========================================================
schema              error    a record the runtime would refuse (bad field, bad ARN ...)
duplicate           warning  the same mapping written twice
conflicting-forms   warning  one route spelled two ways (verb case, leading slash)
trailing-slash      error    ``/pets/`` next to ``/pets``: two different policy resources
                    warning  ``/pets/`` alone (API Gateway route paths have none)
mixed-arn           error    one API id under two different ARNs (region, account ...)
api-id              warning  an API id that is not API Gateway's 10 lowercase characters
mixed-stage         warning  stage names of one API that differ only by case
shadowed            warning  a mapping already granted by a wider one (same requirement)
unknown-scope       error    a scope used in mappings but not in the scope catalog
unused-scope        warning  a catalogued scope that grants no route
unknown-group/role  error    a group (role) used in mappings but not declared in the catalog
unused-group/role   warning  a declared group (role) that grants no route
unknown-api         error    an API ARN not in the API catalog
unknown-stage       error    a stage the API catalog does not list for that API
unknown-route       error    a route no route of the catalogued API can match
policy-size         error    a response over 8 KB (the runtime would fail closed)
policy-size-near    warning  a response over ``warn_ratio`` of the limit
==================  =======  ===========================================================

``validate --openapi`` adds the findings of ``admin.coverage`` (same ``Finding`` shape;
some are ``info``, which never fails a run).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from policy_engine.core.compaction import glob_subsumes, globs_intersect
from policy_engine.core.decision import (
    ALLOW,
    DENY,
    MAX_RESPONSE_BYTES,
    SCOPE_KEY,
    VERSION_KEY,
    Decision,
    listable_scopes,
    render_iam_response,
    response_size,
    scalar_context,
)
from policy_engine.core.grants import MAX_PLACEHOLDER_VALUE, SCOPE, grant_key, split_grant_key
from policy_engine.core.permissions import (
    AUTHENTICATED,
    NOBODY,
    Grant,
    Locate,
    PermissionSet,
    compile_records,
    is_member_json,
    placeholders_of,
    requirement_of,
)
from policy_engine.errors import PermissionsError

if TYPE_CHECKING:
    from policy_engine.admin.openapi import OpenApiDocument

__all__ = [
    "ApiCatalog",
    "ApiEntry",
    "Client",
    "ClientCatalog",
    "Finding",
    "LintReport",
    "ScopeCatalog",
    "SizeRow",
    "estimate_decision",
    "estimate_response",
    "lint",
    "needs_label",
]

ERROR = "error"
WARNING = "warning"
#: Worth knowing, never a failure (``--fail-on`` stops at warnings).
INFO = "info"

# API Gateway ids are 10 lowercase letters and digits.
_API_ID = re.compile(r"[a-z0-9]{10}")
# What size estimates assume when no catalog says better: a UUID-long principal and a
# Cognito-like issuer URL (both land in the response's context).
PLACEHOLDER_PRINCIPAL = "x" * 36
PLACEHOLDER_ISSUER = "https://cognito-idp.us-east-1.amazonaws.com/us-east-1_XXXXXXXXX"
PLACEHOLDER_STAGE = "default"


@dataclass(frozen=True, slots=True)
class Finding:
    severity: str
    code: str
    where: str
    message: str

    def as_dict(self) -> dict[str, str]:
        return {"severity": self.severity, "code": self.code, "where": self.where, "message": self.message}


@dataclass(frozen=True, slots=True)
class ScopeCatalog:
    """Declared scopes, groups and roles (name -> place); ``without_routes`` (scopes) may be
    held but grant nothing."""

    scopes: Mapping[str, str]
    without_routes: Mapping[str, str] = field(default_factory=dict)
    source: str = "scope catalog"
    groups: Mapping[str, str] = field(default_factory=dict)
    roles: Mapping[str, str] = field(default_factory=dict)

    def declared(self) -> dict[str, tuple[str, str]]:
        """Every declared grant: its grant key -> (kind, place)."""
        out = {name: (SCOPE, where) for name, where in self.scopes.items()}
        for kind, names in (("group", self.groups), ("role", self.roles)):
            out.update({grant_key(kind, name): (kind, where) for name, where in names.items()})
        return out


def needs_label(needs: str) -> str:
    """What a mapping needs, for people: ``pets:read``, ``all of group pet-readers + scope
    pets:read``, ``any authenticated caller``."""
    if not is_member_json(needs):
        return needs
    if needs == AUTHENTICATED:
        return "any authenticated caller"
    if needs == NOBODY:
        return "nobody"
    keys = sorted(requirement_of(needs), key=split_grant_key)
    parts = [" ".join(split_grant_key(key)) for key in keys]
    return parts[0] if len(parts) == 1 else "all of " + " + ".join(parts)


@dataclass(frozen=True, slots=True)
class Client:
    """A catalogued client; ``scopes`` are the grant keys it holds (scopes, ``group <name>`` ...)."""

    id: str
    scopes: frozenset[str]
    where: str


@dataclass(frozen=True, slots=True)
class ClientCatalog:
    clients: Sequence[Client]
    issuer: str | None = None


@dataclass(frozen=True, slots=True)
class ApiEntry:
    """One API: its stages and routes (``(VERB or ANY, /path/{param})``), and the OpenAPI
    document it is deployed from, when the catalog names one (``validate`` checks the
    mappings' coverage of it)."""

    arn: str
    stages: frozenset[str]
    routes: tuple[tuple[str, str], ...]
    where: str
    spec: OpenApiDocument | None = None


@dataclass(frozen=True, slots=True)
class ApiCatalog:
    apis: Mapping[str, ApiEntry]
    source: str = "API catalog"


@dataclass(frozen=True, slots=True)
class SizeRow:
    """The response one subject (a scope, or a client's scope set) gets on one API and stage."""

    subject: str
    api_arn: str
    stage: str
    routes: int
    resources: int
    bytes: int
    where: str
    #: Granted routes no single policy allows exactly for this subject (``core.siblings``).
    per_request: tuple[str, ...] = ()

    def as_dict(self) -> dict[str, Any]:
        return {"subject": self.subject, "api": self.api_arn, "stage": self.stage, "routes": self.routes,
                "resources": self.resources, "bytes": self.bytes, "where": self.where,
                "per_request": list(self.per_request)}


@dataclass(slots=True)
class LintReport:
    findings: list[Finding]
    sizes: list[SizeRow]
    permissions: PermissionSet
    records: int

    def count(self, severity: str) -> int:
        return sum(1 for f in self.findings if f.severity == severity)


@dataclass(frozen=True, slots=True)
class _Entry:
    grant: Grant
    raw_verb: str
    raw_resource: str


def estimate_decision(
    resources: tuple[str, ...],
    *,
    api_arn: str,
    stage: str,
    scopes: frozenset[str],
    version: str,
    principal: str = PLACEHOLDER_PRINCIPAL,
    issuer: str | None = PLACEHOLDER_ISSUER,
    excluded: tuple[str, ...] = (),
) -> Decision:
    """The decision the runtime would make for a caller with grants ``scopes`` (context as
    the engine fills it: its ``scope`` lists the scope-kind grants), ``excluded`` the sibling
    routes it denies (``PermissionSet.evaluate``)."""
    claims = {"sub": principal, "client_id": principal}
    if issuer:
        claims["iss"] = issuer
    context = scalar_context(claims)
    context[SCOPE_KEY] = " ".join(listable_scopes(scopes))
    context[VERSION_KEY] = version
    return Decision(ALLOW if resources else DENY, principal, api_arn, stage, resources,
                    "granted" if resources else "no_grant", version, context, excluded=excluded)


def estimate_response(resources: tuple[str, ...], **decision: Any) -> dict[str, Any]:
    """The response the runtime would render for ``estimate_decision(resources, **decision)``."""
    return render_iam_response(estimate_decision(resources, **decision))


def lint(
    records: Sequence[Any],
    locate: Locate,
    *,
    scopes: ScopeCatalog | None = None,
    clients: ClientCatalog | None = None,
    apis: ApiCatalog | None = None,
    limit: int = MAX_RESPONSE_BYTES,
    warn_ratio: float = 0.8,
) -> LintReport:
    """Every finding about ``records``, and the policy size of each scope and client."""
    findings: list[Finding] = []
    entries: list[_Entry] = []
    for index, raw in enumerate(records):
        try:
            def locate_one(path: tuple[int | str, ...], i: int = index) -> str:
                return locate((i, *path[1:]))

            compiled = compile_records([raw], locate_one)
        except PermissionsError as exc:
            for problem in exc.problems:
                where, _, message = problem.partition(": ")
                findings.append(Finding(ERROR, "schema", where, message))
            continue
        grant = compiled.grants[0]
        entries.append(_Entry(grant, str(raw["httpVerb"]), str(raw["resource"])))

    permissions = PermissionSet(e.grant for e in entries)
    findings += _duplicates_and_forms(entries)
    findings += _arns_and_stages(entries)
    findings += _shadowed(entries)
    if scopes is not None:
        findings += _scope_catalog(entries, scopes)
    if apis is not None:
        findings += _api_catalog(entries, apis)
    sizes = _sizes(permissions, entries, clients, apis)
    for row in sizes:
        if row.bytes > limit:
            findings.append(Finding(ERROR, "policy-size", row.where,
                                    f"{row.subject} gets a {row.bytes}-byte response on {_short(row.api_arn)} "
                                    f"stage {row.stage} ({row.resources} Resources); the limit is {limit}, "
                                    "so the authorizer would fail closed (500)"))
        elif row.bytes > limit * warn_ratio:
            findings.append(Finding(WARNING, "policy-size-near", row.where,
                                    f"{row.subject} gets a {row.bytes}-byte response on {_short(row.api_arn)} "
                                    f"stage {row.stage}: {row.bytes * 100 // limit}% of the {limit}-byte limit"))
        if row.per_request:
            findings.append(Finding(WARNING, "not-exact", row.where,
                                    f"{row.subject} is granted {', '.join(row.per_request)} on "
                                    f"{_short(row.api_arn)} stage {row.stage}, but no single policy allows "
                                    "it without also allowing a sibling route this caller is not granted: "
                                    "the authorizer allows only the exact request it decides, so under the "
                                    "authorizer cache the caller's other requests of the route get 403 until "
                                    "the entry expires (use a per-request cache key or TTL 0, or give the "
                                    "routes grants that nest)"))
    # A grouped route on several stages yields one record per stage; say it once.
    findings = sorted(set(findings), key=lambda f: (_sort_key(f.where), f.code, f.message))
    return LintReport(findings, sizes, permissions, len(records))


def _sort_key(where: str) -> tuple[str, int]:
    name, _, line = where.rpartition(":")
    return (name, int(line)) if line.isdigit() else (where, 0)


def _short(api_arn: str) -> str:
    return api_arn.rsplit(":", 1)[-1]


def _route_text(verb: str, resource: str) -> str:
    return f"{'ANY' if verb == '*' else verb} /{resource}"


def _duplicates_and_forms(entries: list[_Entry]) -> list[Finding]:
    out: list[Finding] = []
    first: dict[tuple[Any, ...], _Entry] = {}
    spellings: dict[tuple[str, str, str, str], dict[tuple[str, str], _Entry]] = {}
    for entry in entries:
        g = entry.grant
        key = (*g.route, g.needs)
        seen = first.get(key)
        if seen is not None:
            out.append(Finding(WARNING, "duplicate", g.source,
                               f"{_route_text(g.route.verb, g.route.resource)} for {needs_label(g.needs)} on stage "
                               f"{g.route.stage} is already mapped at {seen.grant.source}"))
        first.setdefault(key, entry)
        canonical = (g.route.api_arn, g.route.stage, g.route.verb, g.route.resource.rstrip("/"))
        spellings.setdefault(canonical, {}).setdefault((entry.raw_verb, entry.raw_resource), entry)
    reported: set[str] = set()
    for variants in spellings.values():
        listed = list(variants.values())
        slashed = [e for e in listed if e.grant.route.resource.endswith("/")]
        plain = [e for e in listed if not e.grant.route.resource.endswith("/")]
        for entry in slashed:
            if entry.grant.source in reported:
                continue
            reported.add(entry.grant.source)
            if plain:
                out.append(Finding(ERROR, "trailing-slash", entry.grant.source,
                                   f"{entry.raw_verb} {entry.raw_resource} differs from {plain[0].raw_verb} "
                                   f"{plain[0].raw_resource} (at {plain[0].grant.source}) only by a trailing "
                                   "slash, yet they are different policy resources; keep the form without it"))
            else:
                out.append(Finding(WARNING, "trailing-slash", entry.grant.source,
                                   f"{entry.raw_verb} {entry.raw_resource} ends with '/'; API Gateway route "
                                   "paths do not, so this mapping probably never matches"))
        ordered = sorted(plain, key=lambda e: _sort_key(e.grant.source))
        for entry in ordered[1:]:
            reference = ordered[0]
            why = _difference(reference, entry)
            if not why or entry.grant.source in reported:
                continue
            reported.add(entry.grant.source)
            out.append(Finding(WARNING, "conflicting-forms", entry.grant.source,
                               f"{entry.raw_verb} {entry.raw_resource} is the route {reference.raw_verb} "
                               f"{reference.raw_resource} (at {reference.grant.source}) written differently "
                               f"({why}); write one form"))
    return out


def _difference(a: _Entry, b: _Entry) -> str:
    why = []
    if a.raw_verb != b.raw_verb:
        why.append("verb case" if a.raw_verb.upper() == b.raw_verb.upper() else "ANY and '*'")
    if a.raw_resource != b.raw_resource:
        why.append("leading slash")
    return ", ".join(why)


def _arns_and_stages(entries: list[_Entry]) -> list[Finding]:
    out: list[Finding] = []
    by_id: dict[str, dict[str, str]] = {}
    stages: dict[str, dict[str, dict[str, str]]] = {}
    for entry in entries:
        route, where = entry.grant.route, entry.grant.source
        api_id = _short(route.api_arn)
        by_id.setdefault(api_id, {}).setdefault(route.api_arn, where)
        if route.stage != "*":
            stages.setdefault(route.api_arn, {}).setdefault(route.stage.lower(), {}).setdefault(route.stage, where)
    for api_id, arns in sorted(by_id.items()):
        if not _API_ID.fullmatch(api_id):
            out.append(Finding(WARNING, "api-id", next(iter(arns.values())),
                               f"API id {api_id!r} is not 10 lowercase letters and digits, as API Gateway's are"))
        if len(arns) > 1:
            (first_arn, first_where), *rest = sorted(arns.items(), key=lambda kv: _sort_key(kv[1]))
            for arn, where in rest:
                out.append(Finding(ERROR, "mixed-arn", where,
                                   f"API {api_id} is written {arn} here and {first_arn} at {first_where}; "
                                   "an API lives in one partition, region and account"))
    for api_arn, folded in sorted(stages.items()):
        for names in folded.values():
            if len(names) > 1:
                (first, first_where), *rest = sorted(names.items(), key=lambda kv: _sort_key(kv[1]))
                for name, where in rest:
                    out.append(Finding(WARNING, "mixed-stage", where,
                                       f"stage {name!r} of {_short(api_arn)} differs from {first!r} (at "
                                       f"{first_where}) only by case; stage names are case-sensitive"))
    return out


def _shadowed(entries: list[_Entry]) -> list[Finding]:
    out: list[Finding] = []
    groups: dict[tuple[str, str], list[Grant]] = {}
    seen: set[tuple[Any, ...]] = set()
    for entry in entries:
        g = entry.grant
        if (*g.route, g.needs) in seen:
            continue  # reported as a duplicate
        seen.add((*g.route, g.needs))
        groups.setdefault((g.needs, g.route.api_arn), []).append(g)
    for grants in groups.values():
        for narrow in grants:
            for wide in grants:
                if wide is narrow or not _covers(wide, narrow):
                    continue
                if _covers(narrow, wide) and _sort_key(narrow.source) < _sort_key(wide.source):
                    continue  # equivalent: report only the later one
                stages = "" if wide.route.stage == narrow.route.stage else (
                    f" on stage {narrow.route.stage}", f" on stage {wide.route.stage}")
                out.append(Finding(WARNING, "shadowed", narrow.source,
                                   f"{_route_text(narrow.route.verb, narrow.route.resource)}{stages and stages[0]} "
                                   f"for {needs_label(narrow.needs)} is already granted by "
                                   f"{_route_text(wide.route.verb, wide.route.resource)}{stages and stages[1]} "
                                   f"(at {wide.source})"))
                break
    return out


def _covers(wide: Grant, narrow: Grant) -> bool:
    w, n = wide.route, narrow.route
    return (
        w.stage in (n.stage, "*")
        and w.verb in (n.verb, "*")
        and (w.stage, w.verb, w.resource) != (n.stage, n.verb, n.resource)
        and glob_subsumes(w.resource, n.resource)
    )


def _scope_catalog(entries: list[_Entry], catalog: ScopeCatalog) -> list[Finding]:
    out: list[Finding] = []
    used: dict[str, list[str]] = {}
    for entry in entries:
        for key in requirement_of(entry.grant.needs):
            used.setdefault(key, []).append(entry.grant.source)
    declared = catalog.declared()
    for key, places in sorted(used.items()):
        kind, name = split_grant_key(key)
        if kind == SCOPE and name in catalog.without_routes:
            out.append(Finding(ERROR, "unknown-scope", places[0],
                               f"scope {name!r} is declared without routes in the {catalog.source} "
                               f"(at {catalog.without_routes[name]}) but grants routes here"))
        elif key not in declared and kind in (SCOPE, "group", "role"):
            places = sorted(set(places), key=_sort_key)
            more = f" (and {len(places) - 1} more places)" if len(places) > 1 else ""
            out.append(Finding(ERROR, f"unknown-{kind}", places[0],
                               f"{kind} {name!r} is not declared in the {catalog.source}{more}"))
    for key, (kind, where) in sorted(declared.items()):
        if key not in used:
            out.append(Finding(WARNING, f"unused-{kind}", where,
                               f"{kind} {split_grant_key(key)[1]!r} is declared but no mapping grants it anything"))
    return out


def _api_catalog(entries: list[_Entry], catalog: ApiCatalog) -> list[Finding]:
    out: list[Finding] = []
    for entry in entries:
        route, where = entry.grant.route, entry.grant.source
        api = catalog.apis.get(route.api_arn)
        if api is None:
            out.append(Finding(ERROR, "unknown-api", where, f"API {route.api_arn} is not in the {catalog.source}"))
            continue
        if route.stage != "*" and route.stage not in api.stages:
            out.append(Finding(ERROR, "unknown-stage", where,
                               f"stage {route.stage!r} is not a stage of {_short(route.api_arn)} "
                               f"({', '.join(sorted(api.stages))} at {api.where})"))
        if not api.routes:
            continue
        matched = any(
            (verb == "ANY" or route.verb in ("*", verb)) and globs_intersect(route.resource, template.lstrip("/"))
            for verb, template in api.routes
        )
        if not matched:
            out.append(Finding(ERROR, "unknown-route", where,
                               f"{_route_text(route.verb, route.resource)} matches no route of "
                               f"{_short(route.api_arn)} in the {catalog.source} (at {api.where})"))
    return out


def _sizes(
    permissions: PermissionSet, entries: list[_Entry], clients: ClientCatalog | None, apis: ApiCatalog | None
) -> list[SizeRow]:
    stages: dict[str, set[str]] = {}
    for grant in permissions.grants:
        stages.setdefault(grant.route.api_arn, set())
        if grant.route.stage != "*":
            stages[grant.route.api_arn].add(grant.route.stage)
    if apis is not None:
        for arn, api in apis.apis.items():
            if arn in stages:
                stages[arn] |= set(api.stages)
    pairs = [(arn, stage) for arn, names in sorted(stages.items()) for stage in sorted(names or {PLACEHOLDER_STAGE})]
    # Subjects: a caller holding one grant, each all-of requirement, any authenticated caller.
    first_use: dict[frozenset[str], tuple[str, str]] = {}
    for entry in entries:
        requirement = requirement_of(entry.grant.needs)
        for held in {frozenset({key}) for key in requirement} | {requirement}:
            label = needs_label(entry.grant.needs) if len(held) != 1 else " ".join(split_grant_key(next(iter(held))))
            first_use.setdefault(held, (label, entry.grant.source))
    subjects: list[tuple[str, frozenset[str], str, str]] = [
        (label, held, where, PLACEHOLDER_PRINCIPAL)
        for held, (label, where) in sorted(first_use.items(), key=lambda item: item[1])
    ]
    claims = _longest_claims(permissions)
    issuer = PLACEHOLDER_ISSUER
    if clients is not None:
        issuer = clients.issuer or issuer
        subjects += [(f"client {c.id}", c.scopes, c.where, c.id) for c in clients.clients]
    rows: list[SizeRow] = []
    for subject, held, where, principal in subjects:
        for api_arn, stage in pairs:
            evaluation = permissions.evaluate(held, api_arn, stage, claims=claims)
            resources = evaluation.resources
            if not resources and not evaluation.per_request:
                continue
            response = estimate_response(resources, api_arn=api_arn, stage=stage, scopes=held,
                                         version=permissions.version, principal=principal, issuer=issuer,
                                         excluded=evaluation.excluded)
            routes = len(permissions.routes(held, api_arn, stage, claims))
            rows.append(SizeRow(subject, api_arn, stage, routes, len(resources), response_size(response), where,
                                tuple(route.key for route in evaluation.per_request)))
    rows.sort(key=lambda r: -r.bytes)
    return rows


def _longest_claims(permissions: PermissionSet) -> dict[str, Any]:
    # Claims filling every placeholder with the longest value it accepts: sizes are upper bounds.
    claims: dict[str, Any] = {}
    for grant in permissions.grants:
        for path in placeholders_of(grant.route.resource):
            node: Any = claims
            for name in path[:-1]:
                node = node.setdefault(name, {})
                if not isinstance(node, dict):
                    break  # also a value of its own: the shorter path already has one
            else:
                node.setdefault(path[-1], "x" * MAX_PLACEHOLDER_VALUE)
    return claims
