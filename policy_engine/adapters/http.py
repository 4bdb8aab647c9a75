"""A deliberately small HTTP client for trust material (JWKS, discovery, introspection).

Bounded in every direction: one deadline for the whole exchange, a body size cap, no
redirects (a redirect could hand us someone else's keys), https only except loopback.

The deadline. A socket timeout bounds one blocking call, so a peer that sends a byte
just before each timeout (or an endless status line, header block or body) holds the
caller for as long as it likes. Here the ``timeout`` a caller gives is a deadline for
the whole exchange: name lookup, TCP connect, TLS handshake, sending, status line,
headers and body. Every blocking socket call first sets the socket's timeout to the
time left and fails once none is left, so nothing the peer does extends it. The name
lookup, which no socket timeout covers, runs in a helper thread that is waited for
only until the deadline. On a kept-alive connection each request gets its own
deadline; the warm cost is one clock read and one ``settimeout`` per socket call.

Sizes. Header lines and their number stay capped by ``http.client`` (64 KiB a line,
100 headers); a body is capped at ``max_bytes``, and one announced larger by its
``Content-Length`` is refused before it is read.
"""

from __future__ import annotations

import contextlib
import http.client
import ipaddress
import json
import socket
import ssl
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, cast
from urllib.parse import SplitResult, urlsplit

from policy_engine.core.jsonobjects import DuplicateMemberError, unique_members
from policy_engine.core.urls import check_trusted_url

__all__ = ["Answer", "BodyTooLargeError", "FetchError", "KeepAliveClient", "Session", "request_json"]

_MAX_BODY = 512 * 1024
_SSL_CONTEXT: ssl.SSLContext | None = None

AddressInfo = tuple[socket.AddressFamily, socket.SocketKind, int, str, Any]


class FetchError(Exception):
    """The request failed; the message never contains credentials or tokens."""


def _time_left(deadline: float) -> float:
    left = deadline - time.monotonic()
    if left <= 0:
        # A timeout of 0 would make the socket non-blocking, not fail it.
        raise TimeoutError("the request's deadline has passed")
    return left


class _Deadlined(socket.socket):
    """A socket whose blocking calls each get only the time left before ``deadline`` (a
    ``time.monotonic()`` value), so no sequence of calls outlives it. The TLS class puts
    it ahead of ``ssl.SSLSocket``, so the same three methods guard both."""

    __slots__ = ()
    deadline: float

    def recv_into(self, *args: Any, **kwargs: Any) -> int:
        self.settimeout(_time_left(self.deadline))
        return super().recv_into(*args, **kwargs)

    def recv(self, *args: Any, **kwargs: Any) -> bytes:
        self.settimeout(_time_left(self.deadline))
        return super().recv(*args, **kwargs)

    def send(self, *args: Any, **kwargs: Any) -> int:
        self.settimeout(_time_left(self.deadline))
        return super().send(*args, **kwargs)


class _DeadlineSocket(_Deadlined):
    """A TCP socket whose blocking calls all end by ``deadline``."""

    __slots__ = ("deadline",)

    def sendall(self, *args: Any, **kwargs: Any) -> None:
        # socket.sendall counts its timeout for the whole call (Python >= 3.5).
        self.settimeout(_time_left(self.deadline))
        super().sendall(*args, **kwargs)


class _DeadlineSSLSocket(_Deadlined, ssl.SSLSocket):
    """The TLS counterpart; ``sendall`` goes through ``send``, reads through ``recv_into``."""

    deadline = float("-inf")  # set right after wrapping; until then nothing may block

    def do_handshake(self, *args: Any, **kwargs: Any) -> None:
        # The ssl module counts the timeout for the whole handshake, however many reads it takes.
        self.settimeout(_time_left(self.deadline))
        super().do_handshake(*args, **kwargs)


def _ssl_context() -> ssl.SSLContext:
    global _SSL_CONTEXT
    if _SSL_CONTEXT is None:
        context = ssl.create_default_context()
        context.sslsocket_class = _DeadlineSSLSocket
        _SSL_CONTEXT = context
    return _SSL_CONTEXT


def _resolve(host: str, port: int, deadline: float) -> Sequence[AddressInfo]:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        pass
    else:  # a literal address: nothing to look up, nothing to wait for
        return socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_NUMERICHOST)
    found: list[AddressInfo] = []
    failed: list[OSError] = []

    def lookup() -> None:
        try:
            found.extend(socket.getaddrinfo(host, port, type=socket.SOCK_STREAM))
        except OSError as exc:
            failed.append(exc)

    # getaddrinfo takes no timeout (the resolver's own retries can take tens of seconds):
    # wait for it only until the deadline, and leave a late lookup to finish on its own.
    thread = threading.Thread(target=lookup, name="policy-engine-dns", daemon=True)
    try:
        thread.start()
    except RuntimeError as exc:
        raise OSError("cannot start the name lookup") from exc
    thread.join(_time_left(deadline))
    if thread.is_alive():
        raise TimeoutError("the name lookup outlived the request's deadline")
    if failed:
        raise failed[0]
    return found


def _open(host: str, port: int, deadline: float) -> _DeadlineSocket:
    error = OSError(f"no address for {host}")
    for family, kind, proto, _, address in _resolve(host, port, deadline):
        sock = _DeadlineSocket(family, kind, proto)
        sock.deadline = deadline
        try:
            sock.settimeout(_time_left(deadline))
            sock.connect(address)
        except TimeoutError:
            sock.close()
            raise
        except OSError as exc:
            sock.close()
            error = exc
            continue
        except BaseException:
            sock.close()
            raise
        with contextlib.suppress(OSError):  # as http.client does: no Nagle delay on small requests
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return sock
    raise error


class _Connection(http.client.HTTPConnection):
    """``http.client``'s connection, opened and used within the deadline ``arm`` sets."""

    def __init__(self, parts: SplitResult) -> None:
        self._tls = parts.scheme == "https"
        super().__init__(parts.hostname or "", parts.port or (443 if self._tls else 80))
        self.deadline = float("-inf")

    def arm(self, deadline: float) -> None:
        """Bound everything this connection does from now on by ``deadline``."""
        self.deadline = deadline
        if isinstance(self.sock, (_DeadlineSocket, _DeadlineSSLSocket)):
            self.sock.deadline = deadline

    def connect(self) -> None:
        sys.audit("http.client.connect", self, self.host, self.port)
        sock: socket.socket = _open(self.host, self.port, self.deadline)
        if self._tls:
            try:
                wrapped = _ssl_context().wrap_socket(sock, server_hostname=self.host, do_handshake_on_connect=False)
            except BaseException:
                sock.close()
                raise
            tls = cast(_DeadlineSSLSocket, wrapped)
            tls.deadline = self.deadline
            try:
                tls.do_handshake()
            except BaseException:
                tls.close()
                raise
            sock = tls
        self.sock = sock


def _exchange(
    conn: _Connection, method: str, target: str, body: bytes | None, headers: dict[str, str], max_bytes: int,
    what: str,
) -> tuple[bytes, bool]:
    """Send one request on ``conn``; the 200 answer's body and whether the server closes.

    Raises:
        FetchError: non-200 or oversize answer (the body is then left unread).
        OSError, http.client.HTTPException: the exchange failed, the deadline included.
    """
    conn.request(method, target, body=body, headers=headers)
    response = conn.getresponse()
    if response.status != 200:
        raise FetchError(f"{what} answered {response.status}")
    if response.length is not None and response.length > max_bytes:
        raise FetchError(f"{what} answered more than {max_bytes} bytes")
    data = response.read(max_bytes + 1)
    if len(data) > max_bytes:
        raise FetchError(f"{what} answered more than {max_bytes} bytes")
    return data, response.will_close


def _parse(data: bytes, what: str) -> Any:
    try:
        return json.loads(data, object_pairs_hook=unique_members)
    except DuplicateMemberError:
        raise FetchError(f"{what} answered JSON with a duplicate member name") from None
    except (ValueError, RecursionError) as exc:
        raise FetchError(f"{what} did not answer JSON") from exc


def _trusted_parts(url: str) -> SplitResult:
    problem = check_trusted_url(url)
    if problem:
        raise FetchError(f"{url} {problem}")
    parts = urlsplit(url)
    try:
        parts.port  # noqa: B018  # a port that is not a number raises here, not mid-request
    except ValueError as exc:
        raise FetchError(f"{url} has an invalid port") from exc
    return parts


def request_json(
    url: str,
    *,
    timeout: float,
    method: str = "GET",
    body: bytes | None = None,
    headers: dict[str, str] | None = None,
    max_bytes: int = _MAX_BODY,
) -> Any:
    """Send one request and return its parsed JSON answer, all within ``timeout`` seconds.

    Any status other than 200 raises, redirects included.

    Raises:
        FetchError: untrusted URL, network failure, timeout, non-200, oversize or non-JSON body,
            or JSON with a member name given twice in one object.
        FetchError: untrusted URL, network failure, deadline passed, non-200, oversize or
            non-JSON body.
    """
    deadline = time.monotonic() + timeout
    parts = _trusted_parts(url)
    what = f"{method} {url}"
    conn = _Connection(parts)
    conn.arm(deadline)
    try:
        data, _ = _exchange(conn, method, _target(parts), body, {"Accept": "application/json", **(headers or {})},
                            max_bytes, what)
    except (OSError, http.client.HTTPException) as exc:
        raise FetchError(f"{what} failed: {type(exc).__name__}") from exc
    finally:
        conn.close()
    return _parse(data, what)


def _target(parts: Any) -> str:
    path = parts.path or "/"
    return f"{path}?{parts.query}" if parts.query else path


@dataclass(frozen=True, slots=True)
class Answer:
    """One HTTP answer: status, headers (names lower-cased) and body (capped, see ``Session.send``)."""

    status: int
    headers: dict[str, str]
    body: bytes


class BodyTooLargeError(FetchError):
    """A 200 answer's body is over the cap; ``declared`` is its ``Content-Length``, if it gave one."""

    def __init__(self, message: str, declared: int | None, headers: dict[str, str]) -> None:
        super().__init__(message)
        self.declared = declared
        self.headers = headers


#: Bytes of a non-200 answer's body that are read (an error document); the rest is dropped.
_ERROR_BODY = 64 * 1024


class Session:
    """Requests to one origin over one kept-alive connection; any status is handed back.

    Each request, retry included, must finish within ``timeout`` seconds of its start.
    A kept connection the server has meanwhile closed fails on first use; that request
    is retried once on a fresh connection, within what is left of its deadline.
    Timeouts are never retried: the time budget is already spent. A connection idle
    for more than ``max_idle`` seconds is not reused (a frozen Lambda container may
    wake long after a middlebox silently forgot it). The caller decides which origins
    it trusts (``check_trusted_url``); this class only talks to the one it is given.
    """

    def __init__(self, origin: SplitResult, *, max_idle: float = 30.0) -> None:
        self._parts = origin
        self._conn: _Connection | None = None
        self._used_at = 0.0
        self._max_idle = max_idle

    def send(
        self, method: str, target: str, *, timeout: float, max_bytes: int, body: bytes | None = None,
        headers: dict[str, str] | None = None, what: str | None = None,
    ) -> Answer:
        """Send one request; a 200 body is capped at ``max_bytes``, any other at 64 KiB.

        Raises:
            BodyTooLargeError: a 200 answer announced or sent more than ``max_bytes``
                (refused on its ``Content-Length`` before the body is read).
            FetchError: network failure or the deadline passed (``what`` names the request).
        """
        started = time.monotonic()
        deadline = started + timeout
        what = what or f"{method} {self._parts.geturl()}"
        if self._conn is not None and started - self._used_at > self._max_idle:
            self.close()
        for attempt in (1, 2):
            reused = self._conn is not None
            conn = self._conn or _Connection(self._parts)
            self._conn = conn
            conn.arm(deadline)
            try:
                answer, will_close = self._exchange(conn, method, target, body, headers or {}, max_bytes, what)
            except BodyTooLargeError:
                self.close()  # the rest of the body is left unread on the connection
                raise
            except TimeoutError as exc:
                self.close()
                raise FetchError(f"{what} failed: {type(exc).__name__}") from exc
            except (OSError, http.client.HTTPException) as exc:
                self.close()
                if reused and attempt == 1:
                    continue
                raise FetchError(f"{what} failed: {type(exc).__name__}") from exc
            except BaseException:
                self.close()
                raise
            self._used_at = time.monotonic()
            if will_close:
                self.close()
            return answer
        raise AssertionError("unreachable")

    @staticmethod
    def _exchange(
        conn: _Connection, method: str, target: str, body: bytes | None, headers: dict[str, str], max_bytes: int,
        what: str,
    ) -> tuple[Answer, bool]:
        conn.request(method, target, body=body, headers=headers)
        response = conn.getresponse()
        headers = {name.lower(): value for name, value in response.getheaders()}
        cap = max_bytes if response.status == 200 else _ERROR_BODY
        if response.status == 200 and response.length is not None and response.length > cap:
            # Closed here: the refusal's traceback keeps the response, and its file would keep the socket open.
            response.close()
            raise BodyTooLargeError(f"{what} answered more than {cap} bytes", response.length, headers)
        data = response.read(cap + 1)
        will_close = response.will_close
        if len(data) > cap:
            if response.status == 200:
                response.close()
                raise BodyTooLargeError(f"{what} answered more than {cap} bytes", None, headers)
            data, will_close = data[:cap], True  # the unread rest makes the connection unusable
        return Answer(response.status, headers, data), will_close

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def __del__(self) -> None:
        # A container keeps its sessions for life; tests and tools drop theirs, and an
        # open socket left to the garbage collector is a ResourceWarning.
        self.close()


class KeepAliveClient:
    """``request_json`` for one URL called again and again, over one kept-alive ``Session``."""

    def __init__(self, url: str, *, timeout: float, max_bytes: int = _MAX_BODY, max_idle: float = 30.0) -> None:
        self._parts = _trusted_parts(url)
        self._session = Session(self._parts, max_idle=max_idle)
        self.url = url
        self._timeout = timeout
        self._max_bytes = max_bytes

    def request(self, method: str, *, body: bytes | None = None, headers: dict[str, str] | None = None,
                timeout: float | None = None) -> Any:
        """Send one request and return its parsed JSON answer, within ``timeout`` seconds (the
        client's own when ``None``).

        Raises:
            FetchError: network failure, deadline passed, non-200, oversize or non-JSON
                body, or a duplicate member name.
        """
        what = f"{method} {self.url}"
        timeout = self._timeout if timeout is None else timeout
        answer = self._session.send(method, _target(self._parts), timeout=timeout, max_bytes=self._max_bytes,
                                    body=body, headers={"Accept": "application/json", **(headers or {})}, what=what)
        if answer.status != 200:
            raise FetchError(f"{what} answered {answer.status}")
        return _parse(answer.body, what)

    def close(self) -> None:
        self._session.close()
