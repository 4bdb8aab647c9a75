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


def test_a_secret_in_a_url_setting_never_reaches_the_start_failure(tmp_path):
    # The runtime writes an init failure's message (and traceback) to the function's log
    # and returns it as the init error: the message must be the redacted one.
    env = {"PATH": "/usr/bin:/bin", "AUDIENCE": "api",
           "ISSUER": "https://idp.example.com/,http://user:S3CRET-PW@idp.example.com/x?key=S3CRET-Q"}
    proc = subprocess.run([sys.executable, "-c", "import handler.app"], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode != 0
    assert "ConfigurationError: ISSUER: " in proc.stderr and "***" in proc.stderr
    assert "S3CRET" not in proc.stderr + proc.stdout


@pytest.mark.parametrize("secret", ["", "   ", "\t"])
def test_an_introspection_secret_of_only_spaces_is_unset(secret):
    with pytest.raises(ConfigurationError, match="is required with INTROSPECTION_URL") as info:
        Settings.from_environ({**BASE, "INTROSPECTION_URL": "https://idp.example.com/introspect",
                               "INTROSPECTION_CLIENT_ID": "api", "INTROSPECTION_CLIENT_SECRET": secret})
    assert info.value.variable == "INTROSPECTION_CLIENT_SECRET"
    # A secret is kept as written, spaces and all, when it holds anything else.
    settings = Settings.from_environ({**BASE, "INTROSPECTION_URL": "https://idp.example.com/introspect",
                                      "INTROSPECTION_CLIENT_ID": "api", "INTROSPECTION_CLIENT_SECRET": " s e "})
    assert settings.introspection_client_secret == " s e "


@pytest.mark.parametrize("text,problem", [
    ("[" * 50_000 + "]" * 50_000, "nested too deeply"),
    ('[{"issuer": "https://a.example.com", "issuer": "https://b.example.com"}]', "names 'issuer' more than once"),
])
def test_identity_providers_that_no_parser_should_take_name_the_variable(text, problem):
    with pytest.raises(ConfigurationError, match=problem) as info:
        Settings.from_environ({"IDENTITY_PROVIDERS": text})
    assert info.value.variable == "IDENTITY_PROVIDERS"


def _fifo(tmp_path, name):
    import os

    path = tmp_path / name
    os.mkfifo(path)
    return str(path)


@pytest.mark.parametrize("kind", ["device", "fifo"])
def test_a_permissions_source_that_is_no_file_or_folder_stops_the_start(make_handler, tmp_path, kind):
    # Files load inline at start: a FIFO would hold the cold start for ever, /dev/zero fill memory.
    path = "/dev/zero" if kind == "device" else _fifo(tmp_path, "permissions.yaml")
    with pytest.raises(ConfigurationError) as info:
        make_handler(PERMISSIONS_SOURCE=path)
    assert info.value.variable == "PERMISSIONS_SOURCE"
    assert info.value.problem == f"{path!r}: not a regular file or folder"


@pytest.mark.parametrize("kind", ["device", "fifo", "folder", "too large"])
def test_an_api_keys_file_that_is_no_regular_file_or_too_large_stops_the_start(make_handler, tmp_path, kind):
    from policy_engine.adapters.api_keys_yaml import MAX_API_KEYS_FILE_BYTES

    path = {"device": "/dev/zero", "folder": str(tmp_path)}.get(kind)
    if kind == "fifo":
        path = _fifo(tmp_path, "keys.yaml")
    elif kind == "too large":
        big = tmp_path / "keys.yaml"
        big.write_text("clients: {}\n" + "#" * MAX_API_KEYS_FILE_BYTES + "\n")
        path = str(big)
    with pytest.raises(ConfigurationError) as info:
        make_handler(API_KEYS_FILE=path)
    assert info.value.variable == "API_KEYS_FILE"
    expected = "is larger than 8388608 bytes" if kind == "too large" else "is not a regular file"
    assert info.value.problem == f"{path} {expected}"


@pytest.mark.parametrize("override,variable", [
    ({"AWS_REGION": "   "}, "AWS_DEFAULT_REGION"),  # spaces: unset, and no profile names one here
    ({"AWS_REGION": "us east 1"}, "AWS_REGION"),
    ({"AWS_DEFAULT_REGION": "x@evil.example#"}, "AWS_DEFAULT_REGION"),
    ({"AWS_DEFAULT_REGION": "US-EAST-1"}, "AWS_DEFAULT_REGION"),
])
def test_a_store_region_that_is_blank_or_no_region_name_stops_the_start(make_handler, monkeypatch, tmp_path,
                                                                         override, variable):
    for name in ("AWS_REGION", "AWS_DEFAULT_REGION", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-config"))  # no profile's region either
    for name, value in override.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(ConfigurationError) as info:
        make_handler(PERMISSIONS_SOURCE="dynamodb://perms", **override)
    assert info.value.variable == variable
