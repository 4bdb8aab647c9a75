"""How big an authorizer response is, and whether API Gateway will take it.

The only documented number is 8 KB for the whole Lambda authorizer result (a hard
quota for WebSocket APIs; REST and HTTP API quota tables name none, so we keep to it
everywhere), and 512 characters for each policy ``Resource``. Sizes are measured on
``json.dumps(response)`` with default separators and ASCII escaping, which is how the
Python Lambda runtime serializes a handler's return value (and is never smaller than
a compact encoding, so the estimate errs on the safe side).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from policy_engine.errors import PolicyTooLargeError

__all__ = ["MAX_RESOURCE_CHARS", "MAX_RESPONSE_BYTES", "check_response", "response_size"]

#: Largest serialized authorizer response we return (8 KB).
MAX_RESPONSE_BYTES = 8192
#: Longest policy ``Resource`` API Gateway accepts.
MAX_RESOURCE_CHARS = 512


def response_size(response: Mapping[str, Any]) -> int:
    """Bytes of ``response`` as the Lambda runtime sends it to API Gateway."""
    return len(json.dumps(response).encode("utf-8"))


def _resources(response: Mapping[str, Any]) -> list[str]:
    out: list[str] = []
    for statement in response.get("policyDocument", {}).get("Statement", []):
        resource = statement.get("Resource", [])
        out.extend([resource] if isinstance(resource, str) else resource)
    return out


def check_response(response: Mapping[str, Any], *, limit: int = MAX_RESPONSE_BYTES) -> int:
    """The size of ``response`` if API Gateway accepts it.

    Raises:
        PolicyTooLargeError: the response is over ``limit`` bytes, or a Resource is
            longer than 512 characters.
    """
    principal = str(response.get("principalId", ""))
    longest = max((len(r) for r in _resources(response)), default=0)
    if longest > MAX_RESOURCE_CHARS:
        raise PolicyTooLargeError(principal, longest, MAX_RESOURCE_CHARS, what="resource")
    size = response_size(response)
    if size > limit:
        raise PolicyTooLargeError(principal, size, limit)
    return size
