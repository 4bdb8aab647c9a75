"""A cold start imports only what a decision needs.

The real handler in a fresh interpreter, against the local IdP on 127.0.0.1: import,
init (keys and mappings) and one decision. From a compiled snapshot (what the bundle
ships) it must not import pydantic (the schema's model), PyYAML, PyJWT or boto3; from
YAML only PyYAML is added. Each of those costs tens of milliseconds of every cold start.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from policy_engine.admin.publish import compile_snapshot
from policy_engine.core.iam import Verdict, evaluate_response
from tests.conftest import API, AUDIENCE, ROOT

HEAVY = ("pydantic", "pydantic_core", "yaml", "jwt", "boto3", "botocore")

RUN = """
import json, sys
import handler.app
response = handler.app.lambda_handler(json.loads(sys.argv[1]), None)
heavy = sorted({name.split(".")[0] for name in sys.modules} & set(sys.argv[2].split(",")))
print("RESULT " + json.dumps({"response": response, "heavy": heavy}))
"""


def cold_start(idp, source: Path, scope: str, route: str) -> dict:
    token = idp.mint(scope=scope)
    event = {"type": "TOKEN", "authorizationToken": f"Bearer {token}", "methodArn": f"{API}/dev/{route}"}
    env = {"PATH": "/usr/bin:/bin", "ISSUER": idp.issuer, "AUDIENCE": AUDIENCE, "PERMISSIONS_SOURCE": str(source)}
    done = subprocess.run([sys.executable, "-c", RUN, json.dumps(event), ",".join(HEAVY)], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=60, check=False)
    lines = [line[7:] for line in done.stdout.splitlines() if line.startswith("RESULT ")]
    assert done.returncode == 0 and lines, done.stdout + done.stderr
    return json.loads(lines[-1])


@pytest.fixture
def snapshot(tmp_path: Path) -> Path:
    path = tmp_path / "permissions.json"
    path.write_bytes(compile_snapshot([ROOT / "permissions"])[0])
    return path


def test_from_a_compiled_snapshot_nothing_heavy_is_imported(idp, snapshot):
    result = cold_start(idp, snapshot, "pets:read", "GET/pets/12")
    assert evaluate_response(result["response"], f"{API}/dev/GET/pets/12") is Verdict.ALLOW
    assert evaluate_response(result["response"], f"{API}/dev/POST/pets") is Verdict.IMPLICIT_DENY
    assert result["heavy"] == []


def test_from_yaml_only_the_yaml_parser_is_added(idp):
    result = cold_start(idp, ROOT / "permissions", "pets:write", "POST/pets")
    assert evaluate_response(result["response"], f"{API}/dev/POST/pets") is Verdict.ALLOW
    assert result["heavy"] == ["yaml"]


def test_a_snapshot_with_an_invalid_mapping_still_loads_nothing_and_fails_closed(idp, tmp_path):
    # A hand edit that keeps the format and recomputes the digest: the schema refuses it.
    from policy_engine.core.publish import MappingKey
    from policy_engine.core.snapshot import encode_snapshot

    path = tmp_path / "edited.json"
    path.write_bytes(encode_snapshot(1, frozenset({MappingKey(API, "dev", "GET", "/pets/x{id}", "pets:read")}), "", ""))
    event = {"type": "TOKEN", "authorizationToken": f"Bearer {idp.mint(scope='pets:read')}",
             "methodArn": f"{API}/dev/GET/pets/12"}
    env = {"PATH": "/usr/bin:/bin", "ISSUER": idp.issuer, "AUDIENCE": AUDIENCE, "PERMISSIONS_SOURCE": str(path)}
    done = subprocess.run([sys.executable, "-c", RUN, json.dumps(event), ",".join(HEAVY)], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode != 0 and "AuthorizerFailure" in done.stderr
    logs = [json.loads(line) for line in done.stderr.splitlines() if line.startswith("{")]
    unavailable = [line for line in logs if line["event"] == "permissions_unavailable"]
    problem = "mappings[0]: resource '/pets/x{id}': a route parameter is a whole path segment"
    assert unavailable and problem in unavailable[0]["detail"]
