"""Shared fixtures: a real identity provider on 127.0.0.1 and the real handler."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from policy_engine.admin.local.idp import LocalIdentityProvider
from policy_engine.admin.local.invoke import InvokeResult, invoke, load_handler
from policy_engine.core.iam import Verdict, evaluate_response

pytest_plugins = ["tests.stores"]

ROOT = Path(__file__).resolve().parent.parent
API = "arn:aws:execute-api:us-east-1:123456789012:a1b2c3d4e5"
AUDIENCE = "policy-engine-demo"


@pytest.fixture
def idp() -> Iterator[LocalIdentityProvider]:
    with LocalIdentityProvider() as provider:
        yield provider


@pytest.fixture
def make_handler(idp: LocalIdentityProvider) -> Callable[..., ModuleType]:
    """Load a fresh real handler configured against the local IdP; kwargs override env."""

    def make(**env: str) -> ModuleType:
        environ = {
            "ISSUER": idp.issuer,
            "AUDIENCE": AUDIENCE,
            "PERMISSIONS_SOURCE": str(ROOT / "permissions"),
            **env,
        }
        return load_handler({k: v for k, v in environ.items() if v is not None})

    return make


def token_event(token: str | None, verb: str = "GET", path: str = "/pets", stage: str = "dev") -> dict[str, Any]:
    return {
        "type": "TOKEN",
        "authorizationToken": token if token is None or token.startswith(("Bearer ", "bearer")) else f"Bearer {token}",
        "methodArn": f"{API}/{stage}/{verb}/{path.lstrip('/')}",
    }


def verdict(result: InvokeResult, verb: str, path: str, stage: str = "dev") -> Verdict:
    """What API Gateway would answer for a request, given the authorizer's response."""
    assert result.response is not None, f"handler failed: {result.error}"
    return evaluate_response(result.response, f"{API}/{stage}/{verb}/{path.lstrip('/')}")


__all__ = ["API", "AUDIENCE", "invoke", "token_event", "verdict"]
