"""The configuration and permission examples in the docs work as written.

``docs/providers.md`` marks its examples with fence info strings: ```` ```sh env ```` is a
function configuration (``NAME=value`` lines, shell-quoted), ```` ```yaml routes ```` the
``routes:`` lines of a grouped permission file. Each ``| token | grants |`` table row names
claims (``"name": value`` fragments) and the grant keys the block before it must read from
them. A ``NAME=value`` quoted inline is checked added to the block before it (alone when
there is none). The permission examples of the README and the other pages (most of them in
``docs/permissions.md``) are ```` ```yaml permissions ```` blocks, each a whole permission
document.
"""

from __future__ import annotations

import json
import re
import shlex
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from policy_engine.adapters.yaml_files import load_yaml_document
from policy_engine.bootstrap import build_authorizer, key_source
from policy_engine.core.grants import read_grants
from policy_engine.core.permissions import PermissionSet, compile_records, normalize_records
from policy_engine.core.tokens.issuers import PRESETS
from policy_engine.errors import ConfigurationError
from policy_engine.settings import Settings, variable
from tests.conftest import API, ROOT

PROVIDERS = ROOT / "docs" / "providers.md"
README = ROOT / "README.md"
PERMISSIONS_PAGE = ROOT / "docs" / "permissions.md"
# Every page that may hold ```yaml permissions``` blocks.
PAGES = [README, *sorted((ROOT / "docs").glob("*.md"))]
# What an inline setting is checked with when no block comes before it in its section.
STANDALONE = {"ISSUER": "https://idp.example.com", "AUDIENCE": "api"}

_FENCE = re.compile(r"^(\s*)```(\S*)(?: (\S+))?\s*$")
_INLINE = re.compile(r"`([A-Z][A-Z0-9_]+)=([^`\s]+)`")
_TICKED = re.compile(r"`([^`]+)`")


@dataclass
class Example:
    """One checkable thing in a document, with the line it starts on."""

    kind: str  # env, routes, permissions, row, inline
    line: int
    text: str
    #: The configuration it is read with (rows and inline settings: the block before it).
    env: Mapping[str, str] = field(default_factory=dict)

    def __str__(self) -> str:
        return f"{self.kind}@{self.line}"


def examples(path: Path) -> Iterator[Example]:
    """The marked blocks, token rows and inline settings of ``path``, in order."""
    lines = path.read_text(encoding="utf-8").splitlines()
    env: dict[str, str] | None = None
    in_table = False
    i = 0
    while i < len(lines):
        line = lines[i]
        fence = _FENCE.match(line)
        if fence:
            indent, info = len(fence.group(1)), fence.group(3)
            end = next(j for j in range(i + 1, len(lines)) if lines[j].strip() == "```")
            body = "\n".join(text[indent:] for text in lines[i + 1:end])
            if info == "env":
                env = parse_env(body)
                yield Example("env", i + 1, body, env)
            elif info in ("routes", "permissions"):
                yield Example(info, i + 1, body)
            i = end + 1
            continue
        if line.startswith("## "):
            env = None  # a new provider: its tables and settings go with its own blocks
        if line.startswith("| token | grants |"):
            in_table = True
        elif in_table and line.startswith("|"):
            if not line.startswith("|---"):
                assert env is not None, f"{path}:{i + 1}: a token table needs a `sh env` block before it"
                yield Example("row", i + 1, line, env)
        else:
            in_table = False
            for name, value in _INLINE.findall(line):
                variable(name)  # KeyError: not a setting the authorizer has
                yield Example("inline", i + 1, f"{name}={value}", {**(env or STANDALONE), name: value})
        i += 1


def parse_env(body: str) -> dict[str, str]:
    env: dict[str, str] = {}
    for word in shlex.split(body, comments=True):
        name, sep, value = word.partition("=")
        assert sep and name == name.upper(), f"not a NAME=value setting: {word!r}"
        variable(name)
        assert name not in env, f"{name} set twice"
        env[name] = value
    return env


def build(env: Mapping[str, str], permissions: str) -> Settings:
    """Everything the handler does with ``env`` at start, short of fetching keys and mappings."""
    settings = Settings.from_environ({**env, "PERMISSIONS_SOURCE": permissions})
    assert settings.issuer_rules(), "no issuer configured"
    key_source(settings)
    build_authorizer(settings, prefetch=False)
    return settings


def compile_document(text: str, where: str) -> PermissionSet:
    document, locate = load_yaml_document(text, where)
    records, locate = normalize_records(document, locate)
    return compile_records(records, locate)


def routes_document(snippet: str) -> str:
    return f"apis:\n  - arn: {API}\n    stages: [dev]\n    routes:\n{snippet}\n"


def token_row(row: str) -> tuple[dict[str, object], frozenset[str]]:
    """The claims of a ``| token | grants |`` row and the grant keys it lists."""
    token, grants = (cell.strip() for cell in row.strip().strip("|").split("|"))
    fragments = [text for text in _TICKED.findall(token) if text.startswith('"')]
    claims = json.loads("{" + ", ".join(fragments) + "}")
    # Grants are the ticked names before any remark in parentheses.
    return claims, frozenset(_TICKED.findall(grants.split("(")[0]))


def check_row(example: Example, permissions: str) -> None:
    claims, expected = token_row(example.text)
    rules = build(example.env, permissions).issuer_rules()
    sources = {rule.sources for rule in rules}
    assert len(sources) == 1, "a token table needs a block whose issuers all read the same sources"
    assert read_grants(claims, next(iter(sources))) == expected


PROVIDER_EXAMPLES = list(examples(PROVIDERS))
PERMISSION_EXAMPLES = [(page, e) for page in PAGES for e in examples(page) if e.kind == "permissions"]


@pytest.fixture(scope="module")
def permissions_file(tmp_path_factory: pytest.TempPathFactory) -> str:
    # Every routes snippet of the cookbook together: what a team would paste into one file.
    snippets = "\n".join(e.text for e in PROVIDER_EXAMPLES if e.kind == "routes")
    path = tmp_path_factory.mktemp("docs") / "routes.yaml"
    path.write_text(routes_document(snippets), encoding="utf-8")
    return str(path)


def test_the_documents_hold_the_examples_this_test_reads():
    # GIVEN the marked examples WHEN counted THEN none went unnoticed (a fence whose info
    # string was lost would silently drop out of the checks below).
    kinds = [e.kind for e in PROVIDER_EXAMPLES]
    assert kinds.count("env") >= 10 and kinds.count("routes") >= 4 and kinds.count("row") >= 9
    assert kinds.count("inline") >= 4
    assert sum(1 for page, _ in PERMISSION_EXAMPLES if page == PERMISSIONS_PAGE) >= 4
    assert any(page == README for page, _ in PERMISSION_EXAMPLES)
    marked = sum(1 for line in PROVIDERS.read_text(encoding="utf-8").splitlines()
                 if line.strip().startswith(("```sh", "```yaml")))
    assert marked == kinds.count("env") + kinds.count("routes"), "a sh/yaml block without env/routes"


@pytest.mark.parametrize("example", [e for e in PROVIDER_EXAMPLES if e.kind in ("env", "inline")], ids=str)
def test_every_configuration_builds_the_authorizer(example, permissions_file):
    build(example.env, permissions_file)


@pytest.mark.parametrize("example", [e for e in PROVIDER_EXAMPLES if e.kind == "routes"], ids=str)
def test_every_routes_snippet_compiles(example):
    permissions = compile_document(routes_document(example.text), f"{PROVIDERS.name}:{example.line}")
    assert permissions.grants


@pytest.mark.parametrize("example", [e for e in PROVIDER_EXAMPLES if e.kind == "row"], ids=str)
def test_every_token_row_reads_the_grants_it_lists(example, permissions_file):
    check_row(example, permissions_file)


@pytest.mark.parametrize(("page", "example"), PERMISSION_EXAMPLES,
                         ids=lambda v: v.name if isinstance(v, Path) else str(v))
def test_every_permission_example_of_the_docs_compiles(page, example):
    permissions = compile_document(example.text, f"{page.name}:{example.line}")
    assert permissions.grants


def test_the_checks_catch_a_wrong_example(permissions_file):
    # A row claiming a grant the configuration does not read fails.
    cognito = next(e for e in PROVIDER_EXAMPLES if e.kind == "env" and e.env.get("IDP_PRESET") == "cognito")
    wrong = Example("row", 0, '| `"groups": ["pet-readers"]` | `group pet-readers` |', cognito.env)
    with pytest.raises(AssertionError):
        check_row(wrong, permissions_file)
    # A configuration the settings refuse fails.
    with pytest.raises(ConfigurationError):
        build({**cognito.env, "SCOPE_CLAIMS": "scope"}, permissions_file)
    # A snippet the schema refuses fails.
    with pytest.raises(Exception, match="placeholder"):
        compile_document(routes_document("      GET /t/x{claim:t}: [{group: g}]"), "snippet")


def test_the_presets_table_says_what_each_preset_does():
    # GIVEN the table under "### Presets" WHEN read row by row THEN its grant sources are the
    # preset's, in order, and its checks column names the preset's token checks.
    rows = {}
    for line in PROVIDERS.read_text(encoding="utf-8").splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        name = cells[0].strip("`")
        if line.startswith("| `") and len(cells) == 3 and name in PRESETS:
            rows[name] = cells
    assert set(rows) == set(PRESETS)
    for name, (_, sources, checks) in rows.items():
        preset = PRESETS[name]
        written = [text for text in _TICKED.findall(sources) if ":" in text]
        assert written == [source.text for source in preset.sources], name
        expected = [f"`{t}`" for t in preset.token_types]
        expected += [f"`{preset.payload_typ}`"] if preset.payload_typ else []
        expected += ["`token_use` must be `access`"] if preset.token_use_access else []
        expected += [f"`{claim}`" for claim in preset.client_claims]
        assert all(text in checks for text in expected), name
        assert bool(expected) or checks.startswith("by audience"), name
