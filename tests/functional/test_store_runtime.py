"""The real handler pointed at a table or a bucket: versions, TTL pickup, last good, fail closed."""

from __future__ import annotations

import json
import time

import pytest

from policy_engine.admin.local.invoke import invoke
from policy_engine.admin.publish import sync
from policy_engine.core.iam import Verdict
from tests.conftest import ROOT, token_event, verdict
from tests.faults import write_permissions

READER_ONLY_WRITERS = [("GET", "/pets", "pets:write"), ("GET", "/pets/*", "pets:write")]


def decision_logs(capsys) -> list[dict]:
    lines = [json.loads(line) for line in capsys.readouterr().err.splitlines() if line.startswith("{")]
    return [line for line in lines if line.get("event") == "decision"]


def test_the_handler_decides_with_the_published_table_and_logs_the_version(idp, make_handler, table, capsys):
    sync(ROOT / "permissions", f"dynamodb://{table}")
    handler = make_handler(PERMISSIONS_SOURCE=f"dynamodb://{table}")
    result = invoke(handler, token_event(idp.mint(scope="pets:read"), "GET", "/pets/12"))
    assert verdict(result, "GET", "/pets/12") is Verdict.ALLOW
    assert verdict(result, "POST", "/pets") is Verdict.IMPLICIT_DENY
    assert result.response["context"]["policyVersion"] == "v1"
    assert decision_logs(capsys)[-1]["version"] == "v1"


def test_a_warm_container_picks_up_a_new_version_after_the_ttl(idp, make_handler, table, tmp_path):
    sync(ROOT / "permissions", f"dynamodb://{table}")
    handler = make_handler(PERMISSIONS_SOURCE=f"dynamodb://{table}", PERMISSIONS_CACHE_TTL="30")
    # The container's monotonic clock, moved by hand: a sync takes longer than a short real TTL.
    now = [time.monotonic()]
    handler.AUTHORIZER.permissions._clock = lambda: now[0]
    token = idp.mint(scope="pets:read")
    assert verdict(invoke(handler, token_event(token)), "GET", "/pets") is Verdict.ALLOW

    sync(write_permissions(tmp_path / "p.yaml", READER_ONLY_WRITERS), f"dynamodb://{table}")
    now[0] += 29
    cached = invoke(handler, token_event(token))  # inside the TTL: still the loaded v1
    assert verdict(cached, "GET", "/pets") is Verdict.ALLOW and cached.response["context"]["policyVersion"] == "v1"
    now[0] += 2
    fresh = invoke(handler, token_event(token))
    assert verdict(fresh, "GET", "/pets") is Verdict.EXPLICIT_DENY
    assert fresh.response["context"]["policyVersion"] == "v2"


def test_a_failing_store_keeps_the_last_good_mappings_until_max_stale_then_fails_closed(
        idp, make_handler, table, backend, capsys):
    sync(ROOT / "permissions", f"dynamodb://{table}")
    handler = make_handler(PERMISSIONS_SOURCE=f"dynamodb://{table}", PERMISSIONS_CACHE_TTL="0.1",
                           PERMISSIONS_MAX_STALE="1.5")
    token = idp.mint(scope="pets:read")
    assert verdict(invoke(handler, token_event(token)), "GET", "/pets") is Verdict.ALLOW
    backend.client().delete_table(TableName=table)  # the store is gone
    time.sleep(0.2)
    degraded = invoke(handler, token_event(token))
    assert verdict(degraded, "GET", "/pets") is Verdict.ALLOW
    assert degraded.response["context"]["policyVersion"] == "v1"
    logged = [json.loads(line) for line in capsys.readouterr().err.splitlines() if line.startswith("{")]
    assert any(e["event"] == "permissions_reload_failed" and e["serving_version"] == "v1" for e in logged)
    time.sleep(1.5)
    assert invoke(handler, token_event(token)).error == "AuthorizerFailure"


@pytest.mark.parametrize("problem", ["missing table", "never published", "corrupt item", "unreachable"])
def test_a_cold_container_with_a_failing_store_never_allows(idp, make_handler, table, backend, problem, tmp_path):
    env = {"PERMISSIONS_SOURCE": f"dynamodb://{table}"}
    if problem == "missing table":
        env["PERMISSIONS_SOURCE"] = "dynamodb://no-such-table"
    elif problem == "corrupt item":
        sync(write_permissions(tmp_path / "p.yaml", [("GET", "/pets", "pets:read")]), f"dynamodb://{table}")
        # What the authorizer reads is the snapshot: one byte of it changed by hand
        client = backend.client()
        key = {"pk": {"S": "SNAPSHOT#000"}, "sk": {"S": client.scan(TableName=table, ScanFilter={
            "pk": {"AttributeValueList": [{"S": "SNAPSHOT#000"}], "ComparisonOperator": "EQ"}})["Items"][0]["sk"]["S"]}}
        data = bytearray(client.get_item(TableName=table, Key=key)["Item"]["data"]["B"])
        data[-20] ^= 1
        client.put_item(TableName=table, Item={**key, "data": {"B": bytes(data)}, "version": {"N": "1"}})
    elif problem == "unreachable":
        env["AWS_ENDPOINT_URL_DYNAMODB"] = "http://127.0.0.1:9"
    handler = make_handler(**env)
    for _ in range(2):
        result = invoke(handler, token_event(idp.mint(scope="pets:read")))
        assert result.response is None and result.error == "AuthorizerFailure"


@pytest.mark.parametrize("backend", ["moto"], indirect=True)
def test_the_handler_reads_an_s3_snapshot_and_picks_up_a_new_one(idp, make_handler, bucket, tmp_path):
    target = f"s3://{bucket}/permissions.json"
    sync(ROOT / "permissions", target)
    handler = make_handler(PERMISSIONS_SOURCE=target, PERMISSIONS_CACHE_TTL="0.2")
    token = idp.mint(scope="pets:read")
    first = invoke(handler, token_event(token))
    assert verdict(first, "GET", "/pets") is Verdict.ALLOW and first.response["context"]["policyVersion"] == "v1"
    sync(write_permissions(tmp_path / "p.yaml", READER_ONLY_WRITERS), target)
    time.sleep(0.3)
    second = invoke(handler, token_event(token))
    assert verdict(second, "GET", "/pets") is Verdict.EXPLICIT_DENY
    assert second.response["context"]["policyVersion"] == "v2"


@pytest.mark.parametrize("backend", ["moto"], indirect=True)
def test_a_cold_container_without_a_snapshot_never_allows(idp, make_handler, bucket):
    handler = make_handler(PERMISSIONS_SOURCE=f"s3://{bucket}/nothing.json")
    assert invoke(handler, token_event(idp.mint(scope="pets:read"))).error == "AuthorizerFailure"


#: A cold container in a child process: init (import), one request, and what it imported.
COLD_CONTAINER = """
import json, sys
import handler.app as app
event = {"type": "TOKEN", "authorizationToken": "Bearer " + sys.argv[1],
         "methodArn": "arn:aws:execute-api:us-east-1:123456789012:a1b2c3d4e5/dev/GET/pets/12"}
answer = app.lambda_handler(event, None)
aws_sdk = sorted(m for m in sys.modules if m.split(".")[0] in ("boto3", "botocore", "s3transfer"))
admin = sorted(m for m in sys.modules
               if m.startswith("policy_engine.admin")
               and m != "policy_engine.adapters.aws_http")
print(json.dumps({"answer": answer, "aws_sdk": aws_sdk, "admin": admin}))
"""


@pytest.mark.parametrize("backend", ["moto"], indirect=True)
@pytest.mark.parametrize("store", ["dynamodb", "s3"])
def test_a_cold_container_loads_a_store_without_boto3_or_the_publisher(idp, backend, store, tmp_path, request):
    import os
    import subprocess
    import sys

    from policy_engine.core.iam import evaluate_response
    from tests.conftest import API, AUDIENCE

    location = (f"dynamodb://{request.getfixturevalue('table')}" if store == "dynamodb"
                else f"s3://{request.getfixturevalue('bucket')}/p.json")
    sync(ROOT / "permissions", location)
    clean = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env = {**clean, **backend.env, "ISSUER": idp.issuer, "AUDIENCE": AUDIENCE, "PERMISSIONS_SOURCE": location}
    done = subprocess.run([sys.executable, "-c", COLD_CONTAINER, idp.mint(scope="pets:read")], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=60, check=True)
    report = json.loads(done.stdout.splitlines()[-1])
    assert evaluate_response(report["answer"], f"{API}/dev/GET/pets/12") is Verdict.ALLOW
    assert report["aws_sdk"] == [] and report["admin"] == []
