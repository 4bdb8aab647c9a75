"""policy-engine migrate / sync / rollback as a user runs them (moto and DynamoDB Local)."""

from __future__ import annotations

import json
import shutil

import pytest

from policy_engine.admin.cli import main
from tests.conftest import ROOT


@pytest.fixture
def permissions(tmp_path):
    folder = tmp_path / "permissions"
    shutil.copytree(ROOT / "permissions", folder)
    return folder


def test_migrate_sync_dry_run_publish_rollback(backend, permissions, capsys, monkeypatch):
    target = "dynamodb://cli-" + backend.name
    monkeypatch.chdir(permissions.parent)
    assert main(["migrate", target, "--dry-run"]) == 0
    planned = capsys.readouterr().out
    assert "pending   0001_create_table" in planned and "pending   0002_snapshots" in planned
    assert main(["migrate", target]) == 0
    assert main(["migrate", target]) == 0
    assert f"{target}: up to date" in capsys.readouterr().out

    assert main(["sync", target, "--dry-run", "--max-lines", "3"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert len(out) == 5 and out[3] == "... and 18 more lines (--max-lines 0 prints all)"
    assert main(["sync", target]) == 0
    out = capsys.readouterr().out
    assert f"{target}: published v1 (21 added, 0 removed, 0 unchanged" in out

    pets = permissions / "pets.yaml"
    pets.write_text(pets.read_text().replace("DELETE /pets/*: [pets:admin]", "DELETE /pets/*: [pets:write]"))
    assert main(["sync", target, "--dry-run"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out == [
        "- a1b2c3d4e5 dev DELETE /pets/* -> pets:admin",
        "+ a1b2c3d4e5 dev DELETE /pets/* -> pets:write",
        "- a1b2c3d4e5 prod DELETE /pets/* -> pets:admin",
        "+ a1b2c3d4e5 prod DELETE /pets/* -> pets:write",
        f"{target}: dry run, would publish v2 (2 added, 2 removed, 19 unchanged)",
    ]
    assert main(["sync", target]) == 0
    assert f"{target}: published v2" in capsys.readouterr().out
    assert main(["sync", target]) == 0
    assert "unchanged at v2 (21 mappings); nothing written" in capsys.readouterr().out

    assert main(["rollback", target]) == 0
    assert f"{target}: published v3 (2 added, 2 removed, 19 unchanged; was v2)" in capsys.readouterr().out
    assert main(["rollback", target, "--list"]) == 0
    listed = capsys.readouterr().out.splitlines()
    assert [line.split()[0] for line in listed] == ["v1", "v2", "v3"] and listed[-1].endswith("rollback to v1")
    main(["migrate", target])  # keep the fixture-less table names reusable across parametrized runs
    capsys.readouterr()
    backend.client().delete_table(TableName=target.removeprefix("dynamodb://"))


def test_invalid_yaml_exits_2_with_every_problem(backend, tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text("permissions:\n  - arn: nope\n    stage: dev\n    httpVerb: GET\n    resource: /a\n    scope: s\n")
    assert main(["sync", "dynamodb://whatever", "--permissions", str(bad)]) == 2
    err = capsys.readouterr().err
    assert "policy-engine sync:" in err and "bad.yaml:2: arn 'nope' is not an API ARN" in err


def test_missing_table_exits_2_and_says_so(backend, capsys):
    assert main(["sync", "dynamodb://missing-table", "--permissions", str(ROOT / "permissions")]) == 2
    assert "dynamodb://missing-table does not exist" in capsys.readouterr().err


def test_a_held_claim_exits_1(table, capsys):
    from policy_engine.admin.publish.dynamodb import DynamoDbStore

    DynamoDbStore(table).claim(0, "someone-else")
    assert main(["sync", f"dynamodb://{table}", "--permissions", str(ROOT / "permissions")]) == 1
    assert "sync someone-else is publishing v1" in capsys.readouterr().err
    assert main(["sync", f"dynamodb://{table}", "--permissions", str(ROOT / "permissions"), "--take-over"]) == 0


def test_progress_is_drawn_only_on_a_terminal(tmp_path):
    import io

    from policy_engine.admin.cli._progress import TerminalProgress

    class Tty(io.StringIO):
        def isatty(self) -> bool:
            return True

    pipe, tty = io.StringIO(), Tty()
    for stream in (pipe, tty):
        progress = TerminalProgress("sync", stream)
        progress(25, 50)
        progress(50, 50)
        progress.close()
    assert pipe.getvalue() == ""
    drawn = tty.getvalue()
    assert "\rsync: write: 50/50 items written" in drawn
    # close() blanks the line, so the summary that follows starts clean.
    assert drawn.endswith("\r" + " " * len("sync: write: 50/50 items written") + "\r")


@pytest.mark.parametrize("backend", ["moto"], indirect=True)
def test_s3_rollback_refuses_a_history_copy_that_was_never_published(bucket, backend, tmp_path, capsys):
    from policy_engine.adapters.s3 import encode_snapshot
    from policy_engine.admin.publish import load_desired
    from policy_engine.core.publish import digest
    from tests.faults import write_permissions

    target = f"s3://{bucket}/p.json"
    files = [write_permissions(tmp_path / f"{n}.yaml", [("GET", f"/{n}", "s")]) for n in ("one", "two", "three")]
    for path in files:
        assert main(["sync", target, "--permissions", str(path)]) == 0
    evil = load_desired(write_permissions(tmp_path / "evil.yaml", [("GET", "/*", "s")]))
    backend.client("s3").put_object(Bucket=bucket, Key="p.json.history/0000000002.json",
                                    Body=encode_snapshot(2, evil, "planted", "2026-01-01T00:00:00+00:00"))
    capsys.readouterr()

    assert main(["rollback", target, "--to", "2"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("policy-engine rollback: ") and f"s3://{bucket}/p.json.history/0000000002.json" in err
    assert f"is not what was published as v2 ({digest(load_desired(files[1]))}" in err and digest(evil) in err

    assert main(["rollback", target, "--list"]) == 0
    listed = capsys.readouterr().out.splitlines()
    assert [line.split()[0] for line in listed] == ["v1", "v2", "v3"]
    assert digest(load_desired(files[1])) in listed[1] and "not restorable:" in listed[1]
    assert digest(evil) not in listed[1].split("not restorable:")[0]
    assert "not restorable" not in listed[2]
    assert main(["rollback", target, "--list", "--format", "json"]) == 0
    entry = json.loads(capsys.readouterr().out)["versions"][1]
    assert entry["published_at"] is None and entry["mappings"] is None and entry["note"].startswith("not restorable:")


def test_migrate_on_a_table_with_a_numeric_sort_key_exits_2_and_says_which_attribute(backend, capsys):
    import uuid

    client = backend.client()
    name = f"perm-{uuid.uuid4().hex[:10]}"
    client.create_table(TableName=name, BillingMode="PAY_PER_REQUEST",
                        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"},
                                   {"AttributeName": "sk", "KeyType": "RANGE"}],
                        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"},
                                              {"AttributeName": "sk", "AttributeType": "N"}])
    assert main(["migrate", f"dynamodb://{name}"]) == 2
    captured = capsys.readouterr()
    assert captured.err == (f"policy-engine migrate: table {name}: key attribute 'sk' is N (number); "
                            "policy-engine expects S (string)\n")
    assert "applying" not in captured.out
    assert client.scan(TableName=name)["Items"] == []


def test_a_note_with_control_characters_is_listed_escaped(backend, permissions, capsys, monkeypatch):
    # A note is anyone's text: listed raw, an escape sequence would drive the reader's terminal.
    target = "dynamodb://notes-" + backend.name
    monkeypatch.chdir(permissions.parent)
    assert main(["migrate", target]) == 0
    assert main(["sync", target, "--note", "fix\x1b[2J\nsecond line"]) == 0
    capsys.readouterr()
    assert main(["rollback", target, "--list"]) == 0
    out = capsys.readouterr().out
    assert "\x1b" not in out and "fix\\x1b[2J\\x0asecond line" in out and len(out.splitlines()) == 1
