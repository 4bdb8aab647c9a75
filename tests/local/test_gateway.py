"""The local gateway's rules with a fake authorizer where the real handler cannot produce
the case (malformed answers, crashes), and its HTTP side (proxy backend, HEAD)."""

from __future__ import annotations

import http.client
import json
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

import pytest

from policy_engine.admin.local.gateway import LocalGateway, ProxyBackend, RouteSpec, RouteTable, _glob_pattern
from policy_engine.admin.local.invoke import InvokeResult
from policy_engine.admin.local.walkthrough import http_request
from policy_engine.errors import ConfigurationError

API = "arn:aws:execute-api:us-east-1:123456789012:a1b2c3d4e5"


def allow_all(context: dict[str, Any] | None = None, effect: str = "Allow") -> dict[str, Any]:
    response: dict[str, Any] = {
        "principalId": "someone",
        "policyDocument": {"Version": "2012-10-17", "Statement": [
            {"Action": "execute-api:Invoke", "Effect": effect, "Resource": f"{API}/dev/*"}]},
    }
    if context is not None:
        response["context"] = context
    return response


class FakeAuthorizer:
    def __init__(self, outcome: Callable[[dict[str, Any]], InvokeResult]) -> None:
        self.outcome = outcome
        self.events: list[dict[str, Any]] = []

    def __call__(self, event: dict[str, Any]) -> InvokeResult:
        self.events.append(event)
        return self.outcome(event)


def routes(*specs: tuple[str, str]) -> RouteTable:
    return RouteTable(API, [RouteSpec(verb, f"/{glob}", _glob_pattern(glob)) for verb, glob in specs], ["dev"])


@pytest.fixture
def gateways() -> Iterator[Callable[..., LocalGateway]]:
    made: list[LocalGateway] = []

    def make(authorizer: Any, table: RouteTable | None = None, **options: Any) -> LocalGateway:
        gateway = LocalGateway(authorizer, table or routes(("*", "*")), **options)
        made.append(gateway)
        return gateway

    yield make
    for gateway in made:
        gateway.stop()


BEARER = {"Authorization": "Bearer t"}


@pytest.mark.parametrize(
    "response",
    [
        allow_all({"groups": ["a", "b"]}),  # REST context values must be scalars
        allow_all({"nested": {"a": 1}}),
        {"policyDocument": allow_all()["policyDocument"]},  # no principalId
        {"principalId": "x"},  # no policyDocument
        "not an object",
    ],
)
def test_malformed_authorizer_answers_are_500_and_not_cached(gateways, response):
    authorizer = FakeAuthorizer(lambda event: InvokeResult(response, None))
    gateway = gateways(authorizer)
    for _ in range(2):
        answer = gateway.handle("GET", "/dev/pets", BEARER)
        assert answer.status == 500
        assert json.loads(answer.body) == {"message": None}
        assert answer.headers["x-amzn-ErrorType"] == "AuthorizerConfigurationException"
    assert len(authorizer.events) == 2


def test_authorizer_crash_is_500_and_unauthorized_is_401(gateways):
    crash = gateways(FakeAuthorizer(lambda event: InvokeResult(None, "AuthorizerFailure")))
    assert crash.handle("GET", "/dev/pets", BEARER).status == 500
    refuse = gateways(FakeAuthorizer(lambda event: InvokeResult(None, "Unauthorized")))
    answer = refuse.handle("GET", "/dev/pets", BEARER)
    assert (answer.status, json.loads(answer.body)) == (401, {"message": "Unauthorized"})


def test_event_is_a_token_event_with_the_real_path_and_root_as_verb_slash(gateways):
    authorizer = FakeAuthorizer(lambda event: InvokeResult(allow_all(), None))
    gateway = gateways(authorizer, cache_ttl=0)
    gateway.handle("GET", "/dev/", {"authorization": "Bearer abc"})  # header names are case-insensitive
    gateway.handle("DELETE", "/dev/pets/12:30/x?y=1", BEARER)
    assert authorizer.events == [
        {"type": "TOKEN", "authorizationToken": "Bearer abc", "methodArn": f"{API}/dev/GET/"},
        {"type": "TOKEN", "authorizationToken": "Bearer t", "methodArn": f"{API}/dev/DELETE/pets/12:30/x"},
    ]


def test_empty_token_and_overlong_method_arn_never_reach_the_authorizer(gateways):
    authorizer = FakeAuthorizer(lambda event: InvokeResult(allow_all(), None))
    gateway = gateways(authorizer)
    assert gateway.handle("GET", "/dev/pets", {"Authorization": "  "}).status == 401
    assert gateway.handle("GET", "/dev/" + "a" * 1600, BEARER).status == 414
    assert authorizer.events == []


def test_deny_statements_win_and_context_reaches_the_backend_as_strings(gateways):
    response = allow_all({"n": 1, "ok": True, "name": "x"})
    response["policyDocument"]["Statement"].append(
        {"Action": "execute-api:Invoke", "Effect": "Deny", "Resource": f"{API}/dev/GET/secret*"})
    gateway = gateways(FakeAuthorizer(lambda event: InvokeResult(response, None)))
    denied = gateway.handle("GET", "/dev/secret/1", BEARER)
    assert json.loads(denied.body) == {
        "Message": "User is not authorized to access this resource with an explicit deny"}
    allowed = gateway.handle("GET", "/dev/open", BEARER)
    assert json.loads(allowed.body)["authorizer"] == {"principalId": "someone", "n": "1", "ok": "true", "name": "x"}


def test_cache_ttl_outside_api_gateway_limits_is_refused(gateways):
    with pytest.raises(ConfigurationError, match="3600"):
        gateways(FakeAuthorizer(lambda event: InvokeResult(allow_all(), None)), cache_ttl=3601)


def test_openapi_routes_templates_greedy_and_any(tmp_path: Path, gateways):
    spec = tmp_path / "api.yaml"
    spec.write_text(
        "openapi: 3.0.1\npaths:\n"
        "  /pets/{petId}:\n    get: {}\n"
        "  /files/{proxy+}:\n    x-amazon-apigateway-any-method: {}\n"
        "  /:\n    get: {}\n"
    )
    table = RouteTable.from_openapi(spec, API, ["dev"])
    gateway = gateways(FakeAuthorizer(lambda event: InvokeResult(allow_all(), None)), table)
    assert gateway.handle("GET", "/dev/pets/1", BEARER).status == 200
    assert gateway.handle("GET", "/dev/pets/1/photos", BEARER).status == 403  # {petId} is one segment
    assert gateway.handle("POST", "/dev/pets/1", BEARER).status == 403
    assert gateway.handle("PUT", "/dev/files/a/b/c", BEARER).status == 200
    assert gateway.handle("GET", "/dev/", BEARER).status == 200
    assert gateway.handle("GET", "/prod/pets/1", BEARER).status == 403


class _Recorder(BaseHTTPRequestHandler):
    seen: ClassVar[list[tuple[str, str, dict[str, str], bytes]]] = []

    def log_message(self, *args: Any) -> None:
        pass

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        _Recorder.seen.append((self.command, self.path, dict(self.headers.items()), body))
        payload = b'{"created":true}'
        self.send_response(201)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)


def test_proxy_backend_forwards_without_the_stage_and_with_the_authorizer_answer(gateways):
    upstream = ThreadingHTTPServer(("127.0.0.1", 0), _Recorder)
    threading.Thread(target=upstream.serve_forever, daemon=True).start()
    try:
        backend = ProxyBackend(f"http://127.0.0.1:{upstream.server_address[1]}/base")
        gateway = gateways(FakeAuthorizer(lambda event: InvokeResult(allow_all({"tenant": "t1"}), None)),
                           backend=backend).start()
        reply = http_request("POST", f"{gateway.url}/dev/orders?x=1", body=b'{"a":1}',
                             headers={**BEARER, "Content-Type": "application/json"})
        assert (reply.status, reply.json()) == (201, {"created": True})
        method, path, headers, body = _Recorder.seen[-1]
        assert (method, path, body) == ("POST", "/base/orders?x=1", b'{"a":1}')
        assert headers["X-Authorizer-Principal-Id"] == "someone"
        assert json.loads(headers["X-Authorizer-Context"]) == {"principalId": "someone", "tenant": "t1"}
    finally:
        upstream.shutdown()
        upstream.server_close()


def test_proxy_to_a_closed_port_is_502(gateways):
    gateway = gateways(FakeAuthorizer(lambda event: InvokeResult(allow_all(), None)),
                       backend=ProxyBackend("http://127.0.0.1:9"))
    assert gateway.handle("GET", "/dev/x", BEARER).status == 502


def test_head_over_http_has_no_body_and_a_request_id(gateways):
    gateway = gateways(FakeAuthorizer(lambda event: InvokeResult(allow_all(), None))).start()
    reply = http_request("HEAD", f"{gateway.url}/dev/pets", headers=BEARER)
    assert (reply.status, reply.body) == (200, b"")
    assert reply.headers["x-amzn-RequestId"]


def test_request_authorizer_needs_every_identity_source_and_keys_the_cache_on_all(gateways):
    authorizer = FakeAuthorizer(lambda event: InvokeResult(allow_all(), None))
    gateway = gateways(authorizer, identity_sources=("method.request.querystring.key",
                                                     "method.request.header.X-Tenant"))
    assert gateway.handle("GET", "/dev/pets?key=a", {}).status == 401  # no X-Tenant
    assert gateway.handle("GET", "/dev/pets", {"X-Tenant": "t"}).status == 401  # no key
    assert gateway.handle("GET", "/dev/pets?key=", {"X-Tenant": "t"}).status == 401  # empty key
    assert authorizer.events == []
    assert gateway.handle("GET", "/dev/pets?key=a&x=1&x=2", {"x-tenant": "t"}).status == 200
    assert gateway.handle("GET", "/dev/other?key=a", {"X-Tenant": "t"}).status == 200  # same values: cached
    assert gateway.handle("GET", "/dev/pets?key=a", {"X-Tenant": "u"}).status == 200  # another tenant
    assert len(authorizer.events) == 2
    event = authorizer.events[0]
    assert event["queryStringParameters"] == {"key": "a", "x": "2"}
    assert event["multiValueQueryStringParameters"]["x"] == ["1", "2"]
    assert event["methodArn"] == f"{API}/dev/GET/pets"
    assert event["requestContext"]["apiId"] == "a1b2c3d4e5"


def _twice_authorized(url: str) -> int:
    # Two Authorization headers in one request, as a client (or a proxy in front) can send.
    connection = http.client.HTTPConnection(url.removeprefix("http://"), timeout=10)
    try:
        connection.putrequest("GET", "/dev/pets")
        connection.putheader("Authorization", "Bearer garbage")
        connection.putheader("Authorization", "Bearer t")
        connection.putheader("X-Tenant", "t")
        connection.endheaders()
        return connection.getresponse().status
    finally:
        connection.close()


def test_a_repeated_header_reaches_the_event_with_every_value_and_is_no_identity_source(gateways):
    # API Gateway's REQUEST event keeps the last value in `headers`, all of them in
    # `multiValueHeaders`; the handler refuses two credentials (401).
    authorizer = FakeAuthorizer(lambda event: InvokeResult(allow_all(), None))
    gateway = gateways(authorizer, identity_sources=("method.request.header.X-Tenant",)).start()
    assert _twice_authorized(gateway.url) == 200
    [event] = authorizer.events
    assert event["multiValueHeaders"]["Authorization"] == ["Bearer garbage", "Bearer t"]
    assert event["headers"]["Authorization"] == "Bearer t"
    # As the identity source of a TOKEN or REQUEST authorizer it is no one value: 401.
    for options in ({}, {"identity_sources": ("method.request.header.Authorization",)}):
        token_authorizer = FakeAuthorizer(lambda event: InvokeResult(allow_all(), None))
        assert _twice_authorized(gateways(token_authorizer, **options).start().url) == 401
        assert token_authorizer.events == []


@pytest.mark.parametrize("source", ["stageVariables.token", "context.identity.sourceIp", "header.Authorization"])
def test_identity_sources_the_gateway_cannot_provide_are_refused_at_start(gateways, source):
    with pytest.raises(ConfigurationError, match="--identity-source"):
        gateways(FakeAuthorizer(lambda event: InvokeResult(allow_all(), None)), identity_sources=(source,))


def test_a_tenant_placeholder_is_routed_as_one_path_segment(gateways):
    # GIVEN a mapping for /tenants/{claim:custom:tenant_id}/pets (the routes come from the files)
    from policy_engine.core.permissions import compile_records

    record = {"arn": API, "stage": "dev", "httpVerb": "GET", "resource": "/tenants/{claim:custom:tenant_id}/pets",
              "group": "pet-sitters"}
    table = RouteTable.from_permissions(compile_records([record], lambda path: f"r{path}"))
    authorizer = FakeAuthorizer(lambda event: InvokeResult(allow_all(), None))
    gateway = gateways(authorizer, table, cache_ttl=0)
    # WHEN any one segment stands where the placeholder is THEN the route exists and the
    # authorizer decides (the policy, not the route, keeps tenants apart)
    assert gateway.handle("GET", "/dev/tenants/acme/pets", BEARER).status == 200
    assert gateway.handle("GET", "/dev/tenants/globex/pets", BEARER).status == 200
    # and nothing else is a route: no segment, two segments, another verb, the literal text
    for verb, path in (("GET", "/dev/tenants//pets"), ("GET", "/dev/tenants/a/b/pets"), ("POST", "/dev/tenants/a/pets"),
                       ("GET", "/dev/tenants/{claim:custom:tenant_id}/pets/x")):
        answer = gateway.handle(verb, path, BEARER)
        assert (answer.status, json.loads(answer.body)) == (403, {"message": "Missing Authentication Token"}), path
    assert len(authorizer.events) == 2
