"""Opaque tokens through the real handler, against the local introspection endpoint."""

from __future__ import annotations

import json
import time

import pytest

from policy_engine.admin.local.invoke import invoke
from policy_engine.core.iam import Verdict
from tests.conftest import verdict
from tests.request_events import KINDS, event_of, http_v2_event

CLIENT_ID, SECRET = "authorizer", "introspection-secret"


@pytest.fixture
def opaque_handler(idp, make_handler):
    idp.register_client(CLIENT_ID, SECRET)

    def make(**env: str):
        base = {"INTROSPECTION_URL": idp.introspection_endpoint, "INTROSPECTION_CLIENT_ID": CLIENT_ID,
                "INTROSPECTION_CLIENT_SECRET": SECRET}
        return make_handler(**{**base, **env})

    return make


def introspections(idp) -> int:
    return idp.requests.count("POST /introspect")


@pytest.mark.parametrize("kind", KINDS)
def test_opaque_token_feeds_the_same_policy_generation(idp, opaque_handler, kind):
    token = idp.issue_opaque(scope="pets:read store:read", subject="svc-reporting")
    result = invoke(opaque_handler(), event_of(kind, token, "GET", "/pets/3"))
    assert verdict(result, "GET", "/pets/3") is Verdict.ALLOW
    assert verdict(result, "GET", "/store/inventory") is Verdict.ALLOW
    assert verdict(result, "POST", "/pets") is Verdict.IMPLICIT_DENY
    assert result.response["principalId"] == "svc-reporting"


def test_opaque_token_with_simple_responses(idp, opaque_handler):
    handler = opaque_handler(SIMPLE_RESPONSES="true", IDENTITY_SOURCE="$request.header.Authorization,$context.routeKey")
    token = idp.issue_opaque(scope="pets:write")
    assert invoke(handler, http_v2_event(token, "POST", "/pets")).response["isAuthorized"] is True
    assert invoke(handler, http_v2_event(token, "DELETE", "/pets/1", route_key="DELETE /pets/{id}")).response[
        "isAuthorized"] is False


def test_jwts_of_a_configured_issuer_are_verified_locally_side_by_side(idp, opaque_handler):
    handler = opaque_handler()
    jwt_result = invoke(handler, event_of("TOKEN", idp.mint(scope="pets:read"), "GET", "/pets"))
    assert verdict(jwt_result, "GET", "/pets") is Verdict.ALLOW
    forged = idp.mint(scope="pets:admin")[:-6] + "AAAAAA"
    assert invoke(handler, event_of("TOKEN", forged, "GET", "/pets")).unauthorized
    assert introspections(idp) == 0  # neither the good nor the forged JWT was sent out
    opaque = invoke(handler, event_of("TOKEN", idp.issue_opaque(scope="pets:read"), "GET", "/pets"))
    assert verdict(opaque, "GET", "/pets") is Verdict.ALLOW
    assert introspections(idp) == 1


def test_jwt_of_another_issuer_goes_to_introspection(idp, opaque_handler):
    # A JWT-shaped token the AS issued under another issuer name is opaque to us.
    from policy_engine.admin.local.idp import LocalIdentityProvider

    with LocalIdentityProvider() as other:
        token = other.mint(scope="pets:read")
    handler = opaque_handler()
    assert invoke(handler, event_of("TOKEN", token, "GET", "/pets")).unauthorized  # unknown to the AS: inactive
    assert introspections(idp) == 1
    idp.opaque_tokens[token] = {"active": True, "sub": "migrated", "scope": "pets:read", "aud": "policy-engine-demo"}
    handler = opaque_handler()
    assert verdict(invoke(handler, event_of("TOKEN", token, "GET", "/pets")), "GET", "/pets") is Verdict.ALLOW


def test_opaque_only_deployment_needs_no_issuer(idp, opaque_handler):
    # the answers carry iss, so it must be accepted: INTROSPECTION_ISSUER
    assert invoke(opaque_handler(ISSUER=""), event_of("REQUEST", idp.issue_opaque())).unauthorized
    handler = opaque_handler(ISSUER="", INTROSPECTION_ISSUER=idp.issuer)
    result = invoke(handler, event_of("REQUEST", idp.issue_opaque(scope="pets:read"), "GET", "/pets"))
    assert verdict(result, "GET", "/pets") is Verdict.ALLOW
    # a JWT is then just another token to introspect
    assert invoke(handler, event_of("REQUEST", idp.mint(scope="pets:read"), "GET", "/pets")).unauthorized


@pytest.mark.parametrize(
    "members",
    [
        {"aud": "another-api"},
        {"aud": ["a", "b"]},
        {"iss": "https://not-configured.example.com"},
        {"token_type": "refresh_token"},
        {"exp": int(time.time()) - 3600},
        {"nbf": int(time.time()) + 3600},
        {"scope": ["pets:read"], "scp": None},
        {"sub": None, "client_id": None},
        {"exp": "4102444800"},
    ],
    ids=["aud", "aud-list", "iss", "refresh", "expired", "nbf", "scope-type", "no-principal", "exp-string"],
)
def test_same_claim_rules_as_jwts(idp, opaque_handler, members):
    token = idp.issue_opaque(scope="pets:read")
    idp.opaque_tokens[token].update(members)
    idp.opaque_tokens[token] = {k: v for k, v in idp.opaque_tokens[token].items() if v is not None}
    assert invoke(opaque_handler(), event_of("TOKEN", token, "GET", "/pets")).unauthorized


def test_members_the_answer_lacks_are_not_required(idp, opaque_handler):
    token = idp.issue_opaque(scope="pets:read")
    idp.opaque_tokens[token] = {"active": True, "client_id": "svc", "scope": "pets:read"}
    result = invoke(opaque_handler(), event_of("TOKEN", token, "GET", "/pets"))
    assert verdict(result, "GET", "/pets") is Verdict.ALLOW
    assert result.response["principalId"] == "svc"


def test_inactive_is_401_and_endpoint_failures_are_500(idp, opaque_handler):
    handler = opaque_handler()
    token = idp.issue_opaque()
    idp.revoke(token)
    assert invoke(handler, event_of("TOKEN", token)).unauthorized
    idp.introspection_override = lambda: (503, b"{}")
    result = invoke(handler, event_of("TOKEN", idp.issue_opaque()))
    assert result.response is None and result.error == "AuthorizerFailure"


def test_wrong_resource_server_credentials_fail_closed(idp, make_handler):
    idp.register_client(CLIENT_ID, SECRET)
    handler = make_handler(INTROSPECTION_URL=idp.introspection_endpoint, INTROSPECTION_CLIENT_ID=CLIENT_ID,
                           INTROSPECTION_CLIENT_SECRET="not-it", INTROSPECTION_AUTH_METHOD="client_secret_post")
    assert invoke(handler, event_of("TOKEN", idp.issue_opaque())).error == "AuthorizerFailure"


def test_the_token_is_never_logged(idp, opaque_handler, capsys):
    handler = opaque_handler()
    good, dead = idp.issue_opaque(), idp.issue_opaque()
    idp.revoke(dead)
    invoke(handler, event_of("TOKEN", good))
    invoke(handler, event_of("TOKEN", dead))
    idp.introspection_override = lambda: (500, b"{}")
    invoke(handler, event_of("TOKEN", idp.issue_opaque()))
    err = capsys.readouterr().err
    records = [json.loads(line) for line in err.splitlines()]
    assert {r.get("reason") for r in records} >= {"granted", "inactive_token", "introspection_unavailable"}
    assert good not in err and dead not in err and SECRET not in err


@pytest.mark.parametrize(
    "env, variable",
    [
        ({"INTROSPECTION_CLIENT_SECRET": ""}, "INTROSPECTION_CLIENT_SECRET"),
        ({"INTROSPECTION_AUTH_METHOD": "private_key_jwt"}, "INTROSPECTION_AUTH_METHOD"),
        ({"INTROSPECTION_URL": "http://example.com/introspect"}, "INTROSPECTION_URL"),
        ({"INTROSPECTION_CACHE_TTL": "-1"}, "INTROSPECTION_CACHE_TTL"),
    ],
)
def test_bad_introspection_settings_name_the_variable(opaque_handler, env, variable):
    from policy_engine.errors import ConfigurationError

    with pytest.raises(ConfigurationError) as info:
        opaque_handler(**env)
    assert info.value.variable == variable


def test_an_active_answer_past_its_exp_is_refused_by_us(idp, opaque_handler):
    # GIVEN a server that still says active for an expired token
    past = int(time.time()) - 600
    answer = {"active": True, "sub": "svc", "scope": "pets:read", "exp": past}
    idp.introspection_override = lambda: (200, json.dumps(answer).encode())
    # THEN the exp rule of JWTs applies
    assert invoke(opaque_handler(), event_of("TOKEN", idp.issue_opaque())).unauthorized
