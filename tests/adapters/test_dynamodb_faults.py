"""What no local server does: UnprocessedItems, throttling, rejected credentials.

Injected around a real client (moto and DynamoDB Local), with botocore's Stubber, or
(for the authorizer's reader, which does not use boto3) by a raw-socket endpoint.
"""

from __future__ import annotations

import boto3
import pytest
from botocore.stub import Stubber

from policy_engine.adapters.dynamodb import DynamoDbPermissionSource
from policy_engine.admin.publish import load_desired, sync
from policy_engine.admin.publish.dynamodb import DynamoDbStore
from policy_engine.core.publish import keys_of
from policy_engine.errors import StoreError
from tests.adapters.test_dynamodb_sync import load, pointer_version
from tests.faults import FaultyClient, aws_error, many_routes, write_permissions
from tests.store_endpoints import dynamodb_error, fake_store_endpoint
from tests.stores import CREDENTIALS


def test_unprocessed_items_are_retried_with_backoff_until_written(table, tmp_path, backend):
    yaml_file = write_permissions(tmp_path / "p.yaml", many_routes(60))
    sleeps: list[float] = []

    def half_unprocessed(n, kwargs, real):
        if n <= 3:  # the first three calls get half their writes back, as a throttled table does
            [(name, requests)] = kwargs["RequestItems"].items()
            keep, back = requests[: len(requests) // 2], requests[len(requests) // 2:]
            real(RequestItems={name: keep})
            return {"UnprocessedItems": {name: back}}
        return None

    faulty = FaultyClient(backend.client(), batch_write_item=half_unprocessed)
    result = sync(yaml_file, f"dynamodb://{table}", client=faulty, sleep=sleeps.append)
    assert result.published
    assert len(sleeps) == 3 and all(0 <= s <= 5 for s in sleeps)
    assert keys_of(load(table)) == load_desired(yaml_file)


def test_throttling_errors_back_off_and_retry(table, tmp_path, backend):
    yaml_file = write_permissions(tmp_path / "p.yaml", many_routes(30))

    def throttled_twice(n, kwargs, real):
        if n <= 2:
            raise aws_error("ProvisionedThroughputExceededException", "BatchWriteItem")

    sleeps: list[float] = []
    faulty = FaultyClient(backend.client(), batch_write_item=throttled_twice)
    assert sync(yaml_file, f"dynamodb://{table}", client=faulty, sleep=sleeps.append).published
    assert len(sleeps) == 2
    assert keys_of(load(table)) == load_desired(yaml_file)


def test_endless_throttling_gives_up_with_one_error_and_publishes_nothing(table, tmp_path, backend):
    first = write_permissions(tmp_path / "a.yaml", [("GET", "/a", "s")])
    sync(first, f"dynamodb://{table}")
    second = write_permissions(tmp_path / "b.yaml", many_routes(10))
    sleeps: list[float] = []

    def always_unprocessed(n, kwargs, real):
        return {"UnprocessedItems": kwargs["RequestItems"]}

    faulty = FaultyClient(backend.client(), batch_write_item=always_unprocessed)
    with pytest.raises(StoreError, match="unprocessed after 10 attempts"):
        sync(second, f"dynamodb://{table}", client=faulty, sleep=sleeps.append)
    assert len(sleeps) == 9
    # the backoff grows, within its cap
    assert max(sleeps) <= 5.0
    assert pointer_version(table) == 1 and {k.resource for k in keys_of(load(table))} == {"/a"}
    # and the claim was released: a normal re-run goes through at once
    assert sync(second, f"dynamodb://{table}").version_after == 2


def test_non_throttling_errors_are_not_retried(table, tmp_path, backend):
    yaml_file = write_permissions(tmp_path / "p.yaml", many_routes(5))

    def denied(n, kwargs, real):
        raise aws_error("AccessDeniedException", "BatchWriteItem", "not authorized to perform dynamodb:BatchWriteItem")

    faulty = FaultyClient(backend.client(), batch_write_item=denied)
    with pytest.raises(StoreError, match="access refused"):
        sync(yaml_file, f"dynamodb://{table}", client=faulty, sleep=lambda s: pytest.fail("retried"))
    assert faulty.calls["batch_write_item"] == 1
    assert pointer_version(table) == 0


def _stubbed(operation: str, code: str, message: str) -> boto3.client:
    client = boto3.client("dynamodb", region_name="us-east-1", aws_access_key_id="AKIAWRONG",
                          aws_secret_access_key="wrong", endpoint_url="http://127.0.0.1:9")
    stubber = Stubber(client)
    stubber.add_client_error(operation, service_error_code=code, service_message=message, http_status_code=400)
    stubber.activate()
    return client


def test_rejected_credentials_are_one_clear_store_error_for_the_reader():
    rejected = dynamodb_error("400 Bad Request", "UnrecognizedClientException")
    with fake_store_endpoint("error", error_response=rejected) as endpoint:
        environ = {**CREDENTIALS, "AWS_ENDPOINT_URL_DYNAMODB": endpoint.url}
        with pytest.raises(StoreError, match=r"access refused, check the AWS credentials.*UnrecognizedClientException"):
            DynamoDbPermissionSource("perms", environ=environ).fetch(None)
        assert endpoint.count() == 1  # a refusal is not retried


def test_rejected_credentials_stop_a_sync_before_it_writes(tmp_path):
    client = _stubbed("get_item", "UnrecognizedClientException",
                      "The security token included in the request is invalid.")
    yaml_file = write_permissions(tmp_path / "p.yaml", [("GET", "/a", "s")])
    with pytest.raises(StoreError, match="access refused"):
        sync(yaml_file, "dynamodb://perms", client=client)


def test_an_unreachable_endpoint_is_a_store_error(tmp_path):
    client = boto3.client("dynamodb", region_name="us-east-1", aws_access_key_id="a", aws_secret_access_key="b",
                          endpoint_url="http://127.0.0.1:9",
                          config=boto3.session.Config(retries={"max_attempts": 1}, connect_timeout=1))
    with pytest.raises(StoreError, match="dynamodb://perms: EndpointConnectionError"):
        DynamoDbStore("perms", client=client).read_pointer(consistent=False)
