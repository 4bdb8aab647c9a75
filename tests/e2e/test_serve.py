"""``serve`` end to end: the IdP's token endpoint, the permission store, the real handler
and the local gateway, over real HTTP on 127.0.0.1 with an ordinary client (urllib)."""

from __future__ import annotations

import base64
import json
import time

import pytest

from policy_engine.admin.local.walkthrough import http_request
from tests.e2e.conftest import Client, FakeClock

EXPLICIT = {"Message": "User is not authorized to access this resource with an explicit deny"}
IMPLICIT = {"Message": "User is not authorized to access this resource"}


def _kid(token: str) -> str:
    header = token.split(".")[0]
    return str(json.loads(base64.urlsafe_b64decode(header + "=" * (-len(header) % 4)))["kid"])


def test_client_credentials_token_opens_granted_routes_only(start_stack):
    stack, handler = start_stack()
    # the handler reads the table that migrate created and sync filled from the files
    assert stack.handler_environ["PERMISSIONS_SOURCE"] == "dynamodb://policy-engine-permissions"
    assert stack.last_publish is not None and "published v1 (21 added" in stack.last_publish
    client = Client(stack)
    # GIVEN a Cognito-style token for pets:read from the token endpoint
    reader = client.token("pets-reader", "reader-secret", "pets:read")

    # WHEN it calls a granted route THEN the backend answers and sees the authorizer context
    reply = client.call("GET", "/dev/pets/1", reader)
    assert reply.status == 200
    assert reply.json()["pet"]["id"] == "1"
    assert reply.json()["authorizer"]["principalId"] == "pets-reader"
    assert reply.json()["authorizer"]["scope"] == "pets:read"
    assert reply.json()["authorizer"]["policyVersion"] == "v1"

    # routes outside the scopes, other stage's routes, no token, unknown routes and stages
    assert (client.call("POST", "/dev/pets", reader).status, client.call("POST", "/dev/pets", reader).json()) == (
        403, IMPLICIT)
    assert client.call("GET", "/dev/store/inventory", reader).json() == IMPLICIT
    missing = client.call("GET", "/dev/pets")
    assert (missing.status, missing.json()) == (401, {"message": "Unauthorized"})
    assert missing.headers["x-amzn-ErrorType"] == "UnauthorizedException"
    unknown = client.call("GET", "/dev/nowhere", reader)
    assert (unknown.status, unknown.json()) == (403, {"message": "Missing Authentication Token"})
    assert client.call("PATCH", "/dev/pets", reader).json() == {"message": "Missing Authentication Token"}
    assert client.call("GET", "/test/pets", reader).json() == {"message": "Forbidden"}

    # a client whose scopes grant nothing gets the explicit deny of the whole stage
    bot = client.token("metrics-bot", "metrics-secret", None)
    denied = client.call("GET", "/dev/pets", bot)
    assert (denied.status, denied.json()) == (403, EXPLICIT)

    # an Okta-style token (aud, scp list) with pets:admin may delete
    admin = client.token("pets-admin", "admin-secret", "pets:admin")
    assert client.call("DELETE", "/dev/pets/3", admin).status == 200
    assert client.call("GET", "/dev/pets/3", reader).status == 404  # the backend really deleted it
    # a garbage token reaches the handler, which refuses it
    assert client.call("GET", "/dev/pets", "not-a-jwt").status == 401
    assert handler.calls == 4  # reader, bot, admin, garbage: one invocation each
    assert [e["methodArn"].split("/", 1)[1] for e in handler.events[:1]] == ["dev/GET/pets/1"]


def test_authorizer_cache_hits_within_ttl_then_expires(start_stack):
    clock = FakeClock()
    stack, handler = start_stack(cache_ttl=300, clock=clock)
    client = Client(stack)
    reader = client.token()

    # WHEN the same token calls several routes within the TTL
    assert client.call("GET", "/dev/pets", reader).status == 200
    clock.advance(299)
    assert client.call("GET", "/dev/pets/2", reader).status == 200
    assert client.call("POST", "/dev/pets", reader).status == 403  # cached policy, re-evaluated per route
    # THEN the handler ran once
    assert handler.calls == 1

    # a cached Deny is a policy too
    bot = client.token("metrics-bot", "metrics-secret", None)
    assert client.call("GET", "/dev/pets", bot).status == 403
    assert client.call("GET", "/dev/pets/1", bot).status == 403
    assert handler.calls == 2

    # the cache key includes the stage
    assert client.call("GET", "/prod/pets", reader).status == 200
    assert handler.calls == 3

    # refusals are not cached: every garbage token request reaches the handler
    assert client.call("GET", "/dev/pets", "garbage").status == 401
    assert client.call("GET", "/dev/pets", "garbage").status == 401
    assert handler.calls == 5

    # WHEN the TTL passes THEN the next request invokes the handler again
    clock.advance(1)
    assert client.call("GET", "/dev/pets", reader).status == 200
    assert handler.calls == 6


def test_cache_ttl_zero_invokes_the_handler_every_time(start_stack):
    stack, handler = start_stack(cache_ttl=0)
    client = Client(stack)
    reader = client.token()
    for _ in range(3):
        assert client.call("GET", "/dev/pets", reader).status == 200
    assert handler.calls == 3


def test_token_regex_refuses_without_invoking_the_handler(start_stack):
    stack, handler = start_stack(token_regex=r"Bearer [A-Za-z0-9_\-]+\.[A-Za-z0-9_\-]+\.[A-Za-z0-9_\-]+")
    client = Client(stack)
    assert client.call("GET", "/dev/pets", "not-a-jwt").status == 401
    assert client.call("GET", "/dev/pets", Authorization="Basic abc").status == 401
    assert handler.calls == 0
    assert client.call("GET", "/dev/pets", client.token()).status == 200
    assert handler.calls == 1


@pytest.mark.parametrize("store", ["dynamodb", "yaml"])
def test_permission_change_takes_effect_after_both_caches_expire(start_stack, permissions_dir, store):
    clock = FakeClock()
    stack, handler = start_stack(cache_ttl=60, clock=clock)
    client = Client(stack)
    reader = client.token()
    before = client.call("GET", "/dev/pets", reader).json()["authorizer"]["policyVersion"]
    assert client.call("POST", "/dev/pets", reader).status == 403

    # WHEN an operator grants POST /pets to pets:read and syncs, while serve runs
    pets = permissions_dir / "pets.yaml"
    pets.write_text(pets.read_text().replace("POST /pets: [pets:write]", "POST /pets: [pets:write, pets:read]"))
    stack.sync()

    # THEN the gateway keeps answering from its cached policy until the TTL passes
    time.sleep(0.3)  # past the handler's PERMISSIONS_CACHE_TTL (0.2 s)
    assert client.call("POST", "/dev/pets", reader).status == 403
    assert handler.calls == 1
    clock.advance(60)
    reply = client.call("POST", "/dev/pets", reader)
    assert reply.status == 201
    assert handler.calls == 2
    assert reply.json()["authorizer"]["policyVersion"] != before  # the synced version decided

    # and a revocation travels the same way
    pets.write_text(pets.read_text().replace("POST /pets: [pets:write, pets:read]", "POST /pets: [pets:write]"))
    stack.sync()
    time.sleep(0.3)
    clock.advance(60)
    assert client.call("POST", "/dev/pets", reader).status == 403


def test_key_rotation_in_the_identity_provider(start_stack):
    stack, _handler = start_stack(cache_ttl=0, handler_env={"JWKS_CACHE_TTL": "1"})
    client = Client(stack)
    old = client.token()
    assert client.call("GET", "/dev/pets", old).status == 200

    # WHEN the IdP rotates (keeping the old key published)
    assert stack.idp is not None
    rotate = f"{stack.idp.issuer}/admin/rotate"
    rotated = http_request("POST", rotate)
    assert rotated.status == 200
    new = client.token()
    # THEN new tokens carry the new kid, the authorizer fetches it, and old tokens still pass
    assert _kid(new) == rotated.json()["kid"] != _kid(old)
    assert client.call("GET", "/dev/pets", new).status == 200
    assert client.call("GET", "/dev/pets", old).status == 200

    # WHEN the old key is retired THEN its tokens fail once the authorizer's JWKS cache refreshes
    assert http_request("POST", rotate + "?retire=1").status == 200
    newest = client.token()
    assert client.call("GET", "/dev/pets", newest).status == 200
    time.sleep(1.1)  # JWKS_CACHE_TTL
    assert client.call("GET", "/dev/pets", old).status == 401
    assert client.call("GET", "/dev/pets", new).status == 401
    assert client.call("GET", "/dev/pets", newest).status == 200


def test_aws_endpoint_url_replaces_the_embedded_table(start_stack, monkeypatch):
    from moto.server import ThreadedMotoServer

    from policy_engine.admin.local.table import _free_port

    port = _free_port("127.0.0.1")
    external = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    external.start()
    try:
        endpoint = f"http://127.0.0.1:{port}"
        for name, value in {"AWS_ENDPOINT_URL": endpoint, "AWS_ACCESS_KEY_ID": "x", "AWS_SECRET_ACCESS_KEY": "x",
                            "AWS_DEFAULT_REGION": "eu-west-1"}.items():
            monkeypatch.setenv(name, value)
        stack, _ = start_stack(table="external-permissions")
        assert stack.table is not None and not stack.table.embedded and stack.table.endpoint == endpoint
        client = Client(stack)
        assert client.call("GET", "/dev/pets", client.token()).status == 200
        import boto3

        tables = boto3.client("dynamodb", endpoint_url=endpoint, region_name="eu-west-1").list_tables()
        assert "external-permissions" in tables["TableNames"]
    finally:
        external.stop()


def test_request_authorizer_with_identity_sources_and_per_method_cache(start_stack):
    clock = FakeClock()
    # GIVEN a REQUEST authorizer keyed on the header and the method (per-route answers)
    stack, handler = start_stack(
        store="yaml", clock=clock,
        identity_sources=("method.request.header.Authorization", "context.httpMethod", "context.resourcePath"))
    client = Client(stack)
    reader = client.token()

    reply = client.call("GET", "/dev/pets/1", reader)
    assert reply.status == 200 and reply.json()["authorizer"]["principalId"] == "pets-reader"
    event = handler.events[0]
    assert event["type"] == "REQUEST" and event["httpMethod"] == "GET" and event["path"] == "/pets/1"
    assert event["requestContext"]["stage"] == "dev"

    # the same route template and method: cached; another method: a new key, a new call
    assert client.call("GET", "/dev/pets/2", reader).status == 200
    assert handler.calls == 1
    assert client.call("POST", "/dev/pets", reader).status == 403
    assert handler.calls == 2
    # a missing identity source is 401 without a call
    assert client.call("GET", "/dev/pets").status == 401
    assert handler.calls == 2


@pytest.mark.parametrize("store", ["yaml"], indirect=True)
def test_clients_of_every_issuer_shape_get_through_serve(start_stack, tmp_path):
    # GIVEN clients whose issuers carry a path (Auth0's trailing slash, an Entra tenant) beside the plain one
    clients = tmp_path / "clients.yaml"
    clients.write_text(
        "clients:\n"
        "  - {client_id: a0, client_secret: s, shape: auth0-rbac, audience: https://pets.example.com,\n"
        "     scopes: [pets:read], permissions: [read:pets]}\n"
        "  - {client_id: web, client_secret: s, shape: entra-v2-delegated, audience: api://pets,\n"
        "     scopes: [pets:read]}\n"
        "  - {client_id: kc, client_secret: s, shape: keycloak, audience: pets-api, scopes: [pets:read]}\n")
    stack, _ = start_stack(clients_file=clients)
    assert stack.idp is not None
    base = stack.idp.issuer
    # THEN serve accepts each client's issuer and audience
    assert stack.handler_environ["ISSUER"].split(",") == [
        base, f"{base}/5e3c1a2b-7d4f-4e6a-9b8c-0d1e2f3a4b5c/v2.0", f"{base}/auth0/"]
    client = Client(stack)
    for name in ("a0", "web", "kc"):
        # WHEN each gets a token from the token endpoint THEN its scope opens the granted route only
        token = client.token(name, "s", "pets:read")
        assert client.call("GET", "/dev/pets/1", token).status == 200, name
        assert client.call("POST", "/dev/pets", token).status == 403, name
    assert "a0 (auth0-rbac: pets:read)" in stack.describe()


@pytest.mark.parametrize("store", ["yaml"], indirect=True)
def test_a_group_member_gets_the_group_routes_and_only_its_own_tenant(start_stack):
    # GIVEN serve with the shipped example: GRANT_SOURCES reads cognito:groups, and
    # sitter-jane's Cognito user token holds the group pet-sitters and custom:tenant_id acme
    from policy_engine.admin.local.serve import LOCAL_GRANT_SOURCES

    stack, _ = start_stack()
    assert stack.handler_environ["GRANT_SOURCES"] == LOCAL_GRANT_SOURCES
    client = Client(stack)
    token = client.token("sitter-jane", "jane-secret", None)
    # WHEN it calls THEN the group's routes answer, others are refused, and the tenant
    # path opens for acme only
    assert client.call("GET", "/dev/pets/1", token).status == 200
    assert client.call("PUT", "/dev/pets/1", token).status == 403
    assert client.call("GET", "/dev/tenants/acme/pets", token).status == 200
    refused = client.call("GET", "/dev/tenants/globex/pets", token)
    assert (refused.status, refused.json()) == (403, IMPLICIT)


@pytest.mark.parametrize("store", ["yaml"], indirect=True)
def test_serve_leaves_the_grant_sources_to_an_environment_that_names_them(start_stack):
    # GIVEN SCOPE_CLAIMS in the handler's environment (GRANT_SOURCES beside it would be an error)
    stack, _ = start_stack(handler_env={"SCOPE_CLAIMS": "scope"})
    assert "GRANT_SOURCES" not in stack.handler_environ
    assert "grant sources      SCOPE_CLAIMS=scope" in stack.describe()
    client = Client(stack)
    # THEN groups are not read: the sitter's group routes are refused, scopes still work
    sitter = client.token("sitter-jane", "jane-secret", None)
    assert client.call("GET", "/dev/pets/1", sitter).status == 403
    assert client.call("GET", "/dev/pets/1", client.token()).status == 200
