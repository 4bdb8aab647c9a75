"""Mappings by group, role, all-of and any authenticated caller, and tenant placeholders:
the real handler, a real JWKS on 127.0.0.1, every decision judged as API Gateway judges
the policy (``core.iam``)."""

from __future__ import annotations

import json
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from policy_engine.core.iam import Verdict
from tests.conftest import API, invoke, token_event, verdict

PERMISSIONS = f"""
apis:
  - arn: {API}
    stages: [dev]
    routes:
      GET /pets: [pets:read, {{group: pet-readers}}, {{role: Pets.Read.All}}]
      POST /pets: [{{allOf: {{scope: [write:pets, read:pets]}}}}]
      DELETE /pets/*: [{{allOf: {{scope: [pets:admin], group: [Pet Admins]}}}}]
      GET /health: [{{authenticated: true}}]
      GET /tenants/{{claim:tenant_id}}/*: [{{authenticated: true}}]
permissions:
  - arn: {API}
    stage: dev
    httpVerb: GET
    resource: /orgs/{{claim:custom:org}}/pets
    scope: pets:read
"""


@pytest.fixture
def handler(tmp_path: Path, make_handler: Any) -> ModuleType:
    (tmp_path / "grants.yaml").write_text(PERMISSIONS)
    return make_handler(PERMISSIONS_SOURCE=str(tmp_path),
                        GRANT_SOURCES="scope:scope,scope:scp,group:cognito:groups,role:roles")


def test_a_group_or_a_role_grants_what_its_mapping_names(idp: Any, handler: ModuleType) -> None:
    for claims in ({"cognito:groups": ["pet-readers"]}, {"roles": ["Pets.Read.All"]}):
        result = invoke(handler, token_event(idp.mint(scope=None, **claims), "GET", "/pets"))
        assert verdict(result, "GET", "/pets") is Verdict.ALLOW, claims
        assert verdict(result, "POST", "/pets") is Verdict.IMPLICIT_DENY
        # groups and roles are not scopes: the context's scope lists none of them
        assert result.response is not None and result.response["context"]["scope"] == ""


def test_kinds_never_mix_a_scope_named_like_a_group_is_not_the_group(idp: Any, handler: ModuleType) -> None:
    # a scope, a role and a group all called pet-readers: only the group grants
    result = invoke(handler, token_event(idp.mint(scope="pet-readers", roles=["pet-readers"]), "GET", "/pets"))
    assert verdict(result, "GET", "/pets") is Verdict.IMPLICIT_DENY
    assert verdict(result, "GET", "/health") is Verdict.ALLOW


def test_all_of_needs_every_grant(idp: Any, handler: ModuleType) -> None:
    one = invoke(handler, token_event(idp.mint(scope="write:pets"), "POST", "/pets"))
    assert verdict(one, "POST", "/pets") is Verdict.IMPLICIT_DENY
    both = invoke(handler, token_event(idp.mint(scope="write:pets read:pets"), "POST", "/pets"))
    assert verdict(both, "POST", "/pets") is Verdict.ALLOW
    # across kinds: a scope and a group (with a space in its name)
    scope_only = invoke(handler, token_event(idp.mint(scope="pets:admin"), "DELETE", "/pets/1"))
    assert verdict(scope_only, "DELETE", "/pets/1") is Verdict.IMPLICIT_DENY
    mixed = invoke(handler, token_event(idp.mint(scope="pets:admin", **{"cognito:groups": ["Pet Admins"]}),
                                        "DELETE", "/pets/1"))
    assert verdict(mixed, "DELETE", "/pets/1") is Verdict.ALLOW


def test_authenticated_routes_are_any_valid_token_and_only_that(idp: Any, handler: ModuleType) -> None:
    result = invoke(handler, token_event(idp.mint(scope="email"), "GET", "/health"))
    assert verdict(result, "GET", "/health") is Verdict.ALLOW
    assert verdict(result, "GET", "/pets") is Verdict.IMPLICIT_DENY
    expired = invoke(handler, token_event(idp.mint(scope="email", lifetime=-3600), "GET", "/health"))
    assert expired.unauthorized
    wrong_audience = invoke(handler, token_event(idp.mint(audience="someone-else"), "GET", "/health"))
    assert wrong_audience.unauthorized


def test_a_tenant_placeholder_grants_the_callers_own_tenant_only(idp: Any, handler: ModuleType) -> None:
    acme = invoke(handler, token_event(idp.mint(scope="pets:read", tenant_id="acme", **{"custom:org": "o-1"}),
                                       "GET", "/tenants/acme/pets"))
    assert verdict(acme, "GET", "/tenants/acme/pets/1") is Verdict.ALLOW
    assert verdict(acme, "GET", "/tenants/globex/pets/1") is Verdict.IMPLICIT_DENY
    assert verdict(acme, "GET", "/orgs/o-1/pets") is Verdict.ALLOW
    assert verdict(acme, "GET", "/orgs/o-2/pets") is Verdict.IMPLICIT_DENY
    globex = invoke(handler, token_event(idp.mint(scope="pets:read", tenant_id="globex"), "GET", "/tenants/x"))
    assert verdict(globex, "GET", "/tenants/globex/a") is Verdict.ALLOW
    assert verdict(globex, "GET", "/tenants/acme/a") is Verdict.IMPLICIT_DENY


@pytest.mark.parametrize("value", ["*", "acme/../globex", "a*", "?", "", " acme", "..", "a\u0000b", 12.5, ["acme"],
                                   "x" * 129, "acme%2Fglobex", "\uff41\uff43\uff4d\uff45"])
def test_a_hostile_tenant_value_grants_nothing_and_is_logged_by_name(idp: Any, handler: ModuleType, value: Any,
                                                                     capsys: Any) -> None:
    capsys.readouterr()
    result = invoke(handler, token_event(idp.mint(scope="email", tenant_id=value), "GET", "/tenants/acme/x"))
    for path in ("/tenants/acme/x", "/tenants/*/x", "/tenants/globex/x", "/tenants//x", "/tenants/x"):
        assert verdict(result, "GET", path) is not Verdict.ALLOW, (value, path)
    assert verdict(result, "GET", "/health") is Verdict.ALLOW
    line = [json.loads(line) for line in capsys.readouterr().err.splitlines() if '"event":"decision"' in line][-1]
    assert line["event"] == "decision" and "tenant_id" in line["placeholders_refused"]
    # claim names only, never the value; only of mappings the caller's grants reach
    # (the /orgs/{claim:custom:org} one needs pets:read)
    assert line["placeholders_refused"] == ["tenant_id"]


def test_two_tenants_never_share_a_remembered_policy(idp: Any, handler: ModuleType) -> None:
    # The same grants, different tenants, alternating in one warm container.
    for _ in range(2):
        for tenant in ("acme", "globex", "initech"):
            result = invoke(handler, token_event(idp.mint(scope="email", tenant_id=tenant), "GET", "/health"))
            assert verdict(result, "GET", f"/tenants/{tenant}/1") is Verdict.ALLOW
            for other in {"acme", "globex", "initech"} - {tenant}:
                assert verdict(result, "GET", f"/tenants/{other}/1") is Verdict.IMPLICIT_DENY


def test_simple_responses_and_per_route_answers_understand_the_new_forms(idp: Any, tmp_path: Path,
                                                                         make_handler: Any) -> None:
    (tmp_path / "grants.yaml").write_text(PERMISSIONS)
    module = make_handler(PERMISSIONS_SOURCE=str(tmp_path), SIMPLE_RESPONSES="true",
                          IDENTITY_SOURCE="$request.header.Authorization,$context.routeKey")

    def simple(token: str, route_key: str, path: str) -> bool:
        verb = route_key.split(" ")[0]
        event = {"version": "2.0", "type": "REQUEST", "routeArn": f"{API}/dev/{verb}{path}", "routeKey": route_key,
                 "identitySource": [f"Bearer {token}", route_key], "headers": {"authorization": f"Bearer {token}"}}
        result = invoke(module, event)
        assert result.response is not None, result.error
        return bool(result.response["isAuthorized"])

    assert simple(idp.mint(scope="write:pets read:pets"), "POST /pets", "/pets") is True
    assert simple(idp.mint(scope="write:pets"), "POST /pets", "/pets") is False
    assert simple(idp.mint(scope="email"), "GET /health", "/health") is True
    # a route key with a parameter: the policy grants one tenant, not every request of the route
    assert simple(idp.mint(scope="email", tenant_id="acme"), "GET /tenants/{id}", "/tenants/acme") is False


def test_api_key_rules_apply_to_group_and_tenant_grants(idp: Any, tmp_path: Path, make_handler: Any) -> None:
    from tests.conftest import ROOT

    (tmp_path / "grants.yaml").write_text(PERMISSIONS.replace("GET /health: [{authenticated: true}]",
                                                              "GET /pets/*: [{group: pet-readers}]"))
    module = make_handler(PERMISSIONS_SOURCE=str(tmp_path), API_KEYS_FILE=str(ROOT / "examples" / "api-keys.yaml"),
                          GRANT_SOURCES="scope:scope,group:cognito:groups")
    # GIVEN a group member without an API key: the routes that need one are denied explicitly
    nobody = invoke(module, token_event(idp.mint(scope=None, subject="unknown", **{"cognito:groups": ["pet-readers"]}),
                                        "GET", "/pets/1"))
    assert verdict(nobody, "GET", "/pets") is Verdict.ALLOW
    assert verdict(nobody, "GET", "/pets/1") is Verdict.EXPLICIT_DENY
    # WHEN the client has a key THEN the group's routes are allowed with it
    keyed = invoke(module, token_event(idp.mint(scope=None, subject="partner-a-client",
                                                **{"cognito:groups": ["pet-readers"]}), "GET", "/pets/1"))
    assert keyed.response is not None and keyed.response["usageIdentifierKey"]
    assert verdict(keyed, "GET", "/pets/1") is Verdict.ALLOW


def test_a_scope_list_item_naming_a_group_key_grants_nothing(idp: Any, handler: ModuleType) -> None:
    # "group pet-readers" is how the engine writes the group's grant internally; as an
    # item of a scope list (no scope token has a space) it must not open the group's routes.
    forged = invoke(handler, token_event(idp.mint(scope=["group pet-readers", "role Pets.Read.All"]), "GET", "/pets"))
    assert verdict(forged, "GET", "/pets") is not Verdict.ALLOW
