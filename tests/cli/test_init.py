"""policy-engine init: a permissions repository that validates, and nothing overwritten unasked."""

from __future__ import annotations

import importlib.metadata

import pytest
import yaml

from policy_engine.admin.cli import main
from policy_engine.admin.cli.init import scaffold_files
from policy_engine.admin.resources import EXAMPLE_CATALOG, EXAMPLE_PERMISSIONS, MIGRATIONS, TEMPLATE
from tests.conftest import ROOT

VALIDATE = "policy-engine validate --catalog catalog permissions"
EXPECTED = {
    "permissions/pets.yaml", "permissions/store.yaml", "catalog/apis.yaml", "catalog/clients.yaml",
    "catalog/petstore-openapi.yaml", "catalog/scopes.yaml", "template.yaml", "README.md", ".gitignore",
    ".github/workflows/permissions.yaml", ".pre-commit-config.yaml",
}


def test_the_shipped_files_are_the_repositorys_top_level_ones():
    # One copy: the package-data folder links to them (a copy here would drift).
    assert MIGRATIONS.resolve() == (ROOT / "migrations").resolve()
    assert EXAMPLE_PERMISSIONS.resolve() == (ROOT / "permissions").resolve()
    assert EXAMPLE_CATALOG.resolve() == (ROOT / "catalog").resolve()
    assert TEMPLATE.resolve() == (ROOT / "template.yaml").resolve()
    for link in (MIGRATIONS, EXAMPLE_PERMISSIONS, EXAMPLE_CATALOG, TEMPLATE):
        assert link.is_symlink(), link


def test_init_writes_a_repository_that_validates(tmp_path, monkeypatch, capsys):
    target = tmp_path / "team"
    assert main(["init", str(target)]) == 0
    out = capsys.readouterr().out
    written = {p.relative_to(target).as_posix() for p in target.rglob("*") if p.is_file()}
    assert written == EXPECTED
    assert f"cd {target}" in out and VALIDATE in out
    assert (target / "permissions" / "pets.yaml").read_bytes() == (ROOT / "permissions" / "pets.yaml").read_bytes()
    assert (target / "template.yaml").read_bytes() == (ROOT / "template.yaml").read_bytes()
    monkeypatch.chdir(target)
    assert main(VALIDATE.split()[1:]) == 0
    assert "clean" in capsys.readouterr().out.splitlines()[-1]


def test_init_without_a_folder_writes_here(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(["init"]) == 0
    assert "cd " not in capsys.readouterr().out
    assert (tmp_path / ".github" / "workflows" / "permissions.yaml").is_file()


def test_existing_files_are_named_and_nothing_is_written_without_force(tmp_path, capsys):
    target = tmp_path / "team"
    (target / "permissions").mkdir(parents=True)
    (target / "permissions" / "pets.yaml").write_text("# ours\n")
    (target / "README.md").write_text("# ours\n")
    assert main(["init", str(target)]) == 1
    err = capsys.readouterr().err
    assert "2 file(s) already exist" in err and "nothing written" in err and "--force" in err
    assert str(target / "permissions" / "pets.yaml") in err and str(target / "README.md") in err
    assert {p.name for p in target.rglob("*") if p.is_file()} == {"pets.yaml", "README.md"}
    assert (target / "README.md").read_text() == "# ours\n"

    assert main(["init", str(target), "--force"]) == 0
    out = capsys.readouterr().out
    assert f"replaced  {target / 'README.md'}" in out and f"created   {target / 'template.yaml'}" in out
    assert (target / "README.md").read_text() != "# ours\n"


def test_a_file_in_the_way_of_the_folder_cannot_run(tmp_path, capsys):
    (tmp_path / "team").write_text("")
    assert main(["init", str(tmp_path / "team")]) == 2
    assert "is not a folder" in capsys.readouterr().err


def _tree(root):
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


def test_something_in_the_way_inside_the_folder_writes_nothing(tmp_path, capsys):
    # A file where a folder goes, or a folder where a file goes: refused before any write,
    # so that a second run (after the fix) is not refused for the files the first one wrote.
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / ".github").write_text("")
    (tmp_path / "b" / "template.yaml").mkdir(parents=True)
    assert main(["init", str(tmp_path / "a")]) == 2
    assert "a file where init makes a folder" in capsys.readouterr().err
    assert main(["init", str(tmp_path / "b"), "--force"]) == 2
    assert "a folder where init writes a file" in capsys.readouterr().err
    assert _tree(tmp_path) == ["a", "a/.github", "b", "b/template.yaml"]


def test_a_write_that_fails_midway_leaves_nothing_behind(tmp_path, capsys):
    # The seventh file cannot be staged (its .partial name is taken by a folder): the six
    # staged before it and the folders made for them are removed.
    root = tmp_path / "team"
    name = list(scaffold_files())[6]
    (root / f"{name}.partial").mkdir(parents=True)
    before = _tree(tmp_path)
    assert main(["init", str(root)]) == 2
    assert "cannot write" in capsys.readouterr().err
    assert _tree(tmp_path) == before


def test_the_workflow_validates_and_shows_the_sync_diff_on_pull_requests():
    files = scaffold_files("9.8.7")
    workflow = yaml.safe_load(files[".github/workflows/permissions.yaml"])
    # PyYAML reads the key `on` as True (YAML 1.1).
    triggers = workflow[True]
    assert "pull_request" in triggers and triggers["push"]["branches"] == ["main"]
    assert workflow["permissions"] == {"contents": "read"}
    assert workflow["env"]["POLICY_ENGINE"] == "policy-engine==9.8.7"
    steps = {name: [step.get("run", "") for step in job["steps"]] for name, job in workflow["jobs"].items()}
    assert VALIDATE in steps["validate"]
    diff = workflow["jobs"]["diff"]
    assert "pull_request" in diff["if"] and diff["permissions"]["pull-requests"] == "write"
    dry_run = next(run for run in steps["diff"] if "policy-engine sync" in run)
    assert "--dry-run" in dry_run
    assert any("gh pr comment" in run for run in steps["diff"])
    # The publish job writes only on main, and only with its own role.
    publish = workflow["jobs"]["publish"]
    assert "refs/heads/main" in publish["if"] and "POLICY_ENGINE_PUBLISH_ROLE_ARN" in publish["if"]
    assert not any("--dry-run" in run for run in steps["publish"] if "policy-engine sync" in run)


def test_the_pre_commit_hook_runs_validate():
    files = scaffold_files()
    (repo,) = yaml.safe_load(files[".pre-commit-config.yaml"])["repos"]
    (hook,) = repo["hooks"]
    assert repo["repo"] == "local" and hook["entry"] == VALIDATE and hook["pass_filenames"] is False
    # This repository offers the same hook to others (pre-commit's hook manifest).
    (offered,) = yaml.safe_load((ROOT / ".pre-commit-hooks.yaml").read_text())
    assert f"{offered['entry']} {' '.join(offered['args'])}" == VALIDATE


@pytest.mark.parametrize("name", ["README.md", ".github/workflows/permissions.yaml"])
def test_the_installed_version_is_written_where_it_matters(name):
    text = scaffold_files()[name].decode()
    assert importlib.metadata.version("policy-engine") in text and "@VERSION@" not in text


def test_the_quickstart_table_lists_every_file_init_writes(tmp_path, capsys):
    import re

    assert main(["init", str(tmp_path / "repo")]) == 0
    written = {str(p.relative_to(tmp_path / "repo")) for p in (tmp_path / "repo").rglob("*") if p.is_file()}
    page = (ROOT / "docs" / "quickstart.md").read_text(encoding="utf-8")
    table = page[page.index("| what `init` writes |"):].split("\n\n", 1)[0]
    listed = {name for row in table.splitlines()[2:] for name in re.findall(r"`([^`]+)`", row.split(" | ")[0])}
    assert listed == written
