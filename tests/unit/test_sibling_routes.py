"""Route templates decide exactly: judged by evaluating the policy as API Gateway does,
against an independent model of API Gateway's routing (written here, segment by segment).

GIVEN route templates under different grants, WHEN a caller is decided for one request,
THEN the policy allows every probe request routed to a granted route and no other, or,
when no single policy can (``per_request``), allows the decided request exactly and never
anything the caller is not granted.
"""

from __future__ import annotations

import subprocess
import sys
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from policy_engine.core.iam import Verdict, evaluate_response
from policy_engine.core.permissions import compile_records
from policy_engine.core.routes import parse_route_key, reaches, reaches_by_automata, route_for
from tests.conftest import ROOT

API = "arn:aws:execute-api:us-east-1:123456789012:a1b2c3d4e5"
STAGE = "dev"
PREFIX = f"{API}/{STAGE}/"

# Literal, parameter and greedy siblings, per-method literals, ANY beside exact methods.
ROUTES = [
    "GET /pet/{petId}", "GET /pet/findByStatus", "GET /pet/{petId}/photos", "ANY /pet/{proxy+}", "POST /pet",
    "GET /store/inventory", "ANY /store/{proxy+}", "DELETE /store/order/{orderId}",
    "GET /files/{id}", "GET /files/{proxy+}",
    "PATCH /users/me", "GET /users/{userId}",
    "ANY /things/{id}", "GET /things/{id}", "GET /things/real",
    "GET /docs/{id}/meta", "GET /docs/{proxy+}",
]
SCOPES = ["s0", "s1", "s2", "s3"]
VALUES = ["1", "findByStatus", "me", "real", "inventory", "photos", "order", "a/b", "x/photos", "1/photos/2",
          "1/2/meta"]
METHODS = ["GET", "POST", "PATCH", "DELETE", "PUT"]


def _kinds(template: str) -> tuple[int, ...]:
    return tuple(2 if s.endswith("+}") else 1 if s.startswith("{") else 0 for s in template.strip("/").split("/"))


def _matches(template: str, path: str) -> bool:
    want, got = template.strip("/").split("/"), path.strip("/").split("/")
    for i, segment in enumerate(want):
        if segment.endswith("+}"):
            return len(got) > i and all(got[i:]) and "".join(got[i:]) != ""
        if i >= len(got) or not got[i]:
            return False
        if not segment.startswith("{") and segment != got[i]:
            return False
    return len(got) == len(want)


def _routed(method: str, path: str) -> str | None:
    """API Gateway's pick, modelled independently: most specific path first, then exact method over ANY."""
    candidates = []
    for key in ROUTES:
        verb, template = key.split(" ", 1)
        if verb in (method, "ANY") and _matches(template, path):
            candidates.append((_kinds(template), verb == "ANY", key))
    return min(candidates)[2] if candidates else None


def _probes() -> list[tuple[str, str]]:
    out = []
    for key in ROUTES:
        template = key.split(" ", 1)[1]
        for value in VALUES:
            path = "/".join(value if s.startswith("{") else s for s in template.split("/"))
            for method in METHODS:
                out.append((method, path))
    return sorted(set(out))


PROBES = [(m, p, _routed(m, p)) for m, p in _probes()]


def _response(evaluation: Any, decided: str) -> dict[str, Any]:
    allow = list(evaluation.resources)
    if evaluation.per_request:
        method, path = decided.split("/", 1)
        route = route_for(method, "/" + path, [parse_route_key(k) for k in ROUTES])
        if route in evaluation.per_request:
            allow.append(PREFIX + decided)
    statements = [{"Effect": "Allow", "Action": "execute-api:Invoke", "Resource": allow or [PREFIX + "none"]}]
    if evaluation.excluded:
        statements.append({"Effect": "Deny", "Action": "execute-api:Invoke", "Resource": list(evaluation.excluded)})
    return {"principalId": "p", "policyDocument": {"Version": "2012-10-17", "Statement": statements}}


@settings(max_examples=60, deadline=None)
@given(
    needs=st.lists(st.sampled_from(SCOPES), min_size=len(ROUTES), max_size=len(ROUTES)),
    held=st.frozensets(st.sampled_from(SCOPES)),
    decided=st.sampled_from([(m, p) for m, p, routed in PROBES if routed is not None]),
)
def test_templates_grant_exactly_the_routes_api_gateway_routes_to(
    needs: list[str], held: frozenset[str], decided: tuple[str, str]
) -> None:
    records = []
    for key, scope in zip(ROUTES, needs, strict=True):
        verb, path = key.split(" ", 1)
        records.append({"arn": API, "stage": STAGE, "httpVerb": verb, "resource": path, "scope": scope})
    permissions = compile_records(records, str)
    granted = {key for key, scope in zip(ROUTES, needs, strict=True) if scope in held}
    evaluation = permissions.evaluate(held, API, STAGE)
    decided_tail = f"{decided[0]}/{decided[1].lstrip('/')}"
    response = _response(evaluation, decided_tail)
    for method, path, routed in PROBES:
        if routed is None:
            continue  # API Gateway never asks about a request no route takes
        tail = f"{method}/{path.lstrip('/')}"
        allowed = evaluate_response(response, PREFIX + tail) is Verdict.ALLOW
        expected = routed in granted
        if allowed:
            assert expected, f"{tail} (routed to {routed}) allowed without a grant: {response}"
        elif expected and (not evaluation.per_request or tail == decided_tail):
            raise AssertionError(f"{tail} (routed to {routed}) denied although granted: {response}")


def test_a_parameter_route_leaves_its_literal_sibling_to_its_own_grant() -> None:
    records = [
        {"arn": API, "stage": STAGE, "httpVerb": "GET", "resource": "/pet/{petId}", "scope": "read"},
        {"arn": API, "stage": STAGE, "httpVerb": "GET", "resource": "/pet/findByStatus", "scope": "admin"},
    ]
    permissions = compile_records(records, str)
    evaluation = permissions.evaluate(frozenset({"read"}), API, STAGE)
    assert evaluation.resources == (f"{PREFIX}GET/pet/*",)
    assert evaluation.excluded == (f"{PREFIX}GET/pet/findByStatus",)
    response = _response(evaluation, "GET/pet/1")
    assert evaluate_response(response, f"{PREFIX}GET/pet/12") is Verdict.ALLOW
    assert evaluate_response(response, f"{PREFIX}GET/pet/findByStatus") is Verdict.EXPLICIT_DENY
    # both granted: nothing to take back
    both = permissions.evaluate(frozenset({"read", "admin"}), API, STAGE)
    assert both.excluded == () and both.per_request == ()


def test_without_route_templates_nothing_changes() -> None:
    records = [
        {"arn": API, "stage": STAGE, "httpVerb": "GET", "resource": "/pets/*", "scope": "read"},
        {"arn": API, "stage": STAGE, "httpVerb": "GET", "resource": "/pets/mine", "scope": "admin"},
    ]
    evaluation = compile_records(records, str).evaluate(frozenset({"read"}), API, STAGE)
    assert evaluation.resources == (f"{PREFIX}GET/pets/*",) and evaluation.excluded == ()


# The guards of core.routes.reaches (a literal glob, no shared request with the template,
# a witness request) against the automata alone, on small hostile alphabets.
_SEGMENT = st.sampled_from(["a", "b", "ab", "{x}", "{y}"])
_TEMPLATE = st.builds(
    lambda verb, segments, greedy: f"{verb} /" + "/".join(segments + (["{p+}"] if greedy else [])),
    st.sampled_from(["GET", "POST", "ANY"]), st.lists(_SEGMENT, min_size=0, max_size=3), st.booleans(),
).filter(lambda key: not key.endswith(" /"))
_GLOB = st.builds(
    lambda verb, body: f"{verb}/{body}",
    st.sampled_from(["GET", "POST", "???", "*"]), st.text(alphabet="ab/*?", min_size=0, max_size=7),
)


@settings(max_examples=400, deadline=None)
@given(globs=st.lists(_GLOB, min_size=1, max_size=3), route=_TEMPLATE, above=st.lists(_TEMPLATE, max_size=3))
def test_reaches_guards_agree_with_the_automata(globs: list[str], route: str, above: list[str]) -> None:
    template = parse_route_key(route)
    outranking = tuple(parse_route_key(key) for key in above)
    assert reaches(tuple(globs), template, outranking) == reaches_by_automata(tuple(globs), template, outranking)


def test_a_sibling_deny_too_long_for_api_gateway_makes_the_template_per_request() -> None:
    # Only a store written by an older release gets here (compile_records refuses such a
    # mapping, the run-time loader leaves its own Resource out and reports it).
    long = "/x" + "y" * 430
    records = [
        {"arn": API, "stage": STAGE, "httpVerb": "GET", "resource": f"{long}/{{id}}", "scope": "read"},
        {"arn": API, "stage": STAGE, "httpVerb": "GET", "resource": f"{long}/{{id}}/{'z' * 30}", "scope": "admin"},
    ]
    permissions = compile_records(records, str, on_oversized=lambda api, stage, resources: None)
    evaluation = permissions.evaluate(frozenset({"read"}), API, STAGE)
    assert evaluation.excluded == () and evaluation.resources == ()
    assert [route.key for route in evaluation.per_request] == [f"GET {long}/{{id}}"]


def test_without_a_reaching_template_the_sibling_rules_are_never_imported() -> None:
    # A cold start with plain globs and literal paths pays nothing for core.siblings.
    code = f"""
import sys
from policy_engine.core.permissions import compile_records
records = [{{"arn": "{API}", "stage": "dev", "httpVerb": "GET", "resource": r, "scope": "s"}}
           for r in ("/pets", "/pets/*")]
compile_records(records, str).evaluate(frozenset({{"s"}}), "{API}", "dev")
print("policy_engine.core.siblings" in sys.modules)
records.append({{"arn": "{API}", "stage": "dev", "httpVerb": "GET", "resource": "/pets/{{id}}", "scope": "s"}})
compile_records(records, str).evaluate(frozenset({{"s"}}), "{API}", "dev")
print("policy_engine.core.siblings" in sys.modules)
"""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True,
                          cwd=ROOT)
    assert done.stdout.split() == ["False", "True"]
