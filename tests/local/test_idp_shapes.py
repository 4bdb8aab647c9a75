"""The local IdP mints each provider's documented token shape (claim names and JSON types),
every token verifiable through the discovery document and JWKS of its issuer, and the
clients file refuses what it does not know, with file:line."""

from __future__ import annotations

import json
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jwt
import pytest

from policy_engine.admin.cli import main
from policy_engine.admin.local.clients import DEFAULT_TENANT, SHAPES, OAuthClient, load_clients
from policy_engine.admin.local.idp import LocalIdentityProvider
from policy_engine.admin.local.invoke import invoke, load_handler
from policy_engine.admin.local.walkthrough import http_request, token_request
from policy_engine.core.iam import Verdict
from policy_engine.errors import ConfigurationError
from tests.conftest import ROOT, token_event, verdict

TENANT = "0f1e2d3c-4b5a-4697-8877-665544332211"

# One client per shape, written as a team would write it in clients.yaml.
CLIENTS = textwrap.dedent(f"""\
    clients:
      - client_id: m2m
        client_secret: s
        scopes: [pets:read]
      - client_id: cog-user
        client_secret: s
        shape: cognito
        scopes: [pets:read]
        groups: [pet-readers, pet-admins]
        claims: {{"custom:tenant_id": acme}}
      - client_id: okta-app
        client_secret: s
        shape: okta
        audience: api://default
        scopes: [pets:read, openid]
        groups: [Pet Readers]
      - client_id: a0-m2m
        client_secret: s
        shape: auth0
        audience: https://api.example.com
        scopes: [pets:read]
      - client_id: a0-user
        client_secret: s
        shape: auth0-rbac
        audience: https://api.example.com
        scopes: [openid, pets:read]
        permissions: [read:pets, write:pets]
        claims: {{"https://example.com/tenant": acme}}
      - client_id: entra-daemon
        client_secret: s
        shape: entra-v2-app
        audience: 6e74172b-be56-4843-9ff4-e66a39bb12e3
        tenant: {TENANT}
        roles: [Pets.Read.All]
      - client_id: entra-web
        client_secret: s
        shape: entra-v2-delegated
        audience: 6e74172b-be56-4843-9ff4-e66a39bb12e3
        scopes: [pets:read, Pets.Write]
        roles: [Pets.Admin]
        groups: [7d1a2b3c-0000-1111-2222-333344445555]
      - client_id: entra-v1-daemon
        client_secret: s
        shape: entra-v1
        audience: api://petstore
        roles: [Pets.Read.All]
      - client_id: entra-v1-web
        client_secret: s
        shape: entra-v1
        audience: api://petstore
        scopes: [pets:read]
      - client_id: kc-app
        client_secret: s
        shape: keycloak
        audience: petstore-api
        scopes: [pets:read, profile]
        roles: [pet-reader]
        clientRoles: {{petstore-api: [pets-write], account: [view-profile]}}
      - client_id: kc-bare
        client_secret: s
        shape: keycloak
        scopes: [pets:read]
      - client_id: at-app
        client_secret: s
        shape: rfc9068
        audience: https://api.example.com
        scopes: [pets:read, pets:write]
        groups: [pet-readers]
        roles: [admin]
      - client_id: plain-app
        client_secret: s
        shape: plain
        audience: policy-engine-demo
        scopes: [pets:read]
        groups: [pet-readers]
        claims: {{tenant_id: acme, nested: {{a: [1, 2]}}, jti: null}}
    """)


@pytest.fixture(scope="module")
def clients(tmp_path_factory) -> dict[str, OAuthClient]:
    path = tmp_path_factory.mktemp("clients") / "clients.yaml"
    path.write_text(CLIENTS)
    return load_clients(path)


@pytest.fixture(scope="module")
def idp(clients) -> Iterator[LocalIdentityProvider]:
    with LocalIdentityProvider(clients=clients.values()) as provider:
        yield provider


def _verified(idp: LocalIdentityProvider, token: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """Verify ``token`` as a resource server would: its iss's discovery document, then the JWKS."""
    unverified = jwt.decode(token, options={"verify_signature": False})
    issuer = unverified["iss"]
    document = http_request("GET", issuer.rstrip("/") + "/.well-known/openid-configuration").json()
    assert document["issuer"] == issuer
    header = jwt.get_unverified_header(token)
    keys = http_request("GET", document["jwks_uri"]).json()["keys"]
    key = jwt.PyJWK(next(k for k in keys if k["kid"] == header["kid"]))
    claims = jwt.decode(token, key.key, algorithms=["RS256"], options={"verify_aud": False})
    return header, claims


def _mint(idp: LocalIdentityProvider, clients: dict[str, OAuthClient], name: str, *, token: str = "access"):
    client = clients[name]
    return _verified(idp, idp.issue(client, client.scopes, token=token))


def _types(claims: dict[str, Any], **expected: type) -> None:
    for name, kind in expected.items():
        assert isinstance(claims.get(name.replace("__", ":")), kind), (name, claims)


def test_every_shape_is_covered():
    assert {json.dumps(s) for s in SHAPES} == {json.dumps(s) for s in (
        "cognito-m2m", "cognito", "okta", "auth0", "auth0-rbac", "entra-v2-app", "entra-v2-delegated",
        "entra-v1", "keycloak", "rfc9068", "plain")}


def test_cognito_m2m_is_the_default_and_todays_shape(idp, clients):
    assert clients["m2m"].shape == "cognito-m2m"
    header, claims = _mint(idp, clients, "m2m")
    assert "typ" not in header
    assert claims["token_use"] == "access" and claims["scope"] == "pets:read"
    assert claims["client_id"] == claims["sub"] == "m2m" and claims["version"] == 2
    assert "aud" not in claims and "cognito:groups" not in claims and claims["iss"] == idp.issuer


def test_cognito_user_token_has_groups_list_and_no_aud(idp, clients):
    header, claims = _mint(idp, clients, "cog-user")
    assert "typ" not in header
    assert claims["cognito:groups"] == ["pet-readers", "pet-admins"]
    assert claims["scope"] == "pets:read" and claims["token_use"] == "access" and claims["client_id"] == "cog-user"
    assert "aud" not in claims and claims["sub"] != "cog-user" and claims["custom:tenant_id"] == "acme"
    _types(claims, origin_jti=str, username=str, auth_time=int)


def test_okta_token_has_scp_list_cid_and_groups(idp, clients):
    header, claims = _mint(idp, clients, "okta-app")
    assert "typ" not in header
    assert claims["scp"] == ["pets:read", "openid"] and claims["cid"] == "okta-app"
    assert claims["aud"] == "api://default" and claims["groups"] == ["Pet Readers"] and claims["ver"] == 1
    assert claims["jti"].startswith("AT.") and "scope" not in claims


def test_auth0_m2m_token(idp, clients):
    _, claims = _mint(idp, clients, "a0-m2m")
    assert claims["iss"] == f"{idp.issuer}/auth0/"  # Auth0 issuers end with a slash
    assert claims["aud"] == "https://api.example.com" and claims["azp"] == "a0-m2m"
    assert claims["scope"] == "pets:read" and claims["gty"] == "client-credentials"
    assert claims["sub"] == "a0-m2m@clients" and "permissions" not in claims


def test_auth0_rbac_token_has_permissions_list_and_an_aud_list_with_openid(idp, clients):
    _, claims = _mint(idp, clients, "a0-user")
    assert claims["permissions"] == ["read:pets", "write:pets"]
    assert claims["scope"] == "openid pets:read" and claims["azp"] == "a0-user"
    assert claims["aud"] == ["https://api.example.com", f"{idp.issuer}/auth0/userinfo"]
    assert claims["sub"].startswith("auth0|") and "gty" not in claims
    assert claims["https://example.com/tenant"] == "acme"


def test_entra_v2_app_only_token_has_roles_and_no_scp(idp, clients):
    header, claims = _mint(idp, clients, "entra-daemon")
    assert header["typ"] == "JWT"
    assert claims["iss"] == f"{idp.issuer}/{TENANT}/v2.0" and claims["tid"] == TENANT
    assert claims["roles"] == ["Pets.Read.All"] and "scp" not in claims
    assert claims["ver"] == "2.0" and claims["azp"] == "entra-daemon" and claims["idtyp"] == "app"
    assert claims["aud"] == "6e74172b-be56-4843-9ff4-e66a39bb12e3" and claims["sub"] == claims["oid"]
    _types(claims, nbf=int, azpacr=str)


def test_entra_v2_delegated_token_has_scp_string_and_roles_list(idp, clients):
    _, claims = _mint(idp, clients, "entra-web")
    assert claims["iss"] == f"{idp.issuer}/{DEFAULT_TENANT}/v2.0" and claims["tid"] == DEFAULT_TENANT
    assert claims["scp"] == "pets:read Pets.Write" and claims["roles"] == ["Pets.Admin"]
    assert claims["groups"] == ["7d1a2b3c-0000-1111-2222-333344445555"]
    assert claims["ver"] == "2.0" and claims["azpacr"] == "0" and "idtyp" not in claims


def test_entra_v1_tokens(idp, clients):
    _, daemon = _mint(idp, clients, "entra-v1-daemon")
    assert daemon["iss"] == f"{idp.issuer}/{DEFAULT_TENANT}/" and daemon["ver"] == "1.0"
    assert daemon["appid"] == "entra-v1-daemon" and daemon["roles"] == ["Pets.Read.All"] and "scp" not in daemon
    assert daemon["aud"] == "api://petstore" and "azp" not in daemon and daemon["idtyp"] == "app"
    _, web = _mint(idp, clients, "entra-v1-web")
    assert web["scp"] == "pets:read" and "roles" not in web and web["appidacr"] == "0"


def test_keycloak_token_has_nested_roles_and_payload_typ(idp, clients):
    header, claims = _mint(idp, clients, "kc-app")
    assert header["typ"] == "JWT" and claims["typ"] == "Bearer" and claims["azp"] == "kc-app"
    assert claims["scope"] == "pets:read profile"
    assert claims["realm_access"] == {"roles": ["pet-reader"]}
    assert claims["resource_access"] == {"petstore-api": {"roles": ["pets-write"]},
                                         "account": {"roles": ["view-profile"]}}
    # Audience Resolve: the configured audience plus every client the caller holds roles of.
    assert claims["aud"] == ["petstore-api", "account"]
    _, bare = _mint(idp, clients, "kc-bare")
    assert "aud" not in bare and "realm_access" not in bare and "resource_access" not in bare


def test_rfc9068_token_is_typed_at_jwt(idp, clients):
    header, claims = _mint(idp, clients, "at-app")
    assert header["typ"] == "at+jwt"
    for name in ("iss", "exp", "aud", "sub", "client_id", "iat", "jti"):  # RFC 9068 §2.2
        assert name in claims
    assert claims["scope"] == "pets:read pets:write" and claims["groups"] == ["pet-readers"]
    assert claims["roles"] == ["admin"]


def test_plain_token_is_what_mint_signs(idp, clients):
    header, claims = _mint(idp, clients, "plain-app")
    _, minted = _verified(idp, idp.mint(scope="pets:read", audience="policy-engine-demo", subject="plain-app"))
    assert header["typ"] == "at+jwt"
    assert set(minted) - {"jti"} <= set(claims)
    assert claims["groups"] == ["pet-readers"] and claims["tenant_id"] == "acme"
    assert claims["nested"] == {"a": [1, 2]} and "jti" not in claims  # null removes a claim


@pytest.mark.parametrize(("name", "signal"), [
    ("cog-user", lambda h, c: c["token_use"] == "id" and c["aud"] == "cog-user" and "scope" not in c
     and "client_id" not in c and c["cognito:groups"] == ["pet-readers", "pet-admins"]),
    ("okta-app", lambda h, c: c["aud"] == "okta-app" and "cid" not in c and "scp" not in c
     and c["jti"].startswith("ID.")),
    ("a0-user", lambda h, c: c["aud"] == "a0-user" and not {"scope", "azp", "permissions"} & set(c)),
    ("entra-web", lambda h, c: c["aud"] == "entra-web" and "scp" not in c and c["ver"] == "2.0"),
    ("kc-app", lambda h, c: c["typ"] == "ID" and c["aud"] == "kc-app" and "realm_access" not in c),
    ("at-app", lambda h, c: h["typ"] != "at+jwt" and "client_id" not in c and "scope" not in c),
])
def test_id_tokens_carry_their_providers_distinguishing_signal(idp, clients, name, signal):
    header, claims = _mint(idp, clients, name, token="id")
    assert signal(header, claims), claims


@pytest.mark.parametrize("name", ["m2m", "entra-daemon", "plain-app"])
def test_shapes_without_an_id_token_refuse_to_mint_one(idp, clients, name):
    with pytest.raises(ConfigurationError, match="has no ID token"):
        idp.issue(clients[name], [], token="id")


def test_entra_multi_tenant_discovery_answers_with_the_template(idp):
    for path, issuer in (("/common/v2.0", f"{idp.issuer}/{{tenantid}}/v2.0"),
                         ("/organizations", f"{idp.issuer}/{{tenantid}}/")):
        document = http_request("GET", f"{idp.issuer}{path}/.well-known/openid-configuration").json()
        assert document["issuer"] == issuer and document["jwks_uri"] == idp.jwks_uri
    assert http_request("GET", f"{idp.issuer}/nope/.well-known/openid-configuration").status == 404


def _handler(idp: LocalIdentityProvider, clients: dict[str, OAuthClient], *names: str):
    return load_handler({
        "ISSUER": ",".join(dict.fromkeys(clients[n].issuer(idp.issuer) for n in names)),
        "AUDIENCE": ",".join(dict.fromkeys(clients[n].audience_value for n in names)),
        "PERMISSIONS_SOURCE": str(ROOT / "permissions"),
    })


@pytest.mark.parametrize("name", ["m2m", "cog-user", "okta-app", "a0-m2m", "a0-user", "entra-web", "entra-v1-web",
                                  "kc-app", "at-app", "plain-app"])
def test_every_scope_bearing_shape_passes_the_real_handler_through_its_issuers_discovery(idp, clients, name):
    # The default configuration reads scopes from scope/scp, so these decide as today.
    handler = _handler(idp, clients, name)
    reply = token_request(idp.token_endpoint, name, "s", "pets:read").json()
    result = invoke(handler, token_event(reply["access_token"], "GET", "/pets/1"))
    assert verdict(result, "GET", "/pets/1") is Verdict.ALLOW
    assert verdict(result, "POST", "/pets") is Verdict.IMPLICIT_DENY


def test_a_cognito_id_token_is_refused_by_the_handler(idp, clients):
    handler = _handler(idp, clients, "cog-user")
    access = idp.issue(clients["cog-user"], ["pets:read"])
    assert verdict(invoke(handler, token_event(access, "GET", "/pets/1")), "GET", "/pets/1") is Verdict.ALLOW
    identity = idp.issue(clients["cog-user"], ["pets:read"], token="id")
    assert invoke(handler, token_event(identity, "GET", "/pets/1")).unauthorized


def test_token_id_in_the_file_makes_the_token_endpoint_hand_out_id_tokens(tmp_path):
    path = tmp_path / "clients.yaml"
    path.write_text("clients:\n  - {client_id: u, client_secret: s, shape: cognito, scopes: [a], token: id}\n")
    with LocalIdentityProvider(clients=load_clients(path).values()) as provider:
        token = token_request(provider.token_endpoint, "u", "s", None).json()["access_token"]
    assert jwt.decode(token, options={"verify_signature": False})["token_use"] == "id"


# -- the clients file refuses what it does not know ---------------------------------------------


def _refused(tmp_path: Path, text: str) -> str:
    path = tmp_path / "clients.yaml"
    path.write_text(textwrap.dedent(text))
    with pytest.raises(ConfigurationError) as caught:
        load_clients(path)
    assert caught.value.variable == "clients file"
    return caught.value.problem.replace(str(path), "F")


def test_an_unknown_key_is_refused_with_its_line(tmp_path):
    problem = _refused(tmp_path, """\
        clients:
          - client_id: a
            client_secret: b
            scope: [pets:read]
        """)
    assert problem.startswith("F:4: unknown field 'scope' (expected client_id, client_secret, shape, ")


def test_an_unknown_top_level_key_is_refused(tmp_path):
    problem = _refused(tmp_path, "clients: [{client_id: a, client_secret: b}]\nclient: []\n")
    assert problem == "F:2: unknown field 'client' (expected clients)"


def test_an_unknown_shape_is_refused_listing_the_valid_ones(tmp_path):
    problem = _refused(tmp_path, """\
        clients:
          - client_id: a
            client_secret: b
            shape: google
        """)
    assert problem == f"F:4: shape 'google' is not one of {', '.join(SHAPES)}"


@pytest.mark.parametrize(("entry", "expected"), [
    ("    scopes: pets:read", "F:4: scopes must be a list of strings"),
    ("    scopes: [pets:read, 'a b']", "F:4: scopes[1] 'a b' is not a scope token"),
    ("    groups: [ok, 7]\n    shape: cognito", "F:4: groups[1] 7 must be a string"),
    ("    shape: cognito\n    groups: {a: b}", "F:5: groups must be a list of strings"),
    ("    shape: okta\n    groups: [' padded']", "F:5: groups[0] ' padded' must not hold control characters"),
    ("    clientRoles: [a]\n    shape: keycloak", "F:4: clientRoles must map a client id to a list of its roles"),
    ("    shape: keycloak\n    clientRoles: {api: admin}", "F:5: clientRoles.api must be a non-empty list"),
    ("    claims: [tenant_id]", "F:4: claims must map claim names to values"),
    ("    claims: {iss: https://evil}", "F:4: claims: iss is set by the identity provider itself"),
    ("    claims:\n      when: 2024-01-01", "F:5: claims.when must be a JSON value"),
    ("    audience: 7", "F:4: audience must be a string or a non-empty list of strings"),
    ("    token: refresh", "F:4: token must be access or id, not 'refresh'"),
    ("    token: id", "F:4: shape cognito-m2m has no ID token"),
    ("    groups: [g]", "F:4: shape cognito-m2m carries no groups (shapes that do: cognito, okta, "),
    ("    shape: entra-v2-app\n    scopes: [a]", "F:5: shape entra-v2-app carries no scopes"),
    ("    tenant: " + TENANT, "F:4: tenant is the Entra tenant id (tid); shape cognito-m2m has none"),
    ("    shape: entra-v1\n    tenant: acme", "F:5: tenant must be a tenant id in lower-case GUID form"),
    ("    shape: okta\n    style: okta", "F:5: give shape or style (its older name), not both"),
    ("    style: google", "F:4: style 'google' is not one of cognito, okta"),
    ("    client_secret: b", "F:4: duplicate key 'client_secret'"),
])
def test_wrong_types_and_values_are_refused_with_their_lines(tmp_path, entry, expected):
    problem = _refused(tmp_path, "clients:\n  - client_id: a\n    client_secret: b\n" + entry + "\n")
    assert problem.startswith(expected), problem


def test_a_missing_secret_and_a_repeated_client_are_refused_with_their_lines(tmp_path):
    problem = _refused(tmp_path, """\
        clients:
          - client_id: a
            client_secret: b
          - client_id: a
            client_secret: c
          - client_id: c
        """)
    assert problem.splitlines() == ["F:4: client_id 'a' appears twice",
                                    "F:6: a client needs client_secret (a non-empty string)"]


def test_every_problem_is_reported_at_once(tmp_path):
    problem = _refused(tmp_path, """\
        clients:
          - client_id: a
            client_secret: b
            colour: red
          - client_id: c
            client_secret: d
            shape: nope
        """)
    assert [line.split(":")[1] for line in problem.splitlines()] == ["4", "7"]


def test_the_older_style_key_still_reads(tmp_path):
    path = tmp_path / "clients.yaml"
    path.write_text("clients:\n  - {client_id: a, client_secret: b, style: cognito}\n"
                    "  - {client_id: c, client_secret: d, style: okta}\n")
    assert [c.shape for c in load_clients(path).values()] == ["cognito-m2m", "okta"]


# -- invoke --client ---------------------------------------------------------------------------


@pytest.fixture
def clients_file(tmp_path, monkeypatch) -> Path:
    for name in ("ISSUER", "AUDIENCE", "JWKS_URI", "PERMISSIONS_SOURCE"):
        monkeypatch.delenv(name, raising=False)
    path = tmp_path / "clients.yaml"
    path.write_text(CLIENTS)
    return path


def _invoke(capsys, clients_file: Path, *args: str) -> tuple[int, dict[str, Any]]:
    code = main(["invoke", "--format", "json", "--event", str(ROOT / "events" / "token-get-pet.json"),
                 "--permissions", str(ROOT / "permissions"), "--clients", str(clients_file), *args])
    captured = capsys.readouterr()
    return code, json.loads(captured.out) if captured.out else {"stderr": captured.err}


@pytest.mark.parametrize(("client", "issuer_suffix", "audience"), [
    ("a0-user", "/auth0/", "https://api.example.com"),
    ("entra-web", f"/{DEFAULT_TENANT}/v2.0", "6e74172b-be56-4843-9ff4-e66a39bb12e3"),
    ("kc-app", "", "petstore-api"),
])
def test_invoke_mints_for_a_client_in_its_shape(capsys, clients_file, client, issuer_suffix, audience):
    code, out = _invoke(capsys, clients_file, "--client", client)
    assert (code, out["status"]) == (0, 200), out
    environment = out["environment"]
    assert environment["ISSUER"].startswith("http://127.0.0.1:") and environment["ISSUER"].endswith(issuer_suffix)
    assert environment["AUDIENCE"] == audience


def test_invoke_id_token_of_a_cognito_user_is_refused(capsys, clients_file):
    code, out = _invoke(capsys, clients_file, "--client", "cog-user", "--id-token")
    assert (code, out["status"], out["error"]) == (1, 401, "Unauthorized")


@pytest.mark.parametrize(("args", "problem"), [
    (("--client", "nobody"), "--client: 'nobody' is not in"),
    (("--client", "m2m", "--id-token"), "--id-token: client m2m has shape cognito-m2m, which has no ID token"),
    (("--client", "m2m", "--scopes", "pets:write"), "--scopes: not allowed for client m2m: pets:write"),
    (("--client", "m2m", "--subject", "x"), "--subject: the client's shape decides the subject"),
    (("--local-idp", "--id-token"), "--id-token: applies to tokens minted with --client"),
])
def test_invoke_refuses_client_options_that_cannot_apply(capsys, clients_file, args, problem):
    code = main(["invoke", "--event", str(ROOT / "events" / "token-get-pet.json"), "--clients", str(clients_file),
                 *args])
    assert code == 2
    assert problem in capsys.readouterr().err
