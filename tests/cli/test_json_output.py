"""--format json on every command that reports, with exactly the fields docs/cli.md lists;
sync's diff before its write; progress on a terminal only."""

from __future__ import annotations

import io
import json
import shutil
import uuid
from pathlib import Path
from typing import Any

import pytest

from policy_engine.admin.cli import main
from policy_engine.admin.cli.cli_doc import JSON_FIELDS
from policy_engine.core.iam import evaluate_response
from tests.conftest import API, ROOT, token_event

MOTO = pytest.mark.parametrize("backend", ["moto"], indirect=True)


def _fields(command: str) -> list[str]:
    return [name for name, _ in JSON_FIELDS[command]]


def _run_json(argv: list[str], capsys: Any, expected_status: int = 0) -> Any:
    capsys.readouterr()
    assert main([*argv, "--format", "json"]) == expected_status
    out = capsys.readouterr().out
    return json.loads(out)  # the whole of stdout is one document


@pytest.fixture
def permissions(tmp_path: Path) -> Path:
    folder = tmp_path / "permissions"
    shutil.copytree(ROOT / "permissions", folder)
    return folder


def _target() -> str:
    return f"dynamodb://cli-json-{uuid.uuid4().hex[:8]}"


@MOTO
def test_migrate_sync_rollback_report_the_documented_fields(backend, permissions, capsys):
    target = _target()
    planned = _run_json(["migrate", target, "--dry-run"], capsys)
    assert list(planned) == _fields("migrate")
    assert planned["applied"] == [] and planned["pending"] and planned["up_to_date"] is False
    done = _run_json(["migrate", target], capsys)
    assert done["applied"] == done["pending"] and done["up_to_date"] is True
    assert _run_json(["migrate", target], capsys)["pending"] == []

    dry = _run_json(["sync", target, "--permissions", str(permissions), "--dry-run"], capsys)
    assert list(dry) == _fields("sync")
    assert dry["status"] == "dry_run" and dry["version_after"] == dry["version_before"] == 0
    assert len(dry["added"]) == 21 and dry["removed"] == [] and dry["error"] is None
    assert set(dry["added"][0]) == {"api", "stage", "verb", "resource", "needs"}

    published = _run_json(["sync", target, "--permissions", str(permissions)], capsys)
    assert published["status"] == "published" and published["version_after"] == 1
    assert published["added"] == dry["added"] and published["digest"] == dry["digest"]

    pets = permissions / "pets.yaml"
    pets.write_text(pets.read_text().replace("DELETE /pets/*: [pets:admin]", "DELETE /pets/*: [pets:write]"))
    changed = _run_json(["sync", target, "--permissions", str(permissions)], capsys)
    assert [(m["verb"], m["resource"], m["needs"]) for m in changed["removed"]] == [
        ("DELETE", "/pets/*", "pets:admin")] * 2
    assert changed["unchanged"] == 19 and changed["version_after"] == 2
    assert _run_json(["sync", target, "--permissions", str(permissions)], capsys)["status"] == "unchanged"

    rolled = _run_json(["rollback", target], capsys)
    assert list(rolled) == _fields("sync") and rolled["command"] == "rollback"
    assert rolled["status"] == "published" and rolled["version_after"] == 3
    listed = _run_json(["rollback", target, "--list"], capsys)
    assert list(listed) == _fields("rollback --list")
    assert [v["version"] for v in listed["versions"]] == [1, 2, 3]
    assert list(listed["versions"][0]) == ["version", "digest", "mappings", "published_at", "note", "added",
                                           "removed"]


@MOTO
def test_a_refused_sync_is_exit_1_with_the_same_fields(backend, table, capsys):
    from policy_engine.admin.publish.dynamodb import DynamoDbStore

    DynamoDbStore(table).claim(0, "someone-else")
    refused = _run_json(["sync", f"dynamodb://{table}", "--permissions", str(ROOT / "permissions")], capsys, 1)
    assert list(refused) == _fields("sync")
    assert refused["status"] == "refused" and "someone-else is publishing" in refused["error"]


@MOTO
def test_sync_prints_the_diff_before_it_writes(backend, table, permissions, capsys, monkeypatch):
    from policy_engine.admin.publish.dynamodb import DynamoDbTarget

    seen: list[str] = []
    original = DynamoDbTarget.apply

    def apply(self: Any, *args: Any, **kwargs: Any) -> int:
        seen.append(capsys.readouterr().out)  # what the user has read when the first write starts
        return original(self, *args, **kwargs)

    monkeypatch.setattr(DynamoDbTarget, "apply", apply)
    assert main(["sync", f"dynamodb://{table}", "--permissions", str(permissions)]) == 0
    (before,) = seen
    lines = before.splitlines()
    assert len(lines) == 21 and all(line.startswith("+ a1b2c3d4e5 ") for line in lines)
    assert capsys.readouterr().out.startswith(f"dynamodb://{table}: published v1")


@MOTO
def test_a_dry_run_shows_the_same_diff_and_writes_nothing(backend, table, permissions, capsys, monkeypatch):
    from policy_engine.admin.publish.dynamodb import DynamoDbTarget

    def refuse(*args: Any, **kwargs: Any) -> int:
        raise AssertionError("a dry run wrote")

    monkeypatch.setattr(DynamoDbTarget, "apply", refuse)
    assert main(["sync", f"dynamodb://{table}", "--permissions", str(permissions), "--dry-run"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 22 and lines[-1].endswith("dry run, would publish v1 (21 added, 0 removed, 0 unchanged)")


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


@MOTO
@pytest.mark.parametrize(("output", "drawn"), [("text", True), ("json", False)])
def test_progress_names_each_phase_on_a_terminal_only(backend, table, permissions, capsys, monkeypatch, output,
                                                      drawn):
    terminal = _Terminal()
    monkeypatch.setattr("sys.stderr", terminal)
    assert main(["sync", f"dynamodb://{table}", "--permissions", str(permissions), "--format", output]) == 0
    text = terminal.getvalue()
    if drawn:
        for phase in ("parse...", "plan...", "write..."):
            assert f"\rsync dynamodb://{table}: {phase}" in text
        assert "items written" in text
    else:
        assert text == ""


@MOTO
def test_no_progress_when_stderr_is_a_pipe(backend, table, permissions, capfd):
    assert main(["sync", f"dynamodb://{table}", "--permissions", str(permissions)]) == 0
    assert "\r" not in capfd.readouterr().err


def test_validate_progress_is_drawn_on_a_terminal(capsys, monkeypatch):
    terminal = _Terminal()
    monkeypatch.setattr("sys.stderr", terminal)
    assert main(["validate", str(ROOT / "permissions")]) == 0
    assert "\rvalidate: parse..." in terminal.getvalue() and "\rvalidate: check..." in terminal.getvalue()


def test_bundle_reports_the_documented_fields(tmp_path, capsys, monkeypatch):
    from policy_engine.admin.cli import bundle as command
    from policy_engine.admin.packaging import Bundle

    phases: list[str] = []

    def build(output: Path, **options: Any) -> Bundle:
        for name in ("parse permissions and collect modules", "resolve and unpack wheels", "check and zip"):
            options["phase"](name)
            phases.append(name)
        return Bundle(path=output, sha256="0" * 64, size=10, unzipped_size=20, files=3, wheels=("a.whl",))

    monkeypatch.setattr(command, "build_bundle", build)
    report = _run_json(["bundle", "--output", str(tmp_path / "b.zip"), "--no-compile"], capsys)
    assert list(report) == _fields("bundle")
    assert report["path"] == str(tmp_path / "b.zip") and report["bytecode"] is False and report["wheels"] == ["a.whl"]
    assert report["mypyc"] is False
    assert len(phases) == 3


def test_validate_explain_invoke_import_report_the_documented_fields(tmp_path, capsys, idp):
    assert list(_run_json(["validate", str(ROOT / "permissions")], capsys)) == _fields("validate")
    explained = _run_json(["explain", "--scopes", "pets:read", "--permissions", str(ROOT / "permissions"),
                           "--request", "GET /dev/pets/12"], capsys)
    assert list(explained) == _fields("explain")
    response = explained["policies"][0]["response"]
    assert evaluate_response(response, f"{API}/dev/GET/pets/12").value == "Allow"
    diff = _run_json(["explain", "--diff", str(ROOT / "permissions"), str(ROOT / "tests/data/permissions-next")],
                     capsys)
    assert list(diff) == _fields("explain --diff")

    event = tmp_path / "event.json"
    event.write_text(json.dumps(token_event(None)))
    invoked = _run_json(["invoke", "--event", str(event), "--local-idp", "--scopes", "pets:read",
                         "--permissions", str(ROOT / "permissions")], capsys)
    assert list(invoked) == _fields("invoke")
    assert invoked["status"] == 200

    out = tmp_path / "api.yaml"
    imported = _run_json(["import", "openapi", str(ROOT / "catalog/petstore-openapi.yaml"), "--arn", API,
                          "--stages", "dev", "-o", str(out)], capsys)
    assert list(imported) == _fields("import openapi")
    assert imported["status"] == "written" and out.is_file()


def test_every_command_that_reports_has_json_and_documents_it():
    from policy_engine.admin.cli import build_parser
    from policy_engine.admin.cli.cli_doc import _commands

    parsers = {name: parser for name, _, parser in _commands(build_parser())}
    for name in ("validate", "explain", "invoke", "import openapi", "sync", "rollback", "promote", "discard", "migrate",
                 "bundle"):
        formats = [a for a in parsers[name]._actions if "--format" in a.option_strings]
        assert formats and formats[0].choices == ("text", "json") and formats[0].default == "text", name
        assert name in JSON_FIELDS, name


def test_a_command_that_cannot_run_prints_its_error_as_the_json_document(tmp_path, capsys):
    assert main(["validate", str(tmp_path / "missing"), "--format", "json"]) == 2
    captured = capsys.readouterr()
    error = json.loads(captured.out)["error"]
    assert error["command"] == "validate" and error["code"] == "store_unavailable"
    assert "missing: no such file or folder" in error["message"] and error["message"] in captured.err
    # Without --format json, stdout stays empty.
    assert main(["validate", str(tmp_path / "missing")]) == 2
    assert capsys.readouterr().out == ""
