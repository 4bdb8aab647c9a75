"""A caller whose full policy exceeds 8 KB: per-route policy when the cache key allows it, else 500."""

from __future__ import annotations

import json

import pytest

from policy_engine.admin.local.invoke import invoke
from policy_engine.core.decision import MAX_RESPONSE_BYTES, response_size
from policy_engine.core.iam import Verdict
from tests.conftest import API, verdict
from tests.request_events import http_v1_event, http_v2_event, rest_request_event, token_kind_event

ROUTES = 150
PER_ROUTE_REST = "method.request.header.Authorization,context.httpMethod,context.resourcePath"


@pytest.fixture
def big_permissions(tmp_path):
    lines = [f"apis:\n  - arn: {API}\n    stages: [dev]\n    routes:"]
    lines += [f"      GET /reports/r{i:03}/items/*: [reports:all]" for i in range(ROUTES)]
    lines += ["      GET /pets: [pets:read, reports:all]", "      DELETE /pets/*: [pets:admin]"]
    (tmp_path / "big.yaml").write_text("\n".join(lines) + "\n")
    return str(tmp_path)


def records(err: str) -> list[dict]:
    return [json.loads(line) for line in err.splitlines() if line.startswith("{")]


def test_token_authorizer_fails_closed_with_a_clear_log_line(idp, make_handler, big_permissions, capsys):
    handler = make_handler(PERMISSIONS_SOURCE=big_permissions)
    result = invoke(handler, token_kind_event(idp.mint(scope="reports:all", subject="analyst"), "GET", "/pets"))
    assert result.response is None and result.error == "AuthorizerFailure"
    [line] = [r for r in records(capsys.readouterr().err) if r["event"] == "policy_too_large"]
    assert line["principal"] == "analyst" and line["size"] > MAX_RESPONSE_BYTES
    assert "REQUEST authorizer" in line["fix"]


def test_request_authorizer_without_per_route_cache_key_also_fails_closed(idp, make_handler, big_permissions):
    handler = make_handler(PERMISSIONS_SOURCE=big_permissions)
    result = invoke(handler, rest_request_event(idp.mint(scope="reports:all"), "GET", "/pets"))
    assert result.error == "AuthorizerFailure"


@pytest.mark.parametrize(
    "build, identity",
    [
        (rest_request_event, PER_ROUTE_REST),
        (rest_request_event, "method.request.header.Authorization,context.httpMethod,context.path"),
        (http_v1_event, "$request.header.Authorization,$context.routeKey"),
        (http_v2_event, "$request.header.Authorization,$context.routeKey"),
    ],
)
def test_per_route_cache_key_gets_a_policy_for_the_requested_route(idp, make_handler, big_permissions, capsys,
                                                                  build, identity):
    handler = make_handler(PERMISSIONS_SOURCE=big_permissions, IDENTITY_SOURCE=identity)
    result = invoke(handler, build(idp.mint(scope="reports:all", subject="analyst"), "GET", "/reports/r042/items/9"))
    assert response_size(result.response) <= MAX_RESPONSE_BYTES
    assert verdict(result, "GET", "/reports/r042/items/9") is Verdict.ALLOW
    # the same pattern serves the rest of the route template, and nothing else
    assert verdict(result, "GET", "/reports/r042/items/10") is Verdict.ALLOW
    assert verdict(result, "GET", "/reports/r043/items/9") is Verdict.IMPLICIT_DENY
    assert verdict(result, "GET", "/pets") is Verdict.IMPLICIT_DENY
    [statement] = result.response["policyDocument"]["Statement"]
    assert statement["Resource"] == [f"{API}/dev/GET/reports/r042/items/*"]
    [line] = [r for r in records(capsys.readouterr().err) if r["event"] == "policy_narrowed_to_route"]
    assert line["principal"] == "analyst" and line["size"] > MAX_RESPONSE_BYTES and line["level"] == "WARN"


def test_per_route_answer_for_a_route_not_granted_is_a_deny(idp, make_handler, big_permissions):
    handler = make_handler(PERMISSIONS_SOURCE=big_permissions, IDENTITY_SOURCE=PER_ROUTE_REST)
    result = invoke(handler, rest_request_event(idp.mint(scope="reports:all"), "DELETE", "/pets/1"))
    assert verdict(result, "DELETE", "/pets/1") is Verdict.EXPLICIT_DENY


def test_small_policies_are_not_narrowed(idp, make_handler):
    handler = make_handler(IDENTITY_SOURCE=PER_ROUTE_REST)
    result = invoke(handler, rest_request_event(idp.mint(scope="pets:read"), "GET", "/pets/1"))
    assert verdict(result, "GET", "/pets") is Verdict.ALLOW
    assert verdict(result, "GET", "/pets/2") is Verdict.ALLOW
