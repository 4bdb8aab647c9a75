"""``validate --openapi``: do the mappings grant each operation what its OpenAPI security says?

Input: compiled grants (``Grant``, each with its ``file:line``), an ``OpenApiDocument``
(``admin.openapi.read_openapi``), the API ARN the document is deployed as and the stages
to check. Output: ``lint.Finding`` values, pure data.

Which mappings grant an operation (per method and stage; a mapping of stage ``*``
counts on every stage, an ``ANY``/``*`` verb for every method):

* a *template* mapping (a resource with ``{name}`` or ``{name+}`` segments and no
  ``*``) means exactly its route: it grants the operation whose path has the same shape
  (parameter names aside) for the methods it names. The engine writes it as a glob
  (each parameter a ``*``) and takes back, with explicit Denies, the sibling routes the
  glob reaches *among the routes the mappings name* (``core.siblings``); an operation no
  mapping names on that stage is not taken back, so there the template counts as the
  glob it is written as;
* any other mapping is an IAM glob (a literal path is a glob without ``*``; a
  ``{claim:...}`` placeholder counts as any one segment, whoever the caller is). It
  grants the requests it matches among those API Gateway routes to the operation:
  literal beats parameter beats greedy, per method, an exact method beats ``ANY``
  (``core.routes.route_for``; ``core.routes.pattern_reach`` decides it exactly). A glob
  that matches *every* such request grants the operation; one that matches only some
  *reaches* it: it can let a caller in (so it counts for ``wider``), but does not cover
  it. A partial reach is never added up with another (``/pet/a*`` and ``/pet/[^a]*``
  together cover ``/pet/{id}``, yet each is reported as reaching it only): conservative,
  the check may say "not covered" where several partial globs together cover.

Codes (severity):

===============  =======  ================================================================
not-covered      error    a secured operation no mapping grants (per stage and method)
wider            error    a mapping lets in a caller the spec refuses: no alternative of
                          the spec's requirement is a subset of the mapping's
narrower         warning  an alternative of the spec's requirement that no mapping
                          granting the operation asks for (or for less): callers the
                          spec lets in are refused
open-but-mapped  warning  a mapping grants an operation that needs no authorization
                          (``security: []``): API Gateway never asks the authorizer
not-authorizer   info     an operation secured only by what the authorizer cannot read
                          (API key, basic, IAM, or nothing declared): not checked; one
                          note for the whole document when no operation has a readable
                          requirement (a routes-only fragment)
                 warning  such an operation that a mapping grants or reaches
not-in-spec      warning  a mapping of the document's API that grants no operation of it
===============  =======  ================================================================
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache

from policy_engine.admin.lint import ERROR, INFO, WARNING, Finding
from policy_engine.admin.openapi import OpenApiDocument, Operation
from policy_engine.core.arn import HTTP_VERBS
from policy_engine.core.compaction import globs_intersect
from policy_engine.core.permissions import ANY_VERB, NOBODY, Grant, requirement_of
from policy_engine.core.routes import Reach, pattern_reach

__all__ = ["coverage", "requirement_label"]

NOT_COVERED = "not-covered"
WIDER = "wider"
NARROWER = "narrower"
OPEN_BUT_MAPPED = "open-but-mapped"
NOT_AUTHORIZER = "not-authorizer"
NOT_IN_SPEC = "not-in-spec"

# A whole-segment route parameter ({name} or {name+}), not a {claim:...} placeholder.
_PARAMETER = re.compile(r"\{(?!claim:)[^{}/]+\}")
_ANY_SEGMENT = re.compile(r"\{[^{}/]+\}")
_EVERY_STAGE = "*"


def requirement_label(alternatives: Iterable[frozenset[str]]) -> str:
    """``read AND write, or admin``; ``any authenticated caller`` for the empty set."""
    labels = sorted(" AND ".join(sorted(alt)) if alt else "any authenticated caller" for alt in alternatives)
    return ", or ".join(labels) if labels else "nobody"


def _route_text(verb: str, resource: str) -> str:
    return f"{'ANY' if verb == ANY_VERB else verb} /{resource}"


@lru_cache(maxsize=8192)
def _shape(path: str) -> tuple[str, ...]:
    body = path[1:] if path.startswith("/") else path
    return tuple(
        ("{+}" if piece.endswith("+}") else "{}") if _ANY_SEGMENT.fullmatch(piece) else piece
        for piece in (body.split("/") if body else [])
    )


def _is_template(resource: str) -> bool:
    return "*" not in resource and any(_PARAMETER.fullmatch(piece) for piece in resource.split("/"))


def _live(index: int, routes: Sequence[tuple[str, str]],
          same_shape: Mapping[tuple[str, ...], Sequence[int]]) -> tuple[str, ...]:
    """The methods some request of ``routes[index]`` arrives with. Only a route of the
    same shape can take all of a route's requests (any other leaves it, at least, the
    paths with a character no literal names, or an empty segment under a greedy one): an
    exact method takes its method from ANY, and a duplicate listed first takes it all.
    ``same_shape`` lists the indexes of ``routes`` by shape (looked up, not scanned: a
    large document has thousands of routes)."""
    verb, path = routes[index]
    methods = HTTP_VERBS if verb == "ANY" else (verb,)
    taken = set()
    for j in same_shape[_shape(path)]:
        other_verb = routes[j][0]
        if j == index:
            continue
        if other_verb != "ANY" and (verb == "ANY" or (other_verb == verb and j < index)):
            taken.add(other_verb)
        elif other_verb == verb == "ANY" and j < index:
            taken.update(HTTP_VERBS)
    return tuple(m for m in methods if m not in taken)


def _openings_meet(pattern: str, template: str) -> bool:
    # The literal text each starts with: one must begin the other for a path to match both.
    cut = min((i for i in (pattern.find("*"), pattern.find("?"), pattern.find("{")) if i >= 0), default=len(pattern))
    end = template.find("{")
    a, b = pattern[:cut], template[:end if end >= 0 else len(template)]
    return a.startswith(b) or b.startswith(a)


def _as_glob(resource: str) -> str:
    # What the policy says for a template: each parameter is IAM's '*' (core.permissions).
    return "/".join("*" if _PARAMETER.fullmatch(piece) else piece for piece in resource.split("/"))


@dataclass(slots=True)
class _Hit:
    """One mapping granting (``full``) or reaching part of one operation."""

    grant: Grant
    full: bool
    witness: str | None
    #: Reached through a template's wildcard because no mapping names the operation's
    #: route, so the engine does not take it back (``core.siblings``).
    unnamed: bool = False


@dataclass(slots=True)
class _Seen:
    stages: set[str] = field(default_factory=set)
    methods: set[str] = field(default_factory=set)
    witness: str | None = None
    detail: str = ""
    unnamed: bool = False


# (code, operation index, the mapping or None, detail) -> where and how it was seen. A
# mapping is its grant on any one stage: a grouped route on several stages is one line.
_Notes = dict[tuple[str, int, Grant | None, str], _Seen]


def _one_stage(grant: Grant | None) -> Grant | None:
    return None if grant is None else grant._replace(route=grant.route._replace(stage=""))


def _note(notes: _Notes, code: str, index: int, grant: Grant | None, stage: str, method: str,
          witness: str | None = None, detail: str = "", unnamed: bool = False) -> None:
    entry = notes.setdefault((code, index, _one_stage(grant), detail), _Seen(detail=detail))
    entry.stages.add(stage)
    entry.methods.add(method)
    entry.witness = entry.witness or witness
    entry.unnamed = entry.unnamed or unnamed


def coverage(
    grants: Iterable[Grant],
    document: OpenApiDocument,
    api_arn: str,
    stages: Iterable[str] = (),
    *,
    other_routes: Sequence[tuple[str, str]] = (),
) -> list[Finding]:
    """Every finding about ``grants`` against ``document``'s operations on ``api_arn``.

    ``stages``: the stages to check besides those the grants name for ``api_arn`` (a
    grant of stage ``*`` counts on each); with none at all, one pass stands for every stage.
    ``other_routes``: routes the API has besides the document's (``(VERB or ANY, /path)``,
    from an API catalog): they take their requests from the operations as API Gateway
    routes them, and a mapping that reaches one of them is not ``not-in-spec``.
    """
    mine = [g for g in grants if g.route.api_arn == api_arn]
    checked = set(stages) | {g.route.stage for g in mine if g.route.stage != _EVERY_STAGE}
    checked.discard(_EVERY_STAGE)
    stage_list = sorted(checked) or [_EVERY_STAGE]
    operations = document.operations
    routes = [(op.verb, op.path) for op in operations]
    routes += [route for route in other_routes if route not in routes]
    reaches: dict[tuple[str, str, int], Reach] = {}
    used: set[Grant] = set()
    notes: _Notes = {}
    live_methods: dict[int, tuple[str, ...]] = {}

    def reach(resource: str, method: str, index: int) -> Reach:
        key = (resource, method, index)
        found = reaches.get(key)
        if found is None:
            op = operations[index]
            if not _openings_meet(resource, op.path.lstrip("/")) or (
                    "{" not in resource and not globs_intersect(resource, op.path.lstrip("/"))):
                found = Reach(None, "/")  # no path matches both: no need for the automata
            else:
                found = pattern_reach("/" + resource, method, (op.verb, op.path), routes)
            reaches[key] = found
        return found

    # The routes the engine knows on each stage (core.siblings): those the mappings name
    # without '*'. A template's wildcard is taken back from those it is not written for,
    # and only from those.
    named = {stage: {(grant.route.verb, _shape(grant.route.resource)) for grant in mine
                     if grant.route.stage in (stage, _EVERY_STAGE) and "*" not in grant.route.resource}
             for stage in stage_list}
    # Whether some readable requirement exists: a document secured only by what the
    # authorizer cannot read (a routes-only fragment) is not checked at all.
    checked_anywhere = any(op.requirements for op in operations)

    # The mappings that apply on each stage, by verb ('*' for ANY): templates by the shape
    # of their route, globs (and literal paths) as a list.
    templates: dict[tuple[str, str], dict[tuple[str, ...], list[Grant]]] = {}
    globs: dict[tuple[str, str], list[Grant]] = {}
    for stage in stage_list:
        for grant in mine:
            route = grant.route
            if route.stage not in (stage, _EVERY_STAGE):
                continue
            if _is_template(route.resource):
                templates.setdefault((stage, route.verb), {}).setdefault(_shape(route.resource), []).append(grant)
            else:
                globs.setdefault((stage, route.verb), []).append(grant)

    # Paths whose spec declares ANY: an ANY mapping there is that operation's, and an open
    # exact method beside it (API Gateway's own route) is not what it grants.
    spec_any = {_shape(op.path) for op in operations if op.verb == "ANY"}
    same_shape: dict[tuple[str, ...], list[int]] = {}
    for j, (_, path) in enumerate(routes):
        same_shape.setdefault(_shape(path), []).append(j)
    # The verbs ('*' for ANY) of the named routes, by stage and shape.
    named_verbs: dict[str, dict[tuple[str, ...], set[str]]] = {stage: {} for stage in stage_list}
    for stage, keys in named.items():
        for verb, key_shape in keys:
            named_verbs[stage].setdefault(key_shape, set()).add(verb)
    for index, op in enumerate(operations):
        shape = _shape(op.path)
        live = _live(index, routes, same_shape)
        live_methods[index] = live
        beside_any = op.requirements is None and op.verb != "ANY" and shape in spec_any
        for stage in stage_list:
            op_named = any(verb == ANY_VERB or op.verb in ("ANY", verb) for verb in named_verbs[stage].get(shape, ()))
            for method in live:
                hits: list[_Hit] = []
                for verb in (method, ANY_VERB):
                    by_shape = templates.get((stage, verb), {})
                    granted = by_shape.get(shape)
                    # The route with this exact method takes it from ANY.
                    if granted and not (verb == ANY_VERB and ((method, shape) in named[stage] or beside_any)):
                        hits += [_Hit(grant, True, None) for grant in granted]
                        used.update(granted)
                    # Other templates' wildcards reach it only when no mapping names it.
                    for template_shape, granted in by_shape.items() if not op_named else ():
                        if template_shape == shape:
                            continue
                        for grant in granted:
                            found = reach(_as_glob(grant.route.resource), method, index)
                            if found.reaches:
                                hits.append(_Hit(grant, found.covers, found.some, unnamed=True))
                    for grant in globs.get((stage, verb), ()):
                        resource = grant.route.resource
                        literal = "*" not in resource
                        if verb == ANY_VERB and literal and ((method, _shape(resource)) in named[stage]
                                                             or (beside_any and _shape(resource) == shape)):
                            continue  # a literal path names a route: its exact-method sibling takes the method
                        found = reach(resource, method, index)
                        if found.reaches:
                            hits.append(_Hit(grant, found.covers, None if found.covers else found.some))
                            used.add(grant)
                _judge(notes, op, index, stage, method, hits, checked_anywhere)

    findings = [_render(code, operations[index], grant, entry, stage_list, live_methods[index])
                for (code, index, grant, _), entry in notes.items()]
    findings += _not_authorizer(operations, document)
    findings += _not_in_spec([g for g in mine if g not in used and not _reaches_any(g, routes[len(operations):],
                                                                                   routes)], document)
    return sorted(set(findings), key=_order)


def _order(finding: Finding) -> tuple[str, int, str, str]:
    name, _, line = finding.where.rpartition(":")
    if not line.isdigit():
        name, line = finding.where, "0"
    return (name, int(line), finding.code, finding.message)


def _judge(notes: _Notes, op: Operation, index: int, stage: str, method: str, hits: list[_Hit],
           checked_anywhere: bool) -> None:
    # A route granted to no caller ([], nobody: true) grants nothing: it only names the route.
    hits = [hit for hit in hits if hit.grant.needs != NOBODY]
    required = op.requirements
    if required is None:
        # A template's wildcard reaching it unasked is harmless: API Gateway never asks.
        for hit in hits:
            if not hit.unnamed:
                _note(notes, OPEN_BUT_MAPPED, index, hit.grant, stage, method, hit.witness)
        return
    if not required:
        # Unmapped, it is one note per operation (_not_authorizer); mapped, the mapping
        # lets callers in that the document does not (if API Gateway asks the authorizer).
        if checked_anywhere:
            for hit in hits:
                _note(notes, NOT_AUTHORIZER, index, hit.grant, stage, method, hit.witness, unnamed=hit.unnamed)
        return
    full = [hit for hit in hits if hit.full and not hit.unnamed]
    if not full:
        _note(notes, NOT_COVERED, index, None, stage, method, detail=_mappings_side(hits))
    for hit in hits:
        held = requirement_of(hit.grant.needs)
        if not any(alternative <= held for alternative in required):
            _note(notes, WIDER, index, hit.grant, stage, method, None if hit.full else hit.witness,
                  detail=_mappings_side(hits), unnamed=hit.unnamed)
    if full:
        mapped = [requirement_of(hit.grant.needs) for hit in full]
        for alternative in required:
            if not any(held <= alternative for held in mapped):
                _note(notes, NARROWER, index, None, stage, method,
                      detail=f"{requirement_label([alternative])}\x00{_mappings_side(full)}")


def _mappings_side(hits: Sequence[_Hit]) -> str:
    parts = sorted({f"{_route_text(h.grant.route.verb, h.grant.route.resource)} for "
                    f"{requirement_label([requirement_of(h.grant.needs)])} (at {h.grant.source}"
                    f"{'' if h.full else ', part of it'})" for h in hits})
    return "; ".join(parts)


def _where_phrase(stages: set[str], all_stages: Sequence[str], methods: set[str], live: Sequence[str],
                  op: Operation) -> str:
    out = ""
    if op.verb == "ANY" and set(live) - methods:
        out += f" for {', '.join(m for m in live if m in methods)}"
    if _EVERY_STAGE in stages:
        return out
    if len(all_stages) > 1 or set(stages) != set(all_stages):
        names = [s for s in all_stages if s in stages]
        out += f" on stage{'s' if len(names) > 1 else ''} {', '.join(names)}"
    return out


def _render(code: str, op: Operation, grant: Grant | None, entry: _Seen, all_stages: Sequence[str],
            live: Sequence[str]) -> Finding:
    spec = requirement_label(op.requirements or ())
    scope = _where_phrase(entry.stages, all_stages, entry.methods, live, op)
    if code == NOT_COVERED:
        partly = f"; mappings that reach only part of it: {entry.detail}" if entry.detail else ""
        return Finding(ERROR, code, op.where,
                       f"{op.route} needs {spec} (the spec, here) but no mapping grants it{scope}{partly}")
    assert grant is not None or code == NARROWER
    if code == NARROWER:
        alternative, _, mappings = entry.detail.partition("\x00")
        return Finding(WARNING, code, op.where,
                       f"{op.route}{scope}: the spec (here) lets in callers holding {alternative}, but every "
                       f"mapping granting it asks for something else: narrower than the spec (spec: {spec}; "
                       f"mappings: {mappings})")
    assert grant is not None
    mapping = _route_text(grant.route.verb, grant.route.resource)
    held = requirement_label([requirement_of(grant.needs)])
    example = f" (e.g. {entry.witness})" if entry.witness else ""
    verb = "grants" if entry.witness is None and not entry.unnamed else "reaches"
    unnamed = (f"; no mapping names {op.route}, so the engine does not take it back from the template's "
               "wildcard" if entry.unnamed else "")
    if code == OPEN_BUT_MAPPED:
        return Finding(WARNING, code, grant.source,
                       f"{mapping} for {held} {verb} {op.route}{example}{scope}, which needs no authorization in "
                       f"the spec (at {op.where}): API Gateway never asks the authorizer for it, so this mapping "
                       f"misleads{unnamed}")
    if code == NOT_AUTHORIZER:
        why = "; ".join(op.notes) or "no requirement the authorizer can grant"
        return Finding(WARNING, code, grant.source,
                       f"{mapping} for {held} {verb} {op.route}{example}{scope}, which the spec (at {op.where}) "
                       f"secures only by what the authorizer cannot read ({why}): if API Gateway asks the "
                       f"authorizer for it, these callers get in{unnamed}")
    return Finding(ERROR, WIDER, grant.source,
                   f"{mapping} for {held} {verb} {op.route}{example}{scope}, which the spec (at {op.where}) "
                   f"gives to {spec}: wider than the spec (mappings: {entry.detail}){unnamed}")


def _not_authorizer(operations: Sequence[Operation], document: OpenApiDocument) -> list[Finding]:
    unchecked = [op for op in operations if op.requirements == ()]
    if not unchecked:
        return []
    if not any(op.requirements for op in operations):
        why = "; ".join(sorted(set(unchecked[0].notes))) or "no requirement the authorizer can grant"
        return [Finding(INFO, NOT_AUTHORIZER, unchecked[0].where,
                        f"no operation of {document.source} is secured by anything the authorizer reads ({why}): "
                        "coverage is not checked")]
    out = []
    for op in unchecked:
        why = "; ".join(op.notes) or "no requirement the authorizer can grant"
        out.append(Finding(INFO, NOT_AUTHORIZER, op.where,
                           f"{op.route} is secured only by what the authorizer cannot read ({why}): "
                           "coverage not checked"))
    return out


def _reaches_any(grant: Grant, wanted: Sequence[tuple[str, str]], routes: Sequence[tuple[str, str]]) -> bool:
    route = grant.route
    for verb, path in wanted:
        methods = [m for m in (HTTP_VERBS if verb == "ANY" else (verb,)) if route.verb in (m, ANY_VERB)]
        for method in methods:
            if _is_template(route.resource):
                if _shape(route.resource) == _shape(path):
                    return True
            elif pattern_reach("/" + route.resource, method, (verb, path), routes).reaches:
                return True
    return False


def _not_in_spec(grants: Sequence[Grant], document: OpenApiDocument) -> list[Finding]:
    out = []
    for grant in grants:
        out.append(Finding(WARNING, NOT_IN_SPEC, grant.source,
                           f"{_route_text(grant.route.verb, grant.route.resource)} grants no operation of "
                           f"{document.source} (API Gateway routes no request it matches to an operation "
                           "of the spec)"))
    return out
