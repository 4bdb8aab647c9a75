"""A local OpenID provider on 127.0.0.1: discovery, JWKS, signing, key rotation, introspection.

Real HTTP on loopback, so the authorizer's JWKS and introspection adapters are exercised
exactly as in a deployment. Tokens are shaped like real access tokens (RFC 9068 claims,
``kid``); opaque tokens are random strings only the provider can look up (RFC 7662).
"""

from __future__ import annotations

import base64
import binascii
import json
import secrets
import threading
import time
import uuid
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote_plus

import jwt
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm

__all__ = ["LocalIdentityProvider", "SigningKey"]


class SigningKey:
    """An RSA key pair with its ``kid``."""

    def __init__(self, kid: str | None = None, bits: int = 2048) -> None:
        self.kid = kid or uuid.uuid4().hex[:16]
        self.private_key = rsa.generate_private_key(public_exponent=65537, key_size=bits)

    def public_jwk(self) -> dict[str, Any]:
        jwk = json.loads(RSAAlgorithm.to_jwk(self.private_key.public_key()))
        return {**jwk, "kid": self.kid, "use": "sig", "alg": "RS256"}


class LocalIdentityProvider:
    """Serves ``/.well-known/openid-configuration`` and ``/jwks.json``; mints tokens.

    ``routes`` lets callers (the local gateway's IdP, tests) add handlers:
    ``{(method, path): fn(handler, body) -> (status, headers, bytes)}``.
    """

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self.keys: list[SigningKey] = [SigningKey()]
        self.jwks_override: Callable[[], tuple[int, bytes]] | None = None
        self.requests: list[str] = []
        self.routes: dict[tuple[str, str], Callable[[BaseHTTPRequestHandler, bytes], tuple[int, dict[str, str], bytes]]] = {}
        self.opaque_tokens: dict[str, dict[str, Any]] = {}
        self.introspection_clients: dict[str, str] = {}
        #: How each introspection request authenticated: "client_secret_basic" or "client_secret_post".
        self.introspection_auth: list[str] = []
        #: Replaces the introspection answer, e.g. ``lambda: (500, b"oops")`` or a slow one.
        self.introspection_override: Callable[[], tuple[int, bytes]] | None = None
        self.routes[("POST", "/introspect")] = self._introspect
        self._server = ThreadingHTTPServer((host, port), self._handler_class())
        self._server.daemon_threads = True
        self._thread: threading.Thread | None = None

    @property
    def issuer(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    @property
    def jwks_uri(self) -> str:
        return f"{self.issuer}/jwks.json"

    def start(self) -> LocalIdentityProvider:
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.02}, name="local-idp", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> LocalIdentityProvider:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def rotate(self, *, keep_old: bool = True) -> SigningKey:
        """Publish a new signing key (first in the set); keep the old one unless told not to."""
        new = SigningKey()
        self.keys = [new, *(self.keys if keep_old else [])]
        return new

    @property
    def introspection_endpoint(self) -> str:
        return f"{self.issuer}/introspect"

    def register_client(self, client_id: str, client_secret: str) -> None:
        """Let a resource server call the introspection endpoint with these credentials."""
        self.introspection_clients[client_id] = client_secret

    def issue_opaque(
        self,
        *,
        scope: str | None = "pets:read",
        audience: str | None = "policy-engine-demo",
        subject: str = "demo-client",
        lifetime: int = 3600,
        **claims: Any,
    ) -> str:
        """A random opaque token whose introspection answer carries these members."""
        now = int(time.time())
        answer: dict[str, Any] = {
            "active": True, "iss": self.issuer, "sub": subject, "client_id": subject, "aud": audience,
            "scope": scope, "token_type": "Bearer", "iat": now, "exp": now + lifetime,
        }
        answer.update(claims)
        token = secrets.token_urlsafe(32)
        self.opaque_tokens[token] = {k: v for k, v in answer.items() if v is not None}
        return token

    def revoke(self, token: str) -> None:
        self.opaque_tokens.pop(token, None)

    def _introspect(self, handler: BaseHTTPRequestHandler, body: bytes) -> tuple[int, dict[str, str], bytes]:
        form = {k: v[0] for k, v in parse_qs(body.decode("ascii", "replace"), keep_blank_values=True).items()}
        client = self._introspection_client(handler.headers.get("Authorization"), form)
        if client is None:
            return 401, {"WWW-Authenticate": 'Basic realm="introspection"'}, b'{"error":"invalid_client"}'
        if self.introspection_override is not None:
            status, payload = self.introspection_override()
            return status, {}, payload
        answer = self.opaque_tokens.get(form.get("token", ""))
        exp = answer.get("exp") if answer else None
        if answer is None or (isinstance(exp, (int, float)) and exp <= time.time()):
            return 200, {}, b'{"active":false}'
        return 200, {}, json.dumps(answer).encode()

    def _introspection_client(self, authorization: str | None, form: dict[str, str]) -> str | None:
        if authorization and authorization.startswith("Basic "):
            try:
                pair = base64.b64decode(authorization[6:], validate=True).decode("utf-8")
            except (binascii.Error, UnicodeDecodeError):
                return None
            client_id, _, secret = pair.partition(":")
            client_id, secret, method = unquote_plus(client_id), unquote_plus(secret), "client_secret_basic"
        else:
            client_id, secret, method = form.get("client_id", ""), form.get("client_secret", ""), "client_secret_post"
        expected = self.introspection_clients.get(client_id)
        if expected is None or not secrets.compare_digest(expected, secret):
            return None
        self.introspection_auth.append(method)
        return client_id

    def jwks(self) -> dict[str, Any]:
        return {"keys": [key.public_jwk() for key in self.keys]}

    def mint(
        self,
        *,
        scope: str | list[str] | None = "pets:read",
        audience: str | None = "policy-engine-demo",
        subject: str = "demo-client",
        lifetime: int = 3600,
        key: SigningKey | None = None,
        headers: dict[str, Any] | None = None,
        **claims: Any,
    ) -> str:
        """Sign an access token; ``claims`` override or add claims (``None`` removes one)."""
        now = int(time.time())
        payload: dict[str, Any] = {
            "iss": self.issuer,
            "sub": subject,
            "aud": audience,
            "client_id": subject,
            "iat": now,
            "exp": now + lifetime,
            "jti": uuid.uuid4().hex,
        }
        if isinstance(scope, list):
            payload["scp"] = scope
        elif scope is not None:
            payload["scope"] = scope
        payload.update(claims)
        payload = {k: v for k, v in payload.items() if v is not None}
        signing = key or self.keys[0]
        return jwt.encode(payload, signing.private_key, algorithm="RS256",
                          headers={"kid": signing.kid, "typ": "at+jwt", **(headers or {})})

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        idp = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True

            def log_message(self, *args: Any) -> None:
                pass

            def _send(self, status: int, body: bytes, headers: dict[str, str] | None = None) -> None:
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                for name, value in (headers or {}).items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def _dispatch(self, method: str) -> None:
                path = self.path.split("?", 1)[0]
                idp.requests.append(f"{method} {path}")
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                route = idp.routes.get((method, path))
                if route is not None:
                    status, headers, payload = route(self, body)
                    self._send(status, payload, headers)
                elif method == "GET" and path == "/.well-known/openid-configuration":
                    doc = {"issuer": idp.issuer, "jwks_uri": idp.jwks_uri,
                           "token_endpoint": f"{idp.issuer}/oauth2/token",
                           "id_token_signing_alg_values_supported": ["RS256"]}
                    self._send(200, json.dumps(doc).encode())
                elif method == "GET" and path == "/jwks.json":
                    if idp.jwks_override is not None:
                        status, payload = idp.jwks_override()
                        self._send(status, payload)
                    else:
                        self._send(200, json.dumps(idp.jwks()).encode())
                else:
                    self._send(404, b'{"error":"not_found"}')

            def do_GET(self) -> None:
                self._dispatch("GET")

            def do_POST(self) -> None:
                self._dispatch("POST")

        return Handler
