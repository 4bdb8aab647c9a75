"""Simple responses cached per route key: ``true`` only when every request of the route is granted.

Through the real handler, with ``SIMPLE_RESPONSES=true`` and the identity source
``$request.header.Authorization,$context.routeKey``: API Gateway caches the boolean per
(token, route key) and reuses it for every request the route template carries, so the
answer has to hold for all of them, and the decision log line has to say what the
response says.
"""

from __future__ import annotations

import json

import pytest

from policy_engine.admin.local.invoke import invoke
from policy_engine.core.iam import Verdict, evaluate_response
from policy_engine.core.permissions import HTTP_VERBS
from tests.conftest import API
from tests.request_events import http_v2_event

SIMPLE = {"SIMPLE_RESPONSES": "true", "IDENTITY_SOURCE": "$request.header.Authorization,$context.routeKey"}


def _mappings(tmp_path, routes: dict[str, str]) -> str:
    lines = "".join(f"      {route}: [{scope}]\n" for route, scope in routes.items())
    (tmp_path / "p.yaml").write_text(f"apis:\n  - arn: {API}\n    stages: [dev]\n    routes:\n{lines}")
    return str(tmp_path)


def _decision_lines(err: str) -> list[dict]:
    return [r for r in map(json.loads, err.splitlines()) if r.get("event") == "decision"]


@pytest.mark.parametrize(
    "granted, verb, path, route_key",
    [
        # GET+PUT are compacted into '???', which must not stand in for every method.
        (("GET /*", "PUT /*"), "GET", "/pets/1", "ANY /{a}/{b}"),
        (("GET /*", "PUT /*"), "GET", "/x/1", "ANY /x/{id}"),
        (("GET /*/items", "PUT /*/items"), "GET", "/p/x/items", "ANY /{a}/x/items"),
    ],
)
def test_any_route_with_some_methods_granted_is_refused_and_logged_as_deny(
    idp, make_handler, tmp_path, capsys, granted, verb, path, route_key
):
    # GIVEN mappings granting only some methods, and an ANY route cached per route key
    handler = make_handler(PERMISSIONS_SOURCE=_mappings(tmp_path, {g: "ed" for g in granted}), **SIMPLE)
    token = idp.mint(scope="ed")
    capsys.readouterr()
    # WHEN a granted method calls the route
    result = invoke(handler, http_v2_event(token, verb, path, route_key=route_key))
    # THEN the answer is false: a cached true would let DELETE through on the same route
    assert result.response["isAuthorized"] is False
    # and the decision log line says what the response says
    [line] = _decision_lines(capsys.readouterr().err)
    assert line["decision"] == "Deny" and line["shape"] == "simple"
    assert line["reason"] == "route_not_fully_granted"


@pytest.mark.parametrize(
    "routes",
    [
        {f"{verb} /pets/*": "all" for verb in HTTP_VERBS},
        {"ANY /pets/*": "all"},
        {f"{verb} /*": "all" for verb in HTTP_VERBS},
        {"ANY /*": "all"},
    ],
    ids=["seven-methods", "any-mapping", "seven-methods-star", "any-star"],
)
def test_any_route_with_every_method_granted_is_allowed(idp, make_handler, tmp_path, capsys, routes):
    handler = make_handler(PERMISSIONS_SOURCE=_mappings(tmp_path, routes), **SIMPLE)
    token = idp.mint(scope="all")
    capsys.readouterr()
    result = invoke(handler, http_v2_event(token, "GET", "/pets/1", route_key="ANY /pets/{id}"))
    assert result.response["isAuthorized"] is True
    [line] = _decision_lines(capsys.readouterr().err)
    assert line["decision"] == "Allow" and line["shape"] == "simple"


def test_default_route_needs_every_method_on_every_path(idp, make_handler, tmp_path):
    partial = make_handler(PERMISSIONS_SOURCE=_mappings(tmp_path, {f"{v} /*": "all" for v in HTTP_VERBS[:-1]}),
                           **SIMPLE)
    token = idp.mint(scope="all")
    event = http_v2_event(token, "GET", "/anything/at/all", route_key="$default")
    assert invoke(partial, event).response["isAuthorized"] is False
    full = make_handler(PERMISSIONS_SOURCE=_mappings(tmp_path, {"ANY /*": "all"}), **SIMPLE)
    assert invoke(full, event).response["isAuthorized"] is True


def test_false_for_the_route_while_the_policy_would_allow_the_request(idp, make_handler, tmp_path, capsys):
    # The request itself is granted (the IAM policy allows it), but not every request of
    # its route: the log must not say Allow for what the response refuses.
    handler = make_handler(PERMISSIONS_SOURCE=_mappings(tmp_path, {"GET /pets/1": "one"}), **SIMPLE)
    token = idp.mint(scope="one")
    policy = invoke(make_handler(PERMISSIONS_SOURCE=str(tmp_path)),
                    http_v2_event(token, "GET", "/pets/1", route_key="GET /pets/{id}"))
    assert evaluate_response(policy.response, f"{API}/dev/GET/pets/1") is Verdict.ALLOW
    capsys.readouterr()
    result = invoke(handler, http_v2_event(token, "GET", "/pets/1", route_key="GET /pets/{id}"))
    assert result.response["isAuthorized"] is False
    [line] = _decision_lines(capsys.readouterr().err)
    assert line["decision"] == "Deny" and line["reason"] == "route_not_fully_granted" and line["routes"] == 0


def test_request_outside_every_grant_is_logged_as_deny(idp, make_handler, tmp_path, capsys):
    handler = make_handler(PERMISSIONS_SOURCE=_mappings(tmp_path, {"GET /pets/*": "read"}), **SIMPLE)
    token = idp.mint(scope="read")
    capsys.readouterr()
    result = invoke(handler, http_v2_event(token, "POST", "/pets/1", route_key="POST /pets/{id}"))
    assert result.response["isAuthorized"] is False
    [line] = _decision_lines(capsys.readouterr().err)
    assert line["decision"] == "Deny" and line["reason"] == "no_grant_for_route"
