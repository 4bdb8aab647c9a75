"""A deliberately small HTTP client for trust material (JWKS, discovery, introspection).

Bounded in every direction: one timeout for connect and read, a body size cap, no
redirects (a redirect could hand us someone else's keys), https only except loopback.
"""

from __future__ import annotations

import http.client
import json
import ssl
from typing import Any
from urllib.parse import urlsplit

from policy_engine.core.urls import check_trusted_url

__all__ = ["FetchError", "request_json"]

_MAX_BODY = 512 * 1024
_SSL_CONTEXT: ssl.SSLContext | None = None


class FetchError(Exception):
    """The request failed; the message never contains credentials or tokens."""


def _ssl_context() -> ssl.SSLContext:
    global _SSL_CONTEXT
    if _SSL_CONTEXT is None:
        _SSL_CONTEXT = ssl.create_default_context()
    return _SSL_CONTEXT


def request_json(
    url: str,
    *,
    timeout: float,
    method: str = "GET",
    body: bytes | None = None,
    headers: dict[str, str] | None = None,
    max_bytes: int = _MAX_BODY,
) -> Any:
    """Send one request and return its parsed JSON answer.

    Any status other than 200 raises, redirects included.

    Raises:
        FetchError: untrusted URL, network failure, timeout, non-200, oversize or non-JSON body.
    """
    problem = check_trusted_url(url)
    if problem:
        raise FetchError(f"{url} {problem}")
    parts = urlsplit(url)
    path = parts.path or "/"
    if parts.query:
        path += "?" + parts.query
    if parts.scheme == "https":
        conn: http.client.HTTPConnection = http.client.HTTPSConnection(
            parts.hostname, parts.port, timeout=timeout, context=_ssl_context()
        )
    else:
        conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=timeout)
    try:
        conn.request(method, path, body=body, headers={"Accept": "application/json", **(headers or {})})
        response = conn.getresponse()
        data = response.read(max_bytes + 1)
        status = response.status
    except (OSError, http.client.HTTPException) as exc:
        raise FetchError(f"{method} {url} failed: {type(exc).__name__}") from exc
    finally:
        conn.close()
    if status != 200:
        raise FetchError(f"{method} {url} answered {status}")
    if len(data) > max_bytes:
        raise FetchError(f"{method} {url} answered more than {max_bytes} bytes")
    try:
        return json.loads(data)
    except ValueError as exc:
        raise FetchError(f"{method} {url} did not answer JSON") from exc
