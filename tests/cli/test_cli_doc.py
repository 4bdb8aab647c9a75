"""docs/cli.md is generated from the real parser: it cannot drift from the command line."""

from __future__ import annotations

import re

from policy_engine.admin.cli import build_parser
from policy_engine.admin.cli.cli_doc import CLI_DOC, JSON_FIELDS, _commands, main, render


def test_docs_cli_md_is_what_the_parser_generates(capsys):
    status = main(["--check"])
    assert status == 0, capsys.readouterr().err


def test_the_check_fails_when_the_reference_drifts(tmp_path, capsys):
    stale = tmp_path / "cli.md"
    stale.write_text(render().replace("--dry-run", "--dryrun", 1))
    assert main(["--check", "--path", str(stale)]) == 1
    assert "cli_doc --write" in capsys.readouterr().err
    assert main(["--write", "--path", str(stale)]) == 0
    assert main(["--check", "--path", str(stale)]) == 0


def test_every_command_flag_and_json_document_is_in_the_reference():
    text = CLI_DOC.read_text(encoding="utf-8")
    for name, _, parser in _commands(build_parser()):
        assert f"\n## policy-engine {name}\n" in text, name
        for action in parser._actions:
            for flag in action.option_strings:
                if flag not in ("-h", "--help"):
                    assert f"`{flag}" in text or f", {flag}" in text, (name, flag)
    for command, fields in JSON_FIELDS.items():
        assert f"`{command} --format json` prints an object with:" in text
        for field, _ in fields:
            assert f"| `{field}` |" in text, (command, field)


def test_the_reference_names_no_path_of_this_machine():
    text = CLI_DOC.read_text(encoding="utf-8")
    assert not re.search(r"/(home|root|work|tmp|Users)/|site-packages", text)
    assert "``" not in text.replace("```", "")
