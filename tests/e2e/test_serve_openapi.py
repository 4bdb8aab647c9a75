"""``serve --openapi`` end to end: the real handler behind a gateway that routes by the
document, with mappings that grant each operation exactly what the document says
(``tests/data/openapi-coverage/petstore-exact.yaml``), over real HTTP on 127.0.0.1."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from policy_engine.admin.local.serve import LocalStack, ServeOptions
from tests.e2e.conftest import Client, CountingAuthorizer

DATA = Path(__file__).resolve().parents[1] / "data" / "openapi-coverage"
IMPLICIT = {"Message": "User is not authorized to access this resource"}


@pytest.fixture
def stack() -> Iterator[tuple[LocalStack, CountingAuthorizer]]:
    running = LocalStack(ServeOptions(permissions=DATA / "petstore-exact.yaml", store="yaml",
                                      openapi=DATA / "petstore.yaml", cache_ttl=0,
                                      handler_env={"JWKS_REFETCH_INTERVAL": "0"})).start()
    assert running.gateway is not None
    counter = CountingAuthorizer(running.gateway.authorizer)
    running.gateway.authorizer = counter
    try:
        yield running, counter
    finally:
        running.stop()


def test_each_operation_is_decided_as_the_document_says(stack):
    running, handler = stack
    client = Client(running)
    reader = client.token("pets-reader", "reader-secret", "pets:read")
    writer = client.token("pets-writer", "writer-secret", "pets:read pets:write")
    # the parameter route needs pets:read; its literal sibling needs admin, or read AND write
    assert client.call("GET", "/dev/pet/1", reader).status == 200
    denied = client.call("GET", "/dev/pet/findByStatus", reader)
    assert (denied.status, denied.json()["Message"].startswith("User is not authorized")) == (403, True)
    assert client.call("GET", "/dev/pet/findByStatus", writer).status == 200
    # AND: read alone is not enough to add a pet; DELETE needs pets:admin
    assert client.call("POST", "/dev/pet", reader).status == 403
    assert client.call("POST", "/dev/pet", writer).status == 200
    assert client.call("DELETE", "/dev/pet/1", writer).status == 403
    calls = handler.calls
    # security: [] is answered without a token and without the authorizer
    assert client.call("GET", "/dev/health").status == 200
    assert handler.calls == calls
    # and a route the document does not have is not a route
    assert client.call("GET", "/dev/pets", reader).json() == {"message": "Missing Authentication Token"}
    assert "1 without authorizer" in running.describe()


def test_a_route_granted_to_no_caller_is_taken_back_from_its_siblings(stack):
    # petstore-exact.yaml names GET /store/inventory (API key only) with [], so
    # ANY /store/{proxy+}'s wildcard is taken back there: no token gets in.
    running, _ = stack
    client = Client(running)
    reader = client.token("pets-reader", "reader-secret", "pets:read")
    assert client.call("GET", "/dev/store/inventory", reader).status == 403
    assert client.call("GET", "/dev/store/order/1", reader).status == 200
    # whereas GET /pet/findByStatus, which a mapping names, is taken back from /pet/{petId}
    assert client.call("GET", "/dev/pet/findByStatus", reader).status == 403
