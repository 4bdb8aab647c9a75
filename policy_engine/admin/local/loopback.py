"""The plumbing every local server shares: a threaded HTTP server on 127.0.0.1 that
starts in a daemon thread, stops cleanly, and keeps quiet."""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

__all__ = ["LoopbackServer", "QuietHandler"]


class QuietHandler(BaseHTTPRequestHandler):
    """Keep-alive, no Nagle delay (tens of ms per request otherwise), no access log."""

    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True

    def log_message(self, *args: Any) -> None:
        pass

    def read_body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def send_body(self, status: int, body: bytes, headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)


class LoopbackServer:
    """Owns a ``ThreadingHTTPServer`` and the thread that serves it."""

    def __init__(self, host: str, port: int, handler: type[BaseHTTPRequestHandler], *, name: str,
                 poll_interval: float = 0.05) -> None:
        self.server = ThreadingHTTPServer((host, port), handler)
        self.server.daemon_threads = True
        self._name = name
        self._poll_interval = poll_interval
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host, port = self.server.socket.getsockname()[:2]  # typeshed allows a bytes host; the kernel gives str
        return f"http://{host}:{port}"

    def start(self) -> None:
        self._thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": self._poll_interval},
                                        name=self._name, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        if self._thread is not None:  # shutdown() would wait forever for a loop never started
            self.server.shutdown()
            self._thread = None
        self.server.server_close()
