"""``policy-engine validate --openapi``: coverage of an OpenAPI document's security.

The specs and mappings are in ``tests/data/openapi-coverage/``; each finding is checked
with the line of both sides (the mapping, the operation).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from policy_engine.admin.cli import main
from policy_engine.admin.coverage import coverage
from policy_engine.admin.openapi import read_openapi
from policy_engine.core.permissions import Grant, Route, requirement_text

DATA = Path(__file__).resolve().parents[1] / "data" / "openapi-coverage"
PETSTORE = str(DATA / "petstore.yaml")
PETSTORE_MAPPINGS = str(DATA / "petstore-permissions.yaml")
SIBLINGS = str(DATA / "siblings.yaml")
SIBLINGS_MAPPINGS = str(DATA / "siblings-permissions.yaml")
API = "arn:aws:execute-api:us-east-1:123456789012:a1b2c3d4e5"
OTHER_API = "arn:aws:execute-api:us-east-1:123456789012:zz9y8x7w6v"


def run_json(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, dict]:
    code = main(["validate", "--format", "json", "--sizes", "0", *args])
    return code, json.loads(capsys.readouterr().out)


def by_code(report: dict) -> dict[str, list[dict]]:
    out: dict[str, list[dict]] = {}
    for finding in report["findings"]:
        out.setdefault(finding["code"], []).append(finding)
    return out


def line(finding: dict) -> str:
    file, _, number = finding["where"].rpartition(":")
    return f"{Path(file).name}:{number}"


def by_line(findings: list[dict]) -> list[dict]:
    return sorted(findings, key=lambda f: int(f["where"].rpartition(":")[2]))


def test_every_finding_kind_on_the_pet_store(capsys):
    code, report = run_json(capsys, PETSTORE_MAPPINGS, "--openapi", PETSTORE)
    found = by_code(report)
    assert code == 1
    assert {c: sorted(line(f) for f in fs) for c, fs in found.items()} == {
        "wider": ["petstore-permissions.yaml:8"],            # GET /pet/* reaches findByStatus
        "open-but-mapped": ["petstore-permissions.yaml:10"],  # GET /health: security []
        "not-in-spec": ["petstore-permissions.yaml:11"],      # GET /pets
        "narrower": ["petstore.yaml:19"],                     # POST /pet mapped to read+write+admin
        "not-covered": ["petstore.yaml:32"],                  # DELETE /pet/{petId} on prod
        "not-authorizer": ["petstore-permissions.yaml:12",  # ANY /store/* grants it too
                           "petstore.yaml:36"],               # API key only
    }
    severities = {(f["code"], f["severity"]) for f in report["findings"]}
    assert severities == {("wider", "error"), ("not-covered", "error"), ("narrower", "warning"),
                          ("open-but-mapped", "warning"), ("not-in-spec", "warning"), ("not-authorizer", "info"),
                          ("not-authorizer", "warning")}
    assert (report["errors"], report["warnings"], report["infos"]) == (2, 4, 1)
    assert report["openapi"][0]["source"] == PETSTORE and report["openapi"][0]["operations"] == 8


def test_messages_name_both_sides_and_both_requirements(capsys):
    _, report = run_json(capsys, PETSTORE_MAPPINGS, "--openapi", PETSTORE)
    found = by_code(report)
    [wider] = found["wider"]
    # the spec's requirement (OR of ANDs), where the spec says it, and every mapping's side
    assert "petstore.yaml:26" in wider["message"]
    assert "pets:admin, or pets:read AND pets:write" in wider["message"]
    assert "GET /pet/findByStatus for pets:admin (at " in wider["message"]
    assert "petstore-permissions.yaml:9)" in wider["message"]
    assert "GET /pet/* for pets:read (at " in wider["message"]
    assert "GET /pet/findByStatus" in wider["message"]
    [narrower] = found["narrower"]
    assert "pets:read AND pets:write" in narrower["message"]
    assert "POST /pet for pets:admin AND pets:read AND pets:write (at " in narrower["message"]
    assert "petstore-permissions.yaml:7)" in narrower["message"]
    [uncovered] = found["not-covered"]
    assert "DELETE /pet/{petId}" in uncovered["message"] and "on stage prod" in uncovered["message"]
    assert "dev" not in uncovered["message"]  # the dev mapping grants it
    [opened] = found["open-but-mapped"]
    assert "petstore.yaml:40" in opened["message"]
    [unknown] = found["not-in-spec"]
    assert PETSTORE in unknown["message"] and unknown["message"].startswith("GET /pets ")


def test_text_output_and_fail_on(capsys):
    code = main(["validate", "--sizes", "0", PETSTORE_MAPPINGS, "--openapi", PETSTORE])
    out = capsys.readouterr().out
    assert code == 1
    assert "petstore-permissions.yaml:8: error: GET /pet/* for pets:read grants GET /pet/findByStatus" in out
    assert "petstore.yaml:36: info: GET /store/inventory" in out
    assert "2 error(s), 4 warning(s), 1 note(s)" in out
    assert main(["validate", PETSTORE_MAPPINGS, "--openapi", PETSTORE, "--fail-on", "error"]) == 1


def exact_petstore(tmp_path: Path, *, stage: str = "[dev, prod]") -> Path:
    path = tmp_path / "exact.yaml"
    path.write_text(f"""apis:
  - arn: {API}
    stages: {stage}
    routes:
      POST /pet: [{{allOf: {{scope: [pets:read, pets:write]}}}}]
      PUT /pet: [{{allOf: {{scope: [pets:read, pets:write]}}}}]
      GET /pet/findByStatus: [pets:admin, {{allOf: {{scope: [pets:read, pets:write]}}}}]
      GET /pet/*: [pets:read]
      DELETE /pet/{{petId}}: [pets:admin]
      ANY /store/*: [{{authenticated: true}}]
""")
    return path


def test_mappings_that_match_the_spec_are_clean(capsys):
    # Route templates grant exactly their route (GET /users/* would reach /users/me too).
    code, report = run_json(capsys, str(DATA / "siblings-exact.yaml"), "--openapi", SIBLINGS)
    assert (code, report["findings"]) == (0, [])


def test_a_template_reaches_an_operation_no_mapping_names(capsys, tmp_path):
    # Without its [] line, GET /store/inventory (API key only) has no mapping, so the engine
    # does not know the route: ANY /store/{proxy+}, written as ANY /store/*, lets callers in.
    unnamed = tmp_path / "petstore-unnamed.yaml"
    text = (DATA / "petstore-exact.yaml").read_text()
    unnamed.write_text(text.replace("      GET /store/inventory: []\n", ""))
    code, report = run_json(capsys, str(unnamed), "--openapi", PETSTORE)
    assert code == 1
    assert sorted((f["code"], f["severity"], line(f)) for f in report["findings"]) == [
        ("not-authorizer", "info", "petstore.yaml:36"), ("not-authorizer", "warning", "petstore-unnamed.yaml:12")]
    [message] = [f["message"] for f in report["findings"] if f["severity"] == "warning"]
    assert message.startswith("ANY /store/{proxy+} for any authenticated caller reaches GET /store/inventory")
    assert "no mapping names GET /store/inventory" in message and "petstore.yaml:36" in message
    assert main(["validate", str(unnamed), "--openapi", PETSTORE, "--fail-on", "error"]) == 0
    # with [] the route is named, granted to no caller: nothing to warn about
    capsys.readouterr()
    code, report = run_json(capsys, str(DATA / "petstore-exact.yaml"), "--openapi", PETSTORE)
    assert code == 0
    assert [(f["code"], f["severity"], line(f)) for f in report["findings"]] == [
        ("not-authorizer", "info", "petstore.yaml:36")]


def test_a_glob_written_for_the_parameter_route_is_wider_on_its_literal_sibling(tmp_path, capsys):
    code, report = run_json(capsys, str(exact_petstore(tmp_path)), "--openapi", PETSTORE)
    assert code == 1
    [wider] = by_code(report)["wider"]
    assert wider["message"].startswith("GET /pet/* for pets:read grants GET /pet/findByStatus")


def test_or_alternatives_missing_from_the_mappings_are_narrower(tmp_path, capsys):
    path = exact_petstore(tmp_path)
    path.write_text(path.read_text().replace(
        "GET /pet/findByStatus: [pets:admin, {allOf: {scope: [pets:read, pets:write]}}]",
        "GET /pet/findByStatus: [pets:admin]").replace("GET /pet/*", "GET /pet/{id}"))
    code, report = run_json(capsys, str(path), "--openapi", PETSTORE)
    [narrower] = by_code(report)["narrower"]
    assert code == 1 and line(narrower) == "petstore.yaml:26"
    assert "holding pets:read AND pets:write" in narrower["message"]


def test_siblings_and_the_greedy_route(capsys):
    code, report = run_json(capsys, SIBLINGS_MAPPINGS, "--openapi", SIBLINGS)
    found = by_code(report)
    assert code == 1
    assert sorted(line(f) for f in found["wider"]) == ["siblings-permissions.yaml:10", "siblings-permissions.yaml:6"]
    users, reports = by_line(found["wider"])
    # /users/* was written for {userId}; GET /users/me is its literal sibling, which needs profile
    assert users["message"].startswith("GET /users/* for users:read grants GET /users/me")
    assert "siblings.yaml:18" in users["message"]
    # /files/reports/* reaches part of ANY /files/{proxy+}, for GET only: an example request is given
    assert "reaches ANY /files/{proxy+} (e.g. /files/reports/" in reports["message"]
    assert "for GET" in reports["message"] and "part of it" in reports["message"]
    # ANY /files/* also reaches GET /files/public, which needs no authorization
    [opened] = found["open-but-mapped"]
    assert line(opened) == "siblings-permissions.yaml:9" and "GET /files/public" in opened["message"]
    assert "not-covered" not in found and "narrower" not in found and "not-in-spec" not in found


def test_a_partial_glob_does_not_cover(tmp_path, capsys):
    perms = tmp_path / "p.yaml"
    perms.write_text(f"apis:\n  - arn: {API}\n    stages: [dev]\n    routes:\n"
                     "      GET /users/1: [users:read]\n")
    code, report = run_json(capsys, str(perms), "--openapi", SIBLINGS)
    uncovered = {f["message"].split(" needs")[0]: f for f in by_code(report)["not-covered"]}
    assert code == 1
    assert "GET /users/1 for users:read" in uncovered["GET /users/{userId}"]["message"]  # reaches part of it
    assert set(uncovered) == {"GET /users/{userId}", "GET /users/me", "PATCH /users/me", "ANY /files/{proxy+}"}


def test_stage_star_mappings_count_on_every_stage(tmp_path, capsys):
    perms = tmp_path / "p.yaml"
    perms.write_text(f"""permissions:
  - {{arn: "{API}", stage: "*", httpVerb: GET, resource: "/users/{{userId}}", scope: users:read}}
  - {{arn: "{API}", stage: dev, httpVerb: GET, resource: /users/me, scope: profile}}
  - {{arn: "{API}", stage: prod, httpVerb: PATCH, resource: /users/me, scope: profile:write}}
""")
    _, report = run_json(capsys, str(perms), "--openapi", SIBLINGS)
    uncovered = {f["message"].split(" needs")[0]: f["message"] for f in by_code(report)["not-covered"]}
    assert "GET /users/{userId}" not in uncovered  # stage '*': granted on dev and on prod
    assert "on stage prod" in uncovered["GET /users/me"]
    assert "on stage dev" in uncovered["PATCH /users/me"]
    assert "on stages dev, prod" in uncovered["ANY /files/{proxy+}"]


def test_the_api_comes_from_arn_or_the_only_api_named(tmp_path, capsys):
    perms = tmp_path / "p.yaml"
    perms.write_text(f"""permissions:
  - {{arn: "{API}", stage: dev, httpVerb: GET, resource: /users/me, scope: profile}}
  - {{arn: "{OTHER_API}", stage: dev, httpVerb: GET, resource: /users/me, scope: profile}}
""")
    assert main(["validate", str(perms), "--openapi", SIBLINGS]) == 2
    assert "--arn" in capsys.readouterr().err
    code, report = run_json(capsys, str(perms), "--openapi", SIBLINGS, "--arn", OTHER_API)
    assert code == 1
    assert {line(f) for f in by_code(report)["not-covered"]} == {"siblings.yaml:15", "siblings.yaml:20",
                                                                "siblings.yaml:23"}
    assert main(["validate", str(perms), "--openapi", SIBLINGS, "--arn", "not-an-arn"]) == 2
    assert "not an API ARN" in capsys.readouterr().err


def test_a_bad_document_could_not_run_with_its_line(tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text("openapi: 3.0.3\ninfo: {title: x, version: '1'}\npaths:\n"
                   "  /a:\n    get:\n      security: [{nope: []}]\n")
    assert main(["validate", PETSTORE_MAPPINGS, "--openapi", str(bad)]) == 2
    err = capsys.readouterr().err
    assert "cannot read an OpenAPI document" in err and f"{bad}:6" in err
    assert main(["validate", PETSTORE_MAPPINGS, "--openapi", str(tmp_path / "missing.yaml")]) == 2


def test_the_api_catalog_openapi_key_gives_the_same_check(tmp_path, capsys):
    catalog = tmp_path / "apis.yaml"
    catalog.write_text(f"apis:\n  - arn: {API}\n    stages: [dev, prod]\n    routes: [GET /pets]\n"
                       f"    openapi: {PETSTORE}\n")
    code, report = run_json(capsys, PETSTORE_MAPPINGS, "--api-catalog", str(catalog))
    found = by_code(report)
    assert code == 1
    # the same findings as --openapi, except that GET /pets is a route the catalog lists
    assert {c: sorted(line(f) for f in fs) for c, fs in found.items()} == {
        "wider": ["petstore-permissions.yaml:8"],
        "open-but-mapped": ["petstore-permissions.yaml:10"],
        "narrower": ["petstore.yaml:19"],
        "not-covered": ["petstore.yaml:32"],
        "not-authorizer": ["petstore-permissions.yaml:12", "petstore.yaml:36"],
    }
    # a stage the catalog lists and no mapping names is checked too
    catalog.write_text(catalog.read_text().replace("[dev, prod]", "[dev, prod, test]"))
    _, report = run_json(capsys, PETSTORE_MAPPINGS, "--api-catalog", str(catalog))
    assert any("test" in f["message"] for f in by_code(report)["not-covered"])


def test_template_mappings_grant_exactly_their_route():
    # Built directly: a route template in a mapping resource is the permission model's.
    document = read_openapi(SIBLINGS)

    def grant(verb: str, resource: str, *scopes: str, line: int) -> Grant:
        return Grant(Route(API, "dev", verb, resource), requirement_text(scopes), f"perms.yaml:{line}")

    grants = [
        grant("GET", "users/{id}", "users:read", line=1),   # same shape as /users/{userId}: never /users/me
        grant("GET", "users/me", "profile", line=2),
        grant("PATCH", "users/me", "profile:write", line=3),
        grant("*", "files/{path+}", "files", line=4),       # ANY /files/{proxy+}; not GET /files/public
        grant("GET", "users/{id}/x", "users:read", line=5),  # no such route
    ]
    findings = coverage(grants, document, API)
    assert [(f.code, f.where) for f in findings] == [("not-in-spec", "perms.yaml:5")]


OAUTH = """components:
  securitySchemes:
    o: {type: oauth2, flows: {clientCredentials: {tokenUrl: "https://idp.example.com/t", scopes: {}}}}
"""


def test_an_exact_method_takes_its_requests_from_any_on_the_same_path(tmp_path, capsys):
    spec = tmp_path / "orders.yaml"
    spec.write_text("openapi: 3.0.3\ninfo: {title: orders, version: '1'}\n" + OAUTH + """paths:
  /orders:
    get: {security: [{o: [read]}]}
    x-amazon-apigateway-any-method: {security: [{o: [write]}]}
""")
    perms = tmp_path / "p.yaml"
    perms.write_text(f"apis:\n  - arn: {API}\n    stages: [dev]\n    routes:\n"
                     "      GET /orders: [read]\n      ANY /orders: [write]\n")
    code, report = run_json(capsys, str(perms), "--openapi", str(spec))
    # ANY /orders names a route, as the spec's any-method does: the GET route takes GET
    # from it, in API Gateway and in the engine (which denies GET /orders to writers)
    assert (code, report["findings"]) == (0, [])
    # an ANY glob is no route: it matches GET /orders too, so writers get in there
    perms.write_text(f"apis:\n  - arn: {API}\n    stages: [dev]\n    routes:\n"
                     "      GET /orders: [read]\n      ANY /order*: [write]\n")
    code, report = run_json(capsys, str(perms), "--openapi", str(spec))
    wider = [f for f in report["findings"] if f["code"] == "wider"]
    assert code == 1 and [line(f) for f in wider] == ["p.yaml:6"]
    assert wider[0]["message"].startswith("ANY /order* for write grants GET /orders,")
    # without the ANY mapping, the spec's ANY route is not covered
    perms.write_text(f"apis:\n  - arn: {API}\n    stages: [dev]\n    routes:\n"
                     "      GET /orders: [read]\n")
    code, report = run_json(capsys, str(perms), "--openapi", str(spec))
    [uncovered] = report["findings"]
    assert uncovered["code"] == "not-covered"
    assert uncovered["message"] == "ANY /orders needs write (the spec, here) but no mapping grants it"
    perms.write_text(f"apis:\n  - arn: {API}\n    stages: [dev]\n    routes:\n"
                     "      GET /orders: [read]\n      POST /orders: [write]\n")
    _, report = run_json(capsys, str(perms), "--openapi", str(spec))
    [uncovered] = report["findings"]  # ANY without GET (taken by the GET route) nor POST
    assert uncovered["message"] == ("ANY /orders needs write (the spec, here) but no mapping grants it for "
                                    "PUT, PATCH, DELETE, HEAD, OPTIONS")


def test_an_any_mapping_of_the_specs_any_method_is_not_open_but_mapped_beside_an_open_method(tmp_path, capsys):
    # The importer's own output: the spec's ANY is secured, its GET open (API Gateway's own
    # route, no authorizer). ANY /orders grants the ANY operation, not the open GET.
    spec = tmp_path / "orders.yaml"
    spec.write_text("openapi: 3.0.3\ninfo: {title: orders, version: '1'}\n" + OAUTH + """paths:
  /orders:
    get: {security: []}
    x-amazon-apigateway-any-method: {security: [{o: [write]}]}
  /orders/{id}:
    get: {security: []}
    x-amazon-apigateway-any-method: {security: [{o: [write]}]}
""")
    perms = tmp_path / "p.yaml"
    perms.write_text(f"apis:\n  - arn: {API}\n    stages: [dev]\n    routes:\n"
                     "      ANY /orders: [write]\n      ANY /orders/{id}: [write]\n")
    code, report = run_json(capsys, str(perms), "--openapi", str(spec))
    assert (code, report["findings"]) == (0, [])
    # A mapping of the open GET itself is still reported.
    perms.write_text(f"apis:\n  - arn: {API}\n    stages: [dev]\n    routes:\n"
                     "      ANY /orders: [write]\n      ANY /orders/{id}: [write]\n      GET /orders: [read]\n")
    _, report = run_json(capsys, str(perms), "--openapi", str(spec))
    assert [f["code"] for f in report["findings"]] == ["open-but-mapped"]
    # Without an ANY operation in the spec, an ANY mapping does grant the open GET: reported.
    spec.write_text(spec.read_text().replace("    x-amazon-apigateway-any-method: {security: [{o: [write]}]}\n", "", 1))
    perms.write_text(f"apis:\n  - arn: {API}\n    stages: [dev]\n    routes:\n"
                     "      ANY /orders: [write]\n      ANY /orders/{id}: [write]\n")
    _, report = run_json(capsys, str(perms), "--openapi", str(spec))
    assert "open-but-mapped" in [f["code"] for f in report["findings"]]


def test_the_base_path_mode_decides_the_routes(tmp_path, capsys):
    spec = tmp_path / "swagger.yaml"
    spec.write_text("""swagger: "2.0"
info: {title: v1, version: "1"}
basePath: /v1
securityDefinitions:
  o: {type: oauth2, flow: application, tokenUrl: "https://idp.example.com/t", scopes: {read: ""}}
paths:
  /pets:
    get: {security: [{o: [read]}]}
""")
    perms = tmp_path / "p.yaml"
    perms.write_text(f"apis:\n  - arn: {API}\n    stages: [dev]\n    routes:\n      GET /v1/pets: [read]\n")
    code, report = run_json(capsys, str(perms), "--openapi", str(spec), "--base-path", "prepend")
    assert (code, report["findings"]) == (0, [])
    code, report = run_json(capsys, str(perms), "--openapi", str(spec))  # ignore: the route is /pets
    assert code == 1 and sorted(f["code"] for f in report["findings"]) == ["not-covered", "not-in-spec"]
