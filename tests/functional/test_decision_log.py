"""The decision line replay reads, the request context on every line, and the EMF metrics.

The real handler, a real JWKS on 127.0.0.1 and the shipped permissions (which hold a
tenant placeholder, so every decision line names ``claims``). Metrics are checked
against the Embedded Metric Format specification (``tests.support.emf``); outcomes by
evaluating the returned policy, never by reading its JSON.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from policy_engine import logs, metrics
from policy_engine.adapters.jwks_http import JwksKeySource
from policy_engine.adapters.memory import MemoryPermissionSource
from policy_engine.admin.local.idp import LocalIdentityProvider
from policy_engine.bootstrap import key_source
from policy_engine.cache import PermissionCache
from policy_engine.core.iam import Verdict, evaluate_response
from policy_engine.engine import HEALTH_INTERVAL, Authorizer
from policy_engine.errors import ConfigurationError
from policy_engine.ports import RawPermissions
from policy_engine.settings import Settings
from tests.conftest import API, AUDIENCE, ROOT
from tests.request_events import KINDS, event_of
from tests.support.emf import emf_problems, metrics_of


class Context:
    """What the Lambda runtime hands the handler (only the request id is read)."""

    aws_request_id = "8f5e2b7c-lambda-request"


@pytest.fixture(autouse=True)
def _default_metrics() -> Iterator[None]:
    # Handlers configure the process's metrics at load; each test starts from the defaults.
    yield
    metrics.configure(enabled=True, namespace="PolicyEngine", function_name="local")


def lines_of(err: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in err.splitlines() if line.startswith("{")]


def raw_lines(err: str, event: str) -> list[str]:
    return [line for line in err.splitlines() if json.loads(line)["event"] == event]


def call(handler: Any, event: dict[str, Any]) -> dict[str, Any] | str:
    try:
        return handler.lambda_handler(event, Context())
    except Exception as exc:  # noqa: BLE001 - the runtime reports the message
        return str(exc)


CONTEXT_FIELDS = {
    "TOKEN": ["aws_request_id"],
    "REQUEST": ["aws_request_id", "request_id", "route"],
    "HTTP_V1": ["aws_request_id", "request_id", "route"],
    "HTTP_V2": ["aws_request_id", "request_id", "route"],
}


@pytest.mark.parametrize("kind", KINDS)
def test_the_decision_line_has_every_field_in_order(idp, make_handler, capsys, kind):
    handler = make_handler(AWS_LAMBDA_FUNCTION_NAME="pets-authorizer")
    event = event_of(kind, idp.mint(scope="pets:read", tenant_id="acme"), "GET", "/pets/42")
    capsys.readouterr()
    response = call(handler, event)
    err = capsys.readouterr().err
    (text,) = raw_lines(err, "decision")
    line = json.loads(text)
    assert list(line) == ["level", "event", "ts", *CONTEXT_FIELDS[kind], "decision", "reason", "shape", "version",
                          "principal", "api", "stage", "verb", "path", "outcome", "grants", "claims", "routes",
                          "latency_ms", "FunctionName", "Decisions", "DecisionLatency", "_aws"]
    assert line["aws_request_id"] == Context.aws_request_id
    if kind == "HTTP_V2":
        assert line["route"] == event["routeKey"]
    elif kind != "TOKEN":
        context = event["requestContext"]
        assert line["request_id"] == context["requestId"]
        assert line["route"] == f"{context['httpMethod']} {context['resourcePath']}"
    assert (line["decision"], line["principal"], line["api"], line["stage"], line["verb"], line["path"]) == (
        "Allow", "demo-client", API, "dev", "GET", "/pets/42")
    assert line["outcome"] == "allow" and line["grants"] == ["pets:read"]
    # The shipped mappings name {claim:custom:tenant_id}: its value (none here) is all claims holds.
    assert line["claims"] == {}
    assert evaluate_response(response, event.get("methodArn") or event["routeArn"]) is Verdict.ALLOW
    assert emf_problems(text) == []
    found = metrics_of(text)
    assert found["Decisions"] == (1, "Count", [["FunctionName", "decision"], ["FunctionName", "decision", "reason"]],
                                  "PolicyEngine")
    assert found["DecisionLatency"] == (line["latency_ms"], "Milliseconds", [["FunctionName"]], "PolicyEngine")
    assert line["FunctionName"] == "pets-authorizer"
    assert json.loads(text)["_aws"]["Timestamp"] == round(line["ts"] * 1000)


def test_grants_of_every_kind_and_placeholder_claims_are_logged_never_the_token(idp, make_handler, capsys):
    handler = make_handler(GRANT_SOURCES="scope:scope,group:groups")
    token = idp.mint(scope="pets:read email", groups=["pet-sitters"], **{"custom:tenant_id": "acme"})
    capsys.readouterr()
    call(handler, event_of("REQUEST", token, "GET", "/tenants/acme/pets"))
    err = capsys.readouterr().err
    (line,) = [r for r in lines_of(err) if r["event"] == "decision"]
    assert line["grants"] == ["email", "group pet-sitters", "pets:read"]
    assert line["claims"] == {"custom:tenant_id": "acme"} and line["outcome"] == "allow"
    for part in token.split("."):
        assert part not in err


def test_an_allow_for_other_routes_is_a_deny_for_this_request(idp, make_handler, capsys):
    # The caller holds read routes; API Gateway refuses the POST the policy does not allow.
    handler = make_handler()
    capsys.readouterr()
    event = event_of("TOKEN", idp.mint(scope="pets:read"), "POST", "/pets")
    response = call(handler, event)
    (line,) = [r for r in lines_of(capsys.readouterr().err) if r["event"] == "decision"]
    assert line["decision"] == "Allow" and line["outcome"] == "deny"
    assert evaluate_response(response, event["methodArn"]) is Verdict.IMPLICIT_DENY


def test_a_simple_response_outcome_is_is_authorized(idp, make_handler, capsys):
    handler = make_handler(SIMPLE_RESPONSES="true", IDENTITY_SOURCE="$request.header.Authorization,$context.routeKey")
    capsys.readouterr()
    for path, expected in [("/pets", True), ("/store/inventory", False)]:
        response = call(handler, event_of("HTTP_V2", idp.mint(scope="pets:read"), "GET", path))
        (line,) = [r for r in lines_of(capsys.readouterr().err) if r["event"] == "decision"]
        assert response["isAuthorized"] is expected and line["outcome"] == ("allow" if expected else "deny")
        assert line["shape"] == "simple"


def test_refusals_carry_the_request_and_the_decision_metrics(idp, make_handler, capsys):
    handler = make_handler()
    capsys.readouterr()
    assert call(handler, event_of("REQUEST", "Bearer not.a.token", "GET", "/pets/1")) == "Unauthorized"
    assert call(handler, {"type": "TOKEN", "authorizationToken": "Bearer x"}) == "Unauthorized"  # no methodArn
    texts = raw_lines(capsys.readouterr().err, "decision")
    parsed, unparsed = map(json.loads, texts)
    assert parsed["decision"] == "Unauthorized" and parsed["reason"] == "malformed_token"
    assert (parsed["request_id"], parsed["api"], parsed["verb"], parsed["path"]) == (
        "c6af9ac6-7b61-11e6-9a41-93e8deadbeef", API, "GET", "/pets/1")
    assert "api" not in unparsed and unparsed["aws_request_id"] == Context.aws_request_id
    for text in texts:
        assert emf_problems(text) == []
        assert set(metrics_of(text)) == {"Decisions", "DecisionLatency"}
        assert "outcome" not in json.loads(text) and "grants" not in json.loads(text)


def test_a_bug_is_logged_with_where_it_was_raised_never_its_message(idp, make_handler, capsys, monkeypatch):
    # An unexpected exception's message may quote what it failed on (here a piece of the
    # token); the line names the type and the frames, which are enough to find the bug.
    handler = make_handler()
    token = idp.mint(scope="pets:read", audience=AUDIENCE)

    def broken(*args: Any) -> Any:
        raise ValueError(f"cannot use {token.split('.')[1]}")

    monkeypatch.setattr(handler.AUTHORIZER, "_decide", broken)
    capsys.readouterr()
    assert call(handler, event_of("TOKEN", f"Bearer {token}", "GET", "/pets")) == "AuthorizerFailure"
    err = capsys.readouterr().err
    (line,) = [json.loads(text) for text in raw_lines(err, "decision")]
    assert (line["decision"], line["reason"], line["detail"]) == ("Error", "internal_error", "ValueError")
    assert line["where"][-1].startswith("functional/test_decision_log.py:") and line["where"][-1].endswith(" in broken")
    assert any(frame.startswith("policy_engine/engine.py:") and frame.endswith(" in answer") for frame in line["where"])
    assert token.split(".")[1] not in err


def test_every_line_of_a_request_names_it_and_store_failures_are_counted(idp, make_handler, capsys, tmp_path):
    # Mappings that load, then break: the request's reload fails (checked on every request).
    source = tmp_path / "permissions.yaml"
    source.write_text((ROOT / "permissions" / "pets.yaml").read_text())
    handler = make_handler(PERMISSIONS_SOURCE=str(source), PERMISSIONS_CACHE_TTL="0")
    source.write_text("apis: [")
    capsys.readouterr()
    assert "policyDocument" in call(handler, event_of("HTTP_V2", idp.mint(), "GET", "/pets"))
    err = capsys.readouterr().err
    lines = lines_of(err)
    assert [line["event"] for line in lines] == ["permissions_reload_failed", "decision", "health"]
    for line in lines:
        assert (line["aws_request_id"], line["request_id"], line["route"]) == (
            Context.aws_request_id, "Ye1x2FkQIAMEbXw=", "GET /pets"), line["event"]
    (failure,) = raw_lines(err, "permissions_reload_failed")
    assert emf_problems(failure) == [] and metrics_of(failure)["StoreFailures"][:2] == (1, "Count")
    # After the request, lines name none.
    logs.log("INFO", "outside")
    assert "request_id" not in json.loads(capsys.readouterr().err)


def test_jwks_failures_are_counted(capsys):
    def failing(url: str, timeout: float) -> Any:
        from policy_engine.adapters.http import FetchError

        raise FetchError("refused")

    source = JwksKeySource(["https://idp.example.com"], algorithms={"RS256"}, jwks_uris=["https://idp.example.com/k"],
                           timeout=1.0, cache_ttl=60.0, refetch_interval=1.0, max_stale=60.0, fetch_json=failing)
    capsys.readouterr()
    source.prefetch()
    (text,) = raw_lines(capsys.readouterr().err, "jwks_prefetch_failed")
    assert emf_problems(text) == [] and metrics_of(text)["JwksFailures"][:2] == (1, "Count")
    assert source.refresh_age() is None


def test_metrics_off_leaves_every_metric_member_out(idp, make_handler, capsys):
    handler = make_handler(METRICS="false")
    capsys.readouterr()
    call(handler, event_of("TOKEN", idp.mint(), "GET", "/pets"))
    call(handler, event_of("TOKEN", "Bearer x", "GET", "/pets"))
    lines = lines_of(capsys.readouterr().err)
    assert {line["event"] for line in lines} == {"decision", "health"}
    for line in lines:
        assert not {"_aws", "FunctionName", "Decisions", "DecisionLatency"} & set(line)
    (health,) = [line for line in lines if line["event"] == "health"]
    assert health["PermissionsRefreshAge"] >= 0  # the ages as plain members


def test_the_namespace_is_configurable_and_checked(idp, make_handler, capsys):
    handler = make_handler(METRICS_NAMESPACE="Team/Pets")
    capsys.readouterr()
    call(handler, event_of("TOKEN", idp.mint(), "GET", "/pets"))
    (text,) = raw_lines(capsys.readouterr().err, "decision")
    assert {found[3] for found in metrics_of(text).values()} == {"Team/Pets"}
    for bad in ("AWS/Lambda", ":x", "pets\u00e9", "x" * 256):
        with pytest.raises(ConfigurationError) as info:
            Settings.from_environ({"ISSUER": "https://idp.example.com", "AUDIENCE": "a", "METRICS_NAMESPACE": bad})
        assert info.value.variable == "METRICS_NAMESPACE"


class PublishedSource(MemoryPermissionSource):
    """A memory source that says when its version was published, as the stores do."""

    published_at = "2025-12-07T05:00:00Z"

    def fetch(self, known_etag: str | None) -> RawPermissions | None:
        raw = super().fetch(known_etag)
        return None if raw is None else RawPermissions(raw.records, raw.locate, "v7", raw.etag, self.published_at)


def test_the_health_line_comes_once_per_interval_with_the_ages(idp, capsys):
    wall = [float(int(time.time()))]
    published = datetime.fromtimestamp(wall[0] - 3600, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")  # an hour before
    mono = [1000.0]
    settings_ = Settings.from_environ({"ISSUER": idp.issuer, "AUDIENCE": AUDIENCE, "JWKS_URI": idp.jwks_uri})
    keys = key_source(settings_)
    source = PublishedSource([{"arn": API, "stage": "dev", "httpVerb": "GET", "resource": "/pets",
                               "scope": "pets:read"}])
    source.published_at = published
    cache = PermissionCache(source, ttl=3600, max_stale=3600, clock=lambda: mono[0])
    authorizer = Authorizer(settings_, keys=keys, permissions=cache, clock=lambda: wall[0],
                            monotonic=lambda: mono[0])
    authorizer.answer(event_of("TOKEN", idp.mint(), "GET", "/pets"))
    capsys.readouterr()
    written = []
    for step in (0, 1, HEALTH_INTERVAL - 2, 1, 30, HEALTH_INTERVAL):
        mono[0] += step
        authorizer.health()
        written += raw_lines(capsys.readouterr().err, "health")
    assert len(written) == 3  # at 1000, 1060 and 1150
    first, _, last = map(json.loads, written)
    assert first["version"] == "v7" and "candidate_version" not in first
    assert first["PermissionVersionAge"] == 3600.0
    assert first["PermissionsRefreshAge"] == 0.0 and last["PermissionsRefreshAge"] == 150.0
    assert first["JwksRefreshAge"] >= 0
    for text in written:
        assert emf_problems(text) == []
        assert {name: found[1] for name, found in metrics_of(text).items()} == {
            "PermissionVersionAge": "Seconds", "PermissionsRefreshAge": "Seconds", "JwksRefreshAge": "Seconds"}


def test_a_health_line_follows_the_first_decision_of_a_container(idp, make_handler, capsys):
    handler = make_handler()
    capsys.readouterr()
    call(handler, event_of("TOKEN", idp.mint(), "GET", "/pets"))
    call(handler, event_of("TOKEN", idp.mint(), "GET", "/pets"))
    events = [line["event"] for line in lines_of(capsys.readouterr().err)]
    assert events == ["decision", "health", "decision"]


# Outcome: what API Gateway does with the request, for any permission set.

VERBS = ("GET", "POST", "DELETE", "*")
SEGMENTS = ("pets", "store", "{id}", "*", "orders")
SCOPES = ("a", "b", "c")


@pytest.fixture(scope="module")
def shared_idp() -> Iterator[LocalIdentityProvider]:
    with LocalIdentityProvider() as provider:
        yield provider


def _resource(segments: list[str]) -> str:
    # Route parameters only as whole routes without '*' (the schema's rule).
    path = "/" + "/".join(segments)
    if "{id}" in path and "*" in path:
        path = path.replace("*", "x")
    return path


mapping = st.builds(
    lambda verb, segments, scope, stage: {"arn": API, "stage": stage, "httpVerb": verb,
                                          "resource": _resource(segments), "scope": scope},
    st.sampled_from(VERBS), st.lists(st.sampled_from(SEGMENTS), min_size=1, max_size=3), st.sampled_from(SCOPES),
    st.sampled_from(("dev", "*")),
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(records=st.lists(mapping, min_size=1, max_size=8), held=st.sets(st.sampled_from(SCOPES), max_size=2),
       verb=st.sampled_from(("GET", "POST", "DELETE")),
       path=st.lists(st.sampled_from(("pets", "store", "7", "orders")), min_size=1, max_size=3),
       kind=st.sampled_from(KINDS))
def test_outcome_is_what_the_response_does_with_the_request(shared_idp, records, held, verb, path, kind):
    settings_ = Settings.from_environ({"ISSUER": shared_idp.issuer, "AUDIENCE": AUDIENCE,
                                       "JWKS_URI": shared_idp.jwks_uri,
                                       "IDENTITY_SOURCE": "method.request.header.Authorization,context.httpMethod,"
                                                          "context.path"})
    cache = PermissionCache(MemoryPermissionSource(records), ttl=3600, max_stale=3600)
    authorizer = Authorizer(settings_, keys=key_source(settings_), permissions=cache)
    event = event_of(kind, shared_idp.mint(scope=" ".join(sorted(held)) or None), verb, "/" + "/".join(path))
    answer = authorizer.answer(event)
    arn = event.get("methodArn") or event["routeArn"]
    assert answer.outcome is (evaluate_response(answer.response, arn) is Verdict.ALLOW)


def test_outcome_with_simple_responses_is_is_authorized(shared_idp):
    settings_ = Settings.from_environ({"ISSUER": shared_idp.issuer, "AUDIENCE": AUDIENCE,
                                       "JWKS_URI": shared_idp.jwks_uri, "SIMPLE_RESPONSES": "true",
                                       "IDENTITY_SOURCE": "$request.header.Authorization,$context.routeKey"})
    cache = PermissionCache(MemoryPermissionSource([{"arn": API, "stage": "dev", "httpVerb": "GET",
                                                     "resource": "/pets/*", "scope": "a"}]), ttl=3600, max_stale=3600)
    authorizer = Authorizer(settings_, keys=key_source(settings_), permissions=cache)
    for path, expected in (("/pets/1", True), ("/store", False)):
        answer = authorizer.answer(event_of("HTTP_V2", shared_idp.mint(scope="a"), "GET", path))
        assert answer.outcome is answer.response["isAuthorized"] is expected


def test_the_shipped_permissions_hold_a_placeholder():
    # The decision-line tests above rely on it (claims is written for such sets).
    assert "{claim:" in (ROOT / "permissions" / "pets.yaml").read_text()
