"""Hostile introspection answers through the real handler and a real endpoint on 127.0.0.1.

An answer the authorizer cannot read one way only (a member given twice) is malformed:
the request fails closed (500) and nothing is cached. A member of the wrong type is a
token we cannot trust: 401, never a 500 from a crash on the unexpected type.
"""

from __future__ import annotations

import json
import time
from typing import Any

import pytest

from policy_engine.adapters.introspection import IntrospectionClient
from policy_engine.admin.local.invoke import invoke
from policy_engine.core.iam import Verdict
from policy_engine.errors import IntrospectionError
from tests.conftest import AUDIENCE, verdict
from tests.request_events import KINDS, event_of

CLIENT_ID, SECRET = "authorizer", "introspection-secret"


@pytest.fixture
def opaque_handler(idp, make_handler):
    idp.register_client(CLIENT_ID, SECRET)

    def make(**env: str):
        return make_handler(INTROSPECTION_URL=idp.introspection_endpoint, INTROSPECTION_CLIENT_ID=CLIENT_ID,
                            INTROSPECTION_CLIENT_SECRET=SECRET, **env)

    return make


def introspections(idp) -> int:
    return idp.requests.count("POST /introspect")


def good_answer(idp) -> dict[str, Any]:
    now = int(time.time())
    return {"active": True, "iss": idp.issuer, "sub": "svc", "client_id": "svc", "aud": AUDIENCE,
            "scope": "pets:read", "token_type": "Bearer", "iat": now, "nbf": now, "exp": now + 3600}


def answer_with(idp, body: bytes) -> None:
    idp.introspection_override = lambda: (200, body)


@pytest.mark.parametrize("kind", KINDS)
def test_a_duplicate_active_member_fails_closed_and_is_never_cached(idp, opaque_handler, kind):
    # GIVEN an answer that says inactive, then active: parsers disagree on which one wins
    handler = opaque_handler()
    rest = json.dumps({k: v for k, v in good_answer(idp).items() if k != "active"})[1:]
    answer_with(idp, b'{"active": false, ' + rest.encode()[:-1] + b', "active": true}')
    token = idp.issue_opaque()
    for _ in range(2):
        result = invoke(handler, event_of(kind, token, "GET", "/pets"))
        assert result.response is None and result.error == "AuthorizerFailure"
    assert introspections(idp) == 2  # a failure is not remembered: the endpoint is asked each time


@pytest.mark.parametrize(
    "body",
    [
        b'{"active": true, "active": false}',
        b'{"active": true, "sub": "svc", "sub": "admin", "scope": "pets:read"}',
        b'{"active": true, "sub": "svc", "scope": "pets:read", "scope": "pets:admin"}',
        b'{"active": true, "sub": "svc", "aud": {"a": 1, "a": 2}}',
    ],
    ids=["active-twice", "sub-twice", "scope-twice", "nested-twice"],
)
def test_any_duplicate_member_is_a_malformed_answer(idp, body):
    idp.register_client(CLIENT_ID, SECRET)
    client = IntrospectionClient(idp.introspection_endpoint, client_id=CLIENT_ID, client_secret=SECRET,
                                 auth_method="client_secret_basic", timeout=2.0, cache_ttl=60.0, negative_ttl=5.0)
    answer_with(idp, body)
    with pytest.raises(IntrospectionError, match="duplicate member"):
        client.introspect("some-opaque-token")
    with pytest.raises(IntrospectionError):
        client.introspect("some-opaque-token")  # not cached, neither as active nor as inactive
    assert introspections(idp) == 2


WRONG_TYPES = {
    "iss": [["x"], {"u": 1}, 7, True, None],
    "aud": [{"a": AUDIENCE}, 7, [AUDIENCE, 7], None, True],
    "scope": [["pets:read"], {"pets:read": True}, 7, None],
    "exp": ["4102444800", [4102444800], {"t": 1}, True, None],
    "nbf": ["0", [0], {"t": 0}, False, None],
    "iat": ["0", [0], {"t": 0}, True, None],
    "sub": [["svc"], {"id": "svc"}, 7, True],
    "client_id": [["svc"], {"id": "svc"}, 7, False],
    "token_type": [["Bearer"], {"t": "Bearer"}, 7, True, None],
    "username": [["u"], {"u": 1}, 7],
}
CASES = [(member, value) for member, values in WRONG_TYPES.items() for value in values]


@pytest.mark.parametrize("member, value", CASES, ids=[f"{m}-{json.dumps(v)}" for m, v in CASES])
def test_a_member_of_the_wrong_type_is_a_401_never_a_500(idp, opaque_handler, member, value):
    handler = opaque_handler()
    answer = good_answer(idp)
    answer_with(idp, json.dumps(answer).encode())
    ok = invoke(handler, event_of("REQUEST", idp.issue_opaque(), "GET", "/pets"))
    assert ok.response is not None, ok.error  # the answer is accepted as it stands
    answer[member] = value
    answer_with(idp, json.dumps(answer).encode())
    result = invoke(handler, event_of("REQUEST", idp.issue_opaque(), "GET", "/pets"))
    assert result.unauthorized, (member, value, result.error, result.response)


@pytest.mark.parametrize("kind", KINDS)
def test_an_iss_list_naming_the_issuer_is_refused_in_every_event_kind(idp, opaque_handler, kind):
    # A list is not an issuer, even when it names the configured one.
    answer = {**good_answer(idp), "iss": [idp.issuer]}
    answer_with(idp, json.dumps(answer).encode())
    assert invoke(opaque_handler(), event_of(kind, idp.issue_opaque(), "GET", "/pets")).unauthorized


def test_the_okta_preset_reads_the_scope_member_of_its_introspection_answers(idp, opaque_handler):
    # Okta's JWT access tokens carry scopes in scp; its introspection answers, as RFC 7662
    # §2.2 writes them, in scope.
    handler = opaque_handler(IDP_PRESET="okta")
    answer_with(idp, json.dumps({**good_answer(idp), "scope": "openid pets:read"}).encode())
    result = invoke(handler, event_of("TOKEN", "an-opaque-token", "GET", "/pets"))
    assert verdict(result, "GET", "/pets") is Verdict.ALLOW
    assert verdict(result, "DELETE", "/pets/1") is not Verdict.ALLOW


@pytest.mark.parametrize(("env", "extra"), [
    ({}, {"token_use": "id"}),  # an ID token, refused for any issuer, as a JWT is
    ({"IDP_PRESET": "keycloak"}, {"typ": "Refresh"}),  # a Keycloak refresh token
    ({"IDP_PRESET": "cognito"}, {}),  # no token_use: Cognito's preset wants "access"
], ids=["token_use-id", "keycloak-refresh", "cognito-no-token_use"])
def test_an_answer_gets_the_provider_checks_a_jwt_of_its_issuer_gets(idp, opaque_handler, env, extra):
    handler = opaque_handler(**env)
    answer = {k: v for k, v in good_answer(idp).items() if k != "token_type"}
    if env.get("IDP_PRESET") == "cognito":
        answer["token_use"] = "access"
        answer_with(idp, json.dumps(answer).encode())
        assert invoke(handler, event_of("TOKEN", "opaque-1", "GET", "/pets")).response is not None
        del answer["token_use"]
    answer_with(idp, json.dumps({**answer, **extra}).encode())
    assert invoke(handler, event_of("TOKEN", "opaque-2", "GET", "/pets")).unauthorized
