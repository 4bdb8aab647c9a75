"""An AWS CDK (v2, Python) construct that deploys the authorizer: ``pip install 'policy-engine[cdk]'``.

Admin-only: the Lambda bundle never carries it (``policy_engine.admin`` is outside the
handler's import closure). See ``docs/cdk.md``.
"""

from __future__ import annotations

try:
    import aws_cdk  # noqa: F401
except ImportError as exc:  # pragma: no cover - depends on what is installed
    raise ImportError(
        "policy_engine.admin.cdk needs aws-cdk-lib and constructs: pip install 'policy-engine[cdk]'"
    ) from exc

from policy_engine.admin.cdk._authorizer import (
    BEARER_TOKEN_PATTERN,
    DEFAULT_AUTHORIZER_CACHE_TTL,
    DEFAULT_IDENTITY_SOURCES,
    DEFAULT_METRICS_NAMESPACE,
    DEFAULT_PERMISSIONS_OBJECT_KEY,
    AlarmThresholds,
    AuthorizerType,
    PolicyEngineAuthorizer,
)

__all__ = [
    "BEARER_TOKEN_PATTERN",
    "DEFAULT_AUTHORIZER_CACHE_TTL",
    "DEFAULT_IDENTITY_SOURCES",
    "DEFAULT_METRICS_NAMESPACE",
    "DEFAULT_PERMISSIONS_OBJECT_KEY",
    "AlarmThresholds",
    "AuthorizerType",
    "PolicyEngineAuthorizer",
]
