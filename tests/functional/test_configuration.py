"""Bad configuration fails at start-up with one log line naming the variable."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from policy_engine.errors import ConfigurationError
from policy_engine.settings import Settings
from tests.conftest import ROOT

BASE = {"ISSUER": "https://idp.example.com", "AUDIENCE": "api"}


@pytest.mark.parametrize(
    "override,variable",
    [
        ({"ISSUER": ""}, "ISSUER"),
        ({"AUDIENCE": " , "}, "AUDIENCE"),
        ({"PERMISSIONS_CACHE_TTL": "soon"}, "PERMISSIONS_CACHE_TTL"),
        ({"PERMISSIONS_CACHE_TTL": "-1"}, "PERMISSIONS_CACHE_TTL"),
        ({"CLOCK_LEEWAY": "3600"}, "CLOCK_LEEWAY"),
        ({"JWKS_TIMEOUT": "nan"}, "JWKS_TIMEOUT"),
        ({"ALLOWED_ALGORITHMS": "none"}, "ALLOWED_ALGORITHMS"),
        ({"JWKS_URI": "https://a/jwks,https://b/jwks"}, "JWKS_URI"),
        ({"MAX_TOKEN_LENGTH": "10"}, "MAX_TOKEN_LENGTH"),
        ({"ALLOWED_ALGORITHMS": ","}, "ALLOWED_ALGORITHMS"),  # only commas: not the default
        ({"TOKEN_TYPES": " , ,"}, "TOKEN_TYPES"),
    ],
)
def test_bad_values_name_the_variable(override, variable):
    with pytest.raises(ConfigurationError) as info:
        Settings.from_environ({**BASE, **override})
    assert info.value.variable == variable


def test_blank_items_of_a_list_are_ignored_and_a_blank_list_is_unset():
    settings = Settings.from_environ({**BASE, "ALLOWED_ALGORITHMS": "RS256, ES256,", "TOKEN_TYPES": "  "})
    assert settings.algorithms == {"RS256", "ES256"} and not settings.token_types


def test_defaults_are_documented_values():
    settings = Settings.from_environ(BASE)
    assert settings.permissions_cache_ttl == 60
    assert settings.algorithms == frozenset({"RS256"})
    assert settings.scope_claims == ("scope", "scp")
    assert settings.permissions_source.endswith("permissions")


def test_handler_start_fails_with_one_line_naming_the_variable():
    env = {"PATH": "/usr/bin:/bin", "AUDIENCE": "api", "PERMISSIONS_CACHE_TTL": "often"}
    proc = subprocess.run([sys.executable, "-c", "import handler.app"], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode != 0
    lines = [json.loads(line) for line in proc.stderr.splitlines() if line.startswith('{"level"')]
    assert lines == [lines[0]] and lines[0]["event"] == "bad_configuration" and lines[0]["variable"] == "ISSUER"


def test_unsupported_permission_source_scheme_fails_at_start(make_handler):
    with pytest.raises(ConfigurationError) as info:
        make_handler(PERMISSIONS_SOURCE="ftp://somewhere/x")
    assert info.value.variable == "PERMISSIONS_SOURCE"


def test_a_permissions_path_that_does_not_exist_fails_at_start_naming_it(make_handler, tmp_path):
    # Nothing the function ships appears later: one error at start, not a 500 per request.
    missing = tmp_path / "permissions"
    with pytest.raises(ConfigurationError) as info:
        make_handler(PERMISSIONS_SOURCE=str(missing))
    assert info.value.variable == "PERMISSIONS_SOURCE"
    assert f"{str(missing)!r}: no such file or folder" in info.value.problem
    # A candidate that is missing never stops the function.
    make_handler(PERMISSIONS_CANDIDATE=str(missing))
