"""The store readers' own AWS requests: Signature Version 4, addresses, error documents.

The signer is held to botocore's (AWS's reference implementation in Python) on the
requests the readers send; no local server checks signatures.
"""

from __future__ import annotations

import datetime
from unittest import mock

import pytest
from botocore.auth import S3SigV4Auth, SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials as BotoCredentials

from policy_engine.adapters.aws_http import (
    Credentials,
    error_of,
    s3_address,
    service_origin,
    sign_v4,
)
from policy_engine.adapters.http import Answer
from policy_engine.errors import ConfigurationError

WHEN = datetime.datetime(2026, 3, 1, 12, 30, 45, tzinfo=datetime.UTC)
KEYS = [Credentials("AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"),
        Credentials("ASIAEXAMPLE", "secret/with+chars", "FQoGZXIvYXdzEJr//////////token==")]


def botocore_headers(auth_class, service, method, url, headers, body, credentials):
    request = AWSRequest(method=method, url=url, data=body, headers=dict(headers))
    signer = auth_class(BotoCredentials(credentials.access_key, credentials.secret_key, credentials.token),
                        service, "eu-west-1")
    with mock.patch("botocore.auth.get_current_datetime", return_value=WHEN.replace(tzinfo=None)):
        signer.add_auth(request)
    return {name.lower(): value for name, value in request.headers.items()}


@pytest.mark.parametrize("credentials", KEYS, ids=["static", "session"])
def test_a_dynamodb_request_is_signed_as_botocore_signs_it(credentials):
    body = b'{"TableName":"perms","Key":{"pk":{"S":"META"},"sk":{"S":"PUBLISHED"}},"ConsistentRead":false}'
    headers = {"Host": "dynamodb.eu-west-1.amazonaws.com", "Content-Type": "application/x-amz-json-1.0",
               "X-Amz-Target": "DynamoDB_20120810.GetItem"}
    import hashlib

    ours = sign_v4("POST", "/", headers, hashlib.sha256(body).hexdigest(), credentials, "eu-west-1", "dynamodb", WHEN)
    theirs = botocore_headers(SigV4Auth, "dynamodb", "POST", "https://dynamodb.eu-west-1.amazonaws.com/",
                              headers, body, credentials)
    assert ours["Authorization"] == theirs["authorization"]
    assert ours["X-Amz-Date"] == theirs["x-amz-date"] == "20260301T123045Z"
    assert ours.get("X-Amz-Security-Token") == theirs.get("x-amz-security-token") == credentials.token


@pytest.mark.parametrize("credentials", KEYS, ids=["static", "session"])
def test_an_s3_conditional_get_is_signed_as_botocore_signs_it(credentials):
    origin, path = s3_address("my-authorizer-config", "authorizer/perms v2~.json", "eu-west-1", {})
    assert (origin, path) == ("https://my-authorizer-config.s3.eu-west-1.amazonaws.com", "/authorizer/perms%20v2~.json")
    empty = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    headers = {"Host": "my-authorizer-config.s3.eu-west-1.amazonaws.com", "If-None-Match": '"abc123"',
               "X-Amz-Content-SHA256": empty}
    ours = sign_v4("GET", path, headers, empty, credentials, "eu-west-1", "s3", WHEN)
    theirs = botocore_headers(S3SigV4Auth, "s3", "GET", origin + path, headers, b"", credentials)
    assert ours["Authorization"] == theirs["authorization"]


def test_objects_are_addressed_virtual_hosted_on_aws_and_path_style_elsewhere():
    assert s3_address("bucket.with.dots", "k", "us-east-1", {}) == ("https://s3.us-east-1.amazonaws.com",
                                                                    "/bucket.with.dots/k")
    assert s3_address("b-1", "a/b", "cn-north-1", {}) == ("https://b-1.s3.cn-north-1.amazonaws.com.cn", "/a/b")
    local = {"AWS_ENDPOINT_URL": "http://localstack:4566"}
    assert s3_address("b-1", "a/b", "us-east-1", local) == ("http://localstack:4566", "/b-1/a/b")
    both = {"AWS_ENDPOINT_URL_DYNAMODB": "http://127.0.0.1:8000/", "AWS_ENDPOINT_URL": "http://other"}
    assert service_origin("dynamodb", "eu-west-1", both) == ("http://127.0.0.1:8000", True)
    with pytest.raises(ConfigurationError, match="AWS_ENDPOINT_URL_S3"):
        service_origin("s3", "eu-west-1", {"AWS_ENDPOINT_URL_S3": "ftp://x"})


def test_error_documents_of_both_services_give_code_and_message():
    dynamo = Answer(400, {}, b'{"__type":"com.amazonaws.dynamodb.v20120810#ResourceNotFoundException",'
                             b'"message":"Requested resource not found"}')
    s3 = Answer(404, {}, b"<?xml version='1.0'?><Error><Code>NoSuchKey</Code><Message>The key</Message></Error>")
    assert error_of(dynamo) == ("ResourceNotFoundException", "Requested resource not found")
    assert error_of(s3) == ("NoSuchKey", "The key")
    assert error_of(Answer(503, {}, b"")) == ("503", "HTTP 503")


def test_credentials_never_show_their_secret():
    assert "EXAMPLEKEY" not in repr(KEYS[0]) and "token" not in repr(KEYS[1])


def test_answers_nested_past_the_parsers_depth_are_store_errors_not_crashes():
    import pytest

    from policy_engine.adapters.aws_http import error_of, parse_json
    from policy_engine.adapters.http import Answer
    from policy_engine.errors import StoreError

    deep = Answer(200, {}, b"[" * 100_000)
    with pytest.raises(StoreError, match="not a JSON object"):
        parse_json(deep, "GetItem permissions")
    assert error_of(Answer(500, {}, b'{"a":' * 30_000)) == ("500", "HTTP 500")
