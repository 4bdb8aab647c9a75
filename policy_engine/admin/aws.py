"""boto3 clients and botocore error translation for the admin side: sync, rollback, migrate.

The Lambda never imports this module: its store readers sign their few requests
themselves (``adapters/aws_http.py``), and the bundle leaves this file out.
Endpoints, region and credentials come from boto3's own chain: ``AWS_ENDPOINT_URL``,
``AWS_ENDPOINT_URL_DYNAMODB`` and ``AWS_ENDPOINT_URL_S3`` point the same code at
DynamoDB Local, moto or LocalStack.
"""

from __future__ import annotations

from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    NoCredentialsError,
    NoRegionError,
)

from policy_engine.adapters.aws_http import THROTTLED, error_for
from policy_engine.errors import ConfigurationError, StoreError

__all__ = ["ADMIN_CONFIG", "AWS_ERRORS", "THROTTLED", "ClientError", "error_code", "make_client", "store_error"]

#: What botocore raises; anything else is not a store failure and is left alone.
AWS_ERRORS = (BotoCoreError, ClientError)

#: A publish can afford to wait: 5 s to connect, 30 s per read, botocore's standard retries.
ADMIN_CONFIG = Config(connect_timeout=5, read_timeout=30, retries={"max_attempts": 5, "mode": "standard"})


def make_client(service: str) -> Any:
    """A fresh client from a fresh session, so endpoint and credential variables are read now.

    Raises:
        ConfigurationError: no AWS region is configured.
    """
    try:
        return boto3.session.Session().client(service, config=ADMIN_CONFIG)
    except NoRegionError:
        # boto3 reads AWS_DEFAULT_REGION (or a profile), not AWS_REGION; Lambda sets both.
        raise ConfigurationError("AWS_DEFAULT_REGION", f"no AWS region for the {service} client "
                                 "(set AWS_DEFAULT_REGION, or region in the AWS profile)") from None


def error_code(exc: BaseException | None) -> str:
    if isinstance(exc, ClientError):
        return str(exc.response.get("Error", {}).get("Code", ""))
    return ""


def store_error(exc: BaseException, what: str) -> StoreError:
    """Translate a botocore failure on ``what`` into our tree (use with ``raise ... from exc``)."""
    if isinstance(exc, ClientError):
        code = error_code(exc)
        return error_for(code, exc.response.get("Error", {}).get("Message") or code, what)
    if isinstance(exc, NoCredentialsError):
        return StoreError(f"{what}: no AWS credentials found (environment, profile or role)")
    return StoreError(f"{what}: {type(exc).__name__}: {exc}")
