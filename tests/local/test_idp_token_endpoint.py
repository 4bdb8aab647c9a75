"""The local IdP's client-credentials endpoint over real HTTP (RFC 6749 §4.4, §5.2), and
its tokens through the real handler."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from pathlib import Path

import jwt
import pytest

from policy_engine.admin.local.idp import LocalIdentityProvider, load_clients
from policy_engine.admin.local.invoke import invoke, load_handler
from policy_engine.admin.local.walkthrough import http_request, token_request
from policy_engine.core.iam import Verdict
from policy_engine.errors import ConfigurationError
from tests.conftest import ROOT, token_event, verdict

FORM = {"Content-Type": "application/x-www-form-urlencoded"}


@pytest.fixture
def provider() -> Iterator[LocalIdentityProvider]:
    with LocalIdentityProvider(clients=load_clients().values()) as idp:
        yield idp


def _post(idp: LocalIdentityProvider, body: str, **headers: str):
    return http_request("POST", idp.token_endpoint, body=body.encode(), headers={**FORM, **headers})


def _basic(user: str, secret: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{secret}".encode()).decode()


def test_cognito_style_token_for_requested_scopes(provider):
    reply = token_request(provider.token_endpoint, "pets-writer", "writer-secret", "pets:write")
    assert reply.status == 200
    assert reply.headers["Cache-Control"] == "no-store"
    answer = reply.json()
    assert (answer["token_type"], answer["expires_in"], answer["scope"]) == ("Bearer", 3600, "pets:write")
    header = jwt.get_unverified_header(answer["access_token"])
    claims = jwt.decode(answer["access_token"], options={"verify_signature": False})
    assert header["kid"] == provider.keys[0].kid and "typ" not in header
    assert claims["token_use"] == "access" and claims["client_id"] == "pets-writer"
    assert claims["scope"] == "pets:write" and "aud" not in claims


def test_okta_style_token_has_aud_and_scp_list(provider):
    answer = token_request(provider.token_endpoint, "pets-admin", "admin-secret", "pets:read pets:admin").json()
    claims = jwt.decode(answer["access_token"], options={"verify_signature": False})
    assert claims["aud"] == "api://pets" and claims["cid"] == "pets-admin"
    assert claims["scp"] == ["pets:read", "pets:admin"] and "token_use" not in claims


def test_no_scope_requested_grants_every_allowed_scope(provider):
    answer = token_request(provider.token_endpoint, "pets-reader", "reader-secret", None).json()
    assert answer["scope"] == "pets:read store:read"


def test_client_secret_post_is_accepted_but_not_together_with_basic(provider):
    body = "grant_type=client_credentials&client_id=pets-reader&client_secret=reader-secret"
    assert _post(provider, body).status == 200
    both = _post(provider, body, Authorization=_basic("pets-reader", "reader-secret"))
    assert (both.status, both.json()["error"]) == (400, "invalid_request")


@pytest.mark.parametrize(
    ("authorization", "status", "error"),
    [
        (_basic("pets-reader", "wrong"), 401, "invalid_client"),
        (_basic("nobody", "reader-secret"), 401, "invalid_client"),
        ("Bearer abc", 401, "invalid_client"),
        ("Basic !!!", 401, "invalid_client"),
        (None, 401, "invalid_client"),
    ],
)
def test_client_authentication_failures(provider, authorization, status, error):
    headers = {"Authorization": authorization} if authorization else {}
    reply = _post(provider, "grant_type=client_credentials", **headers)
    assert (reply.status, reply.json()["error"]) == (status, error)
    assert reply.headers["WWW-Authenticate"].startswith("Basic")


@pytest.mark.parametrize(
    ("body", "error"),
    [
        ("grant_type=password&username=a&password=b", "unsupported_grant_type"),
        ("grant_type=authorization_code&code=x", "unsupported_grant_type"),
        ("scope=pets:read", "invalid_request"),
        ("grant_type=client_credentials&scope=pets:admin", "invalid_scope"),
        ("grant_type=client_credentials&scope=pets:read%20store:write", "invalid_scope"),
        ("grant_type=client_credentials&grant_type=client_credentials", "invalid_request"),
    ],
)
def test_request_errors_are_400_with_rfc6749_codes(provider, body, error):
    reply = _post(provider, body, Authorization=_basic("pets-reader", "reader-secret"))
    assert (reply.status, reply.json()["error"]) == (400, error)


def test_json_body_is_refused(provider):
    reply = http_request("POST", provider.token_endpoint, body=b'{"grant_type":"client_credentials"}',
                         headers={"Content-Type": "application/json",
                                  "Authorization": _basic("pets-reader", "reader-secret")})
    assert (reply.status, reply.json()["error"]) == (400, "invalid_request")


def test_discovery_names_the_token_endpoint(provider):
    doc = http_request("GET", f"{provider.issuer}/.well-known/openid-configuration").json()
    assert doc["token_endpoint"] == provider.token_endpoint
    assert doc["grant_types_supported"] == ["client_credentials"]


def test_rotation_endpoint_publishes_a_new_key_first(provider):
    old = provider.keys[0].kid
    reply = http_request("POST", f"{provider.issuer}/admin/rotate")
    assert reply.json()["kids"] == [reply.json()["kid"], old]
    jwks = http_request("GET", provider.jwks_uri).json()
    assert [key["kid"] for key in jwks["keys"]] == [reply.json()["kid"], old]
    retired = http_request("POST", f"{provider.issuer}/admin/rotate?retire=1").json()
    assert retired["kids"] == [retired["kid"]]


@pytest.mark.parametrize(("client", "secret"), [("pets-reader", "reader-secret"), ("pets-admin", "admin-secret")])
def test_both_token_shapes_pass_the_real_handler(provider, client, secret):
    clients = load_clients()
    handler = load_handler({
        "ISSUER": provider.issuer,
        "AUDIENCE": ",".join(c.audience_value for c in clients.values()),
        "PERMISSIONS_SOURCE": str(ROOT / "permissions"),
    })
    token = token_request(provider.token_endpoint, client, secret, "pets:read").json()["access_token"]
    result = invoke(handler, token_event(token, "GET", "/pets/1"))
    assert verdict(result, "GET", "/pets/1") is Verdict.ALLOW
    assert verdict(result, "POST", "/pets") is Verdict.IMPLICIT_DENY
    assert result.response["principalId"] == client


def test_cognito_token_without_client_id_in_audience_is_refused(provider):
    handler = load_handler({"ISSUER": provider.issuer, "AUDIENCE": "someone-else",
                            "PERMISSIONS_SOURCE": str(ROOT / "permissions")})
    token = token_request(provider.token_endpoint, "pets-reader", "reader-secret", "pets:read").json()["access_token"]
    assert invoke(handler, token_event(token, "GET", "/pets")).unauthorized


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("clients: []", "non-empty"),
        ("clients: [{client_id: a}]", "client_secret"),
        ("clients: [{client_id: a, client_secret: b, style: google}]", "style"),
        ("clients: [{client_id: a, client_secret: b, scopes: 'x y'}]", "scopes"),
        ("clients: [{client_id: a, client_secret: b}, {client_id: a, client_secret: c}]", "twice"),
    ],
)
def test_bad_clients_files_are_refused(tmp_path: Path, text, problem):
    path = tmp_path / "clients.yaml"
    path.write_text(text)
    with pytest.raises(ConfigurationError, match=problem):
        load_clients(path)


def test_shipped_clients_are_not_read_as_permissions():
    from policy_engine.adapters.yaml_files import yaml_files

    assert all(path.name != "clients.yaml" for path in yaml_files(ROOT / "permissions"))
    assert json.dumps(sorted(load_clients())) == (
        '["metrics-bot", "pets-admin", "pets-reader", "pets-writer", "sitter-jane"]')
