"""Tokens shaped as each identity provider documents them, through the real handler.

One local identity provider on 127.0.0.1 plays every provider: each issuer below is a
path on it (its keys at ``/jwks.json``; the Entra tenants through their own discovery
documents). The claim sets follow the providers' public documentation of their access
tokens (Cognito, Okta, Auth0, Microsoft Entra ID v1/v2, Keycloak, RFC 9068). Every
decision is judged by evaluating the returned policy as API Gateway does
(``core.iam``). Decisions use scope-kind sources (a group or role read as a scope, so
the mappings are plain scope mappings); the group and role grant keys the presets
read are checked on the verified token itself.
"""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

import pytest

from policy_engine.admin.local.idp import LocalIdentityProvider
from policy_engine.admin.local.invoke import invoke
from policy_engine.bootstrap import build_authorizer
from policy_engine.core.iam import Verdict
from policy_engine.errors import InvalidClaimsError
from policy_engine.settings import Settings
from tests.conftest import API, token_event, verdict

TENANT_A = "72f988bf-86f1-41af-91ab-2d7cd011db47"
TENANT_B = "0b1c2d3e-4f50-4a6b-8c7d-9e0f1a2b3c4d"
TENANT_C = "9188040d-6c67-4c5b-b112-36a304b66dad"  # a real tenant, not on the allow-list

API_ID = "6e74172b-be56-4843-9ff4-e66a39bb12e3"  # the Entra app registration of the API
COGNITO_CLIENT = "3abcexampleclientid123"
OKTA_AUDIENCE = "https://api.example.com"
AUTH0_AUDIENCE = "https://api.example.com"
KEYCLOAK_AUDIENCE = "petstore-api"

PERMISSIONS = f"""
apis:
  - arn: {API}
    stages: [dev]
    routes:
      GET /pets: [petstore/read, pets:read, read:pets, Pets.Read, pet-reader]
      GET /pets/*: [Pets.Read.All]
      POST /pets: [write:pets, pets-write]
      DELETE /pets/*: [pet-admins, Pets.Admin]
"""


def _issuers(idp: LocalIdentityProvider) -> dict[str, str]:
    base = idp.issuer
    return {
        "cognito": f"{base}/eu-west-1_Example1",
        "okta": f"{base}/oauth2/aus1example",
        "auth0": f"{base}/auth0/",  # Auth0 issuers end with a slash
        "entra": f"{base}/{{tenantid}}/v2.0",
        "entra1": f"{base}/sts/{{tenantid}}/",
        "keycloak": f"{base}/realms/pets",
        "oidc": f"{base}/as",
    }


def _providers(idp: LocalIdentityProvider, **overrides: dict[str, Any]) -> list[dict[str, Any]]:
    iss, jwks = _issuers(idp), idp.jwks_uri
    providers = {
        # Scope-kind sources for decisions: groups and roles read as scopes.
        "cognito": {"issuer": iss["cognito"], "preset": "cognito", "audiences": [COGNITO_CLIENT], "jwksUri": jwks,
                    "grantSources": ["scope:scope", "scope:cognito:groups"]},
        "okta": {"issuer": iss["okta"], "preset": "okta", "audiences": [OKTA_AUDIENCE], "jwksUri": jwks},
        "auth0": {"issuer": iss["auth0"], "preset": "auth0", "audiences": [AUTH0_AUDIENCE], "jwksUri": jwks},
        # v2: per-tenant discovery (served below); v1: one JWKS URI with the tenant in it.
        "entra": {"issuer": iss["entra"], "preset": "entra", "audiences": [API_ID], "tenants": [TENANT_A, TENANT_B],
                  "grantSources": ["scope:scp", "scope:roles"]},
        "entra1": {"issuer": iss["entra1"], "preset": "entra", "audiences": ["api://petstore"],
                   "tenants": [TENANT_A], "jwksUri": jwks.replace("/jwks.json", "/{tenantid}/keys"),
                   "grantSources": ["scope:scp", "scope:roles"]},
        "keycloak": {"issuer": iss["keycloak"], "preset": "keycloak", "audiences": [KEYCLOAK_AUDIENCE],
                     "jwksUri": jwks, "grantSources": ["scope:realm_access.roles",
                                                       "scope:resource_access.petstore-api.roles"]},
        "oidc": {"issuer": iss["oidc"], "preset": "oidc", "audiences": [OKTA_AUDIENCE], "jwksUri": jwks},
    }
    for name, changes in overrides.items():
        providers[name] = {**providers[name], **changes}
    return list(providers.values())


def _serve_entra_metadata(idp: LocalIdentityProvider) -> None:
    # Each tenant's own discovery document, as login.microsoftonline.com/{tid}/v2.0 serves it,
    # and the v1 tenant key set.
    for tenant in (TENANT_A, TENANT_B, TENANT_C):
        document = {"issuer": f"{idp.issuer}/{tenant}/v2.0", "jwks_uri": idp.jwks_uri}
        body = json.dumps(document).encode()
        idp.routes[("GET", f"/{tenant}/v2.0/.well-known/openid-configuration")] = (
            lambda handler, _body, body=body: (200, {}, body))
        idp.routes[("GET", f"/{tenant}/keys")] = lambda handler, _body: (200, {}, json.dumps(idp.jwks()).encode())


@pytest.fixture
def permissions_file(tmp_path):
    path = tmp_path / "providers.yaml"
    path.write_text(PERMISSIONS, encoding="utf-8")
    return str(path)


@pytest.fixture
def environ(idp, permissions_file):
    _serve_entra_metadata(idp)
    return {"ISSUER": None, "AUDIENCE": None, "PERMISSIONS_SOURCE": permissions_file,
            "IDENTITY_PROVIDERS": json.dumps(_providers(idp))}


@pytest.fixture
def handler(make_handler, environ):
    return make_handler(**environ)


def _now() -> int:
    return int(time.time())


def _sign(idp: LocalIdentityProvider, claims: dict[str, Any], typ: str | None = "JWT") -> str:
    now = _now()
    return idp.sign({"iat": now, "exp": now + 3600, **claims}, headers={"typ": typ})


# Claim sets in each provider's documented shape (values invented).

def cognito_user(idp: LocalIdentityProvider, **changes: Any) -> dict[str, Any]:
    return {"sub": "5f1c0e7a-2b3d-4c5e-8f90-123456789abc", "cognito:groups": ["pet-readers", "pet-admins"],
            "token_use": "access", "scope": "openid petstore/read", "auth_time": _now(),
            "iss": _issuers(idp)["cognito"], "jti": str(uuid.uuid4()), "origin_jti": str(uuid.uuid4()),
            "client_id": COGNITO_CLIENT, "username": "jane", **changes}


def cognito_m2m(idp: LocalIdentityProvider) -> dict[str, Any]:
    return {"sub": COGNITO_CLIENT, "token_use": "access", "scope": "petstore/read", "auth_time": _now(),
            "iss": _issuers(idp)["cognito"], "version": 2, "jti": str(uuid.uuid4()), "client_id": COGNITO_CLIENT}


def okta_user(idp: LocalIdentityProvider, **changes: Any) -> dict[str, Any]:
    return {"ver": 1, "jti": "AT.Qe1xampleTokenId", "iss": _issuers(idp)["okta"], "aud": OKTA_AUDIENCE,
            "sub": "jane@example.com", "cid": "0oa1exampleclient", "uid": "00u1exampleuser",
            "scp": ["openid", "pets:read"], "auth_time": _now(), "groups": ["pet-readers"], **changes}


def auth0_user(idp: LocalIdentityProvider, **changes: Any) -> dict[str, Any]:
    issuer = _issuers(idp)["auth0"]
    return {"iss": issuer, "sub": "auth0|6553da60a54af58e29493993", "aud": [AUTH0_AUDIENCE, f"{issuer}userinfo"],
            "azp": "K1AUPhZq8mRi0Q0pjhkfu1D7y6KjDQja", "scope": "openid profile",
            "permissions": ["read:pets", "write:pets"], "https://example.com/tenant": "acme", **changes}


def auth0_m2m(idp: LocalIdentityProvider) -> dict[str, Any]:
    return {"iss": _issuers(idp)["auth0"], "sub": "K1AUPhZq8mRi0Q0pjhkfu1D7y6KjDQja@clients",
            "aud": AUTH0_AUDIENCE, "azp": "K1AUPhZq8mRi0Q0pjhkfu1D7y6KjDQja", "gty": "client-credentials",
            "scope": "read:pets"}


def entra_app_only(idp: LocalIdentityProvider, tenant: str = TENANT_A, **changes: Any) -> dict[str, Any]:
    return {"aud": API_ID, "iss": f"{idp.issuer}/{tenant}/v2.0", "nbf": _now(),
            "azp": "1f2e3d4c-0000-1111-2222-333344445555", "azpacr": "1", "roles": ["Pets.Read.All"],
            "idtyp": "app", "oid": "2b3c4d5e-0000-1111-2222-333344445555",
            "sub": "2b3c4d5e-0000-1111-2222-333344445555", "tid": tenant, "ver": "2.0", **changes}


def entra_delegated(idp: LocalIdentityProvider, tenant: str = TENANT_A, **changes: Any) -> dict[str, Any]:
    return {"aud": API_ID, "iss": f"{idp.issuer}/{tenant}/v2.0", "nbf": _now(),
            "azp": "1f2e3d4c-0000-1111-2222-333344445555", "azpacr": "0", "scp": "Pets.Read Pets.Write",
            "roles": ["Pets.Admin"], "oid": "690222be-ff1a-4d56-abd1-7e4f7d38e474",
            "sub": "HKZpfaHyWadeOouYlitjrI-KffTm222X5rrV3xDqfKQ", "tid": tenant, "ver": "2.0", **changes}


def entra_v1_app_only(idp: LocalIdentityProvider) -> dict[str, Any]:
    return {"aud": "api://petstore", "iss": f"{idp.issuer}/sts/{TENANT_A}/", "nbf": _now(),
            "appid": "1f2e3d4c-0000-1111-2222-333344445555", "appidacr": "1", "roles": ["Pets.Read.All"],
            "idtyp": "app", "oid": "2b3c4d5e-0000-1111-2222-333344445555",
            "sub": "2b3c4d5e-0000-1111-2222-333344445555", "tid": TENANT_A, "ver": "1.0"}


def keycloak_user(idp: LocalIdentityProvider, **changes: Any) -> dict[str, Any]:
    return {"jti": "d0354f08-d737-46a3-9150-c0bf6d732f7c", "iss": _issuers(idp)["keycloak"],
            "aud": [KEYCLOAK_AUDIENCE, "account"], "sub": "9623a24e-9bc6-4818-b6ac-1459e4add633", "typ": "Bearer",
            "azp": "petstore-web", "scope": "openid profile email",
            "realm_access": {"roles": ["offline_access", "pet-reader"]},
            "resource_access": {"petstore-api": {"roles": ["pets-write"]},
                                "account": {"roles": ["manage-account", "view-profile"]}},
            "preferred_username": "jane", **changes}


def rfc9068(idp: LocalIdentityProvider) -> dict[str, Any]:
    return {"iss": _issuers(idp)["oidc"], "sub": "5ba552d67", "aud": OKTA_AUDIENCE, "client_id": "s6BhdRkqt3",
            "jti": "dbe39bf3a3ba4238a513f51d6e1691c4", "scope": "pets:read", "groups": ["pet-readers"]}


def _decide(handler, token: str, verb: str = "GET", path: str = "/pets"):
    return invoke(handler, token_event(token, verb, path))


# Decisions through the handler


def test_cognito_user_gets_the_union_of_its_groups_and_scopes(idp, handler):
    result = _decide(handler, _sign(idp, cognito_user(idp), typ=None))
    assert verdict(result, "GET", "/pets") is Verdict.ALLOW  # scope petstore/read
    assert verdict(result, "DELETE", "/pets/12") is Verdict.ALLOW  # group pet-admins
    assert verdict(result, "POST", "/pets") is Verdict.IMPLICIT_DENY
    assert result.response["principalId"] == "5f1c0e7a-2b3d-4c5e-8f90-123456789abc"


def test_cognito_m2m_token_without_aud_is_matched_by_client_id(idp, handler):
    result = _decide(handler, _sign(idp, cognito_m2m(idp), typ=None))
    assert verdict(result, "GET", "/pets") is Verdict.ALLOW
    assert verdict(result, "DELETE", "/pets/12") is Verdict.IMPLICIT_DENY


def test_okta_scp_list(idp, handler):
    result = _decide(handler, _sign(idp, okta_user(idp)))
    assert verdict(result, "GET", "/pets") is Verdict.ALLOW
    assert verdict(result, "POST", "/pets") is Verdict.IMPLICIT_DENY


def test_auth0_rbac_permissions_are_scopes_beside_scope(idp, handler):
    result = _decide(handler, _sign(idp, auth0_user(idp)), "POST", "/pets")
    assert verdict(result, "POST", "/pets") is Verdict.ALLOW  # write:pets, a permission
    assert verdict(result, "GET", "/pets") is Verdict.ALLOW  # read:pets
    m2m = _decide(handler, _sign(idp, auth0_m2m(idp)))
    assert verdict(m2m, "GET", "/pets") is Verdict.ALLOW and verdict(m2m, "POST", "/pets") is Verdict.IMPLICIT_DENY


def test_entra_v2_app_only_roles(idp, handler):
    result = _decide(handler, _sign(idp, entra_app_only(idp)), "GET", "/pets/12")
    assert verdict(result, "GET", "/pets/12") is Verdict.ALLOW
    assert verdict(result, "GET", "/pets") is Verdict.IMPLICIT_DENY
    # The tenant's keys came through the tenant's own discovery document.
    assert f"GET /{TENANT_A}/v2.0/.well-known/openid-configuration" in idp.requests


def test_entra_v1_app_only_roles_with_a_tenant_jwks_uri(idp, handler):
    result = _decide(handler, _sign(idp, entra_v1_app_only(idp)), "GET", "/pets/12")
    assert verdict(result, "GET", "/pets/12") is Verdict.ALLOW
    assert f"GET /{TENANT_A}/keys" in idp.requests


def test_entra_delegated_scp_and_roles_are_both_read(idp, handler):
    result = _decide(handler, _sign(idp, entra_delegated(idp)))
    assert verdict(result, "GET", "/pets") is Verdict.ALLOW  # scp Pets.Read
    assert verdict(result, "DELETE", "/pets/3") is Verdict.ALLOW  # role Pets.Admin


def test_entra_other_allowed_tenant_works(idp, handler):
    result = _decide(handler, _sign(idp, entra_app_only(idp, TENANT_B)), "GET", "/pets/1")
    assert verdict(result, "GET", "/pets/1") is Verdict.ALLOW
    assert f"GET /{TENANT_B}/v2.0/.well-known/openid-configuration" in idp.requests


def test_entra_tenant_not_on_the_allow_list_is_401_without_asking_for_its_keys(idp, handler):
    result = _decide(handler, _sign(idp, entra_app_only(idp, TENANT_C)), "GET", "/pets/1")
    assert result.unauthorized
    assert not any(TENANT_C in request for request in idp.requests)


@pytest.mark.parametrize("tid", [TENANT_B, None, TENANT_A.upper(), ["x"]], ids=["other", "missing", "upper", "list"])
def test_entra_tid_must_be_the_tenant_of_iss(idp, handler, tid):
    claims = entra_app_only(idp, TENANT_A, tid=tid)
    result = _decide(handler, _sign(idp, {k: v for k, v in claims.items() if v is not None}), "GET", "/pets/1")
    assert result.unauthorized


def test_keycloak_realm_and_client_roles(idp, handler):
    result = _decide(handler, _sign(idp, keycloak_user(idp)))
    assert verdict(result, "GET", "/pets") is Verdict.ALLOW  # realm role pet-reader
    assert verdict(result, "POST", "/pets") is Verdict.ALLOW  # client role pets-write of petstore-api
    assert verdict(result, "DELETE", "/pets/1") is Verdict.IMPLICIT_DENY


def test_rfc9068_token_with_at_jwt_type(idp, handler):
    result = _decide(handler, _sign(idp, rfc9068(idp), typ="at+jwt"))
    assert verdict(result, "GET", "/pets") is Verdict.ALLOW


ID_TOKENS = {
    # token_use "id" (and the app client as aud)
    "cognito id token": lambda idp: (cognito_user(idp, token_use="id", aud=COGNITO_CLIENT, client_id=None), None),
    # a Cognito-pool token without token_use is no access token of the preset
    "cognito no token_use": lambda idp: (cognito_user(idp, token_use=None, aud=COGNITO_CLIENT), None),
    # ID tokens carry the client id as aud, not the API's audience
    "okta id token": lambda idp: (okta_user(idp, aud="0oa1exampleclient", cid=None, scp=None), "JWT"),
    "auth0 id token": lambda idp: (auth0_user(idp, aud="K1AUPhZq8mRi0Q0pjhkfu1D7y6KjDQja"), "JWT"),
    "entra id token": lambda idp: (entra_app_only(idp, aud="1f2e3d4c-0000-1111-2222-333344445555"), "JWT"),
    # An app registration that is both the API and the client signing users in: its ID
    # tokens name the API as aud (and carry the user's app roles), but never azp or appid.
    "entra id token of the api's own registration": lambda idp: (entra_delegated(
        idp, azp=None, azpacr=None, scp=None, nonce="n-0S6_WzA2Mj", name="Pat", preferred_username="pat@example.com"),
        "JWT"),
    "entra v1 id token of the api's own registration": lambda idp: (
        {**entra_v1_app_only(idp), "appid": None, "appidacr": None, "idtyp": None, "nonce": "n-0S6_WzA2Mj"}, "JWT"),
    "entra empty azp": lambda idp: (entra_app_only(idp, azp=""), "JWT"),
    # Keycloak: payload typ ID
    "keycloak id token": lambda idp: (keycloak_user(idp, typ="ID"), "JWT"),
    "keycloak refresh token": lambda idp: (keycloak_user(idp, typ="Refresh"), "JWT"),
    # RFC 9068: the header typ must be at+jwt
    "oidc plain JWT": lambda idp: (rfc9068(idp), "JWT"),
    "oidc no typ": lambda idp: (rfc9068(idp), None),
}


@pytest.mark.parametrize("case", list(ID_TOKENS))
def test_id_tokens_and_other_non_access_tokens_are_refused_per_preset(idp, handler, case):
    claims, typ = ID_TOKENS[case](idp)
    result = _decide(handler, _sign(idp, {k: v for k, v in claims.items() if v is not None}, typ=typ))
    assert result.unauthorized, case


def test_an_issuer_of_one_provider_gets_only_its_own_audiences(idp, handler):
    # An Okta token whose aud is the Cognito client: audiences are per issuer.
    result = _decide(handler, _sign(idp, okta_user(idp, aud=COGNITO_CLIENT)))
    assert result.unauthorized


def test_explicit_token_types_override_the_presets(idp, make_handler, environ):
    providers = _providers(idp, oidc={"tokenTypes": ["JWT"]})
    handler = make_handler(**{**environ, "IDENTITY_PROVIDERS": json.dumps(providers)})
    assert verdict(_decide(handler, _sign(idp, rfc9068(idp), typ="JWT")), "GET", "/pets") is Verdict.ALLOW
    assert _decide(handler, _sign(idp, rfc9068(idp), typ="at+jwt")).unauthorized


def test_issuer_and_identity_providers_combine(idp, make_handler, environ):
    handler = make_handler(**{**environ, "ISSUER": idp.issuer, "AUDIENCE": "policy-engine-demo"})
    assert verdict(_decide(handler, idp.mint(scope="pets:read")), "GET", "/pets") is Verdict.ALLOW
    assert verdict(_decide(handler, _sign(idp, okta_user(idp))), "GET", "/pets") is Verdict.ALLOW


# Grant keys of the presets' own sources (groups and roles), on the verified token


@pytest.fixture
def preset_authorizer(idp, environ):
    _serve_entra_metadata(idp)
    providers = [{k: v for k, v in p.items() if k != "grantSources"} for p in _providers(idp)]
    settings = Settings.from_environ({"PERMISSIONS_SOURCE": environ["PERMISSIONS_SOURCE"],
                                      "IDENTITY_PROVIDERS": json.dumps(providers)})
    return build_authorizer(settings, prefetch=False)


@pytest.mark.parametrize(
    "shape,typ,grants",
    [
        (cognito_user, None, {"openid", "petstore/read", "group pet-readers", "group pet-admins"}),
        (cognito_m2m, None, {"petstore/read"}),
        (okta_user, "JWT", {"openid", "pets:read", "group pet-readers"}),
        (auth0_user, "JWT", {"openid", "profile", "read:pets", "write:pets"}),
        (entra_app_only, "JWT", {"role Pets.Read.All"}),
        (entra_delegated, "JWT", {"Pets.Read", "Pets.Write", "role Pets.Admin"}),
        (entra_v1_app_only, "JWT", {"role Pets.Read.All"}),
        (keycloak_user, "JWT", {"openid", "profile", "email", "role offline_access", "role pet-reader"}),
        (rfc9068, "at+jwt", {"pets:read"}),
    ],
    ids=lambda v: getattr(v, "__name__", None) or "",
)
def test_presets_read_each_providers_grants(idp, preset_authorizer, shape, typ, grants):
    token = preset_authorizer.verify("Bearer " + _sign(idp, shape(idp), typ=typ))
    assert token.grants == frozenset(grants)


def test_keycloak_client_roles_need_their_own_source(idp, make_handler, environ):
    providers = _providers(idp, keycloak={"grantSources": ["scope:scope", "role:realm_access.roles",
                                                           "role:resource_access.petstore-api.roles"]})
    settings = Settings.from_environ({"PERMISSIONS_SOURCE": environ["PERMISSIONS_SOURCE"],
                                      "IDENTITY_PROVIDERS": json.dumps(providers)})
    token = build_authorizer(settings, prefetch=False).verify("Bearer " + _sign(idp, keycloak_user(idp)))
    assert "role pets-write" in token.grants and "role manage-account" not in token.grants


def test_the_tenant_check_names_tid_and_never_asks_for_keys_of_unknown_tenants(idp, preset_authorizer):
    with pytest.raises(InvalidClaimsError, match="tid"):
        preset_authorizer.verify("Bearer " + _sign(idp, entra_app_only(idp, TENANT_A, tid=TENANT_B)))


# Say why


def _decision_line(err: str) -> dict:
    # The last decision line (a health line may follow it).
    return [json.loads(line) for line in err.splitlines() if json.loads(line)["event"] == "decision"][-1]


def test_a_token_with_unread_roles_is_denied_and_the_log_line_names_the_claim(idp, make_handler, capsys):
    # Default configuration (scopes only) and an Entra app-only token: roles, no scp.
    handler = make_handler()
    capsys.readouterr()
    result = invoke(handler, token_event(idp.mint(scope=None, roles=["Pets.Read.All"]), "GET", "/pets"))
    assert verdict(result, "GET", "/pets") is Verdict.EXPLICIT_DENY
    record = _decision_line(capsys.readouterr().err)
    assert record["decision"] == "Deny" and record["reason"] == "no_grant"
    assert record["unconfigured_grant_claims"] == ["roles"]
    assert "Pets.Read.All" not in json.dumps(record)


def test_a_token_granted_something_carries_no_hint_in_the_log(idp, make_handler, capsys):
    handler = make_handler()
    capsys.readouterr()
    invoke(handler, token_event(idp.mint(scope="pets:read", groups=["pet-readers"]), "GET", "/pets"))
    record = _decision_line(capsys.readouterr().err)
    assert record["decision"] == "Allow" and "unconfigured_grant_claims" not in record


def test_a_configured_source_is_no_hint(idp, make_handler, capsys):
    handler = make_handler(GRANT_SOURCES="scope:scope,role:permissions")
    capsys.readouterr()
    token = idp.mint(scope=None, permissions=[], roles=["Pets.Read.All"], groups=["g"])
    invoke(handler, token_event(token, "GET", "/pets"))
    record = _decision_line(capsys.readouterr().err)
    assert record["decision"] == "Deny" and record["unconfigured_grant_claims"] == ["roles", "groups"]


def test_a_token_holding_grants_gets_no_hint(idp, make_handler, capsys):
    # Hints explain a token none of whose configured claims granted anything.
    handler = make_handler()
    capsys.readouterr()
    invoke(handler, token_event(idp.mint(scope="email", roles=["Pets.Read.All"]), "GET", "/pets"))
    record = _decision_line(capsys.readouterr().err)
    assert record["decision"] == "Deny" and "unconfigured_grant_claims" not in record


# Introspection answers


def _introspecting(idp, make_handler, **env: str):
    idp.register_client("authorizer", "introspection-secret")
    return make_handler(INTROSPECTION_URL=idp.introspection_endpoint, INTROSPECTION_CLIENT_ID="authorizer",
                        INTROSPECTION_CLIENT_SECRET="introspection-secret", **env)


def test_introspection_answers_use_the_default_grant_sources(idp, make_handler):
    handler = _introspecting(idp, make_handler, GRANT_SOURCES="scope:scope,scope:roles")
    result = invoke(handler, token_event(idp.issue_opaque(scope=None, roles=["pets:read"])))
    assert verdict(result, "GET", "/pets") is Verdict.ALLOW
    assert verdict(result, "POST", "/pets") is Verdict.IMPLICIT_DENY


def test_introspection_answers_of_a_configured_issuer_use_its_rules(idp, make_handler):
    provider = {"issuer": idp.issuer, "grantSources": ["scope:permissions"], "jwksUri": idp.jwks_uri}
    handler = _introspecting(idp, make_handler, ISSUER=None, IDENTITY_PROVIDERS=json.dumps([provider]))
    result = invoke(handler, token_event(idp.issue_opaque(scope="pets:read", permissions=["pets:write"]),
                                         "POST", "/pets"))
    assert verdict(result, "POST", "/pets") is Verdict.ALLOW
    assert verdict(result, "GET", "/pets") is Verdict.ALLOW  # pets:write also reads; scope is not read
    only_scope = invoke(handler, token_event(idp.issue_opaque(scope="pets:read")))
    assert verdict(only_scope, "GET", "/pets") is Verdict.EXPLICIT_DENY


def test_idp_preset_applies_to_the_issuer_issuers(idp, make_handler):
    # IDP_PRESET=cognito on ISSUER: an access token without aud passes by client_id; a
    # token without token_use (not a Cognito access token) is refused even with a good aud.
    handler = make_handler(IDP_PRESET="cognito", AUDIENCE="demo-client")
    m2m = idp.mint(scope="pets:read", audience=None, token_use="access", headers={"typ": None})
    assert verdict(invoke(handler, token_event(m2m)), "GET", "/pets") is Verdict.ALLOW
    assert invoke(handler, token_event(idp.mint(scope="pets:read", audience="demo-client"))).unauthorized
