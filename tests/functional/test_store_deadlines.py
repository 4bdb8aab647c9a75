"""The real handler against hung, trickling and failing stores (raw sockets on 127.0.0.1).

Cold containers are real processes (``import handler.app``, as Lambda's init runs it);
warm ones are loaded in-process after a good load through a proxy to moto. Every wait
is also bounded by the test itself, so code without deadlines fails instead of hanging.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time

import pytest

from policy_engine.adapters.jwks_http import PREFETCH_BUDGET
from policy_engine.admin.local.invoke import invoke
from policy_engine.admin.publish import sync
from policy_engine.cache import STORE_INIT_WAIT, STORE_REQUEST_WAIT
from policy_engine.core.iam import Verdict
from tests.conftest import AUDIENCE, ROOT, token_event, verdict
from tests.store_endpoints import S3_DENIED, fake_store_endpoint, http_answer
from tests.stores import CREDENTIALS
from tests.support.trickle import TricklingServer

#: Cold start in a child process: import the handler (init), then answer one request.
COLD_CONTAINER = """
import json, sys, time
started = time.monotonic()
import handler.app as app
init = time.monotonic() - started
event = {"type": "TOKEN", "authorizationToken": "Bearer " + sys.argv[1],
         "methodArn": "arn:aws:execute-api:us-east-1:123456789012:a1b2c3d4e5/dev/GET/pets"}
started = time.monotonic()
try:
    app.lambda_handler(event, None)
    outcome = "answered"
except Exception as exc:
    outcome = str(exc)
print(json.dumps({"init": init, "first": time.monotonic() - started, "outcome": outcome}))
"""

S3_TRICKLE = http_answer("200 OK", "application/json", b'{"format":"policy-engine/permissions@1"}')


def cold_container(env: dict[str, str], token: str, *, guard: float = 20.0) -> dict:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    try:
        done = subprocess.run([sys.executable, "-c", COLD_CONTAINER, token], cwd=ROOT, env={**clean, **env},
                              capture_output=True, text=True, timeout=guard, check=False)
    except subprocess.TimeoutExpired:
        pytest.fail(f"the cold container was still in init or its first request after {guard}s")
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.splitlines()[-1])


@pytest.mark.slow
@pytest.mark.parametrize(("store", "mode"), [("dynamodb", "hang"), ("dynamodb", "trickle"), ("s3", "trickle")])
def test_cold_init_with_a_hung_store_fails_closed_within_the_init_budget(idp, store, mode):
    options = {"trickle_response": S3_TRICKLE} if store == "s3" else {}
    with fake_store_endpoint(mode, **options) as endpoint:
        env = {
            **CREDENTIALS, "ISSUER": idp.issuer, "AUDIENCE": AUDIENCE,
            f"AWS_ENDPOINT_URL_{store.upper()}": endpoint.url,
            "PERMISSIONS_SOURCE": "dynamodb://permissions" if store == "dynamodb" else "s3://permissions/p.json",
        }
        result = cold_container(env, idp.mint(scope="pets:read"))
    print(f"cold init with a {mode} {store} endpoint: {result['init']:.2f}s "
          f"(store wait {STORE_INIT_WAIT}s); first request {result['first']:.2f}s")
    # Generous: the init wait plus interpreter, boto3 import and the JWKS prefetch on a busy machine.
    assert result["init"] < STORE_INIT_WAIT + 4.0
    assert result["first"] < STORE_REQUEST_WAIT + 2.0
    assert result["outcome"] == "AuthorizerFailure"  # fail closed, never an answer
    assert endpoint.count() >= 1


def _clocked(handler) -> list[float]:
    """Drive the cache's monotonic clock by hand (TTL and back-off), from the real now."""
    now = [time.monotonic()]
    handler.AUTHORIZER.permissions._clock = lambda: now[0]
    return now


def _settle(handler) -> None:
    """Wait for the cache's background load to end (its endpoint is gone), so its log line stays in this test."""
    cache = handler.AUTHORIZER.permissions
    for _ in range(100):
        if cache._load is None:
            return
        time.sleep(0.05)


def _guarded_invoke(handler, event, guard: float = 15.0):
    """``invoke``, failing the test instead of waiting past ``guard`` seconds."""
    box = []
    thread = threading.Thread(target=lambda: box.append(invoke(handler, event)), daemon=True)
    started = time.monotonic()
    thread.start()
    thread.join(guard)
    if thread.is_alive():
        pytest.fail(f"the request was still waiting for the store after {guard}s")
    return box[0], time.monotonic() - started


@pytest.mark.parametrize("backend", ["moto"], indirect=True)
@pytest.mark.parametrize("mode", ["hang", "trickle"])
def test_a_warm_request_with_a_hung_store_answers_from_last_good_within_the_bound(
        idp, make_handler, table, backend, mode, capsys):
    sync(ROOT / "permissions", f"dynamodb://{table}")
    with fake_store_endpoint("forward", upstream=backend.dynamodb) as endpoint:
        handler = make_handler(PERMISSIONS_SOURCE=f"dynamodb://{table}", AWS_ENDPOINT_URL_DYNAMODB=endpoint.url)
        now = _clocked(handler)
        token = idp.mint(scope="pets:read")
        assert verdict(invoke(handler, token_event(token)), "GET", "/pets") is Verdict.ALLOW

        endpoint.mode = mode
        now[0] += 61  # past PERMISSIONS_CACHE_TTL: the next request checks the store
        result, waited = _guarded_invoke(handler, token_event(token))
        assert verdict(result, "GET", "/pets") is Verdict.ALLOW
        assert result.response["context"]["policyVersion"] == "v1"
        assert waited < STORE_REQUEST_WAIT + 2.0

        # The check is still hanging; the next requests do not wait for it again.
        now[0] += 61
        again, waited_again = _guarded_invoke(handler, token_event(token))
        assert verdict(again, "GET", "/pets") is Verdict.ALLOW and waited_again < 1.0
    _settle(handler)
    logged = [json.loads(line) for line in capsys.readouterr().err.splitlines() if line.startswith("{")]
    with capsys.disabled():
        print(f"warm request with a {mode} store: {waited:.2f}s (bound {STORE_REQUEST_WAIT}s), "
              f"the next one {waited_again:.3f}s")
    assert any(e["event"] == "permissions_reload_slow" and e["serving_version"] == "v1" for e in logged)


@pytest.mark.parametrize("store", ["dynamodb", "s3", "s3-304"])
def test_a_cold_container_with_a_failing_store_backs_off_across_requests(idp, make_handler, store, monkeypatch,
                                                                          capsys):
    # s3-304: "Not Modified" to a first load (no If-None-Match sent) is a store failure too.
    not_modified = b"HTTP/1.1 304 Not Modified\r\nETag: \"x\"\r\nContent-Length: 0\r\n\r\n"
    options = {"error_response": {"s3": S3_DENIED, "s3-304": not_modified}[store]} if store != "dynamodb" else {}
    store = store.removesuffix("-304")
    with fake_store_endpoint("error", **options) as endpoint:
        for name in ("AWS_PROFILE", "AWS_ENDPOINT_URL", "AWS_SESSION_TOKEN"):
            monkeypatch.delenv(name, raising=False)
        handler = make_handler(**CREDENTIALS, **{f"AWS_ENDPOINT_URL_{store.upper()}": endpoint.url},
                               PERMISSIONS_SOURCE="dynamodb://perms" if store == "dynamodb" else "s3://perms/p.json")
        now = _clocked(handler)
        token = idp.mint(scope="pets:read")
        incoming = 60
        for _ in range(incoming):  # one request every 0.5 s, 30 s in all
            now[0] += 0.5
            result, _ = _guarded_invoke(handler, token_event(token))
            assert result.error == "AuthorizerFailure"
        sent = endpoint.count()
    print(f"cold container, failing {store}: {incoming} requests -> {sent} store requests")
    # init, then 1, 2, 4, 8, 16 s apart: about 6 loads, each one request (access denied is final)
    assert sent <= 8
    reasons = {line.get("reason") for line in map(json.loads, capsys.readouterr().err.splitlines())
               if line.get("event") == "decision"}
    assert reasons and "internal_error" not in reasons, reasons


@pytest.mark.parametrize("backend", ["moto"], indirect=True)
def test_an_oversize_s3_snapshot_is_refused_with_one_line_and_not_downloaded_again(
        idp, make_handler, bucket, backend, capsys):
    target = f"s3://{bucket}/permissions.json"
    sync(ROOT / "permissions", target)
    size = backend.client("s3").head_object(Bucket=bucket, Key="permissions.json")["ContentLength"]
    limit = size - 1
    with fake_store_endpoint("forward", upstream=backend.s3) as endpoint:
        # The live object's downloads are counted: no candidate is looked for beside it.
        handler = make_handler(PERMISSIONS_SOURCE=target, PERMISSIONS_MAX_BYTES=str(limit),
                               AWS_ENDPOINT_URL_S3=endpoint.url, PERMISSIONS_CANDIDATE="off")
        now = _clocked(handler)
        token = idp.mint(scope="pets:read")
        for _ in range(20):
            now[0] += 5
            assert invoke(handler, token_event(token)).error == "AuthorizerFailure"
        gets, statuses = endpoint.count("GET"), list(endpoint.statuses)
    lines = [json.loads(line) for line in capsys.readouterr().err.splitlines() if line.startswith("{")]
    refused = [e for e in lines if e.get("error") == "store_too_large"]
    assert refused and refused[0]["level"] == "ERROR"
    assert f"{target} is {size} bytes" in refused[0]["detail"]
    assert f"PERMISSIONS_MAX_BYTES is {limit}" in refused[0]["detail"]
    # init and 20 requests over 100 s: a few GETs (back-off); only the first one has a body,
    # the others carry If-None-Match with the refused ETag and get 304
    with capsys.disabled():
        print(f"oversize snapshot, 21 requests: {gets} GETs, answers {statuses}")
    assert gets <= 8 and statuses.count(200) == 1 and set(statuses) == {200, 304}


@pytest.mark.slow
def test_cold_init_with_every_dependency_hung_fits_lambdas_init_limit(idp):
    # GIVEN two issuers whose discovery never answers (JWKS_TIMEOUT at its maximum, 10 s)
    # and a DynamoDB endpoint that never answers
    with TricklingServer(list) as first, TricklingServer(list) as second, fake_store_endpoint("hang") as endpoint:
        env = {
            **CREDENTIALS, "ISSUER": f"{first.url},{second.url}", "AUDIENCE": AUDIENCE, "JWKS_TIMEOUT": "10",
            "AWS_ENDPOINT_URL_DYNAMODB": endpoint.url, "PERMISSIONS_SOURCE": "dynamodb://permissions",
        }
        # WHEN a container starts and takes its first request
        result = cold_container(env, idp.mint(scope="pets:read"))
    print(f"cold init with every dependency hung: {result['init']:.2f}s "
          f"(budgets: keys {PREFETCH_BUDGET}s + store {STORE_INIT_WAIT}s); first request {result['first']:.2f}s")
    # THEN init ends inside the two budgets plus imports, well within Lambda's 10 s init phase,
    # and the request is refused, never answered with a policy
    assert result["init"] < PREFETCH_BUDGET + STORE_INIT_WAIT + 2.5
    assert result["outcome"] in ("Unauthorized", "AuthorizerFailure")
