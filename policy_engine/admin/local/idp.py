"""A local OpenID provider on 127.0.0.1: discovery, JWKS, signing, key rotation,
introspection, and a client-credentials token endpoint.

Real HTTP on loopback, so the authorizer's JWKS and introspection adapters are exercised
exactly as in a deployment. Tokens are shaped like real access tokens (RFC 9068 claims,
``kid``); the token endpoint shapes each client's like its provider's (``clients.py``);
opaque tokens are random strings only the provider can look up (RFC 7662).

Endpoints (all on loopback):

    GET  /.well-known/openid-configuration   discovery (also under /auth0, /{tenant}, /{tenant}/v2.0
                                             for the issuers of Auth0- and Entra-shaped clients)
    GET  /jwks.json                          the public keys
    POST /oauth2/token                       client credentials (RFC 6749 §4.4), Basic auth
    POST /introspect                         RFC 7662 introspection of opaque tokens
    POST /admin/rotate[?retire=1]            publish a new signing key (drop old ones with retire)
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import secrets
import time
import uuid
from collections.abc import Callable, Iterable
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import parse_qs, unquote_plus, urlsplit

import jwt
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm

from policy_engine.admin.local.clients import CLIENTS_FILE, OAuthClient, load_clients, token_claims
from policy_engine.admin.local.loopback import LoopbackServer, QuietHandler
from policy_engine.core.urls import is_loopback_host

__all__ = ["CLIENTS_FILE", "LocalIdentityProvider", "OAuthClient", "SigningKey", "load_clients"]

_DISCOVERY = "/.well-known/openid-configuration"
# Where the issuers of shaped clients keep their discovery documents (see ``issuer_at``).
_TENANT_PREFIX = re.compile(r"/([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}|common|organizations)"
                            r"(/v2\.0)?")


class TokenEndpointError(Exception):
    """An RFC 6749 §5.2 error answer."""

    def __init__(self, status: int, error: str, description: str) -> None:
        super().__init__(description)
        self.status = status
        self.error = error
        self.description = description


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

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        clients: Iterable[OAuthClient] = (),
        token_lifetime: int = 3600,
    ) -> None:
        self.keys: list[SigningKey] = [SigningKey()]
        self.clients: dict[str, OAuthClient] = {client.client_id: client for client in clients}
        self.token_lifetime = token_lifetime
        self.tokens_issued = 0
        self.jwks_override: Callable[[], tuple[int, bytes]] | None = None
        self.requests: list[str] = []
        self.routes: dict[
            tuple[str, str], Callable[[BaseHTTPRequestHandler, bytes], tuple[int, dict[str, str], bytes]]
        ] = {}
        self.opaque_tokens: dict[str, dict[str, Any]] = {}
        self.introspection_clients: dict[str, str] = {}
        #: How each introspection request authenticated: "client_secret_basic" or "client_secret_post".
        self.introspection_auth: list[str] = []
        #: Replaces the introspection answer, e.g. ``lambda: (500, b"oops")`` or a slow one.
        self.introspection_override: Callable[[], tuple[int, bytes]] | None = None
        self.routes[("POST", "/introspect")] = self._introspect
        self._server = LoopbackServer(host, port, self._handler_class(), name="local-idp", poll_interval=0.02)

    @property
    def issuer(self) -> str:
        return self._server.url

    @property
    def jwks_uri(self) -> str:
        return f"{self.issuer}/jwks.json"

    @property
    def token_endpoint(self) -> str:
        return f"{self.issuer}/oauth2/token"

    def start(self) -> LocalIdentityProvider:
        self._server.start()
        return self

    def stop(self) -> None:
        self._server.stop()

    def __enter__(self) -> LocalIdentityProvider:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def rotate(self, *, keep_old: bool = True) -> SigningKey:
        """Publish a new signing key (first in the set); keep the old one unless told not to."""
        new = SigningKey()
        # One assignment, so a concurrent JWKS request sees the old or the new list, never half.
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
        return self.sign({k: v for k, v in payload.items() if v is not None},
                         key=key, headers={"typ": "at+jwt", **(headers or {})})

    def sign(self, payload: dict[str, Any], *, key: SigningKey | None = None,
             headers: dict[str, Any] | None = None) -> str:
        """RS256-sign ``payload`` with ``key`` (default: the newest key), ``kid`` in the header."""
        signing = key or self.keys[0]
        return jwt.encode(payload, signing.private_key, algorithm="RS256",
                          headers={"kid": signing.kid, **(headers or {})})

    def issue(self, client: OAuthClient, scopes: Iterable[str], *, token: str | None = None) -> str:
        """A token for ``client`` granting those of ``scopes`` it may have, in the client's shape.

        ``token`` (default: the client's own ``token``) is ``access`` or ``id``.

        Raises:
            ConfigurationError: an ID token asked of a shape that has none.
        """
        payload, header = token_claims(client, self.issuer, list(scopes), now=int(time.time()),
                                       lifetime=self.token_lifetime, token=token)
        self.tokens_issued += 1
        return self.sign(payload, headers=header)

    def issuer_at(self, prefix: str) -> str | None:
        """The issuer whose discovery document lives under ``prefix`` (``None``: none does).

        The provider's own issuer at the root; Auth0-shaped clients' at ``/auth0/``; Entra-shaped
        clients' at ``/{tenant}/v2.0`` and ``/{tenant}/`` (v1). ``common``/``organizations`` answer
        with Entra's multi-tenant template issuer, the literal ``{tenantid}`` in it.
        """
        if prefix == "":
            return self.issuer
        if prefix == "/auth0":
            return f"{self.issuer}/auth0/"
        match = _TENANT_PREFIX.fullmatch(prefix)
        if match is None:
            return None
        tenant = "{tenantid}" if match.group(1) in ("common", "organizations") else match.group(1)
        return f"{self.issuer}/{tenant}/v2.0" if match.group(2) else f"{self.issuer}/{tenant}/"

    def token_response(self, authorization: str | None, content_type: str | None, body: bytes) -> dict[str, Any]:
        """Answer a token request (RFC 6749 §4.4 client credentials).

        Raises:
            TokenEndpointError: with the RFC 6749 §5.2 error and status to answer.
        """
        if (content_type or "").split(";")[0].strip().lower() != "application/x-www-form-urlencoded":
            raise TokenEndpointError(400, "invalid_request", "use Content-Type application/x-www-form-urlencoded")
        try:
            form = parse_qs(body.decode("ascii"), keep_blank_values=True, strict_parsing=False)
        except UnicodeDecodeError:
            raise TokenEndpointError(400, "invalid_request", "the body is not URL-encoded ASCII") from None
        if any(len(values) > 1 for values in form.values()):
            raise TokenEndpointError(400, "invalid_request", "a parameter is repeated")
        params = {name: values[0] for name, values in form.items()}
        client = self._authenticate(authorization, params)
        grant_type = params.get("grant_type")
        if not grant_type:
            raise TokenEndpointError(400, "invalid_request", "grant_type is missing")
        if grant_type != "client_credentials":
            raise TokenEndpointError(400, "unsupported_grant_type", "only client_credentials is supported")
        requested = [s for s in params.get("scope", "").split(" ") if s]
        # Cognito grants every allowed scope when none is asked for; so do we.
        scopes = requested or list(client.scopes)
        unknown = [s for s in scopes if s not in client.scopes]
        if unknown:
            raise TokenEndpointError(400, "invalid_scope", f"not allowed for this client: {' '.join(unknown)}")
        token = self.issue(client, scopes)
        return {"access_token": token, "token_type": "Bearer", "expires_in": self.token_lifetime,
                "scope": " ".join(s for s in client.scopes if s in scopes)}

    def _authenticate(self, authorization: str | None, params: dict[str, str]) -> OAuthClient:
        in_body = "client_secret" in params
        if authorization is not None:
            if in_body:
                raise TokenEndpointError(400, "invalid_request", "use one client authentication method, not two")
            scheme, _, encoded = authorization.partition(" ")
            if scheme.lower() != "basic":
                raise TokenEndpointError(401, "invalid_client", "use HTTP Basic client authentication")
            try:
                client_id, sep, secret = base64.b64decode(encoded.strip(), validate=True).decode("utf-8").partition(":")
            except (binascii.Error, UnicodeDecodeError):
                raise TokenEndpointError(401, "invalid_client", "malformed Basic credentials") from None
            if not sep:
                raise TokenEndpointError(401, "invalid_client", "malformed Basic credentials")
            # RFC 6749 §2.3.1: both parts are form-urlencoded before Base64.
            client_id, secret = unquote_plus(client_id), unquote_plus(secret)
        elif in_body:
            client_id, secret = params.get("client_id", ""), params["client_secret"]
        else:
            raise TokenEndpointError(401, "invalid_client", "client authentication is required")
        client = self.clients.get(client_id)
        expected = client.client_secret if client is not None else "x" * len(secret)
        if not secrets.compare_digest(expected.encode(), secret.encode()) or client is None:
            raise TokenEndpointError(401, "invalid_client", "unknown client or wrong secret")
        return client

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        idp = self

        class Handler(QuietHandler):
            def _send(self, status: int, body: bytes, headers: dict[str, str] | None = None) -> None:
                self.send_body(status, body, {"Content-Type": "application/json", **(headers or {})})

            def _dispatch(self, method: str) -> None:
                path = self.path.split("?", 1)[0]
                idp.requests.append(f"{method} {path}")
                body = self.read_body()
                route = idp.routes.get((method, path))
                if route is not None:
                    status, headers, payload = route(self, body)
                    self._send(status, payload, headers)
                elif method == "POST" and path == "/oauth2/token":
                    self._token(body)
                elif method == "POST" and path == "/admin/rotate":
                    if not is_loopback_host(self.client_address[0]):
                        self._send(403, b'{"error":"forbidden"}')
                        return
                    retire = parse_qs(urlsplit(self.path).query).get("retire", ["0"])[0] in ("1", "true", "yes")
                    new = idp.rotate(keep_old=not retire)
                    self._send(200, json.dumps({"kid": new.kid, "kids": [k.kid for k in idp.keys]}).encode())
                elif method == "GET" and path.endswith(_DISCOVERY) and \
                        (issuer := idp.issuer_at(path[:-len(_DISCOVERY)])) is not None:
                    doc = {"issuer": issuer, "jwks_uri": idp.jwks_uri,
                           "token_endpoint": idp.token_endpoint,
                           "grant_types_supported": ["client_credentials"],
                           "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
                           "scopes_supported": sorted({s for c in idp.clients.values() for s in c.scopes}),
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

            def _token(self, body: bytes) -> None:
                no_store = {"Cache-Control": "no-store", "Pragma": "no-cache"}
                try:
                    answer = idp.token_response(self.headers.get("Authorization"),
                                                self.headers.get("Content-Type"), body)
                except TokenEndpointError as exc:
                    headers = dict(no_store)
                    if exc.status == 401:
                        headers["WWW-Authenticate"] = 'Basic realm="policy-engine-local"'
                    error = {"error": exc.error, "error_description": exc.description}
                    self._send(exc.status, json.dumps(error).encode(), headers)
                    return
                self._send(200, json.dumps(answer).encode(), no_store)

            def do_GET(self) -> None:
                self._dispatch("GET")

            def do_POST(self) -> None:
                self._dispatch("POST")

        return Handler
