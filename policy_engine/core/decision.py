"""A decision as a value, and its rendering into API Gateway's response format."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = ["Decision", "render_iam_response", "scalar_context"]

ALLOW = "Allow"
DENY = "Deny"


@dataclass(slots=True)
class Decision:
    """What the engine decided for one caller on one API and stage.

    ``resources`` are the policy Resources granted (empty for a Deny); ``deny_resource``
    is what a Deny covers; ``reason`` is a short code for logs.
    """

    effect: str
    principal_id: str
    api_arn: str
    stage: str
    resources: tuple[str, ...]
    reason: str
    version: str
    context: dict[str, str | int | float | bool] = field(default_factory=dict)
    usage_identifier_key: str | None = None

    @property
    def allowed(self) -> bool:
        return self.effect == ALLOW

    @property
    def deny_resource(self) -> str:
        # The authorizer cache serves every route of this API and stage, so the Deny
        # has to cover all of them, not just the route that was called.
        return f"{self.api_arn}/{self.stage}/*"


def render_iam_response(decision: Decision) -> dict[str, Any]:
    """The IAM-policy response API Gateway expects (REST, and HTTP API IAM mode).

    Allow: one statement listing every granted Resource. Deny: one statement denying
    every route of the API and stage.
    """
    if decision.effect == ALLOW and decision.resources:
        statement = {"Action": "execute-api:Invoke", "Effect": ALLOW, "Resource": list(decision.resources)}
    else:
        statement = {"Action": "execute-api:Invoke", "Effect": DENY, "Resource": [decision.deny_resource]}
    response: dict[str, Any] = {
        "principalId": decision.principal_id,
        "policyDocument": {"Version": "2012-10-17", "Statement": [statement]},
        "context": decision.context,
    }
    if decision.usage_identifier_key is not None:
        response["usageIdentifierKey"] = decision.usage_identifier_key
    return response


def scalar_context(values: Mapping[str, Any]) -> dict[str, str | int | float | bool]:
    """Keep only values API Gateway accepts in ``context``: strings, numbers, booleans.

    Lists of strings (``scp``, ``aud``) are joined with spaces; objects, nulls and
    mixed lists are dropped, because any of them makes API Gateway answer 500.
    """
    out: dict[str, str | int | float | bool] = {}
    for key, value in values.items():
        if isinstance(value, (str, bool, int, float)):
            out[key] = value
        elif isinstance(value, list) and value and all(isinstance(v, str) for v in value):
            out[key] = " ".join(value)
    return out
