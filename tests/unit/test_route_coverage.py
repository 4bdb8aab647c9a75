"""``core.routes.route_coverage``: does a policy allow every request a route key carries?

Checked against an exact oracle that shares no code with it: on a small alphabet, every
request of a route up to a bounded length is written out and matched with
``core.iam.glob_matches``; a "not granted" answer must come with a witness that an
independent reading of the route key accepts and the policy really refuses.
"""

from __future__ import annotations

import re
import time
from itertools import product

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from policy_engine.core import routes
from policy_engine.core.decision import Decision, simple_answer
from policy_engine.core.iam import glob_matches
from policy_engine.core.permissions import HTTP_VERBS, compile_records
from policy_engine.core.routes import Coverage, parse_route_key, route_coverage

API = "arn:aws:execute-api:us-east-1:123456789012:a1b2c3d4e5"
BASE = f"{API}/dev/"


def covers(allowed, route_key, denied=(), prefix=BASE) -> Coverage:
    return route_coverage(tuple(allowed), tuple(denied), prefix, parse_route_key(route_key))


def granted(mappings: dict[str, str]) -> tuple[str, ...]:
    """Policy Resources for mappings ``{"VERB /path": ...}``, through validation and compaction."""
    records = [{"arn": API, "stage": "dev", "httpVerb": key.split(" ")[0], "resource": key.split(" ")[1],
                "scope": "s"} for key in mappings]
    return compile_records(records, lambda path: "test").resources(frozenset({"s"}), API, "dev")


@pytest.mark.parametrize(
    "mappings, route_key",
    [
        (("GET /*", "PUT /*"), "ANY /{a}/{b}"),
        (("GET /*", "PUT /*"), "ANY /x/{id}"),
        (("GET /*/items", "PUT /*/items"), "ANY /{a}/x/items"),
    ],
)
def test_methods_compacted_into_question_marks_do_not_cover_any(mappings, route_key):
    resources = granted(dict.fromkeys(mappings))
    assert any("/???/" in r for r in resources)  # the compaction the bug came from
    result = covers(resources, route_key)
    assert (result.granted, result.reason) == (False, "not_granted")
    method = result.witness.removeprefix(BASE).split("/")[0]
    assert method not in ("GET", "PUT")
    assert not any(glob_matches(r, result.witness) for r in resources)


@pytest.mark.parametrize(
    "mappings",
    [
        [f"{v} /pets/*" for v in HTTP_VERBS],
        ["ANY /pets/*"],
        [f"{v} /*" for v in HTTP_VERBS],
        ["* /*"],
    ],
)
def test_any_route_is_covered_when_every_method_is_granted(mappings):
    resources = granted(dict.fromkeys(mappings))
    assert covers(resources, "ANY /pets/{id}") == Coverage(True, "granted")
    assert covers(resources, "ANY /pets/{proxy+}").granted


def test_one_method_missing_is_found():
    resources = granted(dict.fromkeys(f"{v} /pets/*" for v in HTTP_VERBS if v != "OPTIONS"))
    result = covers(resources, "ANY /pets/{id}")
    assert not result.granted and result.witness.startswith(f"{BASE}OPTIONS/pets/")


@pytest.mark.parametrize(
    "allowed, route_key, expected",
    [
        (["GET/pets/*"], "GET /pets/{id}", True),
        (["GET/pets/*"], "GET /pets/{proxy+}", True),
        (["GET/pets/*"], "GET /pets", False),
        (["GET/pets/?"], "GET /pets/{id}", False),  # ids are longer than one character too
        (["GET/pets/?*"], "GET /pets/{id}", True),
        (["GET/pets/*/photos"], "GET /pets/{id}/photos", True),
        (["GET/pets/*/photos"], "GET /pets/{proxy+}", False),
        (["GET/*"], "GET /", True),
        (["GET/?*"], "GET /", False),
        (["*"], "$default", True),
        (["???/*", "POST/*", "PATCH/*", "DELETE/*", "HEAD/*"], "$default", False),
        (["???/*", "POST/*", "PATCH/*", "DELETE/*", "HEAD/*", "OPTIONS/*"], "$default", True),
        (["GET/pets/1", "GET/pets/2"], "GET /pets/{id}", False),
        (["GET/Pets/*"], "GET /pets/{id}", False),  # case-sensitive
    ],
)
def test_examples(allowed, route_key, expected):
    assert covers([BASE + a if a != "*" else "*" for a in allowed], route_key).granted is expected


def test_a_deny_matching_any_request_of_the_route_refuses_it():
    result = covers([f"{BASE}GET/pets/*"], "GET /pets/{id}", denied=[f"{BASE}GET/pets/secret*"])
    assert (result.granted, result.reason) == (False, "denied")
    assert glob_matches(f"{BASE}GET/pets/secret*", result.witness)
    # a Deny of a deeper path is not a request of a one-segment route
    assert covers([f"{BASE}GET/pets/*"], "GET /pets/{id}", denied=[f"{BASE}GET/pets/*/secret"]).granted


def test_patterns_of_another_api_or_stage_do_not_count():
    assert not covers([f"{API}/prod/GET/pets/*"], "GET /pets/{id}").granted
    assert covers([f"{API}/*/GET/pets/*"], "GET /pets/{id}").granted


def test_past_the_bound_the_answer_is_not_granted(monkeypatch):
    monkeypatch.setattr(routes, "MAX_STATES", 3)
    route_coverage.cache_clear()
    try:
        assert covers([f"{BASE}GET/pets/*"], "GET /pets/{id}") == Coverage(False, "undecided")
    finally:
        route_coverage.cache_clear()


def test_simple_answer_decision_says_what_the_response_says():
    resources = granted({"GET /*": "", "PUT /*": ""})
    decision = Decision("Allow", "p", API, "dev", resources, "granted", "v1")
    answer = simple_answer(decision, f"{BASE}GET/pets/1", parse_route_key("ANY /{a}/{b}"))
    assert answer.response["isAuthorized"] is False
    assert (answer.decision.effect, answer.decision.reason, answer.decision.resources) == (
        "Deny", "route_not_fully_granted", ())
    answer = simple_answer(decision, f"{BASE}GET/pets/1", parse_route_key("GET /{a}/{b}"))
    assert answer.response["isAuthorized"] is True and answer.decision.effect == "Allow"
    answer = simple_answer(decision, f"{BASE}POST/pets/1", parse_route_key("POST /{a}/{b}"))
    assert answer.response["isAuthorized"] is False
    assert (answer.decision.effect, answer.decision.reason) == ("Deny", "no_grant_for_route")


def test_a_large_policy_is_decided_quickly():
    # 150 routes of one method plus every method on a wildcard path: a few hundred states.
    resources = granted({**{f"GET /big/{i}/items": "" for i in range(150)},
                         **{f"{v} /pets/*": "" for v in HTTP_VERBS}})
    started = time.perf_counter()
    assert covers(resources, "ANY /pets/{id}").granted
    assert not covers(resources, "ANY /big/{i}/items").granted
    assert not covers(resources, "$default").granted
    elapsed = time.perf_counter() - started
    print(f"three coverage decisions over {len(resources)} Resources: {elapsed * 1000:.1f} ms")
    assert elapsed < 5  # generous: it is milliseconds; the bound only catches a blow-up


# ---------------------------------------------------------------- exact oracle, small alphabet

PREFIX = "A/s/"
# Glob pieces: the prefix, methods, '???', wildcards, and the path letters of the routes.
GLOB_PIECES = (PREFIX, PREFIX, "GET", "PUT", "POST", "???", "*", "*", "?", "/", "a", "b", "G")
ROUTE_PIECES = ("a", "b", "ab", "{p}", "{q}", "{proxy+}")
# Parameter values: letters the patterns use, one they never use ('z'), and '/' for greedy ones.
SEGMENT_VALUES = tuple("".join(v) for n in (1, 2) for v in product("abz", repeat=n))
GREEDY_VALUES = tuple("".join(v) for n in (1, 2) for v in product("abz/", repeat=n))
DEFAULT_PATHS = ("", *GREEDY_VALUES)

# Shaped like policy Resources (prefix, method field, path) most of the time, so that
# routes are often wholly granted; free-form now and then.
shaped_globs = st.builds(
    lambda method, path: f"{PREFIX}{method}/{path}",
    st.sampled_from(("*", "*", "???", "GET", "PUT", "POST", "?ET", "P*", "*T")),
    st.lists(st.sampled_from(("*", "*", "*", "a", "b", "?", "/", "a*", "*b")), max_size=3).map("".join),
)
globs = st.one_of(shaped_globs, shaped_globs,
                  st.lists(st.sampled_from(GLOB_PIECES), min_size=1, max_size=6).map("".join))


@st.composite
def small_route_keys(draw: st.DrawFn) -> str:
    if draw(st.sampled_from((False,) * 7 + (True,))):
        return "$default"
    method = draw(st.sampled_from(("ANY", "GET", "PUT", "POST")))
    parts = draw(st.lists(st.sampled_from(ROUTE_PIECES), max_size=3))
    # API Gateway allows a greedy variable only at the end, and at most two variables keep
    # the enumeration small.
    parts = [p for p in parts if p != "{proxy+}"] + [p for p in parts if p == "{proxy+}"][:1]
    while sum(p.startswith("{") for p in parts) > 2:
        parts.pop(0)
    return f"{method} /" + "/".join(parts)


def route_regex(route_key: str) -> re.Pattern[str]:
    """The request ARNs of a route key, read independently of core.routes."""
    if route_key == "$default":
        methods, path = HTTP_VERBS, ".*"
    else:
        method, _, raw = route_key.partition(" ")
        methods = HTTP_VERBS if method == "ANY" else (method,)
        path = "".join("[^/]+" if p in ("{p}", "{q}") else ".+" if p == "{proxy+}" else re.escape(p)
                       for p in re.split(r"(\{[^}]*\})", raw[1:]))
    return re.compile(re.escape(PREFIX) + "(?:" + "|".join(methods) + ")/" + path, re.DOTALL)


def enumerate_requests(route_key: str) -> tuple[list[str], bool]:
    """Every request ARN of the route with parameter values from the small sets, and
    whether that is the route's whole language (no variable part)."""
    if route_key == "$default":
        return [f"{PREFIX}{m}/{p}" for m in HTTP_VERBS for p in DEFAULT_PATHS], False
    method, _, raw = route_key.partition(" ")
    methods = HTTP_VERBS if method == "ANY" else (method,)
    pieces = re.split(r"(\{[^}]*\})", raw[1:])
    choices = [GREEDY_VALUES if p == "{proxy+}" else SEGMENT_VALUES if p.startswith("{") else (p,) for p in pieces]
    paths = ["".join(v) for v in product(*choices)]
    return [f"{PREFIX}{m}/{p}" for m in methods for p in paths], not any(p.startswith("{") for p in pieces)


def refused(request: str, allowed: list[str], denied: list[str]) -> bool:
    return not any(glob_matches(g, request) for g in allowed) or any(glob_matches(g, request) for g in denied)


@settings(max_examples=300, deadline=None)
@given(allowed=st.lists(globs, min_size=1, max_size=5), denied=st.lists(globs, max_size=2),
       route_key=small_route_keys())
def test_automaton_agrees_with_enumeration(allowed, denied, route_key):
    result = route_coverage(tuple(allowed), tuple(denied), PREFIX, parse_route_key(route_key))
    assert result.reason != "undecided"
    requests, whole_language = enumerate_requests(route_key)
    counterexamples = [r for r in requests if refused(r, allowed, denied)]
    if result.granted:
        # THEN no request of the route, however written out, is refused
        assert not counterexamples, (route_key, allowed, denied, counterexamples[:3])
        return
    # THEN "not granted" comes with a real request of the route that the policy refuses
    witness = result.witness
    assert route_regex(route_key).fullmatch(witness), (route_key, witness)
    assert refused(witness, allowed, denied), (route_key, allowed, denied, witness)
    if result.reason == "denied":
        assert any(glob_matches(g, witness) for g in denied)
    # where the enumeration is the route's whole language, it finds one too
    if whole_language:
        assert counterexamples, (route_key, allowed, denied, witness)
