"""Pure pieces: identity sources, event kinds, route templates, per-route narrowing, introspection claims."""

from __future__ import annotations

import pytest

from policy_engine.core.decision import (
    Decision,
    narrow_to_route,
    render_iam_response,
    render_simple_response,
    response_size,
)
from policy_engine.core.iam import Verdict, evaluate_response
from policy_engine.core.permissions import HTTP_VERBS
from policy_engine.core.routes import PathPart, parse_route_key
from policy_engine.core.tokens import validate_introspection
from policy_engine.errors import ConfigurationError, EventError, ExpiredTokenError, InvalidClaimsError
from policy_engine.events import parse_identity_source, read_event
from tests.request_events import sample

API = "arn:aws:execute-api:us-east-1:123456789012:a1b2c3d4e5"


@pytest.mark.parametrize(
    "entries, location, name, scope",
    [
        (("method.request.header.Authorization",), "header", "Authorization", "identity"),
        (("method.request.querystring.token", "context.httpMethod", "context.resourcePath"),
         "querystring", "token", "route"),
        (("method.request.header.Authorization", "context.httpMethod", "context.path"),
         "header", "Authorization", "request"),
        (("$request.header.X-Token", "$context.routeKey"), "header", "X-Token", "route"),
        (("$context.httpMethod", "$request.header.Authorization", "$context.path"),
         "header", "Authorization", "request"),
        (("$request.header.Authorization", "$stageVariables.tenant"), "header", "Authorization", "identity"),
        (("method.request.header.Authorization", "context.resourcePath"), "header", "Authorization", "identity"),
    ],
)
def test_identity_sources_in_either_syntax(entries, location, name, scope):
    source = parse_identity_source(entries)
    assert (source.location, source.name, source.cache_scope) == (location, name, scope)


@pytest.mark.parametrize(
    "entries", [("Authorization",), ("$context.routeKey",), ("method.request.path.id",), ("$request.header.",)]
)
def test_bad_identity_sources(entries):
    with pytest.raises(ConfigurationError) as info:
        parse_identity_source(entries)
    assert info.value.variable == "IDENTITY_SOURCE"


@pytest.mark.parametrize(
    "name, kind, arn_key",
    [("token-get-pet.json", "TOKEN", "methodArn"), ("request-get-pet.json", "REQUEST", "methodArn"),
     ("http-v1-get-pet.json", "HTTP_V1", "methodArn"), ("http-v2-get-pet.json", "HTTP_V2", "routeArn")],
)
def test_sample_events_are_told_apart(name, kind, arn_key):
    event = sample(name)
    request = read_event(event)
    assert request.kind == kind
    assert request.method_arn == event[arn_key]
    assert request.authorization == "Bearer REPLACE_WITH_TOKEN"


@pytest.mark.parametrize("source_entries, carried, refused", [
    # A custom header or query source beside an Authorization header of another scheme
    # (Basic credentials for something upstream): that header is no second token.
    (("method.request.header.X-Token",), {"headers": {"X-Token": "Bearer abc", "Authorization": "Basic dXNlcjpw"}},
     False),
    (("method.request.querystring.access_token",), {"headers": {"Authorization": "Basic dXNlcjpw"},
                                                    "queryStringParameters": {"access_token": "abc"}}, False),
    # A bearer token there, in any case, or a value that names no scheme, is one.
    (("method.request.header.X-Token",), {"headers": {"X-Token": "Bearer abc", "Authorization": "bearer xyz"}}, True),
    (("method.request.header.X-Token",), {"headers": {"X-Token": "Bearer abc", "Authorization": "xyz"}}, True),
    (("method.request.querystring.access_token",), {"headers": {"Authorization": "Bearer xyz"},
                                                    "queryStringParameters": {"access_token": "abc"}}, True),
    # The standard header as the source, with a token in the access_token parameter too.
    (("method.request.header.Authorization",), {"headers": {"Authorization": "Bearer abc"},
                                                "queryStringParameters": {"access_token": "Basic abc"}}, True),
])
def test_a_second_credential_is_a_bearer_token_in_another_place(source_entries, carried, refused):
    from policy_engine.errors import MalformedTokenError

    event = {**sample("request-get-pet.json"), "headers": {}, "multiValueHeaders": {}, **carried}
    source = parse_identity_source(source_entries)
    if refused:
        with pytest.raises(MalformedTokenError, match="more than one place"):
            read_event(event, source)
    else:
        assert read_event(event, source).authorization in ("Bearer abc", "abc")


def test_v2_event_without_identity_source_array_is_still_read_from_headers():
    event = dict(sample("http-v2-get-pet.json"))
    del event["identitySource"]
    assert read_event(event).authorization == "Bearer REPLACE_WITH_TOKEN"


@pytest.mark.parametrize(
    "route_key, methods, path",
    [
        ("GET /pets/{petId}", ("GET",), ("pets/", PathPart.SEGMENT)),
        ("ANY /pets", HTTP_VERBS, ("pets",)),
        ("GET /files/{proxy+}", ("GET",), ("files/", PathPart.GREEDY)),
        ("DELETE /{a}/x/{b}", ("DELETE",), (PathPart.SEGMENT, "/x/", PathPart.SEGMENT)),
        ("$default", HTTP_VERBS, (PathPart.ANYTHING,)),
        ("GET /", ("GET",), ()),
    ],
)
def test_route_keys_are_read_as_the_requests_they_route(route_key, methods, path):
    route = parse_route_key(route_key)
    assert (route.methods, route.path) == (methods, path)


@pytest.mark.parametrize("route_key", ["pets", "", "GET pets", "GET/x /pets", " /pets"])
def test_route_key_nonsense_is_refused(route_key):
    with pytest.raises(EventError):
        parse_route_key(route_key)


def _decision(resources, denied=()):
    return Decision("Allow" if resources else "Deny", "p", API, "dev", tuple(resources), "granted", "v1",
                    denied=tuple(denied))


def test_narrowing_keeps_a_subset_that_decides_the_route_the_same_way():
    full = _decision([f"{API}/dev/GET/pets", f"{API}/dev/GET/pets/*", f"{API}/dev/POST/pets"],
                     denied=[f"{API}/dev/GET/pets/secret*"])
    for path in ["GET/pets", "GET/pets/1", "POST/pets", "GET/pets/secret/1", "DELETE/pets/1"]:
        arn = f"{API}/dev/{path}"
        narrowed = render_iam_response(narrow_to_route(full, arn))
        assert (evaluate_response(narrowed, arn) is Verdict.ALLOW) == (
            evaluate_response(render_iam_response(full), arn) is Verdict.ALLOW), path
        allowed = {r for s in narrowed["policyDocument"]["Statement"] if s["Effect"] == "Allow" for r in s["Resource"]}
        assert allowed <= set(full.resources)


def test_a_narrowed_policy_never_allows_a_request_the_full_policy_denies():
    # The narrowed answer is cached for every request with the same key, which may be
    # coarser than the mappings' routes (a {proxy+} resource): whatever request it meets,
    # it may not allow what the full policy denies, explicitly or for want of an API key.
    full = Decision("Allow", "p", API, "dev", (f"{API}/dev/GET/reports/r005/*", f"{API}/dev/GET/reports/r006/*"),
                    "granted", "v1", denied=(f"{API}/dev/GET/reports/r006/premium",),
                    excluded=(f"{API}/dev/GET/reports/r005/secret", f"{API}/dev/GET/other/secret"))
    paths = ["GET/reports/r005/7", "GET/reports/r005/secret", "GET/reports/r006/1", "GET/reports/r006/premium",
             "GET/other/secret", "POST/reports/r005/7"]
    full_response = render_iam_response(full)
    for asked in paths:
        narrowed = narrow_to_route(full, f"{API}/dev/{asked}")
        response = render_iam_response(narrowed)
        for probe in paths:
            arn = f"{API}/dev/{probe}"
            if evaluate_response(response, arn) is Verdict.ALLOW:
                assert evaluate_response(full_response, arn) is Verdict.ALLOW, (asked, probe)
        # Only the Deny Resources that can meet what the narrowed policy allows are kept.
        assert f"{API}/dev/GET/other/secret" not in narrowed.excluded
    assert narrow_to_route(full, f"{API}/dev/GET/reports/r006/premium").reason == "route_needs_api_key"
    assert narrow_to_route(full, f"{API}/dev/GET/reports/r006/1").reason == "granted"


def test_simple_response_with_a_denied_route_is_false():
    full = _decision([f"{API}/dev/GET/pets/*"], denied=[f"{API}/dev/GET/pets/*"])
    assert render_simple_response(full, f"{API}/dev/GET/pets/1")["isAuthorized"] is False


def test_a_simple_response_for_one_path_is_true_beside_a_route_that_needs_a_key():
    # The key-needing route near this request is kept in the narrowed policy's Deny
    # statements (for a coarse cache key); it does not decide this request.
    full = _decision([f"{API}/dev/GET/pets/*"], denied=[f"{API}/dev/GET/pets/premium"])
    assert render_simple_response(full, f"{API}/dev/GET/pets/1")["isAuthorized"] is True
    assert render_simple_response(full, f"{API}/dev/GET/pets/premium")["isAuthorized"] is False


@pytest.mark.parametrize(
    "answer, error",
    [
        ({"active": "true"}, InvalidClaimsError),
        ({"active": True, "exp": 10}, ExpiredTokenError),
        ({"active": True, "aud": 5}, InvalidClaimsError),
        ({"active": True, "token_type": "refresh_token"}, InvalidClaimsError),
        ({"active": True, "iss": "https://evil"}, InvalidClaimsError),
        ({"active": True, "username": 7}, InvalidClaimsError),
    ],
)
def test_introspection_claims(answer, error):
    with pytest.raises(error):
        validate_introspection(answer, issuers={"https://a"}, audiences={"api"}, now=1000.0, leeway=30)


def test_introspection_claims_accept_what_the_answer_leaves_out():
    # No iss, exp or scope: accepted. The same answer naming no configured audience, or an
    # issuer that is not configured, is refused, so this cannot pass by accepting everything.
    answer = {"active": True, "token_type": "Bearer", "aud": ["x", "api"]}
    validate_introspection(answer, issuers=set(), audiences={"api"}, now=1000.0, leeway=30)
    with pytest.raises(InvalidClaimsError):
        validate_introspection({**answer, "aud": ["x"]}, issuers=set(), audiences={"api"}, now=1000.0, leeway=30)
    with pytest.raises(InvalidClaimsError):
        validate_introspection({**answer, "iss": "https://b"}, issuers={"https://a"}, audiences={"api"},
                               now=1000.0, leeway=30)


def test_response_size_is_what_the_runtime_sends():
    import json

    response = {"principalId": "José", "context": {"note": "😀"}}
    assert response_size(response) == len(json.dumps(response).encode("utf-8"))


def test_the_client_secret_stays_out_of_settings_repr():
    from policy_engine.settings import Settings

    settings = Settings.from_environ({"AUDIENCE": "a", "INTROSPECTION_URL": "https://as.example.com/introspect",
                                      "INTROSPECTION_CLIENT_ID": "rs", "INTROSPECTION_CLIENT_SECRET": "hunter2-secret"})
    assert "hunter2-secret" not in repr(settings)


@pytest.mark.parametrize("stage", ["x?GET", "?", "d\u00e9v", "a b", "dev*", "s" * 129, ""])
def test_a_method_arn_stage_api_gateway_would_never_name_is_refused(stage):
    # A '?' would become a wildcard in every policy Resource written with this stage
    # (Allow .../x?GET/GET/pets also matches stage x, GET /GET/pets).
    from policy_engine.core.arn import parse_method_arn

    with pytest.raises(EventError, match="no usable stage"):
        parse_method_arn(f"{API}/{stage}/GET/pets")
    assert parse_method_arn(f"{API}/$default/GET/pets").stage == "$default"
    assert parse_method_arn(f"{API}/dev-2_b/GET/pets").stage == "dev-2_b"
