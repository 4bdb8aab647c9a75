"""One declaration per environment variable drives parsing, the adapters and the docs.

``policy_engine.settings.VARIABLES`` is the only place a variable's name, kind, default
and bounds are written. These tests fail when another place (the configuration table of
docs/configuration.md, any other table or sentence of the README and docs/, an adapter's
constructor, the deployment template) states a fact of its own.
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Iterator
from typing import Any

import pytest

from policy_engine.adapters.introspection import IntrospectionClient
from policy_engine.adapters.jwks_http import JwksKeySource
from policy_engine.admin.cli.settings_doc import (
    DOCUMENT,
    render_table,
    shown_default,
    table_block,
)
from policy_engine.core.tokens import JwtVerifier
from policy_engine.errors import ConfigurationError
from policy_engine.settings import VARIABLES, Settings, variable
from tests.conftest import ROOT
from tests.integration.cfn import load_template

BASE = {"ISSUER": "https://idp.example.com", "AUDIENCE": "api"}
# Every page a reader may take a default from.
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


class _Recording(dict[str, str]):
    """An environment that remembers every name asked for."""

    def __init__(self, values: dict[str, str]) -> None:
        super().__init__(values)
        self.asked: set[str] = set()

    def get(self, key: str, default: Any = None) -> Any:  # type: ignore[override]
        self.asked.add(key)
        return super().get(key, default)

    def __getitem__(self, key: str) -> str:
        self.asked.add(key)
        return super().__getitem__(key)

    def __contains__(self, key: object) -> bool:
        self.asked.add(str(key))
        return super().__contains__(key)


def _variables_read() -> set[str]:
    env = _Recording(dict(BASE))
    Settings.from_environ(env)
    return env.asked


def _readme_tables(text: str) -> Iterator[tuple[list[str], list[list[str]]]]:
    """Every Markdown table of ``text``: its header cells and its rows' cells."""
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        if lines[i].startswith("|") and i + 1 < len(lines) and re.fullmatch(r"\|(\s*:?-+:?\s*\|)+", lines[i + 1]):
            header = _cells(lines[i])
            rows = []
            i += 2
            while i < len(lines) and lines[i].startswith("|"):
                rows.append(_cells(lines[i]))
                i += 1
            yield header, rows
        else:
            i += 1


def _cells(line: str) -> list[str]:
    # A '|' escaped as '\|' inside a cell does not end it.
    return [cell.strip() for cell in re.split(r"(?<!\\)\|", line.strip())[1:-1]]


def test_every_variable_the_parser_reads_is_declared_once():
    names = [v.name for v in VARIABLES]
    assert len(names) == len(set(names))
    assert _variables_read() == set(names)
    fields = {v.attribute for v in VARIABLES}
    assert len(fields) == len(names)


def test_every_variable_read_has_a_configuration_table_row():
    text = DOCUMENT.read_text(encoding="utf-8")
    documented = {name for _, rows in _readme_tables(text) for row in rows
                  for name in re.findall(r"`([A-Z][A-Z0-9_]+)`", row[0])}
    missing = sorted(_variables_read() - documented)
    assert missing == [], f"not in any table of {DOCUMENT.name}: {missing}"


def test_the_configuration_table_is_the_generated_one():
    block = table_block(DOCUMENT.read_text(encoding="utf-8"))
    assert block == render_table(), (
        "docs/configuration.md's table differs from policy_engine/settings.py; "
        "run: python -m policy_engine.admin.cli.settings_doc --write"
    )


def test_no_other_table_or_sentence_of_the_docs_states_another_default():
    declared = {v.name: v for v in VARIABLES}
    checked = 0
    for page in PAGES:
        text = page.read_text(encoding="utf-8")
        for header, rows in _readme_tables(text):
            if "default" not in header:
                continue
            column = header.index("default")
            for row in rows:
                for name in re.findall(r"`([A-Z][A-Z0-9_]+)`", row[0]):
                    if name in declared:
                        said = row[column]
                        assert said == shown_default(declared[name]), f"{page.name} table gives {name} another default"
                        checked += 1
        for name, said in re.findall(r"`([A-Z][A-Z0-9_]+)` \(default ([^)]*)\)", text):
            if name in declared:
                assert said == shown_default(declared[name]), f"{page.name} prose gives {name} another default"
    assert checked >= len(VARIABLES)


@pytest.mark.parametrize("var", [v for v in VARIABLES if not v.required], ids=lambda v: v.name)
def test_an_unset_variable_gives_its_declared_default(var):
    settings = Settings.from_environ(BASE)
    assert getattr(settings, var.attribute) == var.default
    assert getattr(Settings(issuers=(), audiences=()), var.attribute) == var.default


@pytest.mark.parametrize("var", [v for v in VARIABLES if not v.required], ids=lambda v: v.name)
def test_a_variable_set_to_the_empty_string_counts_as_unset(var):
    # docs/configuration.md, "How settings are read".
    assert getattr(Settings.from_environ({**BASE, var.name: ""}), var.attribute) == var.default


NUMBERS = [v for v in VARIABLES if v.kind in ("number", "integer")]


@pytest.mark.parametrize("var", NUMBERS, ids=lambda v: v.name)
@pytest.mark.parametrize("text", ["1_0", "\u0661\u0660", "inf", "nan", "0x10", "1,5", "ten"])
def test_a_number_is_plain_ascii_decimal_notation(var, text):
    # float() takes underscores, other scripts' digits, inf and nan; a setting does not.
    with pytest.raises(ConfigurationError) as refused:
        Settings.from_environ({**BASE, var.name: text})
    assert refused.value.variable == var.name


@pytest.mark.parametrize("var", [v for v in NUMBERS if v.kind == "integer"], ids=lambda v: v.name)
def test_an_integer_is_written_with_digits_only(var):
    whole = max(int(var.minimum), 1)
    assert getattr(Settings.from_environ({**BASE, var.name: str(whole)}), var.attribute) == whole
    for text in (f"{whole}.0", f"{whole}e0"):
        with pytest.raises(ConfigurationError, match="is not a whole number"):
            Settings.from_environ({**BASE, var.name: text})


@pytest.mark.parametrize("var", NUMBERS, ids=lambda v: v.name)
def test_numeric_bounds_are_the_declared_ones(var):
    at_least = var.minimum
    assert getattr(Settings.from_environ({**BASE, var.name: f"{at_least:g}"}), var.attribute) == at_least
    with pytest.raises(ConfigurationError) as below:
        Settings.from_environ({**BASE, var.name: repr(at_least - 0.5)})
    assert below.value.variable == var.name
    if var.maximum is not None:
        assert getattr(Settings.from_environ({**BASE, var.name: str(int(var.maximum))}), var.attribute) == var.maximum
        with pytest.raises(ConfigurationError) as above:
            Settings.from_environ({**BASE, var.name: str(int(var.maximum) + 1)})
        assert above.value.variable == var.name


def test_an_integer_variable_refuses_a_fraction():
    with pytest.raises(ConfigurationError) as info:
        Settings.from_environ({**BASE, "MAX_TOKEN_LENGTH": "4096.5"})
    assert info.value.variable == "MAX_TOKEN_LENGTH"


@pytest.mark.parametrize(
    "constructor,fed",
    [
        (JwksKeySource.__init__, ("algorithms", "timeout", "cache_ttl", "refetch_interval", "max_stale")),
        (IntrospectionClient.__init__, ("auth_method", "timeout", "cache_ttl", "negative_ttl")),
        (JwtVerifier.__init__, ("rules", "algorithms", "leeway", "max_length")),
    ],
    ids=["JwksKeySource", "IntrospectionClient", "JwtVerifier"],
)
def test_adapters_take_setting_values_without_defaults_of_their_own(constructor, fed):
    # A default here would be a second, silently diverging copy of the declaration
    # (JwtVerifier once read scopes from "scp,scope" while SCOPE_CLAIMS said "scope,scp").
    parameters = inspect.signature(constructor).parameters
    with_default = [name for name in fed if parameters[name].default is not inspect.Parameter.empty]
    assert with_default == []


def test_template_parameters_state_the_declared_default_and_bounds():
    template = load_template()
    variables = template["Resources"]["AuthorizerFunction"]["Properties"]["Environment"]["Variables"]
    compared = 0
    for name, value in variables.items():
        if not (isinstance(value, dict) and set(value) == {"Ref"}):
            continue
        parameter = template["Parameters"].get(value["Ref"])
        var = variable(name)
        if parameter is None or parameter.get("Type") != "Number":
            continue
        assert float(parameter["Default"]) == var.default
        assert float(parameter["MinValue"]) == var.minimum
        assert float(parameter["MaxValue"]) == var.maximum
        compared += 1
    assert compared >= 1
