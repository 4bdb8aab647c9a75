"""boto3 clients and botocore error translation, shared by the DynamoDB and S3 stores.

Imported only by those stores, so the Lambda import path pulls in boto3 only when
``PERMISSIONS_SOURCE`` names a table or a bucket. Endpoints, region and credentials
come from boto3's own chain: ``AWS_ENDPOINT_URL``, ``AWS_ENDPOINT_URL_DYNAMODB`` and
``AWS_ENDPOINT_URL_S3`` point the same code at DynamoDB Local, moto or LocalStack.
"""

from __future__ import annotations

from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError, NoRegionError

from policy_engine.errors import ConfigurationError, MissingStoreError, StoreError

__all__ = [
    "AWS_ERRORS", "RUNTIME_ATTEMPTS", "RUNTIME_CONNECT_TIMEOUT", "RUNTIME_READ_TIMEOUT", "ClientError",
    "error_code", "make_client", "store_error",
]

#: What botocore raises; anything else is not a store failure and is left alone.
AWS_ERRORS = (BotoCoreError, ClientError)

#: Seconds the authorizer's clients wait to connect; in-region connects take milliseconds.
RUNTIME_CONNECT_TIMEOUT = 1.0
#: Seconds one socket read may wait. botocore applies it per read, never to a whole
#: answer, so the whole-load deadline is the cache's (``policy_engine/cache.py``).
RUNTIME_READ_TIMEOUT = 2.0
#: Requests per store call, the first one included. botocore's ``max_attempts`` counts
#: retries (3 meant 4 requests); ``total_max_attempts`` counts requests. One retry covers
#: a dropped connection or one throttled answer; the cache backs off across requests.
RUNTIME_ATTEMPTS = 2

# A silent endpoint ends one call after at most 2 x (1 + 2) s plus one standard-mode retry
# delay (at most 1 s, unless the store asks for more with x-amz-retry-after), on the load's
# worker thread; requests never wait that long (the cache
# bounds them). The CLI can afford to wait longer.
RUNTIME_CONFIG = Config(connect_timeout=RUNTIME_CONNECT_TIMEOUT, read_timeout=RUNTIME_READ_TIMEOUT,
                        retries={"total_max_attempts": RUNTIME_ATTEMPTS, "mode": "standard"})
ADMIN_CONFIG = Config(connect_timeout=5, read_timeout=30, retries={"max_attempts": 5, "mode": "standard"})

_MISSING = {"ResourceNotFoundException", "NoSuchBucket", "NoSuchKey", "404", "NotFound"}
_DENIED = {
    "AccessDeniedException", "AccessDenied", "UnrecognizedClientException", "InvalidSignatureException",
    "InvalidAccessKeyId", "SignatureDoesNotMatch", "ExpiredToken", "ExpiredTokenException", "403",
}
THROTTLED = {
    "ProvisionedThroughputExceededException", "ThrottlingException", "RequestLimitExceeded",
    "Throttling", "SlowDown", "InternalServerError", "ServiceUnavailable",
}


def make_client(service: str, *, admin: bool = False) -> Any:
    """A fresh client from a fresh session, so endpoint and credential variables are read now.

    Raises:
        ConfigurationError: no AWS region is configured.
    """
    try:
        return boto3.session.Session().client(service, config=ADMIN_CONFIG if admin else RUNTIME_CONFIG)
    except NoRegionError:
        # boto3 reads AWS_DEFAULT_REGION (or a profile), not AWS_REGION; Lambda sets both.
        raise ConfigurationError("AWS_DEFAULT_REGION", f"no AWS region for the {service} client "
                                 "(set AWS_DEFAULT_REGION, or region in the AWS profile)") from None


def error_code(exc: BaseException) -> str:
    if isinstance(exc, ClientError):
        return str(exc.response.get("Error", {}).get("Code", ""))
    return ""


def store_error(exc: BaseException, what: str) -> StoreError:
    """Translate a botocore failure on ``what`` into our tree (use with ``raise ... from exc``)."""
    if isinstance(exc, ClientError):
        code = error_code(exc)
        message = exc.response.get("Error", {}).get("Message") or code
        if code in _MISSING:
            return MissingStoreError(f"{what} does not exist ({code}: {message})")
        if code in _DENIED:
            return StoreError(f"{what}: access refused, check the AWS credentials and permissions ({code}: {message})")
        if code in THROTTLED:
            return StoreError(f"{what}: throttled after retries ({code})")
        return StoreError(f"{what}: {code}: {message}")
    if isinstance(exc, NoCredentialsError):
        return StoreError(f"{what}: no AWS credentials found (environment, profile or role)")
    if isinstance(exc, BotoCoreError):
        return StoreError(f"{what}: {type(exc).__name__}: {exc}")
    return StoreError(f"{what}: {type(exc).__name__}: {exc}")
