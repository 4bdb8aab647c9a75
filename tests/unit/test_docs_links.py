"""Every link in the README and docs/ resolves: local files exist and #anchors name a heading.

Anchors follow GitHub's rules for headings: the heading's text as rendered (link targets,
emphasis and code marks dropped), lower-cased, every character that is not a letter,
digit, underscore, hyphen or space removed, spaces turned into hyphens; a repeated slug
gets ``-1``, ``-2``... Links inside fenced code blocks and inline code are not links.
"""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path
from urllib.parse import unquote

import pytest

from tests.conftest import ROOT

DOCUMENTS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]

_FENCE = re.compile(r"^\s*(```|~~~)")
_LINK = re.compile(r"(?<!\\)\[((?:[^\[\]]|\[[^\]]*\])*)\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
_HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$")


def _prose(text: str) -> list[tuple[int, str]]:
    """The lines outside fenced code blocks, with inline code spans blanked out."""
    lines, fenced = [], False
    for number, line in enumerate(text.splitlines(), 1):
        if _FENCE.match(line):
            fenced = not fenced
            continue
        if not fenced:
            lines.append((number, re.sub(r"`[^`]*`", lambda m: " " * len(m.group(0)), line)))
    return lines


def slug(heading: str) -> str:
    """GitHub's anchor for a heading's Markdown text."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # a link shows its text
    text = re.sub(r"<[^>]+>", "", text).replace("`", "")
    text = re.sub(r"(\*\*|__|\*|(?<!\w)_|_(?!\w))", "", text)
    text = re.sub(r"[^\w\- ]", "", text.lower())
    return text.replace(" ", "-")


def anchors(path: Path) -> set[str]:
    seen: Counter[str] = Counter()
    found = set()
    fenced = False
    for line in path.read_text(encoding="utf-8").splitlines():
        if _FENCE.match(line):
            fenced = not fenced
            continue
        match = None if fenced else _HEADING.match(line)
        if match:
            base = slug(match.group(2))
            found.add(base if seen[base] == 0 else f"{base}-{seen[base]}")
            seen[base] += 1
    return found


def links(path: Path) -> list[tuple[int, str]]:
    return [(number, match.group(2)) for number, line in _prose(path.read_text(encoding="utf-8"))
            for match in _LINK.finditer(line)]


def test_slugs_follow_githubs_rules():
    assert slug("Permission stores: DynamoDB and S3, sync, rollback, migrate") == \
        "permission-stores-dynamodb-and-s3-sync-rollback-migrate"
    assert slug("Tenant paths: `{claim:NAME}` placeholders") == "tenant-paths-claimname-placeholders"
    assert slug("`policy-engine validate [PATHS] [--arn API_ARN]`") == "policy-engine-validate-paths---arn-api_arn"
    assert slug("1. Build the bundle") == "1-build-the-bundle"
    assert slug("How CI checks all this (`make test`)") == "how-ci-checks-all-this-make-test"


def test_the_link_reader_finds_links_and_skips_code(tmp_path):
    page = tmp_path / "page.md"
    page.write_text("# A\n[one](b.md#x) and `[not](c.md)`\n```\n[nor](d.md)\n```\n[two](#a)\n", encoding="utf-8")
    assert links(page) == [(2, "b.md#x"), (6, "#a")]
    assert anchors(page) == {"a"}


def test_every_page_links_back_to_the_readme_map():
    assert "documentation" in anchors(ROOT / "README.md")
    for page in DOCUMENTS[1:]:
        assert "../README.md#documentation" in [target for _, target in links(page)], page.name


@pytest.mark.parametrize("document", DOCUMENTS, ids=lambda p: p.name)
def test_every_local_link_resolves(document):
    broken = []
    for number, target in links(document):
        if re.match(r"[a-z][a-z0-9+.-]*:", target):  # https:, mailto: ...
            continue
        file_part, _, anchor = target.partition("#")
        resolved = (document.parent / unquote(file_part)).resolve() if file_part else document
        relative = resolved.relative_to(ROOT).as_posix() if resolved.is_relative_to(ROOT) else str(resolved)
        if file_part.startswith("/") or not resolved.is_relative_to(ROOT):
            broken.append(f"{document.name}:{number}: {target} is not a relative link inside the repository")
        elif not resolved.exists():
            broken.append(f"{document.name}:{number}: {target}: no such file")
        elif anchor and resolved.suffix == ".md" and unquote(anchor) not in anchors(resolved):
            broken.append(f"{document.name}:{number}: {target}: no such heading in {relative}")
    assert broken == []
