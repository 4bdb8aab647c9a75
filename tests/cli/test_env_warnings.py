"""Environment variables that look like typos of declared ones: found, named, never fatal.

The runtime logs one JSON line per near miss at cold start; the CLI warns on stderr for
the process environment and for --env / --env-file.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from policy_engine.admin.cli import main
from policy_engine.settings import VARIABLES, near_misses
from tests.conftest import ROOT, token_event

DECLARED = [var.name for var in VARIABLES]


@pytest.mark.parametrize(("typed", "meant"), [
    ("SCOPE_CLAIM", "SCOPE_CLAIMS"),
    ("PERMISSION_SOURCE", "PERMISSIONS_SOURCE"),
    ("PERMISSIONS_SOURCES", "PERMISSIONS_SOURCE"),
    ("issuer", "ISSUER"),
    ("Audience", "AUDIENCE"),
    ("AUDIENCES", "AUDIENCE"),
    ("ISUER", "ISSUER"),
    ("AUDEINCE", "AUDIENCE"),            # two letters swapped
    ("JWKS_URL", "JWKS_URI"),
    ("CLOCK_LEWAY", "CLOCK_LEEWAY"),
    ("GRANTS_SOURCES", "GRANT_SOURCES"),
    ("IDP_PRSET", "IDP_PRESET"),
    ("TOKEN_TYPE", "TOKEN_TYPES"),
    ("introspection_url", "INTROSPECTION_URL"),
])
def test_a_near_miss_is_found_with_the_declared_name(typed, meant):
    assert near_misses([typed]) == [(typed, meant)]


@pytest.mark.parametrize("name", [
    # What Lambda, the shell and AWS tools set.
    "AWS_REGION", "AWS_DEFAULT_REGION", "AWS_LAMBDA_FUNCTION_NAME", "AWS_EXECUTION_ENV", "LAMBDA_TASK_ROOT",
    "LAMBDA_RUNTIME_DIR", "_HANDLER", "_X_AMZN_TRACE_ID", "TZ", "LANG", "PATH", "HOME", "PYTHONPATH",
    "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_DYNAMODB", "AWS_LAMBDA_LOG_GROUP_NAME", "AWS_XRAY_CONTEXT_MISSING",
    # Unrelated names that share an end with a declared one, and short names.
    "CONTAINER_NAME", "PIP_DEFAULT_TIMEOUT", "SSL_CERT_FILE", "AUD", "ISSUER_NAME_FOR_DOCS", "",
])
def test_unrelated_names_are_not_near_misses(name):
    assert near_misses([name]) == []


def test_declared_names_are_never_near_misses():
    assert near_misses(DECLARED) == []


def test_the_check_is_cheap_at_cold_start():
    # No difflib (or anything else) on the handler's import path for it; a hundred
    # names take well under a millisecond on a quiet machine (here: a generous bound).
    env = dict(os.environ, ISSUER="https://issuer.example", AUDIENCE="api",
               PERMISSIONS_SOURCE=str(ROOT / "permissions"))
    code = "import sys, handler.app; print('difflib' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True,
                          check=True)
    assert done.stdout.strip() == "False"
    names = [f"AWS_LAMBDA_{i}" for i in range(60)] + ["CONTAINER_NAME", "SCOPE_CLAIM"] + DECLARED
    import time

    started = time.perf_counter()
    for _ in range(10):
        near_misses(names)
    assert (time.perf_counter() - started) / 10 < 0.005


def test_the_runtime_logs_one_line_per_near_miss_without_the_value(make_handler, idp, capfd):
    capfd.readouterr()
    handler = make_handler(SCOPE_CLAIM="roles-secret-value", issuer="https://x.example")
    logged = [json.loads(line) for line in capfd.readouterr().err.splitlines() if line.startswith("{")]
    warnings = [line for line in logged if line["event"] == "unknown_variable"]
    assert sorted((w["variable"], w["did_you_mean"]) for w in warnings) == [
        ("SCOPE_CLAIM", "SCOPE_CLAIMS"), ("issuer", "ISSUER")]
    assert all(w["level"] == "WARN" for w in warnings)
    assert "roles-secret-value" not in json.dumps(warnings)
    # Not an error: the handler started and decides with the defaults.
    from tests.conftest import invoke, verdict

    result = invoke(handler, token_event(idp.mint(scope="pets:read")))
    assert verdict(result, "GET", "/pets").value == "Allow"


def test_a_clean_environment_logs_nothing(make_handler, capfd):
    capfd.readouterr()
    make_handler()
    assert "unknown_variable" not in capfd.readouterr().err


def test_the_cli_warns_about_the_process_environment(monkeypatch, capsys):
    monkeypatch.setenv("PERMISSION_SOURCE", "s3://bucket/key")
    assert main(["validate", str(ROOT / "permissions"), "--format", "json"]) == 0
    captured = capsys.readouterr()
    assert ("policy-engine: warning: the environment variable PERMISSION_SOURCE is not a policy-engine variable "
            "and is ignored; did you mean PERMISSIONS_SOURCE?") in captured.err
    assert "s3://bucket/key" not in captured.err
    json.loads(captured.out)  # stdout stays one JSON document


def test_the_cli_warns_about_env_flags_and_env_files(tmp_path, capsys):
    env_file = tmp_path / "function.env"
    env_file.write_text("# the function's settings\nAUDIENCES=api\nISSUER=https://issuer.example\n")
    event = tmp_path / "event.json"
    event.write_text(json.dumps(token_event(None)))
    main(["invoke", "--event", str(event), "--env", "SCOPE_CLAIM=roles", "--env-file", str(env_file),
          "--env", f"PERMISSIONS_SOURCE={ROOT / 'permissions'}"])
    err = capsys.readouterr().err
    assert "warning: --env SCOPE_CLAIM is not a policy-engine variable and is ignored; did you mean SCOPE_CLAIMS?" \
        in err
    assert f"warning: --env-file {env_file}: AUDIENCES is not a policy-engine variable" in err
    assert "PERMISSIONS_SOURCE is not" not in err


def test_a_warning_that_cannot_be_written_does_not_stop_the_start(monkeypatch):
    import policy_engine.logs
    from policy_engine.settings import Settings

    def broken(*args: object, **kwargs: object) -> None:
        raise OSError("stderr is gone")

    monkeypatch.setattr(policy_engine.logs, "log", broken)
    monkeypatch.setenv("ISSUER", "https://issuer.example")
    monkeypatch.setenv("AUDIENCE", "api")
    monkeypatch.setenv("SCOPE_CLAIM", "roles")
    assert Settings.from_environ().scope_claims == ("scope", "scp")
