"""A hostile stand-in for DynamoDB or S3 on 127.0.0.1: raw sockets, counted requests.

Point ``AWS_ENDPOINT_URL_DYNAMODB`` or ``AWS_ENDPOINT_URL_S3`` at ``endpoint.url``. Each
request is read whole (headers and ``Content-Length`` body), counted, then answered the
way ``endpoint.mode`` says at that moment:

* ``forward``: passed to ``upstream`` (moto) after ``delay`` seconds, and its answer
  piped back;
* ``hang``: never answered (the connection stays open until the endpoint stops);
* ``trickle``: a valid answer, one byte every ``interval`` seconds, so no socket read
  ever times out;
* ``error``: ``error_response`` (an AWS error document) at once;
* ``endless``: ``200`` with a chunked body that never ends (no ``Content-Length``).

``stop()`` (or leaving the ``with`` block) closes every socket, which also ends any
client thread still waiting on one.
"""

from __future__ import annotations

import contextlib
import re
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Self
from urllib.parse import urlsplit


def http_answer(status: str, content_type: str, body: bytes) -> bytes:
    """One complete HTTP/1.1 answer with a correct ``Content-Length``."""
    return (f"HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nx-amzn-RequestId: fake\r\n"
            f"Content-Length: {len(body)}\r\n\r\n").encode() + body


def dynamodb_error(status: str, error_type: str) -> bytes:
    body = f'{{"__type":"com.amazonaws.dynamodb.v20120810#{error_type}","message":"injected"}}'.encode()
    return http_answer(status, "application/x-amz-json-1.0", body)


DYNAMODB_DENIED = dynamodb_error("400 Bad Request", "AccessDeniedException")
DYNAMODB_INTERNAL_ERROR = dynamodb_error("500 Internal Server Error", "InternalServerError")
DYNAMODB_EMPTY_ITEM = http_answer("200 OK", "application/x-amz-json-1.0", b"{}")
S3_DENIED = http_answer("403 Forbidden", "application/xml",
                        b"<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>AccessDenied</Code>"
                        b"<Message>injected</Message></Error>")


class FakeStoreEndpoint:
    def __init__(self, mode: str = "hang", *, upstream: str | None = None, interval: float = 0.3, delay: float = 0.0,
                 error_response: bytes = DYNAMODB_DENIED, trickle_response: bytes = DYNAMODB_EMPTY_ITEM) -> None:
        self.mode = mode
        self.interval = interval
        self.delay = delay
        self.error_response = error_response
        self.trickle_response = trickle_response
        self._upstream = urlsplit(upstream) if upstream else None
        #: ``(method, target)`` of every request received, in order.
        self.requests: list[tuple[str, str]] = []
        #: The DynamoDB operation (``X-Amz-Target`` without its prefix) of every request, in order.
        self.operations: list[str] = []
        #: Bytes sent to the client by ``endless`` and ``forward``.
        self.sent = 0
        #: Status codes of the answers ``forward`` piped back, in order.
        self.statuses: list[int] = []
        self._lock = threading.Lock()
        self._stopped = threading.Event()
        self._sockets: list[socket.socket] = []
        self._threads: list[threading.Thread] = []
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(0.1)  # closing a socket does not wake a blocked accept()
        self.url = f"http://127.0.0.1:{self._listener.getsockname()[1]}"

    def __enter__(self) -> Self:
        self._spawn(self._accept)
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def count(self, method: str | None = None) -> int:
        with self._lock:
            return sum(1 for m, _ in self.requests if method is None or m == method)

    def stop(self) -> None:
        self._stopped.set()
        self._listener.close()
        with self._lock:
            sockets = list(self._sockets)
        for sock in sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()
        for thread in list(self._threads):
            thread.join(5)

    # -- plumbing -----------------------------------------------------------------------

    def _spawn(self, target, *args) -> None:
        thread = threading.Thread(target=target, args=args, daemon=True)
        self._threads.append(thread)
        thread.start()

    def _track(self, sock: socket.socket) -> socket.socket:
        with self._lock:
            self._sockets.append(sock)
        return sock

    def _accept(self) -> None:
        while not self._stopped.is_set():
            try:
                conn, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self._spawn(self._serve, self._track(conn))

    def _serve(self, conn: socket.socket) -> None:
        upstream: socket.socket | None = None
        reader = _Reader(conn)
        try:
            while not self._stopped.is_set():
                request = reader.request()
                if request is None:
                    return
                method, target, raw = request
                operation = re.search(rb"\r\nx-amz-target: *[A-Za-z0-9_]+\.(\w+)", raw, re.IGNORECASE)
                with self._lock:
                    self.requests.append((method, target))
                    if operation:
                        self.operations.append(operation.group(1).decode())
                mode = self.mode
                if mode == "forward":
                    if self.delay and self._stopped.wait(self.delay):
                        return
                    if upstream is None:
                        assert self._upstream is not None
                        upstream = self._track(socket.create_connection(
                            (self._upstream.hostname, self._upstream.port)))
                        self._spawn(self._pipe, upstream, conn)
                    upstream.sendall(raw)
                elif mode == "hang":
                    self._stopped.wait()
                    return
                elif mode == "trickle":
                    for byte in self.trickle_response:
                        if self._stopped.wait(self.interval):
                            return
                        conn.sendall(bytes([byte]))
                elif mode == "error":
                    conn.sendall(self.error_response)
                elif mode == "endless":
                    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nETag: \"endless\"\r\n"
                                 b"Transfer-Encoding: chunked\r\n\r\n")
                    chunk = b"%x\r\n%s\r\n" % (65536, b" " * 65536)
                    # Bounded only so that a client without a cap cannot exhaust the test machine.
                    while not self._stopped.is_set() and self.sent < 256 * 1024 * 1024:
                        conn.sendall(chunk)
                        self.sent += 65536
                    return
        except OSError:
            return
        finally:
            conn.close()

    def _pipe(self, source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                # Good enough for tests: an answer's status line arrives at the start of a read.
                self.statuses += [int(code) for code in re.findall(rb"^HTTP/1\.1 (\d{3}) ", data)]
                sink.sendall(data)
                self.sent += len(data)
        except OSError:
            pass
        finally:
            source.close()
            with contextlib.suppress(OSError):
                sink.shutdown(socket.SHUT_RDWR)


class _Reader:
    """Reads whole HTTP/1.1 requests (headers and a ``Content-Length`` body) off a socket."""

    def __init__(self, sock: socket.socket) -> None:
        self._sock = sock
        self._buffer = b""

    def _fill(self) -> bool:
        data = self._sock.recv(65536)
        self._buffer += data
        return bool(data)

    def request(self) -> tuple[str, str, bytes] | None:
        while b"\r\n\r\n" not in self._buffer:
            if not self._fill():
                return None
        head, _, _ = self._buffer.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        method, target, _ = lines[0].split(" ", 2)
        length = 0
        for line in lines[1:]:
            name, _, value = line.partition(":")
            if name.strip().lower() == "content-length":
                length = int(value.strip())
        total = len(head) + 4 + length
        while len(self._buffer) < total:
            if not self._fill():
                return None
        raw, self._buffer = self._buffer[:total], self._buffer[total:]
        return method, target, raw


@contextmanager
def fake_store_endpoint(mode: str = "hang", **options) -> Iterator[FakeStoreEndpoint]:
    with FakeStoreEndpoint(mode, **options) as endpoint:
        yield endpoint
