"""IAM caps each policy Resource at 512 characters; the handler never writes a longer one.

A stage-'*' mapping is written with the request's stage, which API Gateway allows up to
128 characters long. ``validate`` and ``sync`` refuse a mapping that could pass 512 on
some stage (``tests/adapters/test_yaml_files.py``); a store may still hold one that an
older release published. Then the Resources that would be too long are left out (those
routes are denied) and logged, and the rest of the policy stands.
"""

from __future__ import annotations

import datetime
import json

import pytest

from policy_engine.adapters.s3 import encode_snapshot
from policy_engine.admin.local.invoke import invoke
from policy_engine.core.iam import Verdict, evaluate_response
from policy_engine.core.publish import MappingKey
from tests.conftest import API, token_event

LONG_STAGE = "s" * 128  # the longest stage name API Gateway allows
# On 'dev' its Resources are 410 to 414 characters; on LONG_STAGE 535 to 539.
LONG_PATH = "/reports/" + "r" * 340


def _publish_as_an_older_release(client, bucket: str, key: str) -> None:
    # Written directly: today's sync refuses LONG_PATH on stage '*'.
    keys = frozenset({
        MappingKey(API, "*", "*", LONG_PATH, "reports:all"),
        MappingKey(API, "*", "GET", "/pets", "reports:all"),
        MappingKey(API, "*", "GET", "/pets/*", "reports:all"),
        MappingKey(API, "*", "POST", "/pets", "pets:write"),
    })
    now = datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")
    client.put_object(Bucket=bucket, Key=key, Body=encode_snapshot(1, keys, "older release", now))


def _lines(err: str, event: str) -> list[dict]:
    return [r for r in (json.loads(line) for line in err.splitlines() if line.startswith("{")) if r["event"] == event]


@pytest.mark.parametrize("backend", ["moto"], indirect=True)
def test_resources_too_long_for_the_stage_are_left_out_and_the_rest_of_the_policy_stands(
        idp, make_handler, backend, bucket, capsys):
    _publish_as_an_older_release(backend.client("s3"), bucket, "permissions.json")
    handler = make_handler(PERMISSIONS_SOURCE=f"s3://{bucket}/permissions.json")
    token = idp.mint(scope="reports:all", subject="analyst")
    # Twice: the first answer comes from the general path, the second from the warm one.
    for _ in range(2):
        result = invoke(handler, token_event(token, "GET", "/pets", stage=LONG_STAGE))
        assert result.response is not None, result.error
        resources = [r for s in result.response["policyDocument"]["Statement"] for r in s["Resource"]]
        assert resources and max(map(len, resources)) <= 512

        def on_long_stage(verb: str, path: str, response=result.response) -> Verdict:
            # evaluate_response refuses any Resource over 512 characters, as API Gateway does
            return evaluate_response(response, f"{API}/{LONG_STAGE}/{verb}/{path}")

        assert on_long_stage("GET", "pets") is Verdict.ALLOW
        assert on_long_stage("GET", "pets/7") is Verdict.ALLOW
        # fail closed for the route that does not fit, never a wider pattern
        for verb in ("GET", "DELETE", "OPTIONS"):
            assert on_long_stage(verb, LONG_PATH[1:]) is Verdict.IMPLICIT_DENY
            assert on_long_stage(verb, "reports/x") is Verdict.IMPLICIT_DENY
        assert on_long_stage("POST", "pets") is Verdict.IMPLICIT_DENY
    [line] = _lines(capsys.readouterr().err, "resource_too_long")
    assert line["level"] == "ERROR" and line["stage"] == LONG_STAGE and line["limit"] == 512
    assert line["dropped"] == 7 and all(len(r) > 512 for r in line["resources"])
    # On a short stage the same mapping fits, and grants every method of its path.
    short = invoke(handler, token_event(token, "DELETE", LONG_PATH, stage="dev"))
    assert evaluate_response(short.response, f"{API}/dev/DELETE/{LONG_PATH[1:]}") is Verdict.ALLOW
    assert not _lines(capsys.readouterr().err, "resource_too_long")
