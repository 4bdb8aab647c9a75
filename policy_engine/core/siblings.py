"""Sibling routes: what a route template's wildcard reaches beyond its own route, and
the Deny statements that take it back.

A mapping written as a route template (``GET /pet/{petId}``) grants one route: the
requests API Gateway sends to it. A policy can only say that with IAM globs, and IAM
has no one-segment wildcard: ``GET/pet/*`` also matches ``GET /pet/findByStatus``, a
sibling API Gateway routes elsewhere (a literal segment outranks a parameter, a
parameter a greedy ``{proxy+}``, per method; ``core.routes.outranks``), and
``GET /pet/1/photos``. API Gateway calls the authorizer only for routes that exist, and
the mappings name them, so the policy can be exact: for each sibling the wildcard
reaches (``targets``) that the caller is not granted, an explicit Deny of that sibling's
own glob, since an explicit Deny wins over any Allow.

That Deny is itself a glob, and may reach requests routed to a third route
(``victims``): ``GET/pet/*`` written for ``GET /pet/{petId}`` also matches
``GET /pet/a/b``, routed to ``GET /pet/{proxy+}``. When such a route is granted to the
caller, no single policy is exact for this caller: the template is then *unsafe*, left
out of the policy, and allowed only for the exact request being decided (the engine
adds the request's own methodArn, no wildcard). Under API Gateway's authorizer cache,
other requests of that route fail closed (403) until the entry expires; ``validate``
reports such APIs.

Everything here is pure and memoised per ``SiblingRoutes`` (one per API and stage of a
permission set): which routes a template reaches does not depend on the caller.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from typing import NamedTuple

from policy_engine.core.compaction import globs_intersect
from policy_engine.core.routes import RouteTemplate, outranks, parse_route_key, reaches, route_coverage

__all__ = ["RouteKey", "SiblingRoutes", "SiblingVerdict", "route_key_of"]

#: A route as mappings write it: (verb, or ``*`` for ANY; resource without leading ``/``).
RouteKey = tuple[str, str]


def route_key_of(key: RouteKey) -> RouteTemplate:
    """The ``RouteTemplate`` of a mapping's (verb, resource)."""
    verb, resource = key
    return parse_route_key(f"{'ANY' if verb == '*' else verb} /{resource}")


_GREEDY = re.compile(r"\{[^{}/]+\+\}")
_ONE_SEGMENT = re.compile(r"\{[^{}/+]+\}")


def _shape(segment: str) -> str:
    # A segment as routing sees it: a literal, or "a parameter" whatever its name.
    return "{}" if _ONE_SEGMENT.fullmatch(segment) else segment


def _literal_opening(path: str) -> str:
    # The text every request of a template or glob starts with.
    cut = min((i for i in (path.find("*"), path.find("?"), path.find("{")) if i >= 0), default=len(path))
    return path[:cut]


def _compatible(a: str, b: str) -> bool:
    return a.startswith(b) or b.startswith(a)


class SiblingVerdict(NamedTuple):
    """For one caller: the Deny globs (``METHOD/path``) of siblings to take back, and the
    granted templates that cannot be written exactly (``unsafe``)."""

    denied: tuple[str, ...]
    unsafe: tuple[RouteKey, ...]


class SiblingRoutes:
    """The route templates of one API and stage, and what their globs reach.

    ``glob_of(resource)`` writes a resource as an IAM glob (parameters as ``*``).
    """

    __slots__ = ("_above", "_glob_of", "_globs", "_heads", "_openings", "_routes", "_targets", "_victims", "_wild")

    def __init__(self, keys: Iterable[RouteKey], glob_of: Callable[[str], str]) -> None:
        self._routes: dict[RouteKey, RouteTemplate] = {key: route_key_of(key) for key in sorted(set(keys))}
        self._glob_of = glob_of
        self._openings = {key: _literal_opening(key[1]) for key in self._routes}
        # Routes by their first path segment when it is literal (a request's first segment
        # can only reach those and the routes starting with a parameter, ``_wild``).
        self._heads: dict[str, list[RouteKey]] = {}
        self._wild: list[RouteKey] = []
        for key in self._routes:
            head = key[1].split("/", 1)[0]
            if "{" in head:
                self._wild.append(key)
            else:
                self._heads.setdefault(head, []).append(key)
        self._targets: dict[RouteKey, tuple[RouteKey, ...]] = {}
        self._victims: dict[tuple[RouteKey, tuple[str, ...]], tuple[RouteKey, ...]] = {}
        self._above: dict[RouteKey, tuple[RouteTemplate, ...]] = {}
        self._globs: dict[tuple[RouteKey, str], str] = {}

    def _near(self, opening: str) -> list[RouteKey]:
        # The routes a request starting with ``opening`` (literal text) can be routed to.
        head, slash, _ = opening.partition("/")
        if slash:
            return [*self._heads.get(head, ()), *self._wild]
        return [key for name, keys in self._heads.items() if name.startswith(head) for key in keys] + self._wild

    def _outranking(self, key: RouteKey) -> tuple[RouteTemplate, ...]:
        found = self._above.get(key)
        if found is None:
            route = self._routes[key]
            methods = set(route.methods)
            # Only those that share a request with this route can take one from it: the
            # others would only make every reach check (an automaton per route above) cost
            # more. Their glob holds all their requests, so a glob that misses the template
            # leaves out no route that matters.
            found = tuple(self._routes[other] for other in self._near(self._openings[key])
                          if other != key and not methods.isdisjoint(self._routes[other].methods)
                          and _compatible(self._openings[other], self._openings[key])
                          and outranks(self._routes[other], route)
                          and globs_intersect(self._glob_of(other[1]), key[1]))
            self._above[key] = found
        return found

    def __contains__(self, key: object) -> bool:
        return key in self._routes

    def __len__(self) -> int:
        return len(self._routes)

    @property
    def templates(self) -> tuple[RouteTemplate, ...]:
        """Every route, as API Gateway route templates."""
        return tuple(self._routes.values())

    def template(self, key: RouteKey) -> RouteTemplate:
        return self._routes[key]

    def globs(self, key: RouteKey, methods: Iterable[str] | None = None) -> tuple[str, ...]:
        """IAM globs ``METHOD/path`` that match every request API Gateway routes to ``key``
        (for ``methods`` of its own only): its template with parameters as ``*``, except
        that a greedy parameter becomes ``*/*`` for a method where a one-segment sibling
        (``{id}`` in the same place, same path before it) takes every one-segment path."""
        route = self._routes[key]
        chosen = route.methods if methods is None else tuple(m for m in route.methods if m in set(methods))
        return tuple(f"{method}/{self._glob(key, method)}" for method in chosen)

    def _glob(self, key: RouteKey, method: str) -> str:
        found = self._globs.get((key, method))
        if found is not None:
            return found
        glob = self._glob_of(key[1])
        segments = key[1].split("/")
        if _GREEDY.fullmatch(segments[-1]):
            shape = [_shape(segment) for segment in segments[:-1]]
            for other_key in self._near(self._openings[key]):
                theirs = other_key[1].split("/")
                if (method in self._routes[other_key].methods and len(theirs) == len(segments)
                        and _ONE_SEGMENT.fullmatch(theirs[-1]) and [_shape(part) for part in theirs[:-1]] == shape):
                    # Every one-segment path goes to the sibling: this route only gets two or more.
                    glob += "/*"
                    break
        self._globs[(key, method)] = glob
        return glob

    def _reached_by(
        self, globs: tuple[str, ...], methods: set[str], opening: str, skip: RouteKey
    ) -> tuple[RouteKey, ...]:
        out = []
        for key in self._near(opening):
            route = self._routes[key]
            if key == skip or methods.isdisjoint(route.methods) or not _compatible(opening, self._openings[key]):
                continue
            if reaches(globs, route, self._outranking(key)):
                out.append(key)
        return tuple(out)

    def targets(self, key: RouteKey) -> tuple[RouteKey, ...]:
        """The other routes some request of which, as API Gateway routes it, ``key``'s globs match."""
        found = self._targets.get(key)
        if found is None:
            route = self._routes[key]
            glob = self._glob_of(key[1])
            if glob == key[1] and len(route.methods) == 1:
                # A literal path with one method: its glob is its one request, routed to itself.
                found = ()
            else:
                found = self._reached_by(self.globs(key), set(route.methods), _literal_opening(glob), key)
            self._targets[key] = found
        return found

    def victims(self, key: RouteKey, methods: tuple[str, ...]) -> tuple[RouteKey, ...]:
        """The other routes whose requests a Deny of ``key``'s globs (for ``methods``) would match."""
        found = self._victims.get((key, methods))
        if found is None:
            glob = self._glob_of(key[1])
            found = self._reached_by(self.globs(key, methods), set(methods), _literal_opening(glob), key)
            self._victims[(key, methods)] = found
        return found

    def verdict(self, granted: Iterable[RouteKey], glob_grants: tuple[str, ...]) -> SiblingVerdict:
        """What to deny for a caller granted the routes ``granted`` (keys of this set) and
        the plain IAM globs ``glob_grants`` (``METHOD/path``, from ``*`` mappings).

        A route counts as granted when its key is granted or ``glob_grants`` cover every
        request of its template. A template is unsafe when the Deny of a sibling it reaches
        would also match a granted route's requests or a glob grant.
        """
        held = set(granted)

        def is_granted(key: RouteKey) -> bool:
            if key in held:
                return True
            return bool(glob_grants) and route_coverage(glob_grants, (), "", self._routes[key]).granted

        denied: set[str] = set()
        unsafe: list[RouteKey] = []
        for key in sorted(held):
            route = self._routes[key]
            take_back: list[str] = []
            safe = True
            for target in self.targets(key):
                if is_granted(target):
                    continue
                methods = tuple(m for m in self._routes[target].methods if m in route.methods)
                globs = self.globs(target, methods)
                if any(is_granted(victim) for victim in self.victims(target, methods)) or any(
                        globs_intersect(grant, glob) for grant in glob_grants for glob in globs):
                    safe = False
                    break
                take_back.extend(globs)
            if safe:
                denied.update(take_back)
            else:
                unsafe.append(key)
        return SiblingVerdict(tuple(sorted(denied)), tuple(unsafe))
