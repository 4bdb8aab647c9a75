"""``policy-engine invoke``: the real handler on the shipped event files."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from policy_engine.admin.cli import main
from policy_engine.admin.cli.invoke import put_token

ROOT = Path(__file__).resolve().parents[2]
EVENTS = ROOT / "events"


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch):
    for name in ("ISSUER", "AUDIENCE", "JWKS_URI", "PERMISSIONS_SOURCE"):
        monkeypatch.delenv(name, raising=False)


def invoke_json(capsys, *args: str) -> tuple[int, dict]:
    code = main(["invoke", "--format", "json", *args])
    return code, json.loads(capsys.readouterr().out)


def test_shipped_token_events_carry_a_placeholder():
    events = sorted(EVENTS.glob("token-*.json"))
    assert len(events) >= 5
    for path in events:
        event = json.loads(path.read_text())
        assert event["type"] == "TOKEN" and "REPLACE_WITH_TOKEN" in event["authorizationToken"]


@pytest.mark.parametrize("event", ["request-get-pet.json", "http-v1-get-pet.json", "http-v2-get-pet.json"])
def test_the_minted_token_replaces_the_placeholder_in_every_event_kind(capsys, event):
    code, out = invoke_json(capsys, "--event", str(EVENTS / event), "--local-idp", "--scopes", "pets:read",
                            "--permissions", str(ROOT / "permissions"))
    assert code == 0 and out["status"] == 200, out
    code, out = invoke_json(capsys, "--event", str(EVENTS / event), "--local-idp", "--scopes", "email",
                            "--permissions", str(ROOT / "permissions"))
    assert code == 1 and out["status"] == 403


@pytest.mark.parametrize(("scopes", "status", "verdict"), [("pets:read", 200, "Allow"), ("email", 403, "Deny")])
def test_a_simple_response_is_read_as_api_gateway_reads_it(capsys, scopes, status, verdict):
    # HTTP API payload 2.0 with simple responses: {"isAuthorized": ...}, no policy to evaluate.
    code, out = invoke_json(capsys, "--event", str(EVENTS / "http-v2-get-pet.json"), "--local-idp", "--scopes", scopes,
                            "--permissions", str(ROOT / "permissions"), "--env", "SIMPLE_RESPONSES=true",
                            "--env", "IDENTITY_SOURCE=$request.header.Authorization,$context.routeKey")
    assert set(out["response"]) == {"isAuthorized", "context"}, out
    assert (out["status"], out["verdict"], code) == (status, verdict, 0 if status == 200 else 1)


@pytest.mark.parametrize(("event", "scopes", "status"), [
    ("token-get-pet.json", "pets:read", 200),
    ("token-create-pet.json", "pets:read", 403),
    ("token-create-pet.json", "pets:write", 200),
    ("token-delete-pet.json", "pets:admin", 200),
    ("token-place-order.json", "store:write", 200),
    ("token-update-order.json", "store:read", 403),
])
def test_local_idp_mints_a_token_and_the_real_handler_decides(capsys, event, scopes, status):
    code, out = invoke_json(capsys, "--event", str(EVENTS / event), "--local-idp", "--scopes", scopes,
                            "--permissions", str(ROOT / "permissions"))
    assert out["status"] == status and code == (0 if status == 200 else 1)
    assert out["response"]["principalId"] == "local-client"
    assert out["environment"]["ISSUER"].startswith("http://127.0.0.1:")


def test_environment_comes_from_env_file_and_flags(idp, tmp_path, capsys):
    env_file = tmp_path / "function.env"
    env_file.write_text(f"# the function's environment\nISSUER={idp.issuer}\nAUDIENCE=wrong-audience\n")
    token = idp.mint(scope="pets:read", audience="policy-engine-demo")
    args = ["--event", str(EVENTS / "token-get-pet.json"), "--env-file", str(env_file), "--token", token]
    code, out = invoke_json(capsys, *args)
    assert code == 1 and out["status"] == 401 and out["error"] == "Unauthorized"
    code, out = invoke_json(capsys, *args, "--env", "AUDIENCE=policy-engine-demo")
    assert code == 0 and out["status"] == 200


def test_failures_to_start_or_read_exit_2(tmp_path, capsys):
    assert main(["invoke", "--event", str(tmp_path / "missing.json")]) == 2
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    assert main(["invoke", "--event", str(bad)]) == 2
    deep = tmp_path / "deep.json"
    deep.write_text("[" * 100_000 + "]" * 100_000)
    capsys.readouterr()
    assert main(["invoke", "--event", str(deep)]) == 2
    assert "deep.json: not a JSON event (nested too deeply)" in capsys.readouterr().err
    # no ISSUER: the handler refuses to start, as the Lambda function would
    assert main(["invoke", "--event", str(EVENTS / "token-get-pet.json")]) == 2
    assert "ISSUER" in capsys.readouterr().err
    assert main(["invoke", "--event", str(EVENTS / "token-get-pet.json"), "--env", "NOEQUALS"]) == 2


def test_text_output_shows_the_response_and_the_answer(capsys):
    code = main(["invoke", "--event", str(EVENTS / "token-get-pet.json"), "--local-idp"])
    text = capsys.readouterr().out
    assert code == 0
    assert '"principalId": "local-client"' in text and "API Gateway answers 200 (Allow)" in text


def test_put_token_places_the_credential_where_each_event_type_carries_it():
    assert put_token({"type": "TOKEN", "methodArn": "x"}, "t")["authorizationToken"] == "Bearer t"
    v1 = put_token({"type": "REQUEST", "headers": {"Authorization": "old"}, "methodArn": "x"}, "t")
    assert v1["headers"] == {"Authorization": "Bearer t"}
    v2 = put_token({"type": "REQUEST", "version": "2.0", "identitySource": ["old"], "routeArn": "x"}, "t")
    assert v2["identitySource"] == ["Bearer t"] and v2["headers"]["authorization"] == "Bearer t"


def test_an_http_api_refusal_says_that_401_is_not_documented_for_http_apis(capsys):
    args = ["--token", "garbage", "--env", "ISSUER=https://idp.example.com", "--env", "AUDIENCE=x",
            "--permissions", str(ROOT / "permissions")]
    assert main(["invoke", "--event", str(EVENTS / "http-v2-get-pet.json"), *args]) == 1
    assert "an HTTP API answers 401 if it honours 'Unauthorized'" in capsys.readouterr().out
    assert main(["invoke", "--event", str(EVENTS / "token-get-pet.json"), *args]) == 1
    assert "HTTP API" not in capsys.readouterr().out


def test_an_env_file_that_is_not_utf8_is_one_error(tmp_path, capsys):
    env_file = tmp_path / "bad.env"
    env_file.write_bytes(b"ISSUER=\xff\xfe\n")
    assert main(["invoke", "--event", str(EVENTS / "token-get-pet.json"), "--env-file", str(env_file)]) == 2
    assert capsys.readouterr().err.strip() == f"policy-engine invoke: --env-file: {env_file}: not UTF-8 text"


def test_quickstart_refuses_bad_permission_files_once_with_file_and_line(tmp_path, capsys):
    # Not a 500 for every request of the walk-through, with the handler's log lines.
    (tmp_path / "a.yaml").write_text("permissions:\n  - arn: x\n")
    assert main(["quickstart", "--permissions", str(tmp_path)]) == 2
    captured = capsys.readouterr()
    assert captured.err.startswith("policy-engine quickstart: ") and "a.yaml:2: " in captured.err
    assert "AuthorizerFailure" not in captured.out + captured.err and "handler failed" not in captured.out
