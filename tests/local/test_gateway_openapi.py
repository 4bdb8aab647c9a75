"""``serve --openapi``: the local gateway routes as API Gateway deploys the document and
keeps each operation's security (``security: []``: no authorizer), over real HTTP on
127.0.0.1. The authorizer is a fake that allows everything and records its events, so
that what is checked here is the routing and which requests reach it."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from policy_engine.admin.local.gateway import LocalGateway, RouteTable
from policy_engine.admin.local.invoke import InvokeResult
from policy_engine.admin.local.walkthrough import http_request
from policy_engine.errors import ConfigurationError

DATA = Path(__file__).resolve().parents[1] / "data" / "openapi-coverage"
API = "arn:aws:execute-api:us-east-1:123456789012:a1b2c3d4e5"
BEARER = {"Authorization": "Bearer t"}
NO_ROUTE = (403, {"message": "Missing Authentication Token"})


class Recorder:
    """An authorizer that allows the whole stage and keeps every event it was given."""

    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []

    def __call__(self, event: dict[str, Any]) -> InvokeResult:
        self.events.append(event)
        return InvokeResult({"principalId": "someone", "policyDocument": {"Version": "2012-10-17", "Statement": [
            {"Action": "execute-api:Invoke", "Effect": "Allow", "Resource": f"{API}/dev/*"}]}}, None)

    def resources(self) -> list[str]:
        return [event["resource"] for event in self.events]


@pytest.fixture
def serve() -> Iterator[Callable[[str], tuple[LocalGateway, Recorder]]]:
    started: list[LocalGateway] = []

    def start(spec: str) -> tuple[LocalGateway, Recorder]:
        recorder = Recorder()
        # A REQUEST authorizer sees the resource API Gateway chose (the route template).
        gateway = LocalGateway(recorder, RouteTable.from_openapi(DATA / spec, API, ["dev"]),
                               identity_sources=("method.request.header.Authorization",), cache_ttl=0).start()
        started.append(gateway)
        return gateway, recorder

    yield start
    for gateway in started:
        gateway.stop()


def call(gateway: LocalGateway, method: str, path: str, headers: dict[str, str] | None = None) -> tuple[int, Any]:
    reply = http_request(method, f"{gateway.url}{path}", headers=BEARER if headers is None else headers,
                         body=b"{}" if method in ("POST", "PUT", "PATCH") else None)
    return reply.status, (json.loads(reply.body) if reply.body else None)


def test_an_operation_without_authorization_never_calls_the_authorizer(serve):
    gateway, recorder = serve("petstore.yaml")
    # GIVEN GET /health with security: [] WHEN it is called without any token THEN the backend answers
    status, body = call(gateway, "GET", "/dev/health", headers={})
    assert status == 200 and body["authorizer"] == {}
    assert call(gateway, "GET", "/dev/health")[0] == 200
    assert recorder.events == []
    # AND a secured operation next to it still needs a token and asks the authorizer
    assert call(gateway, "GET", "/dev/pet/1", headers={}) == (401, {"message": "Unauthorized"})
    assert call(gateway, "GET", "/dev/pet/1")[0] == 200
    assert recorder.resources() == ["/pet/{petId}"]
    assert gateway.stats.authorizer_calls == 1


def test_literal_beats_parameter_per_method(serve):
    gateway, recorder = serve("petstore.yaml")
    assert call(gateway, "GET", "/dev/pet/findByStatus")[0] == 200
    assert call(gateway, "GET", "/dev/pet/12")[0] == 200
    # findByStatus has no DELETE: the request goes to DELETE /pet/{petId}, as on API Gateway
    assert call(gateway, "DELETE", "/dev/pet/findByStatus")[0] == 200
    assert recorder.resources() == ["/pet/findByStatus", "/pet/{petId}", "/pet/{petId}"]
    assert [e["httpMethod"] for e in recorder.events] == ["GET", "GET", "DELETE"]
    # no operation for POST on either: no route, and the authorizer is not asked
    assert call(gateway, "POST", "/dev/pet/findByStatus") == NO_ROUTE
    assert call(gateway, "GET", "/dev/pet/12/photos") == NO_ROUTE  # {petId} is one segment
    assert call(gateway, "GET", "/dev/pet/") == NO_ROUTE  # and never an empty one
    assert len(recorder.events) == 3


def test_greedy_any_route_and_its_literal_siblings(serve):
    gateway, recorder = serve("petstore.yaml")
    # GET /store/inventory is its own operation (API key only: the gateway still asks the
    # authorizer, fail closed); other methods on it fall through to ANY /store/{proxy+}
    assert call(gateway, "GET", "/dev/store/inventory")[0] == 200
    assert call(gateway, "POST", "/dev/store/inventory")[0] == 200
    assert call(gateway, "PATCH", "/dev/store/misc/7/items")[0] == 200
    assert recorder.resources() == ["/store/inventory", "/store/{proxy+}", "/store/{proxy+}"]
    assert call(gateway, "GET", "/dev/store") == NO_ROUTE  # the proxy needs something after /store/


def test_an_open_literal_next_to_a_secured_greedy_route(serve):
    gateway, recorder = serve("siblings.yaml")
    assert call(gateway, "GET", "/dev/files/public", headers={})[0] == 200  # security: [] for GET only
    assert recorder.events == []
    assert call(gateway, "POST", "/dev/files/public", headers={}) == (401, {"message": "Unauthorized"})
    assert call(gateway, "GET", "/dev/files/public/x")[0] == 200  # deeper: the secured proxy
    assert call(gateway, "GET", "/dev/users/me")[0] == 200
    assert call(gateway, "GET", "/dev/users/42")[0] == 200
    assert call(gateway, "PATCH", "/dev/users/42") == NO_ROUTE  # only /users/me has PATCH
    assert recorder.resources() == ["/files/{proxy+}", "/users/me", "/users/{userId}"]


def test_unknown_stage_is_still_forbidden(serve):
    gateway, recorder = serve("siblings.yaml")
    assert call(gateway, "GET", "/prod/files/public", headers={}) == (403, {"message": "Forbidden"})
    assert recorder.events == []


def test_a_bad_document_refuses_to_start_with_its_line(tmp_path):
    spec = tmp_path / "bad.yaml"
    spec.write_text("openapi: 3.0.3\ninfo: {title: x, version: '1'}\npaths:\n  /a/{b}c:\n    get: {}\n")
    with pytest.raises(ConfigurationError, match=r"--openapi: .*bad\.yaml:\d+: .*whole segment"):
        RouteTable.from_openapi(spec, API, ["dev"])


def test_route_templates_in_the_permission_files_are_routes_too():
    # Without --openapi the routes come from the mappings; a template is its route.
    from policy_engine.core.permissions import compile_records

    records = [{"arn": API, "stage": "dev", "httpVerb": "GET", "resource": "/pets/{petId}", "scope": "s"},
               {"arn": API, "stage": "dev", "httpVerb": "ANY", "resource": "/files/{proxy+}", "scope": "s"}]
    table = RouteTable.from_permissions(compile_records(records, lambda path: f"r{path}"))
    assert table.match("dev", "GET", "pets/1") is not None
    assert table.match("dev", "GET", "pets/1/x") is None
    assert table.match("dev", "GET", "pets/") is None
    assert table.match("dev", "PUT", "files/a/b") is not None
    assert table.match("dev", "PUT", "files/") is None
