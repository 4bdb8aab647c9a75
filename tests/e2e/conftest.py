"""``serve`` started in-process on 127.0.0.1, driven over real HTTP with urllib."""

from __future__ import annotations

import shutil
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from policy_engine.admin.local.invoke import InvokeResult
from policy_engine.admin.local.serve import DEFAULT_PERMISSIONS, LocalStack, ServeOptions
from policy_engine.admin.local.walkthrough import Reply, http_request, token_request


class FakeClock:
    """The gateway cache's clock, moved by the test."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class CountingAuthorizer:
    """Wraps the gateway's authorizer (the real handler) and counts its invocations."""

    def __init__(self, inner: Callable[[dict[str, Any]], InvokeResult]) -> None:
        self.inner = inner
        self.events: list[dict[str, Any]] = []
        self._lock = threading.Lock()

    def __call__(self, event: dict[str, Any]) -> InvokeResult:
        with self._lock:
            self.events.append(event)
        return self.inner(event)

    @property
    def calls(self) -> int:
        return len(self.events)


class Client:
    """What a person with curl does, against one running stack."""

    def __init__(self, stack: LocalStack) -> None:
        self.stack = stack

    def token(self, client: str = "pets-reader", secret: str = "reader-secret", scope: str | None = "pets:read") -> str:
        reply = token_request(self.stack.token_endpoint, client, secret, scope)
        assert reply.status == 200, reply.body
        return str(reply.json()["access_token"])

    def call(self, method: str, path: str, token: str | None = None, **headers: str) -> Reply:
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        body = b"{}" if method in ("POST", "PUT", "PATCH") else None
        return http_request(method, self.stack.gateway_url + path, headers=headers, body=body)


@pytest.fixture
def permissions_dir(tmp_path: Path) -> Path:
    target = tmp_path / "permissions"
    shutil.copytree(DEFAULT_PERMISSIONS, target)
    return target


@pytest.fixture(params=["dynamodb"])
def store(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def start_stack(permissions_dir: Path, store: str) -> Iterator[Callable[..., tuple[LocalStack, CountingAuthorizer]]]:
    stacks: list[LocalStack] = []

    def start(**options: Any) -> tuple[LocalStack, CountingAuthorizer]:
        handler_env = {"PERMISSIONS_CACHE_TTL": "0.2", "JWKS_REFETCH_INTERVAL": "0", **options.pop("handler_env", {})}
        options.setdefault("store", store)
        stack = LocalStack(ServeOptions(permissions=permissions_dir, handler_env=handler_env, **options))
        stacks.append(stack.start())
        assert stack.gateway is not None
        counter = CountingAuthorizer(stack.gateway.authorizer)
        stack.gateway.authorizer = counter
        return stack, counter

    yield start
    for stack in stacks:
        stack.stop()


__all__ = ["Client", "CountingAuthorizer", "FakeClock"]
