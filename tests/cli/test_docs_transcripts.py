"""Command output the docs show is what the commands print.

A shown line ending in `` ...`` stands for a printed line that starts with the rest; a
line of ``...`` alone for any number of printed lines; a ``took`` line for its timing.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

from policy_engine.admin.cli import main
from tests.conftest import ROOT


def shown_block(page: Path, heading: str) -> list[str]:
    """The lines of the first fenced block after ``heading``."""
    text = page.read_text(encoding="utf-8")
    after = text[text.index(heading):]
    block = re.search(r"```[^\n]*\n(.*?)```", after, re.S)
    assert block is not None
    return block.group(1).rstrip("\n").split("\n")


def assert_transcript(shown: list[str], printed: list[str]) -> None:
    at = 0
    for line in shown:
        if line.strip() == "...":
            continue
        for index in range(at, len(printed)):
            got = printed[index]
            if (got == line or (line.endswith(" ...") and got.startswith(line[:-4]))
                    or (line.startswith("took ") and got.startswith("took "))):
                at = index + 1
                break
        else:
            raise AssertionError(f"shown but not printed (in order): {line!r}\nprinted:\n" + "\n".join(printed))


def test_the_import_report_is_as_shown(tmp_path, monkeypatch, capsys):
    (tmp_path / "openapi").mkdir()
    shutil.copy(ROOT / "tests" / "data" / "openapi" / "petstore-oas30.yaml", tmp_path / "openapi" / "pets.yaml")
    monkeypatch.chdir(tmp_path)
    assert main(["import", "openapi", "openapi/pets.yaml", "--arn",
                 "arn:aws:execute-api:us-east-1:123456789012:a1b2c3d4e5", "--stages", "dev,prod",
                 "-o", "permissions/pets.yaml"]) == 0
    printed = capsys.readouterr().err.splitlines()
    shown = shown_block(ROOT / "docs" / "openapi.md", "## The report")
    assert_transcript(shown, printed)
    # every printed section is shown (a new one would otherwise go unnoticed)
    sections = {line.split("  ")[0] for line in printed if line and not line.startswith(" ")}
    assert sections <= {line.split("  ")[0] for line in shown if line and not line.startswith(" ")}
