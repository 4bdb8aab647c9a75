"""``policy-engine validate``: each check, the output formats and the exit codes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from policy_engine.admin.cli import main

ROOT = Path(__file__).resolve().parents[2]
API = "arn:aws:execute-api:us-east-1:123456789012:a1b2c3d4e5"


def run_json(capsys, *args: str) -> tuple[int, dict]:
    code = main(["validate", "--format", "json", *args])
    return code, json.loads(capsys.readouterr().out)


def codes(report: dict) -> dict[str, list[dict]]:
    out: dict[str, list[dict]] = {}
    for finding in report["findings"]:
        out.setdefault(finding["code"], []).append(finding)
    return out


def write(tmp_path: Path, text: str, name: str = "perms.yaml") -> str:
    folder = tmp_path / "permissions"
    folder.mkdir(exist_ok=True)
    (folder / name).write_text(text)
    return str(folder)


def test_the_shipped_permissions_and_catalogs_are_clean(capsys):
    code, report = run_json(capsys, str(ROOT / "permissions"), "--catalog", str(ROOT / "catalog"))
    assert code == 0, report["findings"]
    # The catalog's OpenAPI fragment declares routes, no security: one note says so.
    assert [(f["severity"], f["code"]) for f in report["findings"]] == [("info", "not-authorizer")]
    assert report["mappings"] == 21
    subjects = {row["subject"] for row in report["sizes"]}
    assert {"scope pets:read", "client pet-store-web", "client inventory-sync", "group pet-sitters",
            "client pet-sitter-app"} <= subjects


def test_every_check_fires_on_the_flawed_example(capsys):
    code, report = run_json(capsys, str(ROOT / "tests/data/flawed"), "--catalog", str(ROOT / "catalog"))
    assert code == 1
    found = codes(report)
    where = {c: sorted({f["where"].rsplit(":", 1)[1] for f in fs}) for c, fs in found.items()}
    assert where["duplicate"] == ["6"]
    assert where["shadowed"] == ["12", "8"]
    assert where["conflicting-forms"] == ["15", "9"]
    assert where["trailing-slash"] == ["10"] and found["trailing-slash"][0]["severity"] == "error"
    assert where["mixed-arn"] == ["20"]
    assert where["schema"] == ["25", "27", "28"]
    assert where["unknown-scope"] == ["13"] and "pets:delete" in found["unknown-scope"][0]["message"]
    assert {f["message"].split("'")[1] for f in found["unused-scope"]} == {"pets:admin", "store:write"}
    assert where["unknown-api"] == ["20"]
    assert where["unknown-stage"] == ["30"]
    assert where["unknown-route"] == ["10", "12"]
    assert "'FETCH'" in " ".join(f["message"] for f in found["schema"])


def test_yaml_syntax_errors_are_findings_with_their_line(tmp_path, capsys):
    folder = write(tmp_path, "apis:\n  - arn: x\n    stages: [dev\n")
    code, report = run_json(capsys, folder)
    assert code == 1
    assert report["findings"][0]["code"] == "schema" and report["findings"][0]["where"].endswith("perms.yaml:4")


def test_a_missing_path_or_catalog_means_it_could_not_run(tmp_path, capsys):
    assert main(["validate", str(tmp_path / "nope")]) == 2
    assert main(["validate", str(ROOT / "permissions"), "--scope-catalog", str(tmp_path / "none.yaml")]) == 2
    bad = tmp_path / "scopes.yaml"
    bad.write_text("scopes: 3\n")
    assert main(["validate", str(ROOT / "permissions"), "--scope-catalog", str(bad)]) == 2
    assert "scopes.yaml:1" in capsys.readouterr().err


def test_mixed_stage_names_and_api_ids(tmp_path, capsys):
    folder = write(tmp_path, f"""permissions:
  - {{arn: "{API}", stage: dev, httpVerb: GET, resource: /a, scope: s}}
  - {{arn: "{API}", stage: Dev, httpVerb: GET, resource: /b, scope: s}}
  - {{arn: "arn:aws:execute-api:us-east-1:123456789012:MyApi", stage: dev, httpVerb: GET, resource: /c, scope: s}}
""")
    code, report = run_json(capsys, folder)
    found = codes(report)
    assert code == 1
    assert found["mixed-stage"][0]["where"].endswith(":3")
    assert "MyApi" in found["api-id"][0]["message"]


def test_wildcard_stage_and_verb_shadow_narrower_mappings_of_the_same_scope_only(tmp_path, capsys):
    folder = write(tmp_path, f"""permissions:
  - {{arn: "{API}", stage: "*", httpVerb: ANY, resource: /orders/*, scope: s}}
  - {{arn: "{API}", stage: dev, httpVerb: PATCH, resource: /orders/7/lines/*, scope: s}}
  - {{arn: "{API}", stage: dev, httpVerb: PATCH, resource: /orders/7, scope: other}}
  - {{arn: "{API}", stage: dev, httpVerb: GET, resource: /orders, scope: s}}
""")
    _code, report = run_json(capsys, folder)
    shadowed = codes(report)["shadowed"]
    assert [f["where"].rsplit(":", 1)[1] for f in shadowed] == ["3"]
    assert "ANY /orders/*" in shadowed[0]["message"]


def test_policy_size_is_an_error_over_the_limit_and_a_warning_near_it(tmp_path, capsys):
    routes = "\n".join(f"      GET /collection-{i:03d}/items: [big]" for i in range(100))
    routes += "\n" + "\n".join(f"      GET /near-{i:03d}/items: [near]" for i in range(85))
    folder = write(tmp_path, f"apis:\n  - arn: {API}\n    stages: [prod]\n    routes:\n{routes}\n")
    clients = tmp_path / "clients.yaml"
    clients.write_text("clients:\n  - id: small-client\n    scopes: [near]\n")
    code, report = run_json(capsys, folder, "--client-catalog", str(clients))
    found = codes(report)
    assert code == 1
    assert [f["message"].split(" gets")[0] for f in found["policy-size"]] == ["scope big"]
    assert sorted(f["message"].split(" gets")[0] for f in found["policy-size-near"]) == [
        "client small-client", "scope near"]
    biggest = report["sizes"][0]
    assert biggest["subject"] == "scope big" and biggest["bytes"] > 8192 and biggest["routes"] == 100
    # --fail-on error: warnings alone no longer fail the run
    folder2 = write(tmp_path, f"apis:\n  - arn: {API}\n    stages: [prod]\n    routes:\n"
                    + "\n".join(f"      GET /near-{i:03d}/items: [near]" for i in range(85)) + "\n", "perms.yaml")
    assert main(["validate", folder2, "--fail-on", "error"]) == 0
    assert main(["validate", folder2]) == 1


def test_text_output_uses_colour_only_when_asked_or_on_a_terminal(capsys):
    flawed = str(ROOT / "tests/data/flawed")
    main(["validate", flawed])
    plain = capsys.readouterr().out
    assert "\033[" not in plain and "error: " in plain and "[schema]" in plain
    main(["validate", flawed, "--color", "always"])
    assert "\033[31merror\033[0m" in capsys.readouterr().out


@pytest.mark.parametrize("spelling", ["- GET /store/orders/{orderId}", "- ANY /store/{proxy+}"])
def test_api_catalog_routes_match_by_template(tmp_path, capsys, spelling):
    folder = write(tmp_path, f"""permissions:
  - {{arn: "{API}", stage: dev, httpVerb: GET, resource: /store/orders/*, scope: s}}
""")
    catalog = tmp_path / "apis.yaml"
    catalog.write_text(f"apis:\n  - arn: {API}\n    stages: [dev]\n    routes:\n      {spelling}\n")
    code, report = run_json(capsys, folder, "--api-catalog", str(catalog))
    assert code == 0, report["findings"]


def test_lone_trailing_slash_and_any_versus_star_are_reported(tmp_path, capsys):
    folder = write(tmp_path, f"""permissions:
  - {{arn: "{API}", stage: dev, httpVerb: GET, resource: /reports/, scope: s}}
  - {{arn: "{API}", stage: dev, httpVerb: ANY, resource: /orders, scope: s}}
  - {{arn: "{API}", stage: dev, httpVerb: "*", resource: /orders, scope: t}}
""")
    code, report = run_json(capsys, folder)
    found = codes(report)
    assert code == 1
    assert found["trailing-slash"][0]["severity"] == "warning" and found["trailing-slash"][0]["where"].endswith(":2")
    assert "ANY and '*'" in found["conflicting-forms"][0]["message"]


def test_openapi_paths_extend_the_api_catalog(tmp_path, capsys):
    folder = write(tmp_path, f"""permissions:
  - {{arn: "{API}", stage: dev, httpVerb: DELETE, resource: /pets/*, scope: s}}
  - {{arn: "{API}", stage: dev, httpVerb: POST, resource: /pets/*, scope: s}}
""")
    (tmp_path / "spec.yaml").write_text("openapi: 3.0.1\npaths:\n  /pets/{id}:\n    delete: {}\n")
    catalog = tmp_path / "apis.yaml"
    catalog.write_text(f"apis:\n  - arn: {API}\n    stages: [dev]\n    openapi: spec.yaml\n")
    code, report = run_json(capsys, folder, "--api-catalog", str(catalog))
    unknown = codes(report)["unknown-route"]
    assert code == 1 and [f["where"].rsplit(":", 1)[1] for f in unknown] == ["3"]
    catalog.write_text(f"apis:\n  - arn: {API}\n    stage: [dev]\n")
    assert main(["validate", folder, "--api-catalog", str(catalog)]) == 2
    assert "unknown key 'stage'" in capsys.readouterr().err


def test_a_stage_star_mapping_too_long_for_the_longest_stage_is_a_schema_error_with_its_line(tmp_path, capsys):
    # 390 characters on stage 'dev'; 513 on a 128-character stage, which '*' also stands for.
    resource = "/" + "r" * (513 - len(API) - 3 - 128 - 3)
    folder = write(tmp_path, f"""permissions:
  - {{arn: "{API}", stage: dev, httpVerb: GET, resource: /a, scope: s}}
  - {{arn: "{API}", stage: "*", httpVerb: GET, resource: {resource}, scope: s}}
""")
    code, report = run_json(capsys, folder)
    assert code == 1
    [finding] = codes(report)["schema"]
    assert finding["where"].endswith("perms.yaml:3") and finding["severity"] == "error"
    assert "513" in finding["message"] and "512" in finding["message"]


def test_groups_and_roles_are_declared_in_the_catalog_like_scopes(tmp_path, capsys):
    permissions = write(tmp_path, f"""\
apis:
  - arn: {API}
    stages: [dev]
    routes:
      GET /pets: [pets:read, {{group: pet-readers}}, {{role: Pets.Read.All}}]
      POST /pets: [{{allOf: {{group: [staff], role: [writer], permission: [x]}}}}]
""")
    catalog = tmp_path / "catalog"
    catalog.mkdir()
    (catalog / "scopes.yaml").write_text("scopes: [pets:read]\ngroups:\n  pet-readers: readers\n  old-group: gone\n"
                                         "roles: [Pets.Read.All]\n")
    code, report = run_json(capsys, permissions, "--catalog", str(catalog))
    found = codes(report)
    assert code == 1
    assert [f["message"] for f in found["unknown-group"]] == ["group 'staff' is not declared in the "
                                                             f"{catalog / 'scopes.yaml'}"]
    assert [f["message"] for f in found["unknown-role"]] == ["role 'writer' is not declared in the "
                                                            f"{catalog / 'scopes.yaml'}"]
    assert [f["message"] for f in found["unused-group"]] == ["group 'old-group' is declared but no mapping grants "
                                                            "it anything"]
    assert found["unused-group"][0]["where"].endswith("scopes.yaml:4")
    assert "unknown-scope" not in found and "unused-role" not in found
    # sizes: one row per grant, all-of set
    subjects = {row["subject"] for row in report["sizes"]}
    assert {"scope pets:read", "group pet-readers", "role Pets.Read.All",
            "all of group staff + permission x + role writer"} <= subjects


def test_routes_no_single_policy_allows_exactly_are_reported_per_caller(tmp_path, capsys):
    # GET /docs/{id}/meta's docs/*/meta also matches docs/1/2/meta, which the greedy route takes
    path = tmp_path / "docs.yaml"
    path.write_text(
        "apis:\n  - arn: arn:aws:execute-api:us-east-1:123456789012:a1b2c3d4e5\n    stages: [dev]\n    routes:\n"
        "      GET /docs/{id}/meta: [docs:meta]\n      GET /docs/{proxy+}: [docs:admin]\n"
        "      GET /pet/{petId}: [pets:read]\n      GET /pet/findByStatus: [pets:admin]\n"
    )
    code, report = run_json(capsys, str(path))
    assert code == 1
    exact = sorted((f["code"], f["where"].rsplit(":", 1)[-1]) for f in report["findings"])
    assert exact == [("not-exact", "5"), ("not-exact", "6")]  # the pet routes nest: no finding
    rows = {row["subject"]: row["per_request"] for row in report["sizes"]}
    assert rows["scope docs:meta"] == ["GET /docs/{id}/meta"] and rows["scope pets:read"] == []


def test_a_fifo_is_refused_without_reading_it(tmp_path, capsys):
    # Nothing may wait for a writer that never comes (a permission file, or one met in a folder).
    import os

    fifo = tmp_path / "pets.yaml"
    os.mkfifo(fifo)
    assert main(["validate", str(fifo)]) == 1
    assert f"{fifo}: error: not a regular file or folder" in capsys.readouterr().out


def test_a_file_that_cannot_be_read_does_not_hide_the_others_problems(tmp_path, capsys):
    (tmp_path / "a.yaml").write_bytes(b"\xff\xfe")
    (tmp_path / "b.yaml").write_text("permissions:\n  - arn: x\n")
    assert main(["validate", str(tmp_path)]) == 1
    out = capsys.readouterr().out
    assert "a.yaml: error: not UTF-8 text" in out and "b.yaml:2: error: stage is required" in out
