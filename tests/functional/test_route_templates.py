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


def test_when_no_policy_can_be_exact_only_the_decided_request_is_allowed(
    idp: Any, handler: ModuleType, capsys: pytest.CaptureFixture[str]
) -> None:
    # GET /files/{id} and GET /files/{proxy+} under different grants: IAM cannot tell one
    # segment from several, so a files:read policy can only name the request itself.
    reader = invoke(handler, token_event(idp.mint(scope="files:read"), "GET", "/files/1"))
    assert verdict(reader, "GET", "/files/1") is Verdict.ALLOW
    for path in ("/files/2", "/files/1/2"):  # the cache meets these: fail closed, never an over-grant
        assert verdict(reader, "GET", path) is not Verdict.ALLOW
    deep = invoke(handler, token_event(idp.mint(scope="files:read"), "GET", "/files/1/2"))
    assert deep.response is not None and verdict(deep, "GET", "/files/1/2") is not Verdict.ALLOW
    admin = invoke(handler, token_event(idp.mint(scope="files:admin"), "GET", "/files/a/b"))
    assert verdict(admin, "GET", "/files/a/b") is Verdict.ALLOW
    assert verdict(admin, "GET", "/files/a") is not Verdict.ALLOW
    decisions = [json.loads(line) for line in capsys.readouterr().err.splitlines() if line.startswith("{")]
    assert any(d.get("reason") == "granted_this_request" for d in decisions)


def test_a_wildcard_in_the_request_is_never_written_into_a_policy(idp: Any, handler: ModuleType) -> None:
    result = invoke(handler, token_event(idp.mint(scope="files:read"), "GET", "/files/*"))
    assert result.response is not None
    assert verdict(result, "GET", "/files/7") is not Verdict.ALLOW
    assert verdict(result, "GET", "/files/*") is not Verdict.ALLOW


def test_simple_responses_per_route_key_follow_the_routing(idp: Any, make_handler: Any, tmp_path: Path) -> None:
    (tmp_path / "routes.yaml").write_text(PERMISSIONS)
    handler = make_handler(PERMISSIONS_SOURCE=str(tmp_path), SIMPLE_RESPONSES="true",
                           IDENTITY_SOURCE="$request.header.Authorization,$context.routeKey")
    token = idp.mint(scope="read:pets")
    own = http_v2_event(token, "GET", "/pet/12", route_key="GET /pet/{petId}")
    assert invoke(handler, own).response["isAuthorized"] is True
    sibling = http_v2_event(token, "GET", "/pet/findByStatus", route_key="GET /pet/findByStatus")
    assert invoke(handler, sibling).response["isAuthorized"] is False
