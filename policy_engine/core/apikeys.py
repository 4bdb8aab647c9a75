"""Usage-plan API keys returned by the authorizer (REST APIs with API key source AUTHORIZER).

A caller's key comes from a token claim (``API_KEY_CLAIM``) or, failing that, from a
per-client table (``clients:`` in ``API_KEYS_FILE``, keyed by ``client_id``, else
``sub``). Routes listed under ``required:`` need a key: a caller without one gets an
explicit Deny for them, on top of whatever the permission mappings grant.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, TypeGuard

from policy_engine.core.permissions import PermissionSet

__all__ = ["REQUIRED_SCOPE", "ApiKeyRules", "is_api_key"]

#: The pseudo-scope under which key-required routes are compiled.
REQUIRED_SCOPE = "api-key-required"

# API Gateway API key values: 20 to 128 characters, printable ASCII without spaces.
_API_KEY = re.compile(r"[\x21-\x7e]{20,128}")


def is_api_key(value: object) -> TypeGuard[str]:
    """True when ``value`` could be an API Gateway API key value."""
    return isinstance(value, str) and _API_KEY.fullmatch(value) is not None


@dataclass(frozen=True, slots=True)
class ApiKeyRules:
    """Where keys come from and which routes need one."""

    claim: str | None = None
    by_client: Mapping[str, str] = field(default_factory=dict)
    required: PermissionSet = field(default_factory=lambda: PermissionSet(()))

    def key_for(self, claims: Mapping[str, Any]) -> str | None:
        """The caller's API key, or ``None``; a claim that is not a key value counts as none."""
        if self.claim is not None and is_api_key(key := claims.get(self.claim)):
            return key
        # The client is its client_id; sub names it only in a token without one. Were both
        # tried in turn, a user whose sub happened to equal a partner's client id would
        # hold that partner's key (and spend its quota).
        client = claims.get("client_id") if "client_id" in claims else claims.get("sub")
        if isinstance(client, str):
            return self.by_client.get(client)
        return None

    def required_resources(self, api_arn: str, stage: str) -> tuple[str, ...]:
        """Policy Resources of the routes that need a key on ``api_arn``/``stage``."""
        return self.required.resources(frozenset({REQUIRED_SCOPE}), api_arn, stage)
