"""Route templates through the real handler: a template grants its route and no sibling,
judged by evaluating the returned policy as API Gateway does (``core.iam``) against the
requests the cached policy will meet, not only the one that was decided."""

from __future__ import annotations

import json
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from policy_engine.core.iam import Verdict
from tests.conftest import API, invoke, token_event, verdict
from tests.request_events import http_v2_event

PERMISSIONS = f"""
apis:
  - arn: {API}
    stages: [dev]
    routes:
      GET /pet/{{petId}}: [read:pets]
      GET /pet/findByStatus: [admin:pets]
      GET /pet/{{petId}}/photos: [photos:read]
      POST /pet/{{petId}}: [write:pets]
      GET /store/inventory: [store:read]
      ANY /store/{{proxy+}}: [store:admin]
      GET /files/{{id}}: [files:read]
      GET /files/{{proxy+}}: [files:admin]
      GET /docs/{{id}}/meta: [docs:meta]
      GET /docs/{{proxy+}}: [docs:admin]
"""


@pytest.fixture
def handler(tmp_path: Path, make_handler: Any) -> ModuleType:
    (tmp_path / "routes.yaml").write_text(PERMISSIONS)
    return make_handler(PERMISSIONS_SOURCE=str(tmp_path))


def test_a_parameter_route_does_not_reach_its_literal_or_deeper_siblings(idp: Any, handler: ModuleType) -> None:
    result = invoke(handler, token_event(idp.mint(scope="read:pets"), "GET", "/pet/12"))
    assert verdict(result, "GET", "/pet/12") is Verdict.ALLOW
    assert verdict(result, "GET", "/pet/anything-else") is Verdict.ALLOW
    # the same cached policy, met by the sibling routes: each needs its own grant
    assert verdict(result, "GET", "/pet/findByStatus") is Verdict.EXPLICIT_DENY
    assert verdict(result, "GET", "/pet/12/photos") is Verdict.EXPLICIT_DENY
    assert verdict(result, "POST", "/pet/12") is Verdict.IMPLICIT_DENY
    # granted both, nothing is taken back
    both = invoke(handler, token_event(idp.mint(scope="read:pets photos:read"), "GET", "/pet/12"))
    assert verdict(both, "GET", "/pet/12/photos") is Verdict.ALLOW
    assert verdict(both, "GET", "/pet/findByStatus") is Verdict.EXPLICIT_DENY


def test_a_greedy_route_leaves_its_literal_sibling_alone(idp: Any, handler: ModuleType) -> None:
    admin = invoke(handler, token_event(idp.mint(scope="store:admin"), "DELETE", "/store/order/7"))
    assert verdict(admin, "DELETE", "/store/order/7") is Verdict.ALLOW
    assert verdict(admin, "GET", "/store/a/b/c") is Verdict.ALLOW
    assert verdict(admin, "GET", "/store/inventory") is Verdict.EXPLICIT_DENY
    # POST /store/inventory has no route of its own: API Gateway sends it to ANY /store/{proxy+}
    assert verdict(admin, "POST", "/store/inventory") is Verdict.ALLOW
    reader = invoke(handler, token_event(idp.mint(scope="store:read"), "GET", "/store/inventory"))
    assert verdict(reader, "GET", "/store/inventory") is Verdict.ALLOW
    assert verdict(reader, "GET", "/store/anything") is Verdict.IMPLICIT_DENY


def test_a_greedy_route_beside_a_one_segment_route_is_written_exactly(idp: Any, handler: ModuleType) -> None:
    # GET /files/{id} takes every one-segment path, so GET /files/{proxy+} gets two or more:
    # files/*/* for the greedy route, and a Deny of exactly that for the one-segment reader.
    reader = invoke(handler, token_event(idp.mint(scope="files:read"), "GET", "/files/1"))
    assert verdict(reader, "GET", "/files/2") is Verdict.ALLOW
    assert verdict(reader, "GET", "/files/1/2") is Verdict.EXPLICIT_DENY
    admin = invoke(handler, token_event(idp.mint(scope="files:admin"), "GET", "/files/a/b"))
    assert verdict(admin, "GET", "/files/a/b/c") is Verdict.ALLOW
    assert verdict(admin, "GET", "/files/a") is not Verdict.ALLOW


def test_when_no_policy_can_be_exact_only_the_decided_request_is_allowed(
    idp: Any, handler: ModuleType, capsys: pytest.CaptureFixture[str]
) -> None:
    # GET /docs/{id}/meta's docs/*/meta also matches docs/1/2/meta, which the greedy route
    # takes; denying that route (docs/*) would deny the reader's own route too.
    reader = invoke(handler, token_event(idp.mint(scope="docs:meta"), "GET", "/docs/1/meta"))
    assert verdict(reader, "GET", "/docs/1/meta") is Verdict.ALLOW
    for path in ("/docs/2/meta", "/docs/1/2/meta", "/docs/1"):  # what the cache meets: never an over-grant
        assert verdict(reader, "GET", path) is not Verdict.ALLOW
    deep = invoke(handler, token_event(idp.mint(scope="docs:meta"), "GET", "/docs/1/2/meta"))
    assert deep.response is not None and verdict(deep, "GET", "/docs/1/2/meta") is not Verdict.ALLOW
    decisions = [json.loads(line) for line in capsys.readouterr().err.splitlines() if line.startswith("{")]
    assert any(d.get("reason") == "granted_this_request" for d in decisions)


def test_a_wildcard_in_the_request_is_never_written_into_a_policy(idp: Any, handler: ModuleType) -> None:
    # a per-request answer for a path holding '*' would allow every path it matches
    result = invoke(handler, token_event(idp.mint(scope="docs:meta"), "GET", "/docs/*/meta"))
    assert result.response is not None
    assert verdict(result, "GET", "/docs/7/meta") is not Verdict.ALLOW
    assert verdict(result, "GET", "/docs/*/meta") is not Verdict.ALLOW


def test_simple_responses_per_route_key_follow_the_routing(idp: Any, make_handler: Any, tmp_path: Path) -> None:
    (tmp_path / "routes.yaml").write_text(PERMISSIONS)
    handler = make_handler(PERMISSIONS_SOURCE=str(tmp_path), SIMPLE_RESPONSES="true",
                           IDENTITY_SOURCE="$request.header.Authorization,$context.routeKey")
    token = idp.mint(scope="read:pets")
    own = http_v2_event(token, "GET", "/pet/12", route_key="GET /pet/{petId}")
    assert invoke(handler, own).response["isAuthorized"] is True
    sibling = http_v2_event(token, "GET", "/pet/findByStatus", route_key="GET /pet/findByStatus")
    assert invoke(handler, sibling).response["isAuthorized"] is False
