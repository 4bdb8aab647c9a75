"""URLs in messages and log lines never show their user information or query string."""

from __future__ import annotations

import json

import pytest

from policy_engine import logs
from policy_engine.admin.cli import main
from policy_engine.core.urls import redact_url_secrets


@pytest.mark.parametrize(("text", "shown"), [
    ('Could not connect to the endpoint URL: "http://user:hunter2@127.0.0.1:1/"',
     'Could not connect to the endpoint URL: "http://***@127.0.0.1:1/"'),
    ("'ftp://x:hunter2@h'", "'ftp://***@h'"),
    ("GET https://idp.example.com/keys?token=abc&x=1 failed", "GET https://idp.example.com/keys?*** failed"),
    ("https://idp.example.com/.well-known/jwks.json answered 500", "https://idp.example.com/.well-known/jwks.json "
                                                                   "answered 500"),
    ("no URL here: user@example.com", "no URL here: user@example.com"),
])
def test_user_information_and_query_strings_are_hidden(text, shown):
    assert redact_url_secrets(text) == shown


def test_log_lines_hide_them(capsys):
    logs.log("ERROR", "jwks_refresh_failed", error="GET https://u:hunter2@idp.example.com/k?sig=s3cret failed")
    line = capsys.readouterr().err
    assert "hunter2" not in line and "s3cret" not in line and "https://***@idp.example.com/k?***" in line


def test_command_errors_hide_them(capsys, monkeypatch):
    monkeypatch.setenv("AWS_ENDPOINT_URL_DYNAMODB", "http://user:hunter2@127.0.0.1:1/?token=s3cret")
    for name, value in (("AWS_ACCESS_KEY_ID", "testing"), ("AWS_SECRET_ACCESS_KEY", "testing"),
                        ("AWS_DEFAULT_REGION", "us-east-1")):
        monkeypatch.setenv(name, value)
    assert main(["rollback", "dynamodb://some-table", "--list", "--format", "json"]) == 2
    captured = capsys.readouterr()
    assert "hunter2" not in captured.err + captured.out and "s3cret" not in captured.err + captured.out
    assert "http://***@127.0.0.1:1/?***" in captured.err


@pytest.mark.parametrize(("text", "secret"), [
    ("http://u:Pa'ssWORD@127.0.0.1:1/jwks", "Pa'ssWORD"),  # ' is allowed in user information
    ("http://u:p@ss@127.0.0.1:1/jwks", "ss@"),  # an unencoded @ in a password
    ("http://127.0.0.1:1/introspect?key=AB'CDSECRET", "CDSECRET"),
])
def test_quotes_and_at_signs_do_not_end_a_secret(text, secret):
    shown = redact_url_secrets(f"fetch of {text} failed")
    assert secret not in shown and shown.endswith(" failed"), shown


def test_log_lines_stay_json_whatever_a_value_holds(capsys):
    # A value with an escaped quote after a URL's query: redacting the encoded line would
    # swallow the escape and leave a line no JSON parser reads (and CloudWatch no metric).
    logs.log("WARN", "decision", path='/pets/http://x?y"z', detail=ValueError("http://u:pw@h/x?q=s3cret"),
             nested={"urls": ["https://u:hunter2@h/"]}, metrics={"Decisions": 1})
    line = capsys.readouterr().err
    record = json.loads(line)
    assert record["path"] == '/pets/http://x?***"z'
    assert record["detail"] == "http://***@h/x?***"
    assert record["nested"] == {"urls": ["https://***@h/"]}
    assert "hunter2" not in line and "s3cret" not in line and "pw@" not in line
