"""Fixtures for the permission stores: moto's server and AWS's DynamoDB Local on 127.0.0.1.

``ddb`` is parametrized over both, so every store and sync test runs twice: moto is
quick and also serves S3; DynamoDB Local is AWS's own engine and rejects what moto
lets through (batches over 25 items, unused expression values, wrong key types) and
returns the empty last pages real DynamoDB returns. DynamoDB Local needs Java and npm:
if they are missing the fixture fails (CI has both); it never skips.
"""

from __future__ import annotations

import logging
import socket
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import pytest

from policy_engine.admin.local.dynamodb_local import DynamoDbLocal

ROOT = Path(__file__).resolve().parent.parent
CREDENTIALS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1"}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="session")
def moto_endpoint() -> Iterator[str]:
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    port = _free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.stop()


@pytest.fixture(scope="session")
def dynamodb_local_endpoint() -> Iterator[str]:
    with DynamoDbLocal(ROOT / ".cache" / "dynamodb-local") as server:
        yield server.endpoint


@dataclass
class Backend:
    """One DynamoDB-compatible server and an S3 server, with the env that points boto3 at them."""

    name: str
    dynamodb: str
    s3: str

    @property
    def env(self) -> dict[str, str]:
        return {**CREDENTIALS, "AWS_ENDPOINT_URL_DYNAMODB": self.dynamodb, "AWS_ENDPOINT_URL_S3": self.s3}

    def client(self, service: str = "dynamodb") -> Any:
        return boto3.client(service, endpoint_url=self.dynamodb if service == "dynamodb" else self.s3,
                            region_name="us-east-1", aws_access_key_id="testing", aws_secret_access_key="testing")


@pytest.fixture(params=["moto", "dynamodb-local"])
def backend(request: pytest.FixtureRequest, moto_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> Backend:
    """Both servers, one after the other; the process env points boto3 at the current one."""
    dynamodb = moto_endpoint if request.param == "moto" else request.getfixturevalue("dynamodb_local_endpoint")
    chosen = Backend(request.param, dynamodb, moto_endpoint)
    for name in ("AWS_PROFILE", "AWS_ENDPOINT_URL", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    for name, value in chosen.env.items():
        monkeypatch.setenv(name, value)
    return chosen


@pytest.fixture
def table(backend: Backend) -> str:
    """A fresh, migrated table with nothing published."""
    from policy_engine.admin.migrate import migrate

    name = f"perm-{uuid.uuid4().hex[:10]}"
    migrate(name)
    return name


@pytest.fixture
def bucket(backend: Backend) -> str:
    name = f"perm-{uuid.uuid4().hex[:10]}"
    backend.client("s3").create_bucket(Bucket=name)
    return name
