"""Hostile HTTP peers on 127.0.0.1: raw sockets that answer by a script, one piece at a time.

``TricklingServer(script, interval=0.2)`` accepts connections (plain TCP, or TLS with
``tls=True``), reads each request, and sends ``script()``'s pieces with ``interval``
seconds between them: a status line, header or body that never ends, or nothing at
all. ``UnacceptingServer`` never completes a TCP handshake. ``hard_limit`` fails a
test that blocks (old code waiting on such a peer) instead of hanging the suite.
"""

from __future__ import annotations

import atexit
import contextlib
import datetime
import ipaddress
import shutil
import signal
import socket
import ssl
import tempfile
import threading
from collections.abc import Callable, Iterable, Iterator
from itertools import chain, count, repeat
from pathlib import Path
from typing import Any, Self

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

Script = Callable[[], Iterable[bytes]]

OK_BODY = b'{"ok": true}'


def ok() -> Iterable[bytes]:
    """A complete, well-formed answer, for a kept-alive connection's first request."""
    return [b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s"
            % (len(OK_BODY), OK_BODY)]


# Each script below would keep a client busy for 20 s or more at the interval it is used with.
SCRIPTS: dict[str, tuple[Script, float]] = {
    # accepts, reads the request, never answers
    "silent": (list, 0.2),
    "status line": (lambda: chain([b"HTTP/1.1 200 "], repeat(b"O")), 0.2),
    "headers": (lambda: chain([b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nX-Slow: "], repeat(b"a")), 0.2),
    # http.client gives up after 100 header lines; at 0.2 s a line that is 20 s
    "endless headers": (lambda: chain([b"HTTP/1.1 200 OK\r\n"], (b"X-%d: v\r\n" % i for i in count())), 0.2),
    "1xx answers": (lambda: repeat(b"HTTP/1.1 100 Continue\r\n\r\n"), 0.2),
    "body": (lambda: chain([b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n["],
                           repeat(b" ")), 0.2),
    "chunked body": (lambda: chain([b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1\r\n[\r\n"],
                                   repeat(b"1\r\n \r\n")), 0.2),
    # over the 512 KB cap at 20 KB/s, without a Content-Length that would give it away
    "oversized body": (lambda: chain(
        [b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nConnection: close\r\n\r\n["],
        repeat(b"0," * 500)), 0.05),
}


class TricklingServer:
    """Answers every request on 127.0.0.1 with the next script of ``scripts`` (the last repeats)."""

    def __init__(self, *scripts: Script, interval: float = 0.2, tls: bool = False, read_request: bool = True) -> None:
        self.scripts = list(scripts)
        self.interval = interval
        self.read_request = read_request
        self.requests = 0
        self.connections = 0
        self._tls = server_tls_context() if tls else None
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._open: set[socket.socket] = set()
        self._threads: list[threading.Thread] = []
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(0.05)
        self.port = self._listener.getsockname()[1]
        self.url = f"{'https' if tls else 'http'}://127.0.0.1:{self.port}"
        self._spawn(self._accept_loop)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(5)
        self._listener.close()
        with self._lock:
            for conn in self._open:
                conn.close()

    def _spawn(self, target: Callable[..., None], *args: Any) -> None:
        thread = threading.Thread(target=target, args=args, daemon=True, name="trickle")
        self._threads.append(thread)
        thread.start()

    def _accept_loop(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            with self._lock:
                self._open.add(conn)
                self.connections += 1
            self._spawn(self._serve, conn)

    def _serve(self, conn: socket.socket) -> None:
        try:
            conn.settimeout(0.1)
            if self._tls is not None:
                conn.settimeout(5)
                conn = self._tls.wrap_socket(conn, server_side=True)
                with self._lock:
                    self._open.add(conn)
                conn.settimeout(0.1)
            pending = b""
            while not self._stop.is_set():
                if self.read_request:
                    pending = self._read_request(conn, pending)
                    if pending is None:
                        return
                with self._lock:
                    script = self.scripts[min(self.requests, len(self.scripts) - 1)]
                    self.requests += 1
                closing = False
                for piece in script():
                    conn.sendall(piece)
                    closing = closing or b"connection: close" in piece.lower()
                    if self._stop.wait(self.interval):
                        return
                if closing:
                    conn.close()
                    return
                if not self.read_request:
                    self._stop.wait()
        except OSError:
            return

    def _read_request(self, conn: socket.socket, pending: bytes) -> bytes | None:
        """Consume one request (head and Content-Length body); what follows, or None at EOF/stop."""
        while b"\r\n\r\n" not in pending:
            chunk = self._recv(conn)
            if chunk is None:
                return None
            pending += chunk
        head, _, rest = pending.partition(b"\r\n\r\n")
        length = 0
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        while len(rest) < length:
            chunk = self._recv(conn)
            if chunk is None:
                return None
            rest += chunk
        return rest[length:]

    def _recv(self, conn: socket.socket) -> bytes | None:
        while not self._stop.is_set():
            try:
                chunk = conn.recv(65536)
            except TimeoutError:
                continue
            return chunk or None
        return None


@contextlib.contextmanager
def unaccepting_port() -> Iterator[int]:
    """A port whose accept queue is full: a TCP connect to it never completes (Linux drops the SYN)."""
    listener = socket.create_server(("127.0.0.1", 0), backlog=0)
    filler = socket.create_connection(listener.getsockname(), timeout=2)
    try:
        yield listener.getsockname()[1]
    finally:
        filler.close()
        listener.close()


class HardLimitExceeded(Exception):
    pass


@contextlib.contextmanager
def hard_limit(seconds: float) -> Iterator[None]:
    """Raise in the main thread after ``seconds``: a blocked call fails the test instead of hanging it."""

    def expire(signum: int, frame: Any) -> None:
        raise HardLimitExceeded(f"still blocked after {seconds} s")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


_CERTS: dict[str, Path] = {}


def certificates() -> dict[str, Path]:
    """A test CA (``ca``) and a certificate for 127.0.0.1 it signed (``cert``, ``key``), made once."""
    if _CERTS:
        return _CERTS
    directory = Path(tempfile.mkdtemp(prefix="trickle-tls-"))
    atexit.register(shutil.rmtree, directory, True)
    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "policy-engine test CA")])
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name).public_key(ca_key.public_key())
          .serial_number(x509.random_serial_number())
          .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(days=1))
          .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
          .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                       content_commitment=False, key_encipherment=False, data_encipherment=False,
                                       key_agreement=False, encipher_only=False, decipher_only=False), critical=True)
          .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
          .sign(ca_key, hashes.SHA256()))
    key = ec.generate_private_key(ec.SECP256R1())
    leaf = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")]))
            .issuer_name(ca_name).public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                           critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
            .sign(ca_key, hashes.SHA256()))
    paths = {"ca": directory / "ca.pem", "cert": directory / "cert.pem", "key": directory / "key.pem"}
    paths["ca"].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    paths["cert"].write_bytes(leaf.public_bytes(serialization.Encoding.PEM))
    paths["key"].write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                               serialization.NoEncryption()))
    _CERTS.update(paths)
    return _CERTS


def server_tls_context() -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    paths = certificates()
    context.load_cert_chain(paths["cert"], paths["key"])
    return context
