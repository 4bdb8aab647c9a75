"""The exception tree of policy-engine.

Every failure the engine knows about is a ``PolicyEngineError``; each branch is one way
things fail, and each class carries a short, stable ``code`` for logs and metrics::

    PolicyEngineError
    ├── ConfigurationError        a setting is missing or invalid (names the variable)
    ├── EventError                the API Gateway event is malformed            -> 401
    ├── TokenError                the caller's token is unusable                -> 401
    │   ├── MissingTokenError
    │   ├── MalformedTokenError
    │   ├── UnsupportedAlgorithmError
    │   ├── UnknownKeyError
    │   ├── InvalidSignatureError
    │   ├── InactiveTokenError    introspection answered active: false
    │   └── InvalidClaimsError
    │       └── ExpiredTokenError
    ├── KeySourceError            keys could not be obtained (JWKS down, bad JWKS) -> 500
    ├── IntrospectionError        the introspection endpoint failed (down, non-200,
    │                             timeout, malformed answer)                     -> 500
    ├── PolicyTooLargeError       the response would exceed API Gateway's budget  -> 500
    ├── PermissionsError          permission data is invalid (names where)
    │   └── OpenApiError          an OpenAPI/Swagger document cannot be imported (file:line)
    ├── StoreError                a permission store failed (unreachable, denied)  -> 500
    │   ├── MissingStoreError     the table, bucket or object does not exist (or was never published)
    │   ├── CorruptStoreError     the store holds items no sync wrote, or content that fails its digest
    │   ├── StoreTooLargeError    the published snapshot is larger than PERMISSIONS_MAX_BYTES
    │   └── ConflictError         a concurrent publish won
    └── BundleError               a Lambda bundle could not be built (CLI only)

The handler maps these to API Gateway outcomes in one table (``handler/app.py``). No
branch ever maps to Allow.
"""

from __future__ import annotations

__all__ = [
    "BundleError",
    "ConfigurationError",
    "ConflictError",
    "CorruptStoreError",
    "EventError",
    "ExpiredTokenError",
    "InactiveTokenError",
    "IntrospectionError",
    "InvalidClaimsError",
    "InvalidSignatureError",
    "KeySourceError",
    "MalformedTokenError",
    "MissingStoreError",
    "MissingTokenError",
    "OpenApiError",
    "PermissionsError",
    "PolicyEngineError",
    "PolicyTooLargeError",
    "StoreError",
    "StoreTooLargeError",
    "TokenError",
    "UnknownKeyError",
    "UnsupportedAlgorithmError",
]


class PolicyEngineError(Exception):
    """Root of every error policy-engine raises on purpose."""

    code = "error"


class ConfigurationError(PolicyEngineError):
    """A configuration value is missing or invalid; ``variable`` names it."""

    code = "bad_configuration"

    def __init__(self, variable: str, problem: str) -> None:
        super().__init__(f"{variable}: {problem}")
        self.variable = variable
        self.problem = problem


class EventError(PolicyEngineError):
    """The authorizer event is not one API Gateway sends (no methodArn, wrong types)."""

    code = "bad_event"


class TokenError(PolicyEngineError):
    """The caller's credentials cannot be trusted. API Gateway answers 401."""

    code = "invalid_token"


class MissingTokenError(TokenError):
    code = "missing_token"


class MalformedTokenError(TokenError):
    code = "malformed_token"


class UnsupportedAlgorithmError(TokenError):
    code = "unsupported_algorithm"


class UnknownKeyError(TokenError):
    code = "unknown_key"


class InvalidSignatureError(TokenError):
    code = "invalid_signature"


class InvalidClaimsError(TokenError):
    code = "invalid_claims"


class ExpiredTokenError(InvalidClaimsError):
    code = "expired_token"


class InactiveTokenError(TokenError):
    """The authorization server says the token is not active (revoked, expired, unknown)."""

    code = "inactive_token"


class KeySourceError(PolicyEngineError):
    """Verification keys could not be obtained or are unusable."""

    code = "key_source_unavailable"


class IntrospectionError(PolicyEngineError):
    """The introspection endpoint gave no usable answer; never read as "inactive"."""

    code = "introspection_unavailable"


class PolicyTooLargeError(PolicyEngineError):
    """The rendered authorizer response exceeds the size API Gateway is known to accept."""

    code = "policy_too_large"


class PermissionsError(PolicyEngineError):
    """Permission data failed validation.

    ``problems`` lists every finding as ``"<where>: <what>"`` (for YAML, ``file:line``);
    the message is the first one plus a count, so a log line stays short.
    """

    code = "invalid_permissions"

    def __init__(self, problems: list[str] | str) -> None:
        items = [problems] if isinstance(problems, str) else list(problems)
        if not items:
            items = ["invalid permissions"]
        message = items[0] if len(items) == 1 else f"{items[0]} (and {len(items) - 1} more)"
        super().__init__(message)
        self.problems = items


class OpenApiError(PermissionsError):
    """An OpenAPI or Swagger document cannot be read into operations and their security.

    Not YAML or JSON, not an OpenAPI 3.x or Swagger 2.0 document, a field of the wrong
    shape, a security requirement naming an undeclared scheme, a path API Gateway cannot
    deploy, a remote ``$ref``. Each problem names ``file:line``, as ``PermissionsError``.
    """

    code = "invalid_openapi"


class StoreError(PolicyEngineError):
    """A permission store could not be read or written.

    ``code`` may name the cause of an earlier failure this one repeats (a request
    refused while the cache backs off after ``store_missing`` says ``store_missing``).
    """

    code = "store_unavailable"

    def __init__(self, message: str = "", *, code: str | None = None) -> None:
        super().__init__(message)
        if code is not None:
            self.code = code


class ConflictError(StoreError):
    """Another publish changed the store first; nothing of this one was applied."""

    code = "publish_conflict"


class MissingStoreError(StoreError):
    """The table, bucket or object does not exist, or nothing was ever published to it."""

    code = "store_missing"


class CorruptStoreError(StoreError):
    """The store holds something no sync wrote (a foreign or edited item, a bad snapshot).

    ``problems`` names each offending item, so a person can find it in the console.
    """

    code = "store_corrupt"

    def __init__(self, problems: list[str] | str) -> None:
        items = [problems] if isinstance(problems, str) else list(problems) or ["corrupt store"]
        message = items[0] if len(items) == 1 else f"{items[0]} (and {len(items) - 1} more)"
        super().__init__(message)
        self.problems = items


class StoreTooLargeError(StoreError):
    """The published snapshot is larger than a load may read; nothing of it was used.

    ``etag`` is the store's name for that content (an S3 ETag, a table version), so a
    reader can refuse it again without downloading it until it changes.
    """

    code = "store_too_large"

    def __init__(self, message: str, *, etag: str) -> None:
        super().__init__(message)
        self.etag = etag


class BundleError(PolicyEngineError):
    """The Lambda deployment zip could not be built (resolution, download, wrong platform)."""

    code = "bundle_failed"
