"""Typed views of the API Gateway events the authorizer receives."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, NamedTuple

from policy_engine.errors import EventError

__all__ = ["AuthorizerRequest", "read_event"]


class AuthorizerRequest(NamedTuple):
    """What a decision needs from any event type: the credential and the route ARN."""

    kind: str
    authorization: Any
    method_arn: Any


def read_event(event: Any) -> AuthorizerRequest:
    """Read a REST API TOKEN authorizer event.

    Raises:
        EventError: the event is not an object or not a TOKEN event.
    """
    if not isinstance(event, dict) and not isinstance(event, Mapping):  # dict first: ABC checks are slow
        raise EventError("event is not an object")
    if event.get("type") == "TOKEN":
        return AuthorizerRequest("TOKEN", event.get("authorizationToken"), event.get("methodArn"))
    raise EventError("event type is not supported (expected a TOKEN authorizer event)")
