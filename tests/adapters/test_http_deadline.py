"""The HTTP client's timeout is a deadline for the whole exchange, whatever the peer does.

Every peer here would keep the client busy for 20 s or more; the client is given 0.4 s
and must give up with ``FetchError`` well within 2.5 s. ``hard_limit`` turns a client
that blocks into a failure instead of a hung suite.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from itertools import chain, repeat

import pytest

from policy_engine.adapters import http
from policy_engine.adapters.http import FetchError, KeepAliveClient, request_json
from tests.support.trickle import (
    SCRIPTS,
    TricklingServer,
    certificates,
    hard_limit,
    ok,
    unaccepting_port,
)

TIMEOUT = 0.4
BOUND = 2.5  # generous: a busy machine must not make this flaky


@pytest.fixture
def trust_test_ca(monkeypatch):
    """The client's default TLS context, built with the test CA as its trust store."""
    monkeypatch.setenv("SSL_CERT_FILE", str(certificates()["ca"]))
    monkeypatch.setattr(http, "_SSL_CONTEXT", None)


def _gives_up(call, what: str) -> float:
    started = time.monotonic()
    with hard_limit(8), pytest.raises(FetchError):
        call()
    elapsed = time.monotonic() - started
    print(f"{what}: FetchError after {elapsed:.3f} s (deadline {TIMEOUT} s)")
    assert elapsed < BOUND
    return elapsed


@pytest.mark.parametrize("scheme", ["http", "https"])
@pytest.mark.parametrize("phase", SCRIPTS)
def test_request_json_gives_up_at_the_deadline(phase, scheme, trust_test_ca):
    script, interval = SCRIPTS[phase]
    with TricklingServer(script, interval=interval, tls=scheme == "https") as server:
        _gives_up(lambda: request_json(server.url + "/jwks.json", timeout=TIMEOUT), f"{scheme} {phase}")


@pytest.mark.parametrize("phase", ["silent", "status line", "headers", "body", "oversized body"])
def test_keepalive_client_gives_up_at_the_deadline(phase):
    script, interval = SCRIPTS[phase]
    with TricklingServer(script, interval=interval) as server:
        client = KeepAliveClient(server.url + "/introspect", timeout=TIMEOUT)
        _gives_up(lambda: client.request("POST", body=b"token=x"), f"keep-alive {phase}")
        client.close()


@pytest.mark.parametrize("scheme", ["http", "https"])
def test_a_kept_alive_connection_that_starts_trickling_is_cut_off(scheme, trust_test_ca):
    # The first answer is fine; the second request, on the same connection, meets a trickle.
    script, interval = SCRIPTS["body"]
    with TricklingServer(ok, script, interval=interval, tls=scheme == "https") as server:
        client = KeepAliveClient(server.url + "/introspect", timeout=TIMEOUT)
        assert client.request("POST", body=b"token=a") == {"ok": True}
        _gives_up(lambda: client.request("POST", body=b"token=b"), f"{scheme} kept-alive, then trickle")
        client.close()
        assert server.connections == 1  # a timeout is not retried on a new connection


@pytest.mark.parametrize("scheme", ["http", "https"])
def test_a_kept_alive_connection_outlives_one_requests_deadline(scheme, trust_test_ca):
    # Each request gets its own deadline: an idle kept connection is reused after the previous one passed.
    with TricklingServer(ok, interval=0.01, tls=scheme == "https") as server:
        client = KeepAliveClient(server.url + "/introspect", timeout=0.2)
        assert client.request("POST", body=b"token=a") == {"ok": True}
        time.sleep(0.3)
        assert client.request("POST", body=b"token=b") == {"ok": True}
        client.close()
        assert server.connections == 1 and server.requests == 2


def test_a_tls_handshake_that_trickles_is_cut_off(trust_test_ca):
    # A TLS record header announcing 16 KB, then one byte at a time: the handshake never ends.
    def handshake() -> Iterator[bytes]:
        return chain([b"\x16\x03\x03\x40\x00"], repeat(b"\x00"))

    with TricklingServer(handshake, interval=0.2, read_request=False) as server:
        _gives_up(lambda: request_json(server.url.replace("http:", "https:"), timeout=TIMEOUT), "TLS handshake")


def test_a_connect_that_never_completes_is_cut_off():
    with unaccepting_port() as port:
        _gives_up(lambda: request_json(f"http://127.0.0.1:{port}/jwks.json", timeout=TIMEOUT), "TCP connect")


def test_a_name_lookup_that_hangs_is_cut_off(monkeypatch):
    # No local resolver can be made to hang, so the lookup itself is replaced.
    release = threading.Event()

    def hanging_lookup(*args, **kwargs):
        release.wait(20)
        raise socket.gaierror("released")

    monkeypatch.setattr(socket, "getaddrinfo", hanging_lookup)
    try:
        _gives_up(lambda: request_json("https://idp.example.com/jwks.json", timeout=TIMEOUT), "DNS lookup")
    finally:
        release.set()


def test_an_announced_body_over_the_cap_is_refused_before_reading_it():
    head = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 10000000\r\n\r\n["
    with TricklingServer(lambda: chain([head], repeat(b" ")), interval=0.2) as server:
        started = time.monotonic()
        with hard_limit(8), pytest.raises(FetchError, match="more than 1000 bytes"):
            request_json(server.url, timeout=5, max_bytes=1000)
        assert time.monotonic() - started < BOUND  # not the 5 s deadline: the length said enough


def test_a_body_over_the_cap_is_refused():
    body = b"[" + b"0," * 1000 + b"0]"
    answer = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nConnection: close\r\n\r\n" + body
    with TricklingServer(lambda: [answer], interval=0.01) as server:
        with hard_limit(8), pytest.raises(FetchError, match="more than 1000 bytes"):
            request_json(server.url, timeout=2, max_bytes=1000)
        assert request_json(server.url, timeout=2, max_bytes=len(body)) == [0] * 1001
