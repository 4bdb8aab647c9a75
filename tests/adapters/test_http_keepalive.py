"""KeepAliveClient against a real HTTP/1.1 server on 127.0.0.1."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from policy_engine.adapters.http import FetchError, KeepAliveClient


class Server:
    def __init__(self) -> None:
        self.ports: list[int] = []
        self.drop_after_answer = False
        self.delay = 0.0
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:
                pass

            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                server.ports.append(self.client_address[1])
                time.sleep(server.delay)
                body = json.dumps({"n": len(server.ports)}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
                # Close without saying so, as an idle-timeout on the server side would.
                self.close_connection = server.drop_after_answer

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/introspect"
        threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True).start()

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server():
    s = Server()
    yield s
    s.stop()


def test_requests_share_one_connection(server):
    client = KeepAliveClient(server.url, timeout=2)
    answers = [client.request("POST", body=b"token=x")["n"] for _ in range(5)]
    client.close()
    assert answers == [1, 2, 3, 4, 5]
    assert len(set(server.ports)) == 1


def test_a_connection_the_server_closed_is_replaced_once(server):
    server.drop_after_answer = True
    client = KeepAliveClient(server.url, timeout=2)
    assert client.request("POST", body=b"a")["n"] == 1
    time.sleep(0.05)
    assert client.request("POST", body=b"b")["n"] == 2  # first try hit the closed socket
    client.close()
    assert len(set(server.ports)) == 2


def test_timeouts_are_not_retried(server):
    server.delay = 0.3
    client = KeepAliveClient(server.url, timeout=0.1)
    with pytest.raises(FetchError, match="TimeoutError"):
        client.request("POST", body=b"a")
    time.sleep(0.3)
    assert len(server.ports) == 1


def test_untrusted_urls_are_refused():
    with pytest.raises(FetchError, match="https"):
        KeepAliveClient("http://example.com/introspect", timeout=1)


def test_an_idle_connection_is_not_reused(server):
    client = KeepAliveClient(server.url, timeout=2, max_idle=0.05)
    client.request("POST", body=b"a")
    time.sleep(0.1)
    client.request("POST", body=b"b")
    client.close()
    assert len(set(server.ports)) == 2
