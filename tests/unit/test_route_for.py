"""``core.routes.route_for``: which route API Gateway sends a request to.

The examples are AWS's own (HTTP API routing, "Routing API requests") and the REST
behaviour described in the module docstring; the property test compares against a
resource-tree walk written here independently (try the literal child, then the
parameter child, then the greedy one, backtracking when a branch has no method for
the request).
"""

from __future__ import annotations

import re
from functools import lru_cache
from itertools import product

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from policy_engine.core.arn import HTTP_VERBS
from policy_engine.core.routes import pattern_reach, route_for

AWS_EXAMPLE = [
    ("GET", "/pets/dog/1"),
    ("GET", "/pets/dog/{id}"),
    ("GET", "/pets/{proxy+}"),
    ("ANY", "/{proxy+}"),
]


@pytest.mark.parametrize(
    ("method", "path", "expected"),
    [
        ("GET", "/pets/dog/1", ("GET", "/pets/dog/1")),
        ("GET", "/pets/dog/2", ("GET", "/pets/dog/{id}")),
        ("GET", "/pets/cat/1", ("GET", "/pets/{proxy+}")),
        ("POST", "/test/5", ("ANY", "/{proxy+}")),
        ("POST", "/pets/dog/1", ("ANY", "/{proxy+}")),
        # As a methodArn carries it: no leading slash.
        ("GET", "pets/dog/1", ("GET", "/pets/dog/1")),
    ],
)
def test_aws_worked_example(method: str, path: str, expected: tuple[str, str]) -> None:
    assert route_for(method, path, AWS_EXAMPLE) == expected


def test_the_match_is_per_method() -> None:
    routes = [("GET", "/users/{userId}"), ("PATCH", "/users/me")]
    assert route_for("PATCH", "/users/me", routes) == ("PATCH", "/users/me")
    assert route_for("GET", "/users/me", routes) == ("GET", "/users/{userId}")
    assert route_for("POST", "/users/me", routes) is None


def test_a_literal_with_another_method_falls_through_to_the_proxy() -> None:
    routes = [("GET", "/things/real"), ("ANY", "/things/{proxy+}")]
    assert route_for("POST", "/things/real", routes) == ("ANY", "/things/{proxy+}")
    assert route_for("GET", "/things/real", routes) == ("GET", "/things/real")


def test_exact_verb_beats_any_on_the_same_template_whatever_the_order() -> None:
    for routes in ([("ANY", "/pets"), ("GET", "/pets")], [("GET", "/pets"), ("ANY", "/pets")]):
        assert route_for("GET", "/pets", routes) == ("GET", "/pets")
        assert route_for("DELETE", "/pets", routes) == ("ANY", "/pets")


def test_any_on_a_more_specific_path_beats_the_verb_on_a_parameter() -> None:
    routes = [("GET", "/pets/{id}"), ("ANY", "/pets/mine")]
    assert route_for("GET", "/pets/mine", routes) == ("ANY", "/pets/mine")


def test_any_stands_for_the_methods_api_gateway_routes_only() -> None:
    assert route_for("TRACE", "/x", [("ANY", "/x")]) is None
    assert route_for("get", "/x", [("GET", "/x")]) is None  # methods are case-sensitive


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("/pet/findByStatus", ("GET", "/pet/findByStatus")),
        ("/pet/12", ("GET", "/pet/{petId}")),
        ("/pet/", None),  # {petId} is never empty
        ("/pet//x", None),
        ("/pet/12/", None),
        ("/pet/a:b*c?d", ("GET", "/pet/{petId}")),  # any character but '/'
        ("/pet/12/uploadImage", ("GET", "/pet/{petId}/uploadImage")),
        ("/pet/12/other", None),
        ("/Pet/12", None),  # literal text is case-sensitive
        ("/", ("GET", "/")),
        ("", ("GET", "/")),
    ],
)
def test_segments(path: str, expected: tuple[str, str] | None) -> None:
    routes = [("GET", "/pet/{petId}"), ("GET", "/pet/findByStatus"), ("GET", "/pet/{petId}/uploadImage"),
              ("GET", "/")]
    assert route_for("GET", path, routes) == expected


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("/store/a", ("ANY", "/store/{proxy+}")),
        ("/store/a/b//c", ("ANY", "/store/{proxy+}")),
        ("/store//", ("ANY", "/store/{proxy+}")),  # one or more characters, '/' included
        ("/store/", ("ANY", "$default")),  # the proxy needs one character or more
        ("/store", ("ANY", "$default")),
        ("/other", ("ANY", "$default")),
        ("", ("ANY", "$default")),
    ],
)
def test_greedy_and_default(path: str, expected: tuple[str, str] | None) -> None:
    routes = [("ANY", "$default"), ("ANY", "/store/{proxy+}")]
    assert route_for("GET", path, routes) == expected


def test_identical_shapes_resolve_to_the_first_listed() -> None:
    routes = [("GET", "/p/{a}"), ("GET", "/p/{b}")]
    assert route_for("GET", "/p/1", routes) == ("GET", "/p/{a}")


# -- property: the same answer as an independent resource-tree walk ------------------

LITERALS = ["a", "b", "pets", ""]
TEMPLATE_SEGMENTS = [*LITERALS, "{x}", "{y}"]


def _tree_walk(method: str, path: str, routes: list[tuple[str, str]]) -> tuple[str, str] | None:
    segments = path[1:].split("/") if path[1:] else []
    parsed = []
    for verb, template in routes:
        pieces = template[1:].split("/") if template != "/" else []
        parsed.append((verb, template, pieces))

    def at_leaf(candidates: list[tuple[str, str, list[str]]]) -> tuple[str, str] | None:
        for verb, template, _ in candidates:
            if verb == method:
                return (verb, template)
        for verb, template, _ in candidates:
            if verb == "ANY" and method in HTTP_VERBS:
                return (verb, template)
        return None

    def walk(depth: int, candidates: list[tuple[str, str, list[str]]]) -> tuple[str, str] | None:
        if depth == len(segments):
            return at_leaf([c for c in candidates if len(c[2]) == depth])
        here = segments[depth]
        literal = [c for c in candidates if len(c[2]) > depth and c[2][depth] == here
                   and not c[2][depth].startswith("{")]
        parameter = [c for c in candidates if len(c[2]) > depth and c[2][depth] in ("{x}", "{y}")]
        greedy = [c for c in candidates if len(c[2]) == depth + 1 and c[2][depth] == "{p+}"]
        if literal and (found := walk(depth + 1, literal)):
            return found
        if parameter and here and (found := walk(depth + 1, parameter)):
            return found
        # Parameters of different names at one level are one resource: first listed.
        if greedy and "/".join(segments[depth:]):
            return at_leaf(greedy)
        return None

    # Shapes that differ only by parameter name are one route: keep the first listed.
    seen: set[tuple[str, tuple[str, ...]]] = set()
    unique = []
    for verb, template, pieces in parsed:
        shape = (verb, tuple("{}" if p in ("{x}", "{y}") else p for p in pieces))
        if shape not in seen:
            seen.add(shape)
            unique.append((verb, template, pieces))
    return walk(0, unique)


templates = st.builds(
    lambda pieces, greedy: "/" + "/".join(pieces + (["{p+}"] if greedy else [])),
    st.lists(st.sampled_from(TEMPLATE_SEGMENTS), max_size=3),
    st.booleans(),
)
route_lists = st.lists(st.tuples(st.sampled_from(["GET", "POST", "ANY"]), templates), max_size=8)
request_paths = st.builds(lambda pieces: "/" + "/".join(pieces),
                          st.lists(st.sampled_from([*LITERALS, "1", "a/b", "{x}"]), max_size=4))


@settings(max_examples=400, deadline=None)
@given(st.sampled_from(["GET", "POST", "PUT", "TRACE"]), request_paths, route_lists)
def test_same_answer_as_a_resource_tree_walk(method: str, path: str, routes: list[tuple[str, str]]) -> None:
    assert route_for(method, path, routes) == _tree_walk(method, path, routes)


# -- pattern_reach: which routed requests a mapping's pattern matches ----------------

PETS = [("GET", "/pet/{petId}"), ("GET", "/pet/findByStatus"), ("ANY", "/store/{proxy+}"), ("POST", "/pet")]


def test_a_glob_reaches_the_literal_sibling_it_was_not_written_for() -> None:
    reach = pattern_reach("pet/*", "GET", ("GET", "/pet/findByStatus"), PETS)
    assert reach.some == "/pet/findByStatus" and reach.covers
    reach = pattern_reach("/pet/*", "GET", ("GET", "/pet/{petId}"), PETS)
    assert reach.reaches and reach.covers


def test_a_literal_path_under_a_parameter_route_reaches_it_partly() -> None:
    reach = pattern_reach("pet/12", "GET", ("GET", "/pet/{petId}"), PETS)
    assert reach.some == "/pet/12" and reach.missed is not None and not reach.covers


def test_the_literal_sibling_is_not_part_of_the_parameter_route() -> None:
    # pet/findByStatus is routed to its own literal route, never to {petId}.
    reach = pattern_reach("pet/findByStatus", "GET", ("GET", "/pet/{petId}"), PETS)
    assert not reach.reaches


def test_a_template_pattern_is_one_segment() -> None:
    reach = pattern_reach("pet/{id}", "GET", ("GET", "/pet/{petId}"), PETS)
    assert reach.covers and reach.reaches
    assert not pattern_reach("pet/{id}", "GET", ("ANY", "/store/{proxy+}"), PETS).reaches


def test_the_greedy_route_and_methods() -> None:
    assert pattern_reach("store/*", "DELETE", ("ANY", "/store/{proxy+}"), PETS).covers
    reach = pattern_reach("store/orders/*", "DELETE", ("ANY", "/store/{proxy+}"), PETS)
    assert reach.reaches and reach.missed is not None
    # A route that does not take the method has no requests.
    assert pattern_reach("*", "PUT", ("GET", "/pet/{petId}"), PETS) == pattern_reach("x", "PUT", ("POST", "/pet"),
                                                                                        PETS)
    assert not pattern_reach("*", "PUT", ("GET", "/pet/{petId}"), PETS).reaches


def _pattern_regex(pattern: str) -> re.Pattern[str]:
    out = []
    for i, segment in enumerate(pattern.split("/")):
        if i:
            out.append("/")
        if re.fullmatch(r"\{[^{}/]*\}", segment):
            out.append(".+" if segment.endswith("+}") else "[^/]+")
            continue
        out.extend(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in segment)
    return re.compile("".join(out), re.DOTALL)


@lru_cache(maxsize=1)
def _all_paths() -> tuple[str, ...]:
    letters = "ab/x"
    return tuple("".join(p) for n in range(6) for p in product(letters, repeat=n))


PATTERN_PIECES = ["a", "b", "ab", "", "*", "a*", "?", "{x}", "{p+}"]
ROUTE_PIECES = ["a", "b", "ab", "", "{x}"]

patterns = st.builds(lambda pieces: "/".join(pieces), st.lists(st.sampled_from(PATTERN_PIECES), min_size=1,
                                                                max_size=3))
route_templates = st.builds(lambda pieces, greedy: "/" + "/".join(pieces + (["{p+}"] if greedy else [])),
                            st.lists(st.sampled_from(ROUTE_PIECES), max_size=2), st.booleans())
small_routes = st.lists(st.tuples(st.sampled_from(["GET", "ANY"]), route_templates), min_size=1, max_size=5)


@settings(max_examples=150, deadline=None)
@given(patterns, small_routes, st.data())
def test_pattern_reach_agrees_with_enumerated_requests(pattern: str, routes: list[tuple[str, str]],
                                                       data: st.DataObject) -> None:
    route = data.draw(st.sampled_from(routes))
    reach = pattern_reach(pattern, "GET", route, routes)
    assert reach.decided
    # Like a permission file's resource, the pattern may carry one leading '/'.
    matches = _pattern_regex(pattern.removeprefix("/")).fullmatch
    # Request paths as methodArns carry them (no leading '/'), given to route_for with one.
    routed = [p for p in _all_paths() if route_for("GET", "/" + p, routes) == route]
    hit = [p for p in routed if matches(p)]
    missed = [p for p in routed if not matches(p)]
    # Every witness is a real one, and a shortest one.
    if reach.some is not None:
        assert reach.some.startswith("/")
        assert route_for("GET", reach.some, routes) == route and matches(reach.some[1:])
        assert not hit or len(reach.some) - 1 <= len(hit[0])
    else:
        assert hit == []
    if reach.missed is not None:
        assert route_for("GET", reach.missed, routes) == route and not matches(reach.missed[1:])
        assert not missed or len(reach.missed) - 1 <= len(missed[0])
    else:
        assert missed == []
