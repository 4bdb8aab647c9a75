"""Property: a simple response cached per route key is ``true`` only if the route is wholly granted.

Generated mappings go through the real path (validation, ``PermissionSet.resources``,
compaction) inside a real ``Authorizer`` with a real JWKS server on 127.0.0.1; generated
HTTP API route keys (``ANY``, single methods, ``{p}``, ``{p+}``, literals, ``$default``)
are answered as API Gateway would ask. Whenever the answer is ``true``, API Gateway
reuses it for every request of the route, so every concrete request sampled from the
route (adversarially: other methods, literals taken from the mappings, extra segments)
must be allowed by the caller's full IAM policy, evaluated with API Gateway's matching
rules. The decision behind the answer must say what the answer says.
"""

from __future__ import annotations

from collections.abc import Iterator
from itertools import product

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from policy_engine.adapters.memory import MemoryPermissionSource
from policy_engine.admin.local.idp import LocalIdentityProvider
from policy_engine.bootstrap import key_source
from policy_engine.cache import PermissionCache
from policy_engine.core.arn import parse_method_arn
from policy_engine.core.decision import render_iam_response
from policy_engine.core.iam import Verdict, evaluate_response
from policy_engine.core.permissions import HTTP_VERBS
from policy_engine.engine import Authorizer
from policy_engine.settings import Settings
from tests.request_events import http_v2_event

API = "arn:aws:execute-api:us-east-1:123456789012:a1b2c3d4e5"
AUDIENCE = "policy-engine-demo"
SCOPES = ("ed", "other")
SIMPLE = {"SIMPLE_RESPONSES": "true", "IDENTITY_SOURCE": "$request.header.Authorization,$context.routeKey"}

# Path pieces of mappings and routes share literals, so that '*' and literals interact.
LITERALS = ("pets", "x", "items", "1", "GET")
# '*' (and GET+PUT below) weighted up: they are what compaction merges, and what
# makes a route wholly granted often enough for the property to bite.
MAPPING_PIECES = ("*", "*", "*", "pets", "x", "items", "p*", "*s", "1", "GET", "")
# Values a path parameter may take: literals of the mappings, glued and fresh ones.
VALUES = (*LITERALS, "z", "pets1", "xitems", "*", "GET:x", "petsz", "zs")
GREEDY_VALUES = (*VALUES, "a/b", "pets/x", "x/items", "1/", "z/pets/1", "pets/x/items")


@st.composite
def mappings(draw: st.DrawFn) -> list[dict[str, str]]:
    """Records whose verbs come in sets (GET+PUT and friends are what compaction merges)."""
    records = []
    for _ in range(draw(st.integers(1, 5))):
        parts = draw(st.lists(st.sampled_from(MAPPING_PIECES), min_size=1, max_size=2))
        resource = "/" + "/".join(parts)
        verbs = draw(st.one_of(
            st.sampled_from([("GET", "PUT"), ("GET", "PUT"), ("GET", "PUT", "POST"), ("ANY",), ("*",), HTTP_VERBS,
                             HTTP_VERBS[:-1]]),
            st.lists(st.sampled_from((*HTTP_VERBS, "*", "ANY")), min_size=1, max_size=4, unique=True),
        ))
        scope = draw(st.sampled_from(SCOPES))
        records.extend({"arn": API, "stage": "dev", "httpVerb": v, "resource": resource, "scope": scope}
                       for v in verbs)
    return records


@st.composite
def route_keys(draw: st.DrawFn) -> str:
    if draw(st.sampled_from((False,) * 9 + (True,))):
        return "$default"
    method = draw(st.sampled_from(("ANY", "ANY", "GET", "PUT", "DELETE", "POST")))
    parts = draw(st.lists(st.sampled_from(("{a}", "{b}", *LITERALS)), min_size=0, max_size=3))
    if draw(st.booleans()):
        parts.append("{proxy+}")
    return f"{method} /" + "/".join(parts)


def concrete_requests(route_key: str, fills: list[str]) -> set[tuple[str, str]]:
    """(method, path) pairs the route carries: every method it routes, parameter values
    from ``fills`` plus fixed adversarial ones, and for ``$default`` paths of any shape."""
    if route_key == "$default":
        paths = {"", "/", "pets", "pets/1", "x/items", *fills, *GREEDY_VALUES}
        return {(m, p) for m in HTTP_VERBS for p in paths}
    method, _, path = route_key.partition(" ")
    methods = HTTP_VERBS if method == "ANY" else (method,)
    choices = []
    for part in path[1:].split("/"):
        if part == "{proxy+}":
            choices.append((*fills, *GREEDY_VALUES))
        elif part.startswith("{"):
            choices.append((*(f for f in fills if "/" not in f and f), *VALUES))
        else:
            choices.append((part,))
    paths = {"/".join(values) for values in product(*choices)}
    return {(m, p) for m in methods for p in paths}


class World:
    def __init__(self, idp: LocalIdentityProvider) -> None:
        self.idp = idp
        self.settings = Settings.from_environ(
            {"ISSUER": idp.issuer, "AUDIENCE": AUDIENCE, "JWKS_URI": idp.jwks_uri, **SIMPLE})
        self.keys = key_source(self.settings)
        self.tokens = {frozenset(s): idp.mint(scope=" ".join(sorted(s))) for s in ({"ed"}, {"other"}, {"ed", "other"})}

    def authorizer(self, records: list[dict[str, str]]) -> Authorizer:
        permissions = PermissionCache(MemoryPermissionSource(records), ttl=3600, max_stale=3600)
        return Authorizer(self.settings, keys=self.keys, permissions=permissions)


@pytest.fixture(scope="module")
def world() -> Iterator[World]:
    with LocalIdentityProvider() as idp:
        yield World(idp)


@settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                   HealthCheck.function_scoped_fixture])
@given(
    records=mappings(),
    scopes=st.sampled_from([frozenset({"ed"}), frozenset({"other"}), frozenset({"ed", "other"})]),
    route_key=route_keys(),
    fills=st.lists(st.sampled_from(GREEDY_VALUES), max_size=3),
    data=st.data(),
)
def test_true_only_when_every_request_of_the_route_is_allowed(world, records, scopes, route_key, fills, data):
    # GIVEN generated mappings and a request API Gateway routed by a generated route key
    authorizer = world.authorizer(records)
    token = world.tokens[scopes]
    # Methods in HTTP_VERBS order: hypothesis leans to the first ones (GET, then PUT...).
    requests = sorted(concrete_requests(route_key, fills), key=lambda r: (HTTP_VERBS.index(r[0]), r[1]))
    verb, path = data.draw(st.sampled_from(requests), label="request")
    event = http_v2_event(token, verb, "/" + path, route_key=route_key)
    # WHEN the authorizer answers it with a simple response
    answer = authorizer.answer(event)
    authorized = answer.response["isAuthorized"]
    # THEN the decision behind it says the same
    assert answer.decision.allowed is authorized, (answer.decision.effect, answer.decision.reason)
    if not authorized:
        return
    # and API Gateway, reusing the true for every request of the route, lets through
    # nothing the caller's full IAM policy does not allow
    full = render_iam_response(authorizer.decide(authorizer.verify(f"Bearer {token}"),
                                                 parse_method_arn(event["routeArn"])))
    for method, concrete in requests:
        arn = f"{API}/dev/{method}/{concrete}"
        assert evaluate_response(full, arn) is Verdict.ALLOW, (route_key, arn, full["policyDocument"])
