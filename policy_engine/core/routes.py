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

from policy_engine.core.arn import HTTP_VERBS
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

    __slots__ = ("closure", "rest_is_star", "start", "symbols")

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

    def literals(self) -> set[str]:
        """The literal characters still ahead of the start states: the only ones the
        NFA can tell apart from here on."""
        out: set[str] = set()
        symbols = self.symbols
        for state in self.start:
            while (symbol := symbols[state]) is not None:
                if symbol not in "*?":
                    out.add(symbol)
                state += 1
        return out


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
    grants, denies, requests = _Globs(allowed, prefix), _Globs(denied, prefix), _Route(route)
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


# One segment of a route template, for route_for: its rank (literal beats parameter
# beats greedy) and, for a literal, its text.
_LITERAL_RANK, _PARAMETER_RANK, _GREEDY_RANK = 2, 1, 0


@lru_cache(maxsize=4096)
def _template_segments(template: str) -> tuple[tuple[int, str], ...] | None:
    # None: a template API Gateway cannot hold (a greedy parameter before the end).
    body = template[1:] if template.startswith("/") else template
    if not body:
        return ()
    out: list[tuple[int, str]] = []
    pieces = body.split("/")
    for i, piece in enumerate(pieces):
        whole = piece.startswith("{") and piece.endswith("}") and _PARAMETER.fullmatch(piece) is not None
        if whole and piece.endswith("+}"):
            if i != len(pieces) - 1:
                return None
            out.append((_GREEDY_RANK, ""))
        elif whole:
            out.append((_PARAMETER_RANK, ""))
        else:
            out.append((_LITERAL_RANK, piece))
    return tuple(out)


def _specificity(template: str, segments: list[str]) -> tuple[int, ...] | None:
    """The ranks of the template's segments if it routes ``segments``, else None."""
    if template == "$default":
        return (-1,)
    parts = _template_segments(template)
    if parts is None:
        return None
    ranks: list[int] = []
    for i, (rank, literal) in enumerate(parts):
        if rank == _GREEDY_RANK:
            # {name+}: the rest of the path, one or more characters of any kind.
            if not "/".join(segments[i:]):
                return None
            ranks.append(rank)
            return tuple(ranks)
        if i >= len(segments):
            return None
        if rank == _LITERAL_RANK and segments[i] != literal:
            return None
        if rank == _PARAMETER_RANK and not segments[i]:
            return None
        ranks.append(rank)
    return tuple(ranks) if len(parts) == len(segments) else None


def route_for(method: str, path: str, routes: Sequence[tuple[str, str]]) -> tuple[str, str] | None:
    """The route of ``routes`` API Gateway sends ``method path`` to, or None (no route: API
    Gateway answers 404 / 403 without calling an authorizer).

    ``routes`` are ``(verb or "ANY", template)`` pairs, templates as API Gateway writes
    them (``/pets/{petId}``, ``/files/{proxy+}``, ``/``; ``$default`` routes everything
    last). ``path`` is the request path as a methodArn carries it after the method, with
    or without one leading ``/`` (a first empty segment is then written ``//``); it may
    hold any character. The rules (API Gateway
    developer guide, "Routing API requests" for HTTP APIs and "Set up a method request"
    for REST: https://docs.aws.amazon.com/apigateway/latest/developerguide/http-api-develop-routes.html,
    https://docs.aws.amazon.com/apigateway/latest/developerguide/api-gateway-method-settings-method-request.html):

    * only routes whose verb is ``method``, or ``ANY`` (which stands for ``HTTP_VERBS``),
      can take the request: the match is per method, so ``GET /users/me`` goes to
      ``GET /users/{id}`` when the literal ``/users/me`` only has ``PATCH``;
    * ``{name}`` is one non-empty segment (no ``/``); ``{name+}`` is the rest of the path,
      one or more characters, ``/`` included; a literal segment matches its exact text
      (case-sensitive); a segment with text around a parameter is literal text, as API
      Gateway allows no such template;
    * of the routes that match, segment by segment from the left, a literal beats a
      parameter, which beats a greedy parameter (the REST resource tree's order); on the
      same template, the exact verb beats ``ANY``; ``$default`` comes last.

    HTTP APIs rank every non-greedy match above every greedy one, which differs from
    the tree's order only when a greedy route has more literal segments before its
    ``{name+}`` than a non-greedy route that also matches (``/a/{p+}`` against
    ``/{x}/b`` for ``/a/b``); this function gives the REST answer there.
    Two routes with the same shape and verb (``/p/{a}``, ``/p/{b}``: API Gateway refuses
    the second) resolve to the first listed.
    """
    body = path[1:] if path.startswith("/") else path
    segments = body.split("/") if body else []
    best: tuple[tuple[int, ...], int] | None = None
    chosen: tuple[str, str] | None = None
    for route in routes:
        verb, template = route
        if verb == "ANY":
            if method not in HTTP_VERBS:
                continue
            exact = 0
        elif verb == method:
            exact = 1
        else:
            continue
        ranks = _specificity(template, segments)
        if ranks is None:
            continue
        key = (ranks, exact)
        if best is None or key > best:
            best, chosen = key, route
    return chosen


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


def _segment_tokens(segment: str, *, wildcards: bool, last: bool) -> list[_Token] | None:
    if _PARAMETER.fullmatch(segment):
        if segment.endswith("+}"):
            if not last and not wildcards:
                return None  # a template API Gateway cannot hold: it routes nothing
            return [(_ANY_TOKEN, False), (_ANY_TOKEN, True)]
        return [(_SEGMENT_TOKEN, False), (_SEGMENT_TOKEN, True)]
    out: list[_Token] = []
    for char in segment:
        if wildcards and char == "*":
            if not out or out[-1] != (_ANY_TOKEN, True):
                out.append((_ANY_TOKEN, True))
        elif wildcards and char == "?":
            out.append((_ANY_TOKEN, False))
        else:
            out.append((char, False))
    return out


@lru_cache(maxsize=4096)
def _chain(text: str, wildcards: bool) -> tuple[_Token, ...] | None:
    """A pattern (``wildcards``: ``*`` and ``?`` are IAM's) or a route template as tokens."""
    if not wildcards and text == "$default":
        return ((_ANY_TOKEN, True),)
    body = text[1:] if text.startswith("/") else text
    if not body:
        return ()
    pieces = body.split("/")
    out: list[_Token] = []
    for i, piece in enumerate(pieces):
        if i:
            out.append(("/", False))
        tokens = _segment_tokens(piece, wildcards=wildcards, last=i == len(pieces) - 1)
        if tokens is None:
            return None
        out.extend(tokens)
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


def _route_key(route: tuple[str, str], method: str) -> tuple[tuple[int, ...], int] | None:
    # route_for's order; None when the route never takes ``method``.
    verb, template = route
    if verb == "ANY":
        if method not in HTTP_VERBS:
            return None
        exact = 0
    elif verb == method:
        exact = 1
    else:
        return None
    if template == "$default":
        return ((-1,), exact)
    parts = _template_segments(template)
    if parts is None:
        return None
    return (tuple(rank for rank, _ in parts), exact)


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
    listed = list(routes)
    if route not in listed:
        listed.append(route)
    index = listed.index(route)
    own = _route_key(route, method)
    chain = _chain(route[1], False)
    wanted = _chain(pattern, True)
    if own is None or chain is None or wanted is None:
        return Reach(None, None)
    beaters = []
    for j, other in enumerate(listed):
        key = _route_key(other, method)
        if j == index or key is None:
            continue
        if key > own or (key == own and j < index):
            other_chain = _chain(other[1], False)
            if other_chain is not None:
                beaters.append(other_chain)
    try:
        some = _path_in((wanted, chain), beaters)
        missed = _path_in((chain,), (wanted, *beaters))
    except OverflowError:
        return Reach(None, None, decided=False)
    return Reach(some, missed)
