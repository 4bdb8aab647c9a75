"""HTTP API route keys as sets of requests, and whether a policy grants all of them.

With ``$context.routeKey`` among the identity sources, API Gateway caches a simple
response per (identity, route key) and reuses the boolean for every request the route
routes, without asking again. So ``true`` is only safe when the policy allows every
request ARN ``<api>/<stage>/<METHOD>/<path>`` the route can carry, and no Deny of the
policy matches any of them.

A route key is modelled by what it routes, never as a glob (AWS, "Create routes for
HTTP APIs": https://docs.aws.amazon.com/apigateway/latest/developerguide/http-api-develop-routes.html):
``ANY`` is every method API Gateway routes (``HTTP_VERBS``), ``{name}`` one non-empty
path segment (no ``/``), ``{name+}`` one or more characters of any kind (a greedy
variable spans segments), and ``$default`` any method on any path. API Gateway sends
a request to ``ANY`` or ``$default`` only when no more specific route matches it;
reading them as every request only ever turns a ``true`` into a ``false``. Policy Resources
are IAM globs (``*`` any run including ``/``, ``?`` one character, full match,
case-sensitive).

"Every request of the route is allowed" is a language inclusion, decided exactly with
automata: the route's automaton is run in step with the subset construction of the
union of the Allow globs (and of the Deny globs), breadth first, until a request of the
route is found that no Allow matches, or that a Deny matches. The alphabet is every
character written literally in a pattern or the route, ``/``, and one character that
appears in none of them: every other character is treated alike by every automaton, so
that one stands for all of them. One pattern is never compared with or matched
against another.
"""

from __future__ import annotations

import enum
import re
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import overload

from policy_engine.core.arn import HTTP_VERBS
from policy_engine.core.compaction import globs_intersect
from policy_engine.core.iam import glob_matches
from policy_engine.errors import EventError

__all__ = ["Coverage", "PathPart", "Reach", "RouteTemplate", "parse_route_key", "pattern_reach", "route_coverage",
           "route_for"]


class PathPart(enum.Enum):
    """The variable parts of a route path; literal text is a ``str``."""

    SEGMENT = "{name}"  # one or more characters, none of them '/'
    GREEDY = "{name+}"  # one or more characters, '/' included
    ANYTHING = "$default"  # zero or more characters: every path


@dataclass(frozen=True, slots=True)
class RouteTemplate:
    """The requests one route key routes: ``methods`` on paths made of ``path``
    (without the leading ``/``, as in a request ARN)."""

    key: str
    methods: tuple[str, ...]
    path: tuple[str | PathPart, ...]


_PARAMETER = re.compile(r"\{([^{}/]*)\}")


@lru_cache(maxsize=256)
def parse_route_key(route_key: str) -> RouteTemplate:
    """``GET /pets/{id}``, ``ANY /files/{proxy+}`` or ``$default`` as the requests it routes.

    Raises:
        EventError: the route key is neither ``$default`` nor ``METHOD /path``.
    """
    if route_key == "$default":
        return RouteTemplate(route_key, HTTP_VERBS, (PathPart.ANYTHING,))
    verb, _, path = route_key.partition(" ")
    # The method field of a request ARN never holds '/' (it ends at the first one).
    if not verb or "/" in verb or not path.startswith("/"):
        raise EventError("routeKey is not 'VERB /path' or '$default'")
    parts: list[str | PathPart] = []
    for i, piece in enumerate(_PARAMETER.split(path[1:])):
        if i % 2 == 0:
            if piece:
                parts.append(piece)
        else:
            parts.append(PathPart.GREEDY if piece.endswith("+") else PathPart.SEGMENT)
    return RouteTemplate(route_key, HTTP_VERBS if verb == "ANY" else (verb,), tuple(parts))


@dataclass(frozen=True, slots=True)
class Coverage:
    """Whether a policy grants every request of a route.

    ``reason``: ``granted``; ``not_granted`` (``witness`` is a request of the route no
    Allow matches); ``denied`` (``witness`` is a request of the route a Deny matches);
    ``undecided`` (too large to decide within the bound: treated as not granted).
    """

    granted: bool
    reason: str
    witness: str | None = None


# Product states explored before giving up. Real policies and routes need a few hundred;
# past this bound the answer is "not granted" (fail closed): a false costs the caller a
# 403, a wrong true lets every request of the route through for the cache TTL.
MAX_STATES = 20_000

# A state of the product: route, Allow and Deny automata.
_State = tuple[frozenset[int], frozenset[int], frozenset[int]]

# Labels of the route automaton's edges that are not one literal character.
_SEGMENT_CHAR = "seg"
_ANY_CHAR = "any"
# What a witness shows for a parameter character no pattern constrains any more.
_OTHER_IN_WITNESS = "x"


class _Globs:
    """The union of IAM globs as one NFA, after reading ``prefix``: state ``s`` is
    "matched up to here"; sets of states are closed under a ``*`` matching nothing."""

    __slots__ = ("_literals", "closure", "rest_is_star", "start", "symbols")

    def __init__(self, patterns: Sequence[str], prefix: str) -> None:
        # Every request starts with the literal prefix (<api>/<stage>/). A pattern that
        # spells it out starts right after it; one with a wildcard before its end reads
        # it; any other one matches no request and is left out.
        literal_prefix = "*" not in prefix and "?" not in prefix
        spelled, reading = [], []
        for pattern in dict.fromkeys(patterns):
            if literal_prefix and pattern.startswith(prefix):
                spelled.append(pattern[len(prefix):])
            else:
                cut = min((i for i in (pattern.find("*"), pattern.find("?")) if i >= 0), default=len(pattern))
                if prefix.startswith(pattern[:cut]) and cut < len(pattern):
                    reading.append(pattern)
        symbols: list[str | None] = []
        starts: list[int] = []
        for pattern in spelled + reading:
            starts.append(len(symbols))
            previous = ""
            for char in pattern:
                if char == "*" and previous == "*":
                    continue  # '**' matches what '*' matches
                symbols.append(char)
                previous = char
            symbols.append(None)  # the end: accepting
        closure: list[frozenset[int]] = [frozenset()] * len(symbols)
        for state in range(len(symbols) - 1, -1, -1):
            closure[state] = closure[state + 1] | {state} if symbols[state] == "*" else frozenset({state})
        self.symbols = symbols
        self.closure = closure
        # A '*' that ends its pattern: everything from here on matches.
        self.rest_is_star = frozenset(
            s for s in range(len(symbols) - 1) if symbols[s] == "*" and symbols[s + 1] is None
        )
        after = frozenset().union(*(closure[s] for s in starts[len(spelled):]))
        for char in prefix:
            after = self.step(after, char)
        self.start = after.union(*(closure[s] for s in starts[:len(spelled)]))
        self._literals: frozenset[str] | None = None

    def step(self, states: frozenset[int], char: str) -> frozenset[int]:
        out: set[int] = set()
        symbols, closure = self.symbols, self.closure
        for state in states:
            symbol = symbols[state]
            if symbol == "*":
                out |= closure[state]
            elif symbol is not None and (symbol == char or symbol == "?"):
                out |= closure[state + 1]
        return frozenset(out)

    def accepts(self, states: frozenset[int]) -> bool:
        return any(self.symbols[s] is None for s in states)

    def labels(self, states: frozenset[int]) -> set[str]:
        """The characters the patterns name next from ``states`` (not their wildcards)."""
        symbols = self.symbols
        return {symbol for s in states if (symbol := symbols[s]) is not None and symbol not in "*?"}

    def literals(self) -> set[str]:
        """The literal characters still ahead of the start states: the only ones the
        NFA can tell apart from here on."""
        if self._literals is None:
            out: set[str] = set()
            symbols = self.symbols
            for state in self.start:
                while (symbol := symbols[state]) is not None:
                    if symbol not in "*?":
                        out.add(symbol)
                    state += 1
            self._literals = frozenset(out)
        return set(self._literals)


class _Route:
    """The requests of a route after ``<api>/<stage>/`` (``METHOD/path``) as an NFA."""

    __slots__ = ("edges", "final")

    def __init__(self, route: RouteTemplate) -> None:
        self.edges: list[list[tuple[str, int]]] = [[]]

        def chain(state: int, text: str) -> int:
            for char in text:
                state = self._edge(state, char)
            return state

        after_method = self._state()
        for method in route.methods:
            self.edges[chain(0, method[:-1])].append((method[-1], after_method))
        state = chain(after_method, "/")
        for part in route.path:
            if isinstance(part, str):
                state = chain(state, part)
            elif part is PathPart.ANYTHING:
                self.edges[state].append((_ANY_CHAR, state))
            else:
                label = _SEGMENT_CHAR if part is PathPart.SEGMENT else _ANY_CHAR
                state = self._edge(state, label)
                self.edges[state].append((label, state))
        self.final = state

    def _state(self) -> int:
        self.edges.append([])
        return len(self.edges) - 1

    def _edge(self, state: int, label: str) -> int:
        target = self._state()
        self.edges[state].append((label, target))
        return target

    def step(self, states: frozenset[int], char: str) -> frozenset[int]:
        out = set()
        for state in states:
            for label, target in self.edges[state]:
                if label in (char, _ANY_CHAR) or (label == _SEGMENT_CHAR and char != "/"):
                    out.add(target)
        return frozenset(out)

    def literals(self) -> set[str]:
        return {label for edges in self.edges for label, _ in edges if len(label) == 1}

    def labels(self, states: frozenset[int]) -> set[str]:
        """The characters the edges out of ``states`` name (not the classes)."""
        edges = self.edges
        return {label for state in states for label, _ in edges[state] if len(label) == 1}

    def finish(self, states: frozenset[int]) -> str:
        """A shortest text that takes one of ``states`` to the end of the route."""
        # Every state reaches the end: the automaton is a chain with self-loops.
        spelled = {state: "" for state in states}
        queue = deque(states)
        while self.final not in spelled:
            state = queue.popleft()
            for label, target in self.edges[state]:
                if target not in spelled:
                    spelled[target] = spelled[state] + (label if len(label) == 1 else _OTHER_IN_WITNESS)
                    queue.append(target)
        return spelled[self.final]


@lru_cache(maxsize=8)
def _globs_nfa(patterns: tuple[str, ...], prefix: str) -> _Globs:
    # Built once per set of globs: a caller's grants are checked against many routes in a
    # row. Few are kept: one set of many globs holds a state per character.
    return _Globs(patterns, prefix)


@lru_cache(maxsize=4096)
def _route_nfa(route: RouteTemplate) -> _Route:
    # Built once per route: a sibling check asks about the same routes many times.
    return _Route(route)


@lru_cache(maxsize=64)
def _any_route_nfa(routes: tuple[RouteTemplate, ...]) -> _AnyRoute:
    # The routes above one route are asked about once per glob that may reach it, in a row.
    return _AnyRoute([_route_nfa(route) for route in routes])


class _AnyRoute(_Route):
    """The requests of several routes as one NFA (their union): a set of states holds
    only the live ones, so a route that can no longer match costs nothing per step."""

    __slots__ = ("finals", "start")

    def __init__(self, routes: Sequence[_Route]) -> None:
        self.edges = []
        start, finals = set(), set()
        for route in routes:
            base = len(self.edges)
            self.edges.extend([(label, target + base) for label, target in edges] for edges in route.edges)
            start.add(base)
            finals.add(route.final + base)
        self.start, self.finals = frozenset(start), frozenset(finals)


def _other_character(taken: set[str]) -> str:
    # Printable, so that a witness reads well; '*' and '?' only ever appear as wildcards.
    return next(c for c in map(chr, range(0x21, 0x110000)) if c not in taken and c not in "*?")


@lru_cache(maxsize=1024)
def route_coverage(
    allowed: tuple[str, ...], denied: tuple[str, ...], prefix: str, route: RouteTemplate
) -> Coverage:
    """Whether the Allow Resources ``allowed`` match every request ARN of ``route``
    under ``prefix`` (``<api-arn>/<stage>/``) and no Deny Resource in ``denied`` matches
    any of them. Exact (see the module docstring), except that past ``MAX_STATES``
    explored states the answer is ``undecided``, which is not granted.
    """
    grants, denies, requests = _globs_nfa(allowed, prefix), _globs_nfa(denied, prefix), _route_nfa(route)
    alphabet = grants.literals() | denies.literals() | requests.literals() | {"/"}
    alphabet.add(_other_character(alphabet))
    letters = sorted(alphabet)
    start = (frozenset({0}), grants.start, denies.start)
    # Breadth first: a witness is short, and the exploration stops at the first one.
    parents: dict[_State, tuple[_State | None, str]] = {start: (None, "")}
    queue = deque([start])
    while queue:
        state = queue.popleft()
        route_states, grant_states, deny_states = state
        if requests.final in route_states:
            if not grants.accepts(grant_states):
                return Coverage(False, "not_granted", prefix + _spell(parents, state))
            if denies.accepts(deny_states):
                return Coverage(False, "denied", prefix + _spell(parents, state))
        if not grant_states:
            # No Allow can match any more: every way to finish this request is refused.
            return Coverage(False, "not_granted", prefix + _spell(parents, state) + requests.finish(route_states))
        if not deny_states and grant_states & grants.rest_is_star:
            continue  # every continuation is allowed and none can be denied
        for char in letters:
            next_route = requests.step(route_states, char)
            if not next_route:
                continue
            following = (next_route, grants.step(grant_states, char), denies.step(deny_states, char))
            if following in parents:
                continue
            if len(parents) >= MAX_STATES:
                return Coverage(False, "undecided")
            parents[following] = (state, char)
            queue.append(following)
    return Coverage(True, "granted")


def _spell(parents: dict[_State, tuple[_State | None, str]], state: _State) -> str:
    chars = []
    parent, char = parents[state]
    while parent is not None:
        chars.append(char)
        parent, char = parents[parent]
    return "".join(reversed(chars))


def segment_kinds(route: RouteTemplate) -> tuple[int, ...]:
    """How specific each path segment of ``route`` is: 0 literal, 1 ``{name}``, 2 ``{name+}``.

    Of two routes that match one request, API Gateway picks the one whose first
    differing segment is the more specific (literal before parameter before greedy),
    per method; on the same path an exact method beats ``ANY`` (AWS, "Routing API
    requests": https://docs.aws.amazon.com/apigateway/latest/developerguide/http-api-develop-routes.html).
    """
    if route.key == "$default":
        return (3,)
    path = route.key.partition(" ")[2]
    kinds = []
    for segment in path[1:].split("/"):
        if segment.startswith("{") and segment.endswith("+}"):
            kinds.append(2)
        elif segment.startswith("{") and segment.endswith("}"):
            kinds.append(1)
        else:
            kinds.append(0)
    return tuple(kinds)


def outranks(route: RouteTemplate, other: RouteTemplate) -> bool:
    """True when API Gateway sends a request both routes match to ``route``, not ``other``."""
    mine, theirs = segment_kinds(route), segment_kinds(other)
    if mine != theirs:
        for a, b in zip(mine, theirs, strict=False):
            if a != b:
                return a < b
        return False  # one is a prefix of the other: they never match the same path
    return len(route.methods) < len(other.methods)  # an exact method before ANY


def reaches(globs: tuple[str, ...], route: RouteTemplate, above: tuple[RouteTemplate, ...] = ()) -> bool:
    """True when some request of ``route`` (``METHOD/path``, no API or stage) that no
    route in ``above`` also matches is matched by one of the IAM globs ``globs``.

    With ``above`` the routes that outrank ``route`` (``outranks``), that is "does a
    policy allowing ``globs`` reach a request API Gateway routes to ``route``". Decided
    on the product of the automata (``reaches_by_automata``), after guards that settle
    the common cases: a glob without wildcards, a glob sharing no request with the
    route's template, and witness requests built from the route and from the globs.
    """
    # Guard: a glob without wildcards is one request; the route either takes it or not.
    literal = [glob for glob in globs if "*" not in glob and "?" not in glob]
    for glob in literal:
        method, _, path = glob.partition("/")
        if route_matches(route, method, "/" + path) and not any(route_matches(o, method, "/" + path) for o in above):
            return True
    if len(literal) == len(globs):
        return False
    # Guard: a glob that shares no request with the route's template cannot reach it. Both
    # end with their literal tails, so one tail must end the other (cheap, checked first).
    if route.path != (PathPart.ANYTHING,):
        template = route.key.partition(" ")[2][1:]
        tail = template[template.rfind("}") + 1:]
        if not any(_tails_meet(glob, tail) and globs_intersect(glob, f"{method}/{template}")
                   for glob in globs for method in route.methods):
            return False
    # Guard: the route with each parameter filled by a character no pattern names is a
    # request of the route only the wildcards can match; if one does and no outranking
    # route takes it, that request is the witness. So is the route with one parameter
    # filled by a literal segment of a glob (a sibling's name), the others by that character.
    if route.path != (PathPart.ANYTHING,):
        taken = set("".join(globs)) | set(route.key)
        for other in above:
            taken |= set(other.key)
        fresh = _other_character(taken | {"/"})
        holes = [i for i, part in enumerate(route.path) if not isinstance(part, str)]
        names = sorted({segment for glob in globs for segment in glob.split("/")[1:]
                        if segment and "*" not in segment and "?" not in segment})
        fillings: list[dict[int, str]] = [{}] + [{hole: name} for hole in holes for name in names]
        for chosen in fillings:
            path = "/" + "".join(part if isinstance(part, str) else chosen.get(i, fresh)
                                 for i, part in enumerate(route.path))
            for method in route.methods:
                request = f"{method}{path}"
                if any(glob_matches(glob, request) for glob in globs) and not any(
                        route_matches(other, method, path) for other in above):
                    return True
        # ... and each glob with its wildcards filled by that character, or by two segments of it.
        for glob in globs:
            for star in (fresh, f"{fresh}/{fresh}"):
                method, _, rest = glob.replace("*", star).replace("?", fresh).partition("/")
                if route_matches(route, method, "/" + rest) and not any(
                        route_matches(other, method, "/" + rest) for other in above):
                    return True
    return reaches_by_automata(globs, route, above)


def _tails_meet(glob: str, tail: str) -> bool:
    # The literal text after a glob's last wildcard, against a template's after its last
    # parameter: a string matching both ends with both.
    cut = max(glob.rfind("*"), glob.rfind("?"))
    ending = glob[cut + 1:] if cut >= 0 else glob
    return ending.endswith(tail) or tail.endswith(ending)


def reaches_by_automata(globs: tuple[str, ...], route: RouteTemplate, above: tuple[RouteTemplate, ...] = ()) -> bool:
    """``reaches``, decided on the product of the automata alone, as ``route_coverage``
    does; past ``MAX_STATES`` explored states the answer is ``True``: every caller treats
    a reach as something to deny or to refuse, never to allow."""
    grants = _globs_nfa(globs, "")
    requests = _route_nfa(route)
    # The routes above as one automaton: only whether one of them takes the request matters.
    higher = _any_route_nfa(above)
    finals = higher.finals
    # One character stands for all those no automaton names: they all lead to the same states.
    others = ("/", _other_character(set("".join((*globs, route.key, *(other.key for other in above)))) | {"/"}))
    start = (frozenset({0}), grants.start, higher.start)
    seen = {start}
    queue = deque([start])
    while queue:
        route_states, grant_states, higher_states = queue.popleft()
        if requests.final in route_states and grants.accepts(grant_states) and finals.isdisjoint(higher_states):
            return True
        # Only the characters some current state names can lead elsewhere than "others" do.
        letters = requests.labels(route_states) | grants.labels(grant_states) | higher.labels(higher_states)
        letters.update(others)
        for char in letters:
            next_route = requests.step(route_states, char)
            if not next_route:
                continue
            next_grants = grants.step(grant_states, char)
            if not next_grants:
                continue
            following = (next_route, next_grants, higher.step(higher_states, char) if higher_states else higher_states)
            if following in seen:
                continue
            if len(seen) >= MAX_STATES:
                return True
            seen.add(following)
            queue.append(following)
    return False


@lru_cache(maxsize=4096)
def _route_regex(route: RouteTemplate) -> re.Pattern[str]:
    # The path; {name} is one non-empty segment, {name+} one or more characters of any kind.
    pieces = []
    for part in route.path:
        if isinstance(part, str):
            pieces.append(re.escape(part))
        else:
            pieces.append("[^/]+" if part is PathPart.SEGMENT else ".+")
    return re.compile("/" + "".join(pieces), re.DOTALL)


def route_matches(route: RouteTemplate, method: str, path: str) -> bool:
    """True when ``route`` matches the request ``method`` ``path`` (``path`` with its leading ``/``)."""
    if method not in route.methods:
        return False
    return route.path == (PathPart.ANYTHING,) or _route_regex(route).fullmatch(path) is not None


@overload
def route_for(method: str, path: str, routes: Sequence[RouteTemplate]) -> RouteTemplate | None: ...


@overload
def route_for(method: str, path: str, routes: Sequence[tuple[str, str]]) -> tuple[str, str] | None: ...


def route_for(
    method: str, path: str, routes: Sequence[RouteTemplate] | Sequence[tuple[str, str]]
) -> RouteTemplate | tuple[str, str] | None:
    """The route of ``routes`` API Gateway sends the request ``method`` ``path`` to, or
    ``None`` when none matches it (API Gateway then answers without calling an
    authorizer): the most specific one (``outranks``: literal before parameter before
    greedy, segment by segment, per method; an exact method before ``ANY``; of two
    routes of the same shape and method, the first listed).

    ``routes`` are ``RouteTemplate`` values, or ``(verb or "ANY", /template)`` pairs
    (``("ANY", "$default")`` for ``$default``), and the answer is of the same kind.
    ``path`` is the request path as a methodArn carries it after the method, with its
    leading ``/`` (a pair-list caller may leave it out; a first empty segment is then
    written ``//``); it may hold any character.
    """
    if not routes or isinstance(routes[0], RouteTemplate):
        best: RouteTemplate | None = None
        for route in routes:
            assert isinstance(route, RouteTemplate)
            if route_matches(route, method, path) and (best is None or outranks(route, best)):
                best = route
        return best
    pairs = [route for route in routes if not isinstance(route, RouteTemplate)]
    templates = [_pair_template(pair) for pair in pairs]
    found = route_for(method, path if path.startswith("/") else "/" + path, templates)
    return None if found is None else pairs[templates.index(found)]


@lru_cache(maxsize=8192)
def _pair_template(pair: tuple[str, str]) -> RouteTemplate:
    verb, template = pair
    return parse_route_key("$default" if template == "$default" else f"{verb} {template}")


# -- which requests routed to a route a pattern matches ------------------------------
#
# Patterns, route templates and the set of requests API Gateway routes to one route
# are regular languages over path characters. Each is a chain of tokens (a literal
# character, "any character" or "any character but '/'", once or repeated); the
# question "is there a path in A and B but in none of C..." is answered by running all
# chains in step, breadth first, over the alphabet of every literal character, '/',
# and one character none of them names (they all treat every other character alike).

_ANY_TOKEN = "\x01any"
_SEGMENT_TOKEN = "\x01seg"
_Token = tuple[str, bool]  # (a literal character or a class, repeated)


@dataclass(frozen=True, slots=True)
class Reach:
    """How a pattern meets the requests API Gateway routes to one route (``pattern_reach``).

    ``some``: a path routed there that the pattern matches (None: none is); ``missed``:
    a path routed there that it does not match (None: it matches all of them).
    ``decided`` is False when the search gave up (``MAX_STATES``): then ``reaches`` is
    True and ``covers`` False, the answers that report more, never less.
    """

    some: str | None
    missed: str | None
    decided: bool = True

    @property
    def reaches(self) -> bool:
        return self.some is not None or not self.decided

    @property
    def covers(self) -> bool:
        return self.decided and self.missed is None


def _segment_tokens(segment: str) -> list[_Token]:
    if _PARAMETER.fullmatch(segment):
        if segment.endswith("+}"):
            return [(_ANY_TOKEN, False), (_ANY_TOKEN, True)]
        return [(_SEGMENT_TOKEN, False), (_SEGMENT_TOKEN, True)]
    out: list[_Token] = []
    for char in segment:
        if char == "*":
            if not out or out[-1] != (_ANY_TOKEN, True):
                out.append((_ANY_TOKEN, True))
        elif char == "?":
            out.append((_ANY_TOKEN, False))
        else:
            out.append((char, False))
    return out


@lru_cache(maxsize=4096)
def _pattern_chain(pattern: str) -> tuple[_Token, ...]:
    """A mapping's resource as tokens (``*`` and ``?`` are IAM's, a whole-segment
    ``{...}`` a parameter)."""
    body = pattern[1:] if pattern.startswith("/") else pattern
    out: list[_Token] = []
    for i, piece in enumerate(body.split("/") if body else []):
        if i:
            out.append(("/", False))
        out.extend(_segment_tokens(piece))
    return tuple(out)


@lru_cache(maxsize=4096)
def _route_chain(route: RouteTemplate) -> tuple[_Token, ...]:
    """The paths of ``route`` (without their leading ``/``) as tokens."""
    out: list[_Token] = []
    for part in route.path:
        if isinstance(part, str):
            out.extend((char, False) for char in part)
        elif part is PathPart.SEGMENT:
            out += [(_SEGMENT_TOKEN, False), (_SEGMENT_TOKEN, True)]
        elif part is PathPart.GREEDY:
            out += [(_ANY_TOKEN, False), (_ANY_TOKEN, True)]
        else:
            out.append((_ANY_TOKEN, True))
    return tuple(out)


def _closure(chain: tuple[_Token, ...], states: set[int]) -> frozenset[int]:
    out = set(states)
    for state in sorted(states):
        while state < len(chain) and chain[state][1]:
            state += 1
            out.add(state)
    return frozenset(out)


def _step(chain: tuple[_Token, ...], states: frozenset[int], char: str) -> frozenset[int]:
    moved = set()
    for state in states:
        if state == len(chain):
            continue
        kind, repeated = chain[state]
        if kind in (char, _ANY_TOKEN) or (kind == _SEGMENT_TOKEN and char != "/"):
            moved.add(state if repeated else state + 1)
    return _closure(chain, moved)


def _path_in(include: Sequence[tuple[_Token, ...]], exclude: Sequence[tuple[_Token, ...]]) -> str | None:
    """A shortest path every ``include`` chain matches and no ``exclude`` chain does, with
    a leading ``/`` (so that a first empty segment reads as ``//...``).

    Raises:
        OverflowError: more than ``MAX_STATES`` states explored.
    """
    chains = (*include, *exclude)
    literals = {kind for chain in chains for kind, _ in chain if len(kind) == 1}
    letters = sorted(literals | {"/", _other_character(literals | {"/"})})
    start = tuple(_closure(chain, {0}) for chain in chains)
    parents: dict[tuple[frozenset[int], ...], tuple[tuple[frozenset[int], ...] | None, str]] = {start: (None, "")}
    queue = deque([start])
    kept = len(include)
    while queue:
        state = queue.popleft()
        if all(len(chains[i]) in state[i] for i in range(kept)) and not any(
                len(chains[i]) in state[i] for i in range(kept, len(chains))):
            chars = []
            at: tuple[frozenset[int], ...] | None = state
            while at is not None:
                at, char = parents[at]
                chars.append(char)
            return "/" + "".join(reversed(chars))
        for char in letters:
            following = tuple(_step(chains[i], state[i], char) for i in range(len(chains)))
            if not all(following[:kept]) or following in parents:
                continue
            if len(parents) >= MAX_STATES:
                raise OverflowError("too many states")
            parents[following] = (state, char)
            queue.append(following)
    return None


@lru_cache(maxsize=65536)
def _may_meet(a: str, b: str) -> bool:
    """False only when the route templates ``a`` and ``b`` match no path in common:
    a literal segment of one against another literal of the other, or more segments
    than the other has without a greedy parameter (a quick filter, never an answer)."""
    if a == "$default" or b == "$default":
        return True
    left = a[1:].split("/") if a[1:] else []
    right = b[1:].split("/") if b[1:] else []
    for i in range(max(len(left), len(right))):
        x = left[i] if i < len(left) else None
        y = right[i] if i < len(right) else None
        if (x is not None and x.endswith("+}")) or (y is not None and y.endswith("+}")):
            return True
        if x is None or y is None:
            return False
        if "{" not in x and "{" not in y and x != y:
            return False
    return True


def pattern_reach(
    pattern: str, method: str, route: tuple[str, str], routes: Sequence[tuple[str, str]]
) -> Reach:
    """Which requests ``method <path>`` that API Gateway routes to ``route`` (among
    ``routes``, as ``route_for`` decides) have a path ``pattern`` matches.

    ``pattern`` is a mapping's resource, with or without one leading ``/`` as in the
    permission files (so ``Grant.route.resource``, which has lost it, is passed as
    ``"/" + resource``): ``*`` is IAM's any run of characters (``/`` included), ``?`` one
    character, a whole segment ``{name}`` (or a ``{claim:...}`` placeholder) one
    non-empty segment, ``{name+}`` one or more characters. The witnesses in ``Reach``
    are request paths with their leading ``/``, as ``route_for`` reads them. Exact,
    except past ``MAX_STATES`` explored states (``Reach``). A ``route`` missing from
    ``routes`` is read as listed last.
    """
    pairs = list(routes)
    if route not in pairs:
        pairs.append(route)
    templates = [_pair_template(pair) for pair in pairs]
    index = pairs.index(route)
    own = templates[index]
    if method not in own.methods:
        return Reach(None, None)
    # The routes API Gateway prefers for a request both match (route_for's order).
    beaters = []
    for j, other in enumerate(templates):
        if j == index or method not in other.methods or not _may_meet(pairs[j][1], route[1]):
            continue
        tie = j < index and not outranks(own, other)
        if outranks(other, own) or tie:
            beaters.append(_route_chain(other))
    chain = _route_chain(own)
    wanted = _pattern_chain(pattern)
    try:
        some = _path_in((wanted, chain), beaters)
        missed = _path_in((chain,), (wanted, *beaters))
    except OverflowError:
        return Reach(None, None, decided=False)
    return Reach(some, missed)
