"""sync --candidate, promote, discard and rollback --list as a user runs them: text, JSON, exit codes."""

from __future__ import annotations

import json
from typing import Any

import pytest

from policy_engine.admin.cli import main
from policy_engine.admin.cli.cli_doc import JSON_FIELDS
from tests.faults import write_permissions

MOTO = pytest.mark.parametrize("backend", ["moto"], indirect=True)


def _fields(command: str) -> list[str]:
    return [name for name, _ in JSON_FIELDS[command]]


def _json(argv: list[str], capsys: Any, status: int = 0) -> Any:
    capsys.readouterr()
    assert main([*argv, "--format", "json"]) == status
    return json.loads(capsys.readouterr().out)


@pytest.fixture(params=["dynamodb", "s3"])
def target(request: pytest.FixtureRequest, backend: Any) -> str:
    if request.param == "dynamodb":
        return f"dynamodb://{request.getfixturevalue('table')}"
    return f"s3://{request.getfixturevalue('bucket')}/permissions.json"


@MOTO
def test_candidate_promote_discard_and_the_listing_in_text(target, tmp_path, capsys):
    live = write_permissions(tmp_path / "live.yaml", [("GET", "/a", "s"), ("GET", "/b", "s")])
    shadow = write_permissions(tmp_path / "shadow.yaml", [("GET", "/a", "s"), ("GET", "/c", "s")])
    assert main(["sync", target, "--permissions", str(live)]) == 0
    capsys.readouterr()

    assert main(["sync", target, "--permissions", str(shadow), "--candidate", "--note", "PR 7"]) == 0
    assert capsys.readouterr().out.splitlines() == [
        "- a1b2c3d4e5 dev GET /b -> s",
        "+ a1b2c3d4e5 dev GET /c -> s",
        f"{target}: published candidate c1 (1 added, 1 removed, 1 unchanged against v1; no candidate before); "
        "v1 still decides",
    ]
    other = write_permissions(tmp_path / "other.yaml", [("GET", "/d", "s")])
    assert main(["sync", target, "--permissions", str(other), "--candidate"]) == 0
    assert "published candidate c2 (1 added, 2 removed, 0 unchanged against v1; replaced c1)" in \
        capsys.readouterr().out
    assert main(["discard", target]) == 0
    assert capsys.readouterr().out == (f"{target}: discarded candidate c2 (1 mappings, published against v1); "
                                       "v1 stays\n")
    assert main(["discard", target]) == 2
    assert "no candidate to discard" in capsys.readouterr().err

    assert main(["sync", target, "--permissions", str(shadow), "--candidate", "--note", "PR 7"]) == 0
    assert main(["promote", target, "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert out.endswith(f"{target}: dry run, would promote c3 as v2 (1 added, 1 removed, 1 unchanged)\n")
    assert main(["promote", target]) == 0
    assert capsys.readouterr().out.splitlines()[-1] == (
        f"{target}: promoted c3 as v2 (1 added, 1 removed, 1 unchanged; was v1); candidate removed")
    assert main(["promote", target]) == 2
    assert "no candidate to promote" in capsys.readouterr().err

    assert main(["rollback", target, "--list"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split()[0] for line in lines] == ["v1", "v2", "c1", "c2", "c3"]
    assert lines[1].endswith("promote c3: PR 7")
    assert lines[2].endswith("PR 7  [replaced by c2, was on v1]")
    assert lines[3].endswith("[discarded, was on v1]")
    assert lines[4].endswith("PR 7  [promoted as v2, was on v1]")


@MOTO
def test_promote_is_refused_with_exit_1_when_live_moved_and_force_promotes(target, tmp_path, capsys):
    live = write_permissions(tmp_path / "live.yaml", [("GET", "/a", "s")])
    main(["sync", target, "--permissions", str(live)])
    main(["sync", target, "--permissions", str(write_permissions(tmp_path / "c.yaml", [("GET", "/c", "s")])),
          "--candidate"])
    main(["sync", target, "--permissions", str(write_permissions(live, [("GET", "/z", "s")]))])
    refused = _json(["promote", target], capsys, 1)
    assert list(refused) == [*_fields("sync")[:-2], "candidate", "candidate_removed"]
    assert refused["status"] == "refused" and "moved from v1 to v2 since c1" in refused["error"]
    capsys.readouterr()
    assert main(["promote", target]) == 1
    assert "promote with --force" in capsys.readouterr().err

    promoted = _json(["promote", target, "--force"], capsys)
    assert list(promoted) == list(refused)
    assert promoted["status"] == "published" and promoted["version_before"] == 2
    assert promoted["version_after"] == 3 and promoted["candidate"] == 1 and promoted["candidate_removed"] is True
    assert [(m["verb"], m["resource"]) for m in promoted["added"]] == [("GET", "/c")]


@MOTO
def test_json_of_a_candidate_sync_a_discard_and_the_listing(target, tmp_path, capsys):
    main(["sync", target, "--permissions", str(write_permissions(tmp_path / "a.yaml", [("GET", "/a", "s")]))])
    shadow = str(write_permissions(tmp_path / "c.yaml", [("GET", "/c", "s")]))
    dry = _json(["sync", target, "--permissions", shadow, "--candidate", "--dry-run"], capsys)
    assert list(dry) == _fields("sync")
    assert (dry["status"], dry["candidate"], dry["replaced"], dry["version_after"]) == ("dry_run", 1, None, 1)
    published = _json(["sync", target, "--permissions", shadow, "--candidate"], capsys)
    assert (published["status"], published["candidate"]) == ("published", 1)
    assert published["added"] == dry["added"] and len(published["removed"]) == 1
    same = _json(["sync", target, "--permissions", shadow, "--candidate"], capsys)
    assert (same["status"], same["candidate"], same["write_requests"]) == ("unchanged", 1, 0)

    discarded = _json(["discard", target], capsys)
    assert list(discarded) == _fields("discard")
    assert (discarded["status"], discarded["candidate"], discarded["mappings"], discarded["based_on"],
            discarded["version"]) == ("discarded", 1, 1, 1, 1)
    listed = _json(["rollback", target, "--list"], capsys)
    assert list(listed) == _fields("rollback --list")
    assert [v["version"] for v in listed["versions"]] == [1]
    (entry,) = listed["candidates"]
    assert list(entry) == ["candidate", "digest", "mappings", "published_at", "note", "based_on", "status",
                           "promoted_to", "replaced_by"]
    assert (entry["candidate"], entry["status"], entry["based_on"]) == (1, "discarded", 1)

    plain = _json(["sync", target, "--permissions", shadow], capsys)
    assert list(plain) == _fields("sync") and plain["candidate"] is None and plain["replaced"] is None


@MOTO
def test_candidate_with_options_of_the_live_publish_is_a_usage_error(table, tmp_path, capsys):
    yaml_file = str(write_permissions(tmp_path / "a.yaml", [("GET", "/a", "s")]))
    assert main(["sync", f"dynamodb://{table}", "--permissions", yaml_file, "--candidate", "--repair"]) == 2
    assert "--repair" in capsys.readouterr().err
