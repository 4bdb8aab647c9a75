"""Property: with mappings written as API Gateway routes (templates, literals, catch-alls),
a simple response cached per route key is ``true`` only if every request API Gateway
routes to that route is allowed, each decided on its own.

The other property (``test_simple_response_property``) draws glob mappings and checks
against the caller's one IAM policy. Here the mappings are route templates, so some of
a caller's routes cannot be written in a policy without reaching a sibling (``GET
/hello/{id}`` beside ``ANY /{proxy+}``) and are allowed per request
(``granted_this_request``); the truth for each concrete request is therefore the
engine's own answer for that request alone (its IAM decision for that methodArn). A
``true`` must hold for every request API Gateway routes to the route key, among the
routes the mappings name (docs/permissions.md: list every route of the API).
"""

from __future__ import annotations

from collections.abc import Iterator
from itertools import product

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from policy_engine.admin.local.idp import LocalIdentityProvider
from policy_engine.core.arn import parse_method_arn
from policy_engine.core.decision import render_iam_response
from policy_engine.core.iam import Verdict, evaluate_response
from policy_engine.core.permissions import HTTP_VERBS
from policy_engine.core.routes import route_for
from tests.functional.test_simple_response_property import API, World
from tests.request_events import http_v2_event

#: Routes of one API, as its OpenAPI document or route table would name them.
ROUTES = (
    ("GET", "/hello/{id}"), ("ANY", "/{proxy+}"), ("GET", "/hello/admin"), ("GET", "/hello"),
    ("GET", "/files/{id}"), ("GET", "/files/{proxy+}"), ("ANY", "/x/{id}"), ("DELETE", "/x/{id}"),
    ("GET", "/x/{id}/y"), ("GET", "/"), ("POST", "/hello/{id}"), ("ANY", "/hello/{id}/{proxy+}"),
)
#: Glob mappings (not routes): they grant whatever requests they match, some of a route only.
GLOBS = (("GET", "/g/1*"), ("GET", "/files/*"), ("DELETE", "/x/*"), ("GET", "/hello/a*"))
#: Routes of the API that no mapping names (their requests are granted by globs, if at all).
UNNAMED = (("GET", "/g/{id}"), ("ANY", "/g/{proxy+}"))
#: Values a parameter takes in the concrete requests: literals of the routes and fresh ones.
SEGMENTS = ("1", "admin", "hello", "y", "files", "z", "1x", "a")
GREEDY = (*SEGMENTS, "a/b", "admin/y", "1/y", "hello/1")


def shape_requests(verb: str, path: str) -> list[tuple[str, str]]:
    """(method, path) pairs the route's own shape matches, parameters filled from SEGMENTS/GREEDY."""
    choices = []
    for part in path.lstrip("/").split("/") if path != "/" else [""]:
        if part.endswith("+}"):
            choices.append(GREEDY)
        elif part.startswith("{"):
            choices.append(SEGMENTS)
        else:
            choices.append((part,))
    methods = HTTP_VERBS if verb == "ANY" else (verb,)
    return sorted({(m, "/" + "/".join(values)) for m in methods for values in product(*choices)})


@pytest.fixture(scope="module")
def world() -> Iterator[World]:
    with LocalIdentityProvider() as idp:
        yield World(idp)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                   HealthCheck.function_scoped_fixture])
@given(
    granted=st.dictionaries(st.sampled_from((*ROUTES, *GLOBS)), st.sampled_from(("ed", "other")), min_size=1),
    scopes=st.sampled_from([frozenset({"ed"}), frozenset({"other"}), frozenset({"ed", "other"})]),
    data=st.data(),
)
def test_true_only_when_every_request_of_the_route_is_allowed_on_its_own(world, granted, scopes, data):
    # GIVEN mappings naming API routes (and globs), and a request API Gateway routed to a route
    records = [{"arn": API, "stage": "dev", "httpVerb": verb, "resource": path, "scope": scope}
               for (verb, path), scope in granted.items()]
    authorizer = world.authorizer(records)
    token = world.tokens[scopes]
    named = sorted(route for route in granted if route in ROUTES)
    verb, path = data.draw(st.sampled_from(sorted({*named, *UNNAMED})), label="route")
    api_routes = sorted({*named, (verb, path)})
    carried = [request for request in shape_requests(verb, path)
               if route_for(request[0], request[1], api_routes) == (verb, path)]
    if not carried:
        return
    method, concrete = data.draw(st.sampled_from(carried), label="request")
    # WHEN the authorizer answers it with a simple response cached per route key
    answer = authorizer.answer(http_v2_event(token, method, concrete, route_key=f"{verb} {path}"))
    authorized = answer.response["isAuthorized"]
    assert answer.decision.allowed is authorized, (answer.decision.effect, answer.decision.reason)
    if not authorized:
        return
    # THEN every request of the route is one the caller is allowed on its own
    verified = authorizer.verify(f"Bearer {token}")
    for request_method, request_path in carried:
        arn = f"{API}/dev/{request_method}{request_path}"
        alone = render_iam_response(authorizer.decide(verified, parse_method_arn(arn)))
        assert evaluate_response(alone, arn) is Verdict.ALLOW, (f"{verb} {path}", arn, sorted(granted.items()))


def test_a_template_beside_a_catch_all_is_true_for_its_route(world):
    # GET /hello/{id} is allowed per request (GET/hello/* would also reach /hello/1/2,
    # which ANY /{proxy+} takes); every request of its route is the caller's.
    records = [{"arn": API, "stage": "dev", "httpVerb": verb, "resource": path, "scope": scope}
               for verb, path, scope in (("GET", "/hello/{id}", "ed"), ("ANY", "/{proxy+}", "other"),
                                         ("GET", "/hello/admin", "other"))]
    authorizer = world.authorizer(records)
    token = world.tokens[frozenset({"ed"})]
    answer = authorizer.answer(http_v2_event(token, "GET", "/hello/1", route_key="GET /hello/{id}"))
    assert answer.response["isAuthorized"] is True
    assert answer.decision.reason == "granted_this_request"
    # The routes it is not granted stay false: the catch-all, and the literal sibling.
    for path, route_key in (("/hello/1/2", "ANY /{proxy+}"), ("/hello/admin", "GET /hello/admin")):
        answer = authorizer.answer(http_v2_event(token, "GET", path, route_key=route_key))
        assert answer.response["isAuthorized"] is False, route_key


def test_a_route_allowed_per_request_makes_no_other_route_true(world):
    # The caller holds GET /hello/{id} per request, and a glob that grants /g/1 but not
    # the whole route GET /g/{id}: that route's answer stays false.
    records = [{"arn": API, "stage": "dev", "httpVerb": verb, "resource": path, "scope": scope}
               for verb, path, scope in (("GET", "/hello/{id}", "ed"), ("ANY", "/{proxy+}", "other"),
                                         ("GET", "/g/1*", "ed"))]
    authorizer = world.authorizer(records)
    token = world.tokens[frozenset({"ed"})]
    answer = authorizer.answer(http_v2_event(token, "GET", "/g/1", route_key="GET /g/{id}"))
    assert answer.response["isAuthorized"] is False
    assert answer.decision.reason == "route_not_fully_granted"


@pytest.mark.parametrize("path", ["/hello/a*b", "/hello/a?b", "/hello/*"])
def test_a_request_no_resource_can_name_is_still_true_for_a_route_granted_per_request(world, path):
    # A path holding an IAM wildcard character cannot be written as an exact Resource, so
    # the policy cannot allow it alone; but under a route-key cache key the answer covers
    # the route, which its own mapping grants whole. A false here would be cached for
    # every request of the route.
    records = [{"arn": API, "stage": "dev", "httpVerb": verb, "resource": resource, "scope": scope}
               for verb, resource, scope in (("GET", "/hello/{id}", "ed"), ("ANY", "/{proxy+}", "other"))]
    authorizer = world.authorizer(records)
    token = world.tokens[frozenset({"ed"})]
    answer = authorizer.answer(http_v2_event(token, "GET", path, route_key="GET /hello/{id}"))
    assert answer.response["isAuthorized"] is True
    assert answer.decision.allowed and answer.decision.reason == "granted_this_request"
    # The catch-all's requests stay false, whatever their path holds.
    answer = authorizer.answer(http_v2_event(token, "GET", path + "/x", route_key="ANY /{proxy+}"))
    assert answer.response["isAuthorized"] is False
    # Without a route key to stand on, the policy cannot name the request: 403, never wider.
    verified = authorizer.verify(f"Bearer {token}")
    arn = f"{API}/dev/GET{path}"
    alone = render_iam_response(authorizer.decide(verified, parse_method_arn(arn)))
    assert evaluate_response(alone, arn) is not Verdict.ALLOW
