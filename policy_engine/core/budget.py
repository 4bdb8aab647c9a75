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


# Policy part of a response -> (its serialized bytes, its longest Resource). Callers
# get the same few policies again and again (PermissionSet memoises them), so the
# warm path serializes only the small rest of the response.
_POLICY_MEMO: dict[Any, tuple[int, int]] = {}
_POLICY_MEMO_LIMIT = 4096


def _policy_key(document: Any) -> Any:
    statements = document.get("Statement", []) if isinstance(document, Mapping) else []
    key = []
    for statement in statements:
        resource = statement.get("Resource", [])
        key.append((statement.get("Effect"), statement.get("Action"),
                    tuple(resource) if isinstance(resource, list) else resource))
    return (document.get("Version") if isinstance(document, Mapping) else None, tuple(key))


def _policy_facts(document: Any) -> tuple[int, int]:
    key = _policy_key(document)
    facts = _POLICY_MEMO.get(key)
    if facts is None:
        longest = 0
        for _, _, resource in key[1]:
            for item in (resource,) if isinstance(resource, str) else resource:
                longest = max(longest, len(item))
        facts = (len(json.dumps(document).encode("utf-8")), longest)
        if len(_POLICY_MEMO) >= _POLICY_MEMO_LIMIT:
            _POLICY_MEMO.clear()
        _POLICY_MEMO[key] = facts
    return facts


def check_response(response: Mapping[str, Any], *, limit: int = MAX_RESPONSE_BYTES) -> int:
    """The size of ``response`` (exactly ``response_size``) if API Gateway accepts it.

    Raises:
        PolicyTooLargeError: the response is over ``limit`` bytes, or a Resource is
            longer than 512 characters.
    """
    principal = str(response.get("principalId", ""))
    document_bytes, longest = _policy_facts(response.get("policyDocument", {}))
    if longest > MAX_RESOURCE_CHARS:
        raise PolicyTooLargeError(principal, longest, MAX_RESOURCE_CHARS, what="resource")
    # json.dumps composes: the document serialized alone is the same text inside the
    # response, so swap it for a one-character stand-in and add its memoised size.
    shell = dict(response)
    shell["policyDocument"] = 0
    size = len(json.dumps(shell).encode("utf-8")) - 1 + document_bytes
    if size > limit:
        raise PolicyTooLargeError(principal, size, limit)
    return size
