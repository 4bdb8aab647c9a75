"""Every event kind through the real handler: REST TOKEN and REQUEST, HTTP API 1.0 and 2.0."""

from __future__ import annotations

import pytest

from policy_engine.admin.local.invoke import invoke
from policy_engine.core.iam import Verdict, evaluate_response
from tests.conftest import API, verdict
from tests.request_events import KINDS, event_of, http_v1_event, http_v2_event, rest_request_event

SIMPLE = {"SIMPLE_RESPONSES": "true", "IDENTITY_SOURCE": "$request.header.Authorization,$context.routeKey"}


@pytest.mark.parametrize("kind", KINDS)
def test_every_kind_gets_the_policy_of_every_granted_route(idp, make_handler, kind):
    result = invoke(make_handler(), event_of(kind, idp.mint(scope="pets:read"), "GET", "/pets/12"))
    assert verdict(result, "GET", "/pets/12") is Verdict.ALLOW
    assert verdict(result, "GET", "/pets") is Verdict.ALLOW
    assert verdict(result, "POST", "/pets") is Verdict.IMPLICIT_DENY
    assert verdict(result, "GET", "/store/inventory") is Verdict.IMPLICIT_DENY


@pytest.mark.parametrize("kind", KINDS)
def test_every_kind_refuses_a_bad_or_missing_token_with_401(idp, make_handler, kind):
    handler = make_handler()
    assert invoke(handler, event_of(kind, "Bearer not.a.jwt", "GET", "/pets")).unauthorized
    assert invoke(handler, event_of(kind, None, "GET", "/pets")).unauthorized
    expired = idp.mint(scope="pets:read", lifetime=-3600)
    assert invoke(handler, event_of(kind, expired, "GET", "/pets")).unauthorized


@pytest.mark.parametrize("kind", ["REQUEST", "HTTP_V1", "HTTP_V2"])
def test_header_lookup_ignores_case(idp, make_handler, kind):
    event = event_of(kind, None, "GET", "/pets")
    headers = event["headers"]
    headers["aUtHoRiZaTiOn"] = f"Bearer {idp.mint(scope='pets:read')}"
    event.pop("multiValueHeaders", None)
    assert verdict(invoke(make_handler(), event), "GET", "/pets") is Verdict.ALLOW


def test_token_from_a_query_string_parameter(idp, make_handler):
    handler = make_handler(IDENTITY_SOURCE="method.request.querystring.access_token")
    event = rest_request_event(None, "GET", "/pets")
    event["queryStringParameters"]["access_token"] = idp.mint(scope="pets:read")
    assert verdict(invoke(handler, event), "GET", "/pets") is Verdict.ALLOW
    # query parameter names are case-sensitive; the header is not read for this source
    event = rest_request_event(idp.mint(scope="pets:read"), "GET", "/pets")
    event["queryStringParameters"]["ACCESS_TOKEN"] = idp.mint(scope="pets:read")
    assert invoke(handler, event).unauthorized


def test_token_from_a_custom_header(idp, make_handler):
    handler = make_handler(IDENTITY_SOURCE="$request.header.X-Pet-Token")
    event = http_v2_event(None, "GET", "/pets")
    event["headers"]["x-pet-token"] = f"Bearer {idp.mint(scope='pets:read')}"
    assert verdict(invoke(handler, event), "GET", "/pets") is Verdict.ALLOW


def _several_credentials(idp):
    token = idp.mint(scope="pets:read")
    other = idp.mint(scope="pets:admin")
    duplicate_case = rest_request_event(token)
    duplicate_case["headers"]["authorization"] = f"Bearer {other}"
    multi_value = rest_request_event(token)
    multi_value["multiValueHeaders"]["Authorization"] = [f"Bearer {token}", f"Bearer {other}"]
    joined = http_v2_event(None)
    joined["headers"]["authorization"] = f"Bearer {token},Bearer {other}"
    header_and_query = http_v1_event(token)
    header_and_query["queryStringParameters"]["access_token"] = other
    v2_header_and_query = http_v2_event(token)
    v2_header_and_query["queryStringParameters"]["access_token"] = token  # even the same token twice
    return {
        "two header names differing in case": duplicate_case,
        "multiValueHeaders with two values": multi_value,
        "payload 2.0 comma-joined duplicate header": joined,
        "header and access_token query parameter": header_and_query,
        "same token in header and query": v2_header_and_query,
    }


def test_several_credentials_are_refused(idp, make_handler):
    handler = make_handler()
    for name, event in _several_credentials(idp).items():
        assert invoke(handler, event).unauthorized, name


def test_query_source_refuses_a_second_credential_in_the_authorization_header(idp, make_handler):
    handler = make_handler(IDENTITY_SOURCE="$request.querystring.token")
    event = http_v2_event(idp.mint(scope="pets:read"))
    event["queryStringParameters"]["token"] = idp.mint(scope="pets:read")
    assert invoke(handler, event).unauthorized
    del event["headers"]["authorization"]
    assert verdict(invoke(handler, event), "GET", "/pets") is Verdict.ALLOW


def test_malformed_events_are_refused(idp, make_handler):
    handler = make_handler()
    token = idp.mint(scope="pets:read")
    no_route_arn = http_v2_event(token)
    del no_route_arn["routeArn"]
    wrong_version = http_v2_event(token)
    wrong_version["version"] = "3.0"
    headers_not_object = rest_request_event(token)
    headers_not_object["headers"] = ["Authorization"]
    for event in (no_route_arn, wrong_version, headers_not_object, {"type": "WEBSOCKET"}, None):
        assert invoke(handler, event).unauthorized


class TestSimpleResponses:
    def test_decides_the_requested_route_only(self, idp, make_handler):
        handler = make_handler(**SIMPLE)
        token = idp.mint(scope="pets:read")
        allowed = invoke(handler, http_v2_event(token, "GET", "/pets/12", route_key="GET /pets/{petId}"))
        refused = invoke(handler, http_v2_event(token, "POST", "/pets", route_key="POST /pets"))
        assert allowed.response == {"isAuthorized": True, "context": allowed.response["context"]}
        assert allowed.response["context"]["sub"] == "demo-client"
        assert refused.response["isAuthorized"] is False

    def test_route_key_cache_needs_a_grant_covering_the_whole_route(self, idp, make_handler, tmp_path):
        # GIVEN only GET /pets/12 is granted, and API Gateway caches per route key
        (tmp_path / "p.yaml").write_text(
            f"apis:\n  - arn: {API}\n    stages: [dev]\n    routes:\n"
            "      GET /pets/12: [pets:one]\n      GET /pets/*: [pets:all]\n"
        )
        handler = make_handler(PERMISSIONS_SOURCE=str(tmp_path), **SIMPLE)
        one = idp.mint(scope="pets:one")
        event = http_v2_event(one, "GET", "/pets/12", route_key="GET /pets/{petId}")
        # THEN a true here would be reused for GET /pets/13: refuse
        assert invoke(handler, event).response["isAuthorized"] is False
        # while a caller granted the whole route is allowed
        event = http_v2_event(idp.mint(scope="pets:all"), "GET", "/pets/12", route_key="GET /pets/{petId}")
        assert invoke(handler, event).response["isAuthorized"] is True
        # and with exact method+path cache keys the narrow grant is enough
        exact = make_handler(PERMISSIONS_SOURCE=str(tmp_path), SIMPLE_RESPONSES="true",
                             IDENTITY_SOURCE="$request.header.Authorization,$context.httpMethod,$context.path")
        event = http_v2_event(one, "GET", "/pets/12", route_key="GET /pets/{petId}")
        assert invoke(exact, event).response["isAuthorized"] is True

    def test_any_route_needs_every_method(self, idp, make_handler):
        handler = make_handler(**SIMPLE)
        event = http_v2_event(idp.mint(scope="pets:read"), "GET", "/pets", route_key="ANY /pets")
        assert invoke(handler, event).response["isAuthorized"] is False

    def test_bad_token_is_401_not_a_cached_false(self, make_handler):
        assert invoke(make_handler(**SIMPLE), http_v2_event("Bearer nope")).unauthorized

    def test_payload_1_0_and_rest_still_get_policies(self, idp, make_handler):
        handler = make_handler(**SIMPLE)
        token = idp.mint(scope="pets:read")
        for event in (http_v1_event(token), rest_request_event(token)):
            assert evaluate_response(invoke(handler, event).response, f"{API}/dev/GET/pets") is Verdict.ALLOW

    def test_refused_without_per_route_identity_sources(self, make_handler):
        with pytest.raises(Exception, match="SIMPLE_RESPONSES"):
            make_handler(SIMPLE_RESPONSES="true")


def test_http_api_default_stage(idp, make_handler, tmp_path):
    (tmp_path / "p.yaml").write_text(
        f"apis:\n  - arn: {API}\n    stages: [$default]\n    routes:\n      GET /pets: [pets:read]\n"
    )
    handler = make_handler(PERMISSIONS_SOURCE=str(tmp_path))
    result = invoke(handler, http_v2_event(idp.mint(scope="pets:read"), "GET", "/pets", stage="$default"))
    assert evaluate_response(result.response, f"{API}/$default/GET/pets") is Verdict.ALLOW
    assert evaluate_response(result.response, f"{API}/dev/GET/pets") is Verdict.IMPLICIT_DENY
