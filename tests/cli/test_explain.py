"""``policy-engine explain``: policy, routes, the deciding mapping and statement, tokens, diffs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from policy_engine.admin.cli import main
from policy_engine.core.iam import Verdict, evaluate_response

ROOT = Path(__file__).resolve().parents[2]
API = "arn:aws:execute-api:us-east-1:123456789012:a1b2c3d4e5"
PERMISSIONS = str(ROOT / "permissions")


@pytest.fixture(autouse=True)
def _no_configured_issuer(monkeypatch):
    for name in ("ISSUER", "AUDIENCE", "JWKS_URI", "PERMISSIONS_SOURCE", "SCOPE_CLAIMS", "GRANT_SOURCES", "IDP_PRESET",
                 "IDENTITY_PROVIDERS"):
        monkeypatch.delenv(name, raising=False)


def explain(capsys, *args: str) -> tuple[int, dict]:
    code = main(["explain", "--permissions", PERMISSIONS, "--format", "json", *args])
    return code, json.loads(capsys.readouterr().out)


def test_allowed_request_names_the_mapping_and_the_statement(capsys):
    code, out = explain(capsys, "--scopes", "pets:read email", "--request", "GET /dev/pets/12")
    assert code == 0
    request = out["request"]
    assert request["status"] == 200 and request["statement"] == 0 and request["effect"] == "Allow"
    assert request["resource"] == f"{API}/dev/GET/pets/*"
    assert [m["mapping"] for m in request["mappings"]] == ["permissions/pets.yaml:11"]
    # the shown policy is the one the runtime returns: API Gateway decides with it
    response = out["policies"][0]["response"]
    assert evaluate_response(response, f"{API}/dev/GET/pets/12/photos") is Verdict.ALLOW
    assert evaluate_response(response, f"{API}/dev/POST/pets") is Verdict.IMPLICIT_DENY
    assert {r["route"] for r in out["policies"][0]["routes"]} == {"GET /pets", "GET /pets/*"}


def test_refused_request_exits_1_and_says_nothing_grants_it(capsys):
    code, out = explain(capsys, "--scopes", "pets:read", "--request", "POST /dev/pets")
    assert code == 1
    assert out["request"]["status"] == 403 and out["request"]["mappings"] == []
    code, out = explain(capsys, "--scopes", "email", "--request", "GET /dev/pets")
    assert code == 1 and out["request"]["verdict"] == "ExplicitDeny" and out["request"]["effect"] == "Deny"


def test_a_request_whose_method_arn_api_gateway_refuses_as_too_long_is_414(capsys):
    # 1,600 bytes: API Gateway answers 414 itself, and the handler refuses such a methodArn.
    code, out = explain(capsys, "--scopes", "pets:read", "--request", "GET /dev/pets/" + "a" * 1600)
    assert code == 1 and out["request"]["status"] == 414
    code, out = explain(capsys, "--scopes", "pets:read", "--request", "GET /dev/pets/" + "a" * 1500)
    assert code == 0 and out["request"]["status"] == 200


def test_a_policy_too_large_is_answered_as_the_runtime_answers_it(tmp_path, monkeypatch, capsys, idp, make_handler):
    # 120 routes: over 8 KB. The runtime narrows it to the route when the cache key is per
    # route, and fails closed (500) otherwise; explain says the same, with the handler.
    from policy_engine.admin.local.invoke import invoke
    from tests.request_events import rest_request_event

    big = tmp_path / "big.yaml"
    big.write_text(f"apis:\n  - arn: {API}\n    stages: [dev]\n    routes:\n"
                   + "".join(f"      GET /resource-number-{i:04d}/item: [big]\n" for i in range(120)))
    per_route = "method.request.header.Authorization,context.httpMethod,context.path"
    for identity, status, verdict in ((None, 500, "Error"), (per_route, 200, "Allow")):
        if identity:
            monkeypatch.setenv("IDENTITY_SOURCE", identity)
        code = main(["explain", "--permissions", str(big), "--format", "json", "--scopes", "big",
                     "--request", "GET /dev/resource-number-0001/item"])
        request = json.loads(capsys.readouterr().out)["request"]
        assert (code, request["status"], request["verdict"]) == (0 if status == 200 else 1, status, verdict)
    handler = make_handler(PERMISSIONS_SOURCE=str(big), IDENTITY_SOURCE=per_route)
    result = invoke(handler, rest_request_event(idp.mint(scope="big"), "GET", "/resource-number-0001/item"))
    assert result.response is not None
    assert evaluate_response(result.response, f"{API}/dev/GET/resource-number-0001/item") is Verdict.ALLOW


ROUTES = f"""\
apis:
  - arn: {API}
    stages: [dev]
    routes:
      GET /pet/{{petId}}: [pets:read]
      GET /pet/findByStatus: [pets:search]
      ANY /things: [a]
      GET /things: [b]
"""


@pytest.mark.parametrize("scopes, request_text, status, mappings", [
    # A template grants the requests API Gateway routes to it...
    ("pets:read", "GET /dev/pet/12", 200, ["routes.yaml:5"]),
    # ...not those a more specific sibling takes (a literal segment, an exact method).
    ("pets:read", "GET /dev/pet/findByStatus", 403, []),
    ("pets:read pets:search", "GET /dev/pet/findByStatus", 200, ["routes.yaml:6"]),
    ("a", "GET /dev/things", 403, []),
    ("a", "POST /dev/things", 200, ["routes.yaml:7"]),
    ("a b", "GET /dev/things", 200, ["routes.yaml:8"]),
])
def test_the_mappings_named_for_a_request_are_those_of_the_route_it_is_sent_to(tmp_path, monkeypatch, capsys, scopes,
                                                                               request_text, status, mappings):
    (tmp_path / "routes.yaml").write_text(ROUTES)
    monkeypatch.chdir(tmp_path)
    code = main(["explain", "--permissions", "routes.yaml", "--format", "json", "--scopes", scopes,
                 "--request", request_text])
    request = json.loads(capsys.readouterr().out)["request"]
    assert (request["status"], [m["mapping"] for m in request["mappings"]]) == (status, mappings)
    assert code == (0 if status == 200 else 1)


def test_without_a_request_every_mapped_stage_is_shown_as_a_table(capsys):
    code = main(["explain", "--permissions", PERMISSIONS, "--scopes", "store:write"])
    text = capsys.readouterr().out
    assert code == 0
    assert "== policy for a1b2c3d4e5 stage dev: Allow" in text and "== policy for a1b2c3d4e5 stage prod: Deny" in text
    assert "ANY   /store/orders/*  dev    store:write  permissions/store.yaml:14" in text


def test_token_is_decoded_without_verification_when_no_issuer_is_configured(idp, capsys):
    token = idp.mint(scope="pets:write", subject="web")
    code, out = explain(capsys, "--token", token, "--request", "POST /dev/pets")
    assert code == 0
    assert out["caller"]["verified"] is False and "WITHOUT verification" in out["caller"]["verification"]
    assert out["caller"]["scopes"] == ["pets:write"] and out["caller"]["principal"] == "web"


@pytest.mark.parametrize("override,variable", [
    ({"CLOCK_LEEWAY": "abc"}, "CLOCK_LEEWAY"),
    ({"ALLOWED_ALGORITHMS": "HS256"}, "ALLOWED_ALGORITHMS"),
    ({"IDENTITY_PROVIDERS": "[["}, "IDENTITY_PROVIDERS"),
])
def test_a_bad_setting_is_one_error_not_an_unverified_decision(idp, capsys, monkeypatch, override, variable):
    # The authorizer would refuse to start with it: explain must not decode and decide an
    # (expired) token as if verification were merely not configured.
    monkeypatch.setenv("ISSUER", idp.issuer)
    monkeypatch.setenv("AUDIENCE", "api")
    for name, value in override.items():
        monkeypatch.setenv(name, value)
    token = idp.mint(scope="pets:read", subject="web", audience="api", lifetime=-3600)
    code = main(["explain", "--permissions", PERMISSIONS, "--token", token, "--request", "GET /dev/pets"])
    captured = capsys.readouterr()
    assert code == 2 and "Allow" not in captured.out
    assert captured.err.startswith(f"policy-engine explain: {variable}: ")
    assert captured.err.rstrip().endswith("(the authorizer would refuse to start)")


def test_unverified_token_reads_scopes_from_the_configured_claims(idp, capsys, monkeypatch):
    # SCOPE_CLAIMS applies even when ISSUER/AUDIENCE are missing and the token cannot be
    # verified: the scopes shown are the ones the deployed authorizer would read.
    token = idp.mint(scope="pets:read", scp=["pets:write"], subject="web")
    monkeypatch.setenv("SCOPE_CLAIMS", "scp,scope")
    code, out = explain(capsys, "--token", token, "--request", "POST /dev/pets")
    assert out["caller"]["verified"] is False
    assert out["caller"]["scopes"] == ["pets:write"] and code == 0


def test_token_is_verified_when_keys_are_reachable_and_refused_when_it_fails(idp, capsys):
    token = idp.mint(scope="pets:write", subject="web")
    args = ["--issuer", idp.issuer, "--audience", "policy-engine-demo", "--request", "POST /dev/pets"]
    code, out = explain(capsys, "--token", f"Bearer {token}", *args)
    assert code == 0 and out["caller"]["verified"] is True and "verified" in out["caller"]["verification"]
    expired = idp.mint(scope="pets:write", lifetime=-3600)
    code, out = explain(capsys, "--token", expired, *args)
    assert code == 1 and out["caller"]["rejected"] is True and out["request"]["status"] == 401


def test_a_token_with_roles_no_source_reads_gets_a_hint(idp, capsys, monkeypatch):
    # An Entra-style app-only token (roles, no scp) under the default scopes-only sources.
    token = idp.mint(scope=None, roles=["Pets.Read.All"], groups=["g"])
    args = ["--issuer", idp.issuer, "--audience", "policy-engine-demo", "--request", "GET /dev/pets"]
    code, out = explain(capsys, "--token", token, *args)
    assert code == 1 and out["caller"]["verified"] is True and out["caller"]["scopes"] == []
    assert out["caller"]["unconfigured_grant_claims"] == ["roles", "groups"]
    main(["explain", "--permissions", PERMISSIONS, "--token", token, *args])
    text = capsys.readouterr().out
    assert "hint: the token carries roles, groups, which no grant source reads" in text
    assert "Pets.Read.All" not in text.split("hint:")[1].splitlines()[0]
    # Read by a configured source: now a grant (a role), and a token with grants gets no hint.
    monkeypatch.setenv("GRANT_SOURCES", "scope:scope,role:roles")
    code, out = explain(capsys, "--token", token, *args)
    assert out["caller"]["unconfigured_grant_claims"] == []
    assert out["caller"]["scopes"] == [] and out["caller"]["grants"] == {"role": ["Pets.Read.All"]}


def test_an_unverified_token_is_read_with_the_configured_grant_sources(idp, capsys, monkeypatch):
    token = idp.mint(scope="pets:read", **{"cognito:groups": ["pets:write"]})
    monkeypatch.setenv("GRANT_SOURCES", "scope:scope,scope:cognito:groups")
    code, out = explain(capsys, "--token", token, "--request", "POST /dev/pets")
    assert out["caller"]["verified"] is False and code == 0
    assert out["caller"]["scopes"] == ["pets:read", "pets:write"] and out["caller"]["unconfigured_grant_claims"] == []
    monkeypatch.delenv("GRANT_SOURCES")
    monkeypatch.setenv("IDP_PRESET", "cognito")
    code, out = explain(capsys, "--token", token, "--request", "POST /dev/pets")
    assert out["caller"]["scopes"] == ["pets:read"] and code == 1
    assert out["caller"]["grants"] == {"group": ["pets:write"], "scope": ["pets:read"]}


def test_unreachable_keys_fall_back_to_decoding(idp, capsys):
    token = idp.mint(scope="pets:read")
    issuer = idp.issuer
    idp.stop()
    code, out = explain(capsys, "--token", token, "--issuer", issuer, "--audience", "policy-engine-demo",
                        "--jwks-uri", f"{issuer}/jwks.json", "--stage", "dev")
    assert code == 0 and out["caller"]["verified"] is False
    assert "keys are not reachable" in out["caller"]["verification"]


def test_bad_input_means_it_could_not_run(capsys):
    assert main(["explain", "--permissions", PERMISSIONS, "--token", "not-a-jwt"]) == 2
    assert main(["explain", "--permissions", PERMISSIONS, "--scopes", "x", "--request", "GET pets"]) == 2
    assert main(["explain", "--permissions", PERMISSIONS, "--scopes", "x", "--api", "nope"]) == 2


def test_diff_lists_what_each_scope_gains_and_loses(capsys):
    code = main(["explain", "--diff", PERMISSIONS, str(ROOT / "tests/data/permissions-next"), "--format", "json"])
    out = json.loads(capsys.readouterr().out)
    assert code == 0
    reader, writer = out["scopes"]["pets:read"], out["scopes"]["pets:write"]
    assert {(c["route"], c["stage"]) for c in reader["lost"]} == {("GET /pets/*", "dev"), ("GET /pets/*", "prod")}
    gained = reader["gained"][0]
    assert gained["route"] == "GET /pets/*/photos" and gained["covered_by"]["route"] == "GET /pets/*"
    assert {c["route"] for c in writer["gained"]} == {"DELETE /pets/*"} and writer["lost"] == []
    assert set(out["scopes"]) == {"pets:read", "pets:write"}
    main(["explain", "--diff", PERMISSIONS, PERMISSIONS])
    assert "no scope gains or loses anything" in capsys.readouterr().out


GRANTS = f"""\
apis:
  - arn: {API}
    stages: [dev]
    routes:
      GET /pets: [pets:read, {{group: Pet Readers}}]
      POST /pets: [{{allOf: {{scope: [write:pets, read:pets]}}}}]
      GET /health: [{{authenticated: true}}]
      GET /tenants/{{claim:tenant_id}}/*: [{{role: tenant-user}}]
"""


def _grant_permissions(tmp_path: Path, text: str = GRANTS) -> str:
    folder = tmp_path / "p"
    folder.mkdir(exist_ok=True)
    (folder / "grants.yaml").write_text(text)
    return str(folder)


def test_grants_by_kind_all_of_authenticated_and_placeholders(tmp_path, capsys):
    location = _grant_permissions(tmp_path)
    code = main(["explain", "--permissions", location, "--format", "json", "--grants",
                 "role:tenant-user scope:read:pets", "--grant", "group:Pet Readers", "--claim", "tenant_id=acme",
                 "--request", "GET /dev/tenants/acme/x"])
    out = json.loads(capsys.readouterr().out)
    assert code == 0
    assert out["caller"]["grants"] == {"group": ["Pet Readers"], "role": ["tenant-user"], "scope": ["read:pets"]}
    assert out["caller"]["scopes"] == ["read:pets"]
    routes = {r["route"]: r["needs"] for r in out["policies"][0]["routes"]}
    assert routes == {"GET /pets": "group Pet Readers", "GET /health": "any authenticated caller",
                      "GET /tenants/acme/*": "role tenant-user"}
    assert out["request"]["mappings"][0]["needs"] == "role tenant-user"
    # the same caller without a valid tenant: the placeholder mapping is left out and said so
    code = main(["explain", "--permissions", location, "--format", "json", "--grants", "role:tenant-user",
                 "--claim", "tenant_id=*", "--request", "GET /dev/tenants/acme/x"])
    out = json.loads(capsys.readouterr().out)
    assert code == 1 and out["request"]["status"] == 403
    assert out["policies"][0]["placeholders_refused"] == ["tenant_id"]
    assert out["policies"][0]["refused"][0]["claims"] == ["tenant_id"]
    # all of: both scopes together
    code = main(["explain", "--permissions", location, "--format", "json", "--scopes", "write:pets read:pets",
                 "--request", "POST /dev/pets"])
    out = json.loads(capsys.readouterr().out)
    assert code == 0 and out["request"]["mappings"][0]["needs"] == "all of scope read:pets + scope write:pets"
    main(["explain", "--permissions", location, "--grants", "role:tenant-user", "--claim", "tenant_id=globex"])
    text = capsys.readouterr().out
    assert "caller: roles tenant-user (from --grants)" in text and "GET   /tenants/globex/*" in text


def test_grant_and_claim_arguments_are_checked(tmp_path, capsys):
    location = _grant_permissions(tmp_path)
    assert main(["explain", "--permissions", location, "--grants", "pet-readers"]) == 2
    assert main(["explain", "--permissions", location, "--grants", "Group:x"]) == 2
    assert main(["explain", "--permissions", location, "--scopes", "x", "--claim", "tenant_id"]) == 2
    assert main(["explain", "--permissions", location, "--scopes", "x", "--claim", "a..b=1"]) == 2
    assert main(["explain", "--permissions", location, "--scopes", "x", "--diff", location, location]) == 2


def test_diff_names_groups_all_of_and_authenticated_requirements(tmp_path, capsys):
    old = _grant_permissions(tmp_path)
    new_folder = tmp_path / "new"
    new_folder.mkdir()
    (new_folder / "grants.yaml").write_text(GRANTS.replace("GET /health: [{authenticated: true}]",
                                                           "GET /health: [{group: Pet Readers}]"))
    code = main(["explain", "--diff", old, str(new_folder), "--format", "json"])
    out = json.loads(capsys.readouterr().out)
    assert code == 0
    assert [c["route"] for c in out["scopes"]["any authenticated caller"]["lost"]] == ["GET /health"]
    assert [c["route"] for c in out["scopes"]["group Pet Readers"]["gained"]] == ["GET /health"]
    main(["explain", "--diff", old, str(new_folder)])
    text = capsys.readouterr().out
    assert "any authenticated caller: +0 -1" in text and "group Pet Readers: +1 -0" in text
