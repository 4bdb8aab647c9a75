"""What one store load may cost: requests per attempt, and bytes per snapshot.

Against moto (through a counting proxy) and raw-socket endpoints on 127.0.0.1.
"""

from __future__ import annotations

import pytest

from policy_engine.adapters.dynamodb import DynamoDbPermissionSource
from policy_engine.adapters.s3 import S3PermissionSource
from policy_engine.admin.publish import sync
from policy_engine.errors import StoreError
from tests.faults import many_routes, write_permissions
from tests.store_endpoints import (
    DYNAMODB_INTERNAL_ERROR,
    fake_store_endpoint,
    http_answer,
)
from tests.stores import CREDENTIALS

MiB = 1024 * 1024
S3_INTERNAL_ERROR = http_answer("500 Internal Server Error", "application/xml",
                                b"<Error><Code>InternalError</Code><Message>injected</Message></Error>")


@pytest.fixture
def aws_env(monkeypatch):
    for name in ("AWS_PROFILE", "AWS_ENDPOINT_URL", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    for name, value in CREDENTIALS.items():
        monkeypatch.setenv(name, value)
    return monkeypatch


@pytest.mark.parametrize("store", ["dynamodb", "s3"])
def test_a_runtime_load_sends_at_most_the_total_attempts(aws_env, store):
    from policy_engine.adapters.aws_http import RUNTIME_ATTEMPTS

    response = DYNAMODB_INTERNAL_ERROR if store == "dynamodb" else S3_INTERNAL_ERROR
    with fake_store_endpoint("error", error_response=response) as endpoint:
        aws_env.setenv(f"AWS_ENDPOINT_URL_{store.upper()}", endpoint.url)
        source = DynamoDbPermissionSource("perms") if store == "dynamodb" else S3PermissionSource("s3://perms/p.json")
        with pytest.raises(StoreError):
            source.fetch(None)
        # a 5xx answer is retried once: two requests in all
        assert endpoint.count() == RUNTIME_ATTEMPTS == 2


@pytest.mark.parametrize("backend", ["moto"], indirect=True)
def test_an_oversize_s3_object_is_refused_unread_and_not_downloaded_again(bucket, backend, tmp_path):
    target = f"s3://{bucket}/p.json"
    sync(write_permissions(tmp_path / "a.yaml", [("GET", "/a", "s")]), target)
    client = backend.client("s3")
    with fake_store_endpoint("forward", upstream=backend.s3) as endpoint:
        source = S3PermissionSource(target, max_bytes=MiB,
                                    environ={**CREDENTIALS, "AWS_ENDPOINT_URL_S3": endpoint.url})
        good = source.fetch(None)
        assert good is not None and good.version == "v1"

        big = 24 * MiB
        client.put_object(Bucket=bucket, Key="p.json", Body=b" " * big)  # no sync would write it; any bytes do
        endpoint.sent = 0
        with pytest.raises(StoreError) as refused:
            source.fetch(good.etag)
        assert refused.value.code == "store_too_large"
        assert str(refused.value).startswith(f"{target} is {big} bytes; PERMISSIONS_MAX_BYTES is {MiB}")
        # Refused on its Content-Length: the connection is dropped, the body is not read
        # (what got through is only what the sockets buffered meanwhile).
        print(f"refused a {big} B object after {endpoint.sent} B went over the wire")
        assert endpoint.sent < big // 2

        with pytest.raises(StoreError, match="is 25165824 bytes"):  # asked again: S3 says 304
            source.fetch(good.etag)
        assert endpoint.statuses == [200, 200, 304]

        # Put the published snapshot back (its history copy): a changed object is read again.
        history = client.get_object(Bucket=bucket, Key="p.json.history/0000000001.json")["Body"].read()
        client.put_object(Bucket=bucket, Key="p.json", Body=history)
        back = source.fetch(None)
        assert back is not None and back.version == "v1" and endpoint.statuses[-1] == 200


def test_an_endless_s3_body_is_cut_at_the_cap(aws_env):
    with fake_store_endpoint("endless") as endpoint:
        aws_env.setenv("AWS_ENDPOINT_URL_S3", endpoint.url)
        source = S3PermissionSource("s3://perms/p.json", max_bytes=MiB)
        with pytest.raises(StoreError, match=f"more than {MiB} bytes; PERMISSIONS_MAX_BYTES is {MiB}") as refused:
            source.fetch(None)
        assert refused.value.code == "store_too_large"
        print(f"endless body: {endpoint.sent} B sent before the reader stopped")
        assert endpoint.sent < 16 * MiB


@pytest.mark.parametrize("backend", ["moto"], indirect=True)
def test_an_oversize_dynamodb_version_is_refused_and_not_read_again(table, backend, tmp_path):
    sync(write_permissions(tmp_path / "p.yaml", many_routes(200)), f"dynamodb://{table}")
    with fake_store_endpoint("forward", upstream=backend.dynamodb) as endpoint:
        source = DynamoDbPermissionSource(table, max_bytes=4096,
                                          environ={**CREDENTIALS, "AWS_ENDPOINT_URL_DYNAMODB": endpoint.url})
        with pytest.raises(StoreError) as refused:
            source.fetch(None)
        assert refused.value.code == "store_too_large"
        assert str(refused.value).startswith(f"dynamodb://{table} v1 holds ")
        assert "bytes of mappings; PERMISSIONS_MAX_BYTES is 4096" in str(refused.value)
        with pytest.raises(StoreError, match="PERMISSIONS_MAX_BYTES is 4096"):
            source.fetch(None)
        # Refused on the size the pointer publishes: only the pointer was read, twice
        assert endpoint.operations == ["GetItem", "GetItem"]

    assert DynamoDbPermissionSource(table, max_bytes=64 * 1024).fetch(None) is not None


def test_the_limit_is_a_setting_with_a_documented_default():
    from policy_engine.errors import ConfigurationError
    from policy_engine.settings import Settings

    base = {"ISSUER": "https://idp.example.com", "AUDIENCE": "api"}
    assert Settings.from_environ(base).permissions_max_bytes == 24 * MiB
    assert Settings.from_environ({**base, "PERMISSIONS_MAX_BYTES": "1048576"}).permissions_max_bytes == MiB
    with pytest.raises(ConfigurationError) as bad:
        Settings.from_environ({**base, "PERMISSIONS_MAX_BYTES": "lots"})
    assert bad.value.variable == "PERMISSIONS_MAX_BYTES"


@pytest.mark.parametrize("store", ["dynamodb", "s3"])
def test_a_trickling_store_answer_is_cut_at_the_request_deadline(aws_env, store):
    # A byte every 0.2 s: no socket read ever waits long, so only a deadline for the whole
    # exchange ends it (the answer alone would take about 25 s to arrive).
    import threading
    import time

    from policy_engine.adapters.aws_http import RUNTIME_ATTEMPTS, RUNTIME_CALL_TIMEOUT

    outcome: list[BaseException | None] = []
    with fake_store_endpoint("trickle", interval=0.2, trickle_response=http_answer(
            "200 OK", "application/json", b'{"Item": {}}' + b" " * 100)) as endpoint:
        aws_env.setenv(f"AWS_ENDPOINT_URL_{store.upper()}", endpoint.url)
        source = DynamoDbPermissionSource("perms") if store == "dynamodb" else S3PermissionSource("s3://perms/p.json")

        def load() -> None:
            try:
                source.fetch(None)
                outcome.append(None)
            except BaseException as exc:  # noqa: BLE001 - reported below
                outcome.append(exc)

        started = time.monotonic()
        worker = threading.Thread(target=load, daemon=True)
        worker.start()
        worker.join(20)  # the guard: code without a whole-exchange deadline fails here, not hangs
        elapsed = time.monotonic() - started
    print(f"trickling {store} endpoint: gave up after {elapsed:.2f} s ({RUNTIME_ATTEMPTS} requests of at most "
          f"{RUNTIME_CALL_TIMEOUT} s)")
    assert outcome and isinstance(outcome[0], StoreError) and "TimeoutError" in str(outcome[0])
    assert elapsed < RUNTIME_ATTEMPTS * RUNTIME_CALL_TIMEOUT + 2.0
    assert endpoint.count() == RUNTIME_ATTEMPTS


@pytest.mark.parametrize("backend", ["moto"], indirect=True)
def test_a_dynamodb_load_of_slow_valid_answers_ends_at_the_load_deadline(table, backend, tmp_path, monkeypatch):
    # Each answer arrives well inside its own request's 3 s, but a load makes a request per
    # batch of parts: only a deadline for the whole load keeps a slow endpoint from holding
    # the one background load for minutes.
    import time

    from policy_engine.adapters import dynamodb

    sync(write_permissions(tmp_path / "p.yaml", many_routes(50)), f"dynamodb://{table}")
    monkeypatch.setattr(dynamodb, "RUNTIME_LOAD_DEADLINE", 0.8)
    with fake_store_endpoint("forward", upstream=backend.dynamodb, delay=0.5) as endpoint:
        source = DynamoDbPermissionSource(table, environ={**CREDENTIALS, "AWS_ENDPOINT_URL_DYNAMODB": endpoint.url})
        started = time.monotonic()
        with pytest.raises(StoreError, match=f"dynamodb://{table} BatchGetItem: the whole load outlived its deadline"):
            source.fetch(None)
        elapsed = time.monotonic() - started
        # The pointer took 0.5 s, the parts' request the 0.3 s left; no retry was sent after.
        assert elapsed < 1.5, elapsed
        assert endpoint.operations == ["GetItem", "BatchGetItem"]

        monkeypatch.setattr(dynamodb, "RUNTIME_LOAD_DEADLINE", 5.0)
        loaded = source.fetch(None)  # the same endpoint within the deadline: loads
        assert loaded is not None and loaded.version == "v1"
