"""The ``demo`` walk-through: real HTTP requests against a running ``serve``, each with
the answer it must get. Plain ``urllib``, like any client would use.
"""

from __future__ import annotations

import base64
import json
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TextIO

__all__ = ["Reply", "Walkthrough", "http_request"]


@dataclass(frozen=True, slots=True)
class Reply:
    status: int
    body: bytes
    headers: dict[str, str]

    def json(self) -> Any:
        try:
            return json.loads(self.body or b"null")
        except ValueError:
            return None


def http_request(method: str, url: str, *, headers: dict[str, str] | None = None, body: bytes | None = None,
                 timeout: float = 10.0) -> Reply:
    """One HTTP request; any status comes back as a ``Reply`` (only network errors raise ``OSError``)."""
    request = urllib.request.Request(url, data=body, headers=headers or {}, method=method)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as answer:
            return Reply(answer.status, answer.read(), dict(answer.headers.items()))
    except urllib.error.HTTPError as exc:
        return Reply(exc.code, exc.read(), dict(exc.headers.items()))


def token_request(token_endpoint: str, client_id: str, secret: str, scope: str | None) -> Reply:
    """A client-credentials request with HTTP Basic client authentication."""
    basic = base64.b64encode(f"{urllib.parse.quote_plus(client_id)}:{urllib.parse.quote_plus(secret)}".encode())
    form = {"grant_type": "client_credentials", **({"scope": scope} if scope else {})}
    return http_request("POST", token_endpoint, body=urllib.parse.urlencode(form).encode(), headers={
        "Authorization": f"Basic {basic.decode()}", "Content-Type": "application/x-www-form-urlencoded"})


class Walkthrough:
    """Runs the steps, printing each request and answer; ``failures`` counts surprises."""

    def __init__(self, gateway_url: str, info: dict[str, Any], out: TextIO, *, stage: str = "dev") -> None:
        self.api = f"{gateway_url}/{stage}"
        self.gateway_url = gateway_url
        self.token_endpoint = str(info["token_endpoint"])
        self.rotate_endpoint = str(info["rotate_endpoint"])
        self.out = out
        self.cached = float(info.get("cache_ttl", 300)) > 0
        self.failures = 0
        self.step = 0

    def say(self, text: str) -> None:
        print(text, file=self.out, flush=True)

    def check(self, title: str, expected: int, shown: str, reply: Reply,
              also: Callable[[Reply], str | None] | None = None) -> Reply:
        self.step += 1
        problem = None if reply.status == expected else f"expected {expected}"
        if problem is None and also is not None:
            problem = also(reply)
        self.failures += problem is not None
        body = reply.body.decode("utf-8", "replace")
        payload = reply.json()
        if isinstance(payload, dict) and isinstance(payload.get("access_token"), str):
            token = payload["access_token"]
            body = json.dumps({**payload, "access_token": f"{token[:16]}...({len(token)} characters)"})
        if len(body) > 200:
            body = body[:200] + "..."
        self.say(f"\n{self.step}. {title}\n   > {shown}\n   < {reply.status} {body}")
        self.say(f"   {'ok' if problem is None else 'UNEXPECTED: ' + problem}")
        return reply

    def token(self, title: str, client: str, secret: str, scope: str | None, expected: int = 200) -> str:
        shown = f"POST {self.token_endpoint}  (Basic {client}:***, grant_type=client_credentials" + (
            f", scope={scope})" if scope else ")")
        reply = self.check(title, expected, shown, token_request(self.token_endpoint, client, secret, scope))
        payload = reply.json()
        token = payload.get("access_token", "") if isinstance(payload, dict) else ""
        if token:
            self.say(f"   token claims: {json.dumps(_claims(token), separators=(',', ':'))}")
        return str(token)

    def call(self, title: str, method: str, path: str, token: str | None, expected: int,
             also: Callable[[Reply], str | None] | None = None, body: bytes | None = None) -> Reply:
        headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
        if body is not None:
            headers["Content-Type"] = "application/json"
        url = f"{self.api}{path}"
        auth = f"  (Authorization: Bearer {token[:12]}...)" if token else "  (no Authorization header)"
        return self.check(title, expected, f"{method} {url}{auth}",
                          http_request(method, url, headers=headers, body=body), also)

    def stats(self) -> dict[str, Any]:
        payload = http_request("GET", f"{self.gateway_url}/_local/stats").json()
        return payload if isinstance(payload, dict) else {}

    def run(self) -> bool:
        """The whole story; True when every answer was the expected one."""
        reader = self.token("A machine client gets a token for pets:read (client credentials)",
                            "pets-reader", "reader-secret", "pets:read")
        before = self.stats().get("authorizer_calls", 0)
        self.call("A route its scopes grant: 200, and the pets backend echoes the authorizer context",
                  "GET", "/pets/1", reader, 200,
                  also=lambda r: None if (r.json() or {}).get("authorizer", {}).get("principalId") == "pets-reader"
                  else "no authorizer context in the answer")
        expected_calls = before + (1 if self.cached else 2)
        self.call("Another granted route with the same token: " + (
                  "served from the authorizer cache" if self.cached else "cache off, the authorizer runs again"),
                  "GET", "/pets", reader, 200,
                  also=lambda r: None if self.stats().get("authorizer_calls", 0) == expected_calls
                  else f"the authorizer ran {self.stats().get('authorizer_calls', 0) - before} times, "
                       f"expected {expected_calls - before}")
        self.call("A route outside the token's scopes: 403 (implicit deny)", "POST", "/pets", reader, 403,
                  body=b'{"type":"parrot"}', also=_message("User is not authorized to access this resource"))
        self.call("No token: 401, the authorizer is not called", "GET", "/pets", None, 401,
                  also=_message("Unauthorized", key="message"))
        self.call("A token that is not a JWT: the authorizer refuses it, 401", "GET", "/pets", "not-a-jwt", 401)
        self.call("A route the API does not have: 403 Missing Authentication Token", "GET", "/nothing/here",
                  reader, 403, also=_message("Missing Authentication Token", key="message"))
        self.token("A scope the client is not allowed: the token endpoint refuses (invalid_scope)",
                   "pets-reader", "reader-secret", "pets:admin", expected=400)
        self.token("A wrong client secret: invalid_client", "pets-reader", "wrong", "pets:read", expected=401)
        bot = self.token("A client whose scopes no mapping grants", "metrics-bot", "metrics-secret", None)
        self.call("Its token gets an explicit Deny for the whole stage: 403", "GET", "/pets", bot, 403,
                  also=_message("User is not authorized to access this resource with an explicit deny"))
        admin = self.token("An Okta-style client (aud, scp) asks for pets:admin", "pets-admin", "admin-secret",
                           "pets:admin")
        self.call("It may delete a pet: 200", "DELETE", "/pets/3", admin, 200)
        sitter = self.token("A Cognito user in group pet-sitters, of tenant acme (cognito:groups, "
                            "custom:tenant_id; no scopes)", "sitter-jane", "jane-secret", None)
        self.call("A route granted to the group ({group: pet-sitters}): 200", "GET", "/pets/1", sitter, 200)
        self.call("A route the group is not granted: 403", "PUT", "/pets/1", sitter, 403,
                  body=b'{"price":1}', also=_message("User is not authorized to access this resource"))
        self.call("Its own tenant's path (/tenants/{claim:custom:tenant_id}/pets): 200", "GET",
                  "/tenants/acme/pets", sitter, 200,
                  also=lambda r: None if (r.json() or {}).get("path") == "/tenants/acme/pets"
                  else "the backend did not answer for /tenants/acme/pets")
        self.call("Another tenant's path: 403 (the policy names acme only)", "GET", "/tenants/globex/pets",
                  sitter, 403, also=_message("User is not authorized to access this resource"))
        rotated = http_request("POST", self.rotate_endpoint)
        self.check("The identity provider rotates its signing key", 200, f"POST {self.rotate_endpoint}", rotated)
        time.sleep(1.1)  # serve lets the authorizer refetch keys for an unknown kid once a second
        fresh = self.token("A token signed with the new key", "pets-reader", "reader-secret", "pets:read")
        self.call("It is accepted (the authorizer fetched the new JWKS): 200", "GET", "/pets", fresh, 200)
        self.call("The token signed before the rotation still works: 200", "GET", "/pets/2", reader, 200)
        self.say("\n" + ("every answer as expected" if not self.failures
                         else f"{self.failures} unexpected answer(s)"))
        return self.failures == 0


def _claims(token: str) -> Any:
    # Display only: the authorizer verifies; this just shows the shape of the token.
    try:
        segment = token.split(".")[1]
        return json.loads(base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4)))
    except (IndexError, ValueError):
        return None


def _message(text: str, key: str = "Message") -> Callable[[Reply], str | None]:
    def check(reply: Reply) -> str | None:
        body = reply.json()
        return None if isinstance(body, dict) and body.get(key) == text else f"body should be {{{key!r}: {text!r}}}"

    return check
