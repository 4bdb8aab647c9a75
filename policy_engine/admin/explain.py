"""Why a caller gets what they get, and what a change of mappings gives or takes: pure data.

``explain`` answers with the mappings (``Grant.source`` is ``file:line``) and the
policy statement that decided a request; ``diff_permissions`` compares two permission
sets requirement by requirement (a scope, a group, an all-of set, any authenticated
caller), noting when a lost route is still covered by a wider one.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from policy_engine.admin.lint import needs_label
from policy_engine.core.arn import MethodArn
from policy_engine.core.compaction import glob_subsumes
from policy_engine.core.grants import claim_path_text, placeholder_value
from policy_engine.core.iam import Verdict, evaluate_response, glob_matches
from policy_engine.core.permissions import Grant, PermissionSet, placeholders_of, requirement_of, resource_glob
from policy_engine.core.routes import route_for

__all__ = ["RequestExplanation", "RouteChange", "deciding_statement", "diff_permissions", "explain_request",
           "grants_for", "refused_for", "route_text"]


def route_text(verb: str, resource: str) -> str:
    """``GET /pets/*``; a ``*`` verb reads ``ANY``."""
    return f"{'ANY' if verb == '*' else verb} /{resource}"


def _filled(grant: Grant, claims: Mapping[str, Any] | None) -> tuple[Grant | None, list[str]]:
    # The grant with its placeholders filled from claims, or None and the refused claim names.
    resource, refused = grant.route.resource, []
    for path in placeholders_of(resource):
        value = None if claims is None else placeholder_value(claims, path)
        if value is None:
            refused.append(claim_path_text(path))
        else:
            resource = resource.replace(f"{{claim:{claim_path_text(path)}}}", value)
    if refused:
        return None, refused
    return grant._replace(route=grant.route._replace(resource=resource)), []


def _applies(grant: Grant, grants: frozenset[str], api_arn: str, stage: str) -> bool:
    return (grant.route.api_arn == api_arn and grant.route.stage in (stage, "*")
            and requirement_of(grant.needs) <= grants)


def grants_for(
    permissions: PermissionSet, grants: frozenset[str], api_arn: str, stage: str,
    claims: Mapping[str, Any] | None = None,
) -> list[Grant]:
    """The mappings that grant ``grants`` (grant keys) something on ``api_arn``/``stage``, in
    file order, with their placeholders filled from ``claims`` (those refused left out)."""
    out = []
    for g in permissions.grants:
        if _applies(g, grants, api_arn, stage):
            filled, _ = _filled(g, claims)
            if filled is not None:
                out.append(filled)
    return out


def refused_for(
    permissions: PermissionSet, grants: frozenset[str], api_arn: str, stage: str,
    claims: Mapping[str, Any] | None = None,
) -> list[tuple[Grant, list[str]]]:
    """The mappings ``grants`` would be granted but for a refused placeholder, with the claim names."""
    out = []
    for g in permissions.grants:
        if _applies(g, grants, api_arn, stage):
            filled, refused = _filled(g, claims)
            if filled is None:
                out.append((g, refused))
    return out


@dataclass(frozen=True, slots=True)
class RequestExplanation:
    """The verdict for one request, the mappings that grant it and the statement that decided."""

    verdict: Verdict
    grants: tuple[Grant, ...]
    statement: int | None
    effect: str | None
    resource: str | None


def deciding_statement(response: Mapping[str, Any], method_arn: str) -> tuple[int | None, str | None, str | None]:
    """(index, effect, Resource) of the statement that decided ``method_arn``; a matching Deny wins."""
    found: tuple[int | None, str | None, str | None] = (None, None, None)
    for index, statement in enumerate(response["policyDocument"]["Statement"]):
        resources = statement["Resource"]
        for resource in [resources] if isinstance(resources, str) else resources:
            if glob_matches(resource, method_arn):
                if statement["Effect"] == "Deny":
                    return index, "Deny", resource
                if found[0] is None:
                    found = (index, "Allow", resource)
    return found


def explain_request(
    permissions: PermissionSet, scopes: frozenset[str], request: MethodArn, response: Mapping[str, Any],
    claims: Mapping[str, Any] | None = None,
) -> RequestExplanation:
    """Explain how ``response`` (the policy for grant keys ``scopes``) decides ``request``.

    Raises:
        MalformedResponseError: ``response`` is not a valid authorizer response.
    """
    verdict = evaluate_response(response, str(request))
    # A mapping written as a route (a template, a literal path, ANY) grants the requests
    # API Gateway routes to it: not those a more specific sibling route takes (a literal
    # segment before a parameter, an exact method before ANY). A glob grants what it matches.
    siblings = permissions.siblings(request.api_arn, request.stage)
    routed = route_for(request.verb, "/" + request.path, siblings.templates) if siblings is not None else None

    def grants_request(grant: Grant) -> bool:
        route = grant.route
        if route.verb not in ("*", request.verb):
            return False
        if siblings is not None and (route.verb, route.resource) in siblings:
            return routed == siblings.template((route.verb, route.resource))
        return glob_matches(resource_glob(route.resource), request.path)

    grants = tuple(g for g in grants_for(permissions, scopes, request.api_arn, request.stage, claims)
                   if grants_request(g))
    index, effect, resource = deciding_statement(response, str(request))
    return RequestExplanation(verdict, grants, index, effect, resource)


@dataclass(frozen=True, slots=True)
class RouteChange:
    """A route one requirement gains or loses; ``covered_by`` is a mapping on the other side that
    still covers it. ``scope`` names the requirement (``needs_label``: the scope itself for a scope)."""

    scope: str
    api_arn: str
    stage: str
    verb: str
    resource: str
    source: str
    covered_by: Grant | None

    def as_dict(self) -> dict[str, Any]:
        return {
            "scope": self.scope, "api": self.api_arn, "stage": self.stage,
            "route": route_text(self.verb, self.resource),
            "mapping": self.source,
            "covered_by": None if self.covered_by is None else {
                "route": route_text(self.covered_by.route.verb, self.covered_by.route.resource),
                "stage": self.covered_by.route.stage, "mapping": self.covered_by.source},
        }


def _cover(grant: Grant, others: list[Grant]) -> Grant | None:
    r = grant.route
    for other in others:
        o = other.route
        if (o.api_arn == r.api_arn and o.stage in (r.stage, "*") and o.verb in (r.verb, "*")
                and glob_subsumes(o.resource, r.resource)):
            return other
    return None


def diff_permissions(old: PermissionSet, new: PermissionSet) -> dict[str, dict[str, list[RouteChange]]]:
    """For each requirement whose grants differ (keyed by ``needs_label``: the scope itself,
    ``group pet-readers``, ``all of ...``, ``any authenticated caller``):
    ``{"gained": [...], "lost": [...]}``, sorted."""
    def by_scope(permissions: PermissionSet) -> dict[str, dict[tuple[str, ...], Grant]]:
        out: dict[str, dict[tuple[str, ...], Grant]] = {}
        for grant in permissions.grants:
            out.setdefault(needs_label(grant.needs), {}).setdefault(tuple(grant.route), grant)
        return out

    before, after = by_scope(old), by_scope(new)
    result: dict[str, dict[str, list[RouteChange]]] = {}
    for scope in sorted(set(before) | set(after)):
        was, now = before.get(scope, {}), after.get(scope, {})
        gained = [_change(scope, now[k], _cover(now[k], list(was.values()))) for k in sorted(set(now) - set(was))]
        lost = [_change(scope, was[k], _cover(was[k], list(now.values()))) for k in sorted(set(was) - set(now))]
        if gained or lost:
            result[scope] = {"gained": gained, "lost": lost}
    return result


def _change(scope: str, grant: Grant, covered_by: Grant | None) -> RouteChange:
    r = grant.route
    return RouteChange(scope, r.api_arn, r.stage, r.verb, r.resource, grant.source, covered_by)
