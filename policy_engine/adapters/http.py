"""A deliberately small HTTP client for trust material (JWKS, discovery, introspection).

Bounded in every direction: one timeout for connect and read, a body size cap, no
redirects (a redirect could hand us someone else's keys), https only except loopback.
"""

from __future__ import annotations

import http.client
import json
import ssl
import time
from typing import Any
from urllib.parse import urlsplit

from policy_engine.core.urls import check_trusted_url

__all__ = ["FetchError", "KeepAliveClient", "request_json"]

_MAX_BODY = 512 * 1024
_SSL_CONTEXT: ssl.SSLContext | None = None


class FetchError(Exception):
    """The request failed; the message never contains credentials or tokens."""


def _ssl_context() -> ssl.SSLContext:
    global _SSL_CONTEXT
    if _SSL_CONTEXT is None:
        _SSL_CONTEXT = ssl.create_default_context()
    return _SSL_CONTEXT


def _connection(parts: Any, timeout: float) -> http.client.HTTPConnection:
    if parts.scheme == "https":
        return http.client.HTTPSConnection(parts.hostname, parts.port, timeout=timeout, context=_ssl_context())
    return http.client.HTTPConnection(parts.hostname, parts.port, timeout=timeout)


class _DuplicateMember(ValueError):
    pass


def _unique_members(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    # json keeps the last of two equal names; another reader of the same answer may keep
    # the first ({"active": false, "active": true}). RFC 8259 §4 leaves the meaning
    # undefined, so trust material that uses it has no meaning we can rely on.
    result = dict(pairs)
    if len(result) != len(pairs):
        raise _DuplicateMember
    return result


def _parse(data: bytes, status: int, what: str, max_bytes: int) -> Any:
    if status != 200:
        raise FetchError(f"{what} answered {status}")
    if len(data) > max_bytes:
        raise FetchError(f"{what} answered more than {max_bytes} bytes")
    try:
        return json.loads(data, object_pairs_hook=_unique_members)
    except _DuplicateMember:
        raise FetchError(f"{what} answered JSON with a duplicate member name") from None
    except (ValueError, RecursionError) as exc:
        raise FetchError(f"{what} did not answer JSON") from exc


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
        FetchError: untrusted URL, network failure, timeout, non-200, oversize or non-JSON body,
            or JSON with a member name given twice in one object.
    """
    problem = check_trusted_url(url)
    if problem:
        raise FetchError(f"{url} {problem}")
    parts = urlsplit(url)
    conn = _connection(parts, timeout)
    try:
        conn.request(method, _target(parts), body=body, headers={"Accept": "application/json", **(headers or {})})
        response = conn.getresponse()
        data = response.read(max_bytes + 1)
        status = response.status
    except (OSError, http.client.HTTPException) as exc:
        raise FetchError(f"{method} {url} failed: {type(exc).__name__}") from exc
    finally:
        conn.close()
    return _parse(data, status, f"{method} {url}", max_bytes)


def _target(parts: Any) -> str:
    path = parts.path or "/"
    return f"{path}?{parts.query}" if parts.query else path


class KeepAliveClient:
    """``request_json`` for one URL called again and again, over one kept-alive connection.

    Saves a TCP (and TLS) handshake per request. A kept connection the server has
    meanwhile closed fails on first use; that request is retried once on a fresh
    connection. Timeouts are never retried: the time budget is already spent. A
    connection idle for more than ``max_idle`` seconds is not reused (a frozen Lambda
    container may wake long after a middlebox silently forgot it).
    """

    def __init__(self, url: str, *, timeout: float, max_bytes: int = _MAX_BODY, max_idle: float = 30.0) -> None:
        self._conn: http.client.HTTPConnection | None = None
        self._used_at = 0.0
        self._max_idle = max_idle
        problem = check_trusted_url(url)
        if problem:
            raise FetchError(f"{url} {problem}")
        self.url = url
        self._parts = urlsplit(url)
        self._timeout = timeout
        self._max_bytes = max_bytes

    def request(self, method: str, *, body: bytes | None = None, headers: dict[str, str] | None = None) -> Any:
        """Send one request and return its parsed JSON answer.

        Raises:
            FetchError: network failure, timeout, non-200, oversize or non-JSON body, or a
                duplicate member name.
        """
        what = f"{method} {self.url}"
        all_headers = {"Accept": "application/json", **(headers or {})}
        if self._conn is not None and time.monotonic() - self._used_at > self._max_idle:
            self.close()
        for attempt in (1, 2):
            reused = self._conn is not None
            conn = self._conn or _connection(self._parts, self._timeout)
            self._conn = conn
            try:
                conn.request(method, _target(self._parts), body=body, headers=all_headers)
                response = conn.getresponse()
                data = response.read(self._max_bytes + 1)
                status = response.status
            except TimeoutError as exc:
                self.close()
                raise FetchError(f"{what} failed: {type(exc).__name__}") from exc
            except (OSError, http.client.HTTPException) as exc:
                self.close()
                if reused and attempt == 1:
                    continue
                raise FetchError(f"{what} failed: {type(exc).__name__}") from exc
            self._used_at = time.monotonic()
            if response.will_close or len(data) > self._max_bytes:
                self.close()
            return _parse(data, status, what, self._max_bytes)
        raise AssertionError("unreachable")

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def __del__(self) -> None:
        # A container keeps its client for life; tests and tools drop theirs, and an
        # open socket left to the garbage collector is a ResourceWarning.
        self.close()
