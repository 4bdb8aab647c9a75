"""Signed AWS API requests for the run-time store readers, without boto3.

Importing boto3 and building one client costs 250-450 ms of a cold start (botocore
loads its service models and endpoint rules), more than the authorizer's own work
with 10,000 mappings. The readers need three calls (DynamoDB ``GetItem`` and
``BatchGetItem``, S3 ``GetObject``), so this module signs them with Signature
Version 4 (AWS General Reference, "Create a signed AWS API request") and sends them
with ``adapters/http.py``, which bounds each whole exchange by a deadline and each
body by a size cap. ``sync``, ``rollback`` and ``migrate`` keep boto3 (``admin/aws.py``).

Configuration is what every AWS SDK reads (AWS SDKs and Tools Reference Guide):

* credentials: ``AWS_ACCESS_KEY_ID``, ``AWS_SECRET_ACCESS_KEY``, ``AWS_SESSION_TOKEN``
  (Lambda sets them). Without them, botocore's credential chain (profiles, SSO,
  container and instance roles) is asked, so the admin tools work on a workstation
  as before; a Lambda never imports botocore.
* region: ``AWS_DEFAULT_REGION``, then ``AWS_REGION`` (Lambda sets both), then the
  profile's (through botocore).
* endpoint: ``AWS_ENDPOINT_URL_DYNAMODB`` / ``AWS_ENDPOINT_URL_S3``, then
  ``AWS_ENDPOINT_URL`` (DynamoDB Local, moto, LocalStack; plain http is accepted there,
  as the SDKs accept it); otherwise the regional https endpoint.
"""

from __future__ import annotations

import datetime
import hashlib
import hmac
import json
import os
import random
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlsplit

from policy_engine.adapters.http import Answer, BodyTooLargeError, FetchError, Session
from policy_engine.errors import ConfigurationError, MissingStoreError, StoreError

__all__ = [
    "DENIED",
    "MISSING",
    "RUNTIME_ATTEMPTS",
    "RUNTIME_CALL_TIMEOUT",
    "RUNTIME_LOAD_DEADLINE",
    "THROTTLED",
    "Credentials",
    "SignedClient",
    "error_for",
    "error_of",
    "find_region",
    "parse_json",
    "s3_address",
    "service_origin",
    "sign_v4",
]

#: Requests per store call, the first one included. One retry covers a dropped
#: connection or one throttled answer; the cache backs off across requests.
RUNTIME_ATTEMPTS = 2
#: Seconds one request may take, whole: name lookup, connect, TLS, sending, answer.
#: In-region calls take milliseconds; the cache bounds how long anyone waits for a load.
RUNTIME_CALL_TIMEOUT = 3.0
#: Seconds one whole load may take, however many requests it makes (a DynamoDB snapshot
#: of many parts takes one per batch). A healthy load takes well under a second; an
#: endpoint answering slowly but validly is given up on here, and the cache backs off.
RUNTIME_LOAD_DEADLINE = 15.0
#: Longest pause before the retry (full jitter, as AWS's retry guidance recommends).
RETRY_DELAY_CAP = 0.25

#: A region name as the AWS SDKs accept one: lower-case letters and digits in
#: hyphen-separated words (us-east-1, us-gov-west-1, cn-north-1; "local" for emulators).
_REGION = re.compile(r"[a-z0-9]+(?:-[a-z0-9]+)*")

#: Error codes meaning "no such table, bucket or object".
MISSING = frozenset({"ResourceNotFoundException", "NoSuchBucket", "NoSuchKey", "404", "NotFound"})
#: Error codes meaning "these credentials may not do this".
DENIED = frozenset({
    "AccessDeniedException", "AccessDenied", "UnrecognizedClientException", "InvalidSignatureException",
    "InvalidAccessKeyId", "SignatureDoesNotMatch", "ExpiredToken", "ExpiredTokenException", "403",
})
#: Error codes worth one more try: throttling and server-side failures.
THROTTLED = frozenset({
    "ProvisionedThroughputExceededException", "ThrottlingException", "RequestLimitExceeded",
    "Throttling", "SlowDown", "InternalServerError", "ServiceUnavailable",
})

_ALGORITHM = "AWS4-HMAC-SHA256"
_EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()
_S3_CODE = re.compile(rb"<Code>([^<]{1,200})</Code>")
_S3_MESSAGE = re.compile(rb"<Message>([^<]{0,500})</Message>")
#: Bucket names that can be a host name label (no dots: a dotted name breaks the TLS wildcard).
_VIRTUAL_HOST_BUCKET = re.compile(r"[a-z0-9][a-z0-9-]{1,61}[a-z0-9]")


@dataclass(frozen=True, slots=True)
class Credentials:
    access_key: str
    secret_key: str
    token: str | None = None

    def __repr__(self) -> str:
        return f"Credentials(access_key={self.access_key!r}, ...)"  # never the secret


def error_for(code: str, message: str, what: str) -> StoreError:
    """The ``StoreError`` for an AWS error ``code`` on ``what`` (shared with the boto3 tools)."""
    if code in MISSING:
        return MissingStoreError(f"{what} does not exist ({code}: {message})")
    if code in DENIED:
        return StoreError(f"{what}: access refused, check the AWS credentials and permissions ({code}: {message})")
    if code in THROTTLED:
        return StoreError(f"{what}: throttled after retries ({code})")
    return StoreError(f"{what}: {code}: {message}")


def error_of(answer: Answer) -> tuple[str, str]:
    """``(code, message)`` of an error answer: DynamoDB's JSON or S3's XML, else the status."""
    body = answer.body
    if body.startswith(b"{"):
        try:
            document = json.loads(body)
        except (ValueError, RecursionError):  # nested past the parser's depth: no error document
            document = None
        if isinstance(document, dict):
            code = str(document.get("__type", "")).rpartition("#")[2]
            message = document.get("message", document.get("Message", ""))
            if code:
                return code, str(message)[:500]
    found = _S3_CODE.search(body)
    if found:
        message = _S3_MESSAGE.search(body)
        return found.group(1).decode("utf-8", "replace"), message.group(1).decode("utf-8", "replace") if message else ""
    return str(answer.status), f"HTTP {answer.status}"


def find_region(service: str, environ: Mapping[str, str]) -> str:
    """The region the SDKs would use.

    Raises:
        ConfigurationError: none is configured, or it is not a region name.
    """
    variable = next((name for name in ("AWS_DEFAULT_REGION", "AWS_REGION") if environ.get(name, "").strip()), None)
    region = environ[variable].strip() if variable else None
    if region is None:
        try:
            import botocore.session  # only off Lambda (a profile's region)
        except ImportError:  # pragma: no cover - botocore ships with every Lambda Python runtime
            pass
        else:
            configured = botocore.session.get_session().get_config_variable("region")
            region = str(configured).strip() if configured else None
    if not region:
        raise ConfigurationError("AWS_DEFAULT_REGION", f"no AWS region for the {service} client "
                                 "(set AWS_DEFAULT_REGION, or region in the AWS profile)")
    if not _REGION.fullmatch(region):
        # It becomes part of the service's host name (dynamodb.<region>.amazonaws.com).
        raise ConfigurationError(variable or "AWS_DEFAULT_REGION",
                                 f"{region!r} is not an AWS region name (such as us-east-1)"
                                 + ("" if variable else ", in the AWS profile"))
    return region


def service_origin(service: str, region: str, environ: Mapping[str, str]) -> tuple[str, bool]:
    """``(origin URL, configured?)`` of ``service`` (``dynamodb`` or ``s3``) in ``region``.

    Raises:
        ConfigurationError: a configured endpoint is not an http(s) URL.
    """
    variable = f"AWS_ENDPOINT_URL_{service.upper()}"
    configured = environ.get(variable) or environ.get("AWS_ENDPOINT_URL")
    if configured:
        parts = urlsplit(configured)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            name = variable if environ.get(variable) else "AWS_ENDPOINT_URL"
            raise ConfigurationError(name, f"{configured!r} is not an http(s) URL")
        return configured.rstrip("/"), True
    suffix = "amazonaws.com.cn" if region.startswith("cn-") else "amazonaws.com"
    return f"https://{service}.{region}.{suffix}", False


def s3_address(bucket: str, key: str, region: str, environ: Mapping[str, str]) -> tuple[str, str]:
    """``(origin, path)`` of an object: virtual-hosted on AWS, path-style on a configured endpoint."""
    origin, configured = service_origin("s3", region, environ)
    encoded = quote(key, safe="/~")
    if configured or not _VIRTUAL_HOST_BUCKET.fullmatch(bucket):
        parts = urlsplit(origin)
        base = parts.path.rstrip("/")
        return f"{parts.scheme}://{parts.netloc}", f"{base}/{bucket}/{encoded}"
    scheme, _, host = origin.partition("://")
    return f"{scheme}://{bucket}.{host}", f"/{encoded}"


def _hmac(key: bytes, text: str) -> bytes:
    return hmac.new(key, text.encode(), hashlib.sha256).digest()


def sign_v4(
    method: str,
    path: str,
    headers: Mapping[str, str],
    payload_sha256: str,
    credentials: Credentials,
    region: str,
    service: str,
    when: datetime.datetime,
) -> dict[str, str]:
    """``headers`` plus ``X-Amz-Date``, ``X-Amz-Security-Token`` (if any) and ``Authorization``.

    ``path`` is sent as given (already URI-encoded once, as S3 signs it; the DynamoDB
    calls use ``/``); there is no query string. Every header given is signed, and
    ``headers`` must include ``Host``.
    """
    amz_date = when.strftime("%Y%m%dT%H%M%SZ")
    signed = {**headers, "X-Amz-Date": amz_date}
    if credentials.token:
        signed["X-Amz-Security-Token"] = credentials.token
    canonical = {name.lower(): " ".join(str(value).split()) for name, value in signed.items()}
    names = sorted(canonical)
    signed_headers = ";".join(names)
    request = "\n".join([method, path, "", *(f"{n}:{canonical[n]}" for n in names), "", signed_headers,
                         payload_sha256])
    scope = f"{amz_date[:8]}/{region}/{service}/aws4_request"
    to_sign = "\n".join([_ALGORITHM, amz_date, scope, hashlib.sha256(request.encode()).hexdigest()])
    key = _hmac(_hmac(_hmac(_hmac(f"AWS4{credentials.secret_key}".encode(), amz_date[:8]), region), service),
                "aws4_request")
    signature = hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()
    signed["Authorization"] = (f"{_ALGORITHM} Credential={credentials.access_key}/{scope}, "
                               f"SignedHeaders={signed_headers}, Signature={signature}")
    return signed


#: Credentials for a request on ``what`` (named in errors); ``None`` when there are none.
CredentialSource = Callable[[str], Credentials | None]


def _environment_credentials(environ: Mapping[str, str]) -> Credentials | None:
    access, secret = environ.get("AWS_ACCESS_KEY_ID"), environ.get("AWS_SECRET_ACCESS_KEY")
    if access and secret:
        return Credentials(access, secret, environ.get("AWS_SESSION_TOKEN") or None)
    return None


def _chain_credentials() -> CredentialSource:
    """botocore's credential chain, for runs outside Lambda (profiles, SSO, instance roles)."""
    try:
        import botocore.session
        from botocore.exceptions import BotoCoreError
    except ImportError:  # pragma: no cover - botocore ships with every Lambda Python runtime
        return lambda what: None
    found = botocore.session.get_session().get_credentials()
    if found is None:
        return lambda what: None

    def frozen(what: str) -> Credentials:
        # Refreshable credentials (an assumed role, SSO) renew themselves here.
        try:
            current = found.get_frozen_credentials()
        except BotoCoreError as exc:
            raise StoreError(f"{what}: cannot get AWS credentials ({type(exc).__name__}: {exc})") from None
        return Credentials(current.access_key, current.secret_key, current.token)

    return frozen


class SignedClient:
    """Signed requests to one AWS origin over one kept-alive connection.

    ``send`` makes up to ``RUNTIME_ATTEMPTS`` requests of at most
    ``RUNTIME_CALL_TIMEOUT`` seconds each: a failed connection, a 5xx or a throttling
    answer is retried once after a short jittered pause; any other answer is handed back.
    """

    def __init__(self, service: str, origin: str, region: str, *, environ: Mapping[str, str] | None = None,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self.service = service
        self.region = region
        parts = urlsplit(origin)
        self._host = parts.netloc
        self._session = Session(parts)
        self._environ = dict(os.environ if environ is None else environ)
        self._credentials: CredentialSource | None = None
        self._sleep = sleep

    def _signing_credentials(self, what: str) -> Credentials:
        if self._credentials is None:
            static = _environment_credentials(self._environ)
            self._credentials = (lambda what: static) if static is not None else _chain_credentials()
        credentials = self._credentials(what)
        if credentials is None:
            raise StoreError(f"{what}: no AWS credentials found (environment, profile or role)")
        return credentials

    def send(self, method: str, path: str, *, what: str, max_bytes: int, headers: Mapping[str, str] | None = None,
             body: bytes = b"", deadline: float | None = None) -> Answer:
        """The answer to one signed request (any status but the retried ones).

        ``deadline`` (``time.monotonic()`` seconds) ends the attempts early: each gets at
        most the time left before it, and none starts after it.

        Raises:
            BodyTooLargeError: a 200 answer is larger than ``max_bytes``.
            StoreError: no credentials, every attempt failed (network, deadline, 5xx,
                throttled), or ``deadline`` passed.
        """
        payload_sha256 = hashlib.sha256(body).hexdigest() if body else _EMPTY_SHA256
        base = {"Host": self._host, **(headers or {})}
        if self.service == "s3":
            base["X-Amz-Content-SHA256"] = payload_sha256
        failure = ""
        for attempt in range(1, RUNTIME_ATTEMPTS + 1):
            if attempt > 1:
                self._sleep(random.uniform(0, RETRY_DELAY_CAP))
            timeout = RUNTIME_CALL_TIMEOUT
            if deadline is not None:
                timeout = min(timeout, deadline - time.monotonic())
                if timeout <= 0:
                    raise StoreError(f"{what}: the whole load outlived its deadline"
                                     + (f" (last attempt: {failure})" if failure else ""))
            signed = sign_v4(method, path, base, payload_sha256, self._signing_credentials(what), self.region,
                             self.service, datetime.datetime.now(datetime.UTC))
            try:
                answer = self._session.send(method, path, timeout=timeout, max_bytes=max_bytes,
                                            body=body or None, headers=signed, what=what)
            except BodyTooLargeError:
                raise
            except FetchError as exc:
                failure = str(exc)
                continue
            retry = answer.status >= 500 or (answer.status >= 400 and error_of(answer)[0] in THROTTLED)
            if not retry or attempt == RUNTIME_ATTEMPTS:
                return answer  # the caller words the error (error_of, error_for)
            failure = "{}: {}".format(*error_of(answer))
        raise StoreError(f"{what} failed after {RUNTIME_ATTEMPTS} attempts: {failure}")

    def close(self) -> None:
        self._session.close()


def parse_json(answer: Answer, what: str) -> dict[str, Any]:
    """The JSON object of a 200 answer.

    Raises:
        StoreError: the body is not a JSON object.
    """
    try:
        document = json.loads(answer.body)
    except (ValueError, RecursionError):
        document = None
    if not isinstance(document, dict):
        raise StoreError(f"{what}: the answer is not a JSON object")
    return document
