"""policy-engine migrate / sync / rollback as a user runs them (moto and DynamoDB Local)."""

from __future__ import annotations

import shutil

import pytest

from policy_engine.cli import main
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
    assert "pending   0001_create_table" in capsys.readouterr().out
    assert main(["migrate", target]) == 0
    assert main(["migrate", target]) == 0
    assert f"{target}: up to date" in capsys.readouterr().out

    assert main(["sync", target, "--dry-run", "--max-lines", "3"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert len(out) == 5 and out[3] == "... and 14 more lines (--max-lines 0 prints all)"
    assert main(["sync", target]) == 0
    out = capsys.readouterr().out
    assert f"{target}: published v1 (17 added, 0 removed, 0 unchanged" in out

    pets = permissions / "pets.yaml"
    pets.write_text(pets.read_text().replace("DELETE /pets/*: [pets:admin]", "DELETE /pets/*: [pets:write]"))
    assert main(["sync", target, "--dry-run"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out == [
        "- a1b2c3d4e5 dev DELETE /pets/* -> pets:admin",
        "+ a1b2c3d4e5 dev DELETE /pets/* -> pets:write",
        "- a1b2c3d4e5 prod DELETE /pets/* -> pets:admin",
        "+ a1b2c3d4e5 prod DELETE /pets/* -> pets:write",
        f"{target}: dry run, would publish v2 (2 added, 2 removed, 15 unchanged)",
    ]
    assert main(["sync", target]) == 0
    assert f"{target}: published v2" in capsys.readouterr().out
    assert main(["sync", target]) == 0
    assert "unchanged at v2 (17 mappings); nothing written" in capsys.readouterr().out

    assert main(["rollback", target]) == 0
    assert f"{target}: published v3 (2 added, 2 removed, 15 unchanged; was v2)" in capsys.readouterr().out
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
    from policy_engine.adapters.dynamodb import DynamoDbStore

    DynamoDbStore(table).claim(0, "someone-else")
    assert main(["sync", f"dynamodb://{table}", "--permissions", str(ROOT / "permissions")]) == 1
    assert "sync someone-else is publishing v1" in capsys.readouterr().err
    assert main(["sync", f"dynamodb://{table}", "--permissions", str(ROOT / "permissions"), "--take-over"]) == 0


def test_progress_is_drawn_only_on_a_terminal(tmp_path):
    import io

    from policy_engine.cli._progress import TerminalProgress

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
    assert tty.getvalue().endswith("\rsync: 50/50 items written\n")
