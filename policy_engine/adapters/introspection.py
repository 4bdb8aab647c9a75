"""RFC 7662 token introspection over HTTP, with the cache rules around it.

Cache rules, per container, keyed by the SHA-256 of the token (the token itself is
never stored, logged or put in an error message):

* An active answer is reused for at most ``cache_ttl`` seconds and never past the
  token's ``exp``: a revoked token stays usable here no longer than that.
* An ``active: false`` answer is reused for ``negative_ttl`` seconds, so a client
  retrying a dead token does not hammer the authorization server.
* A failure (timeout, non-200, a body that is not an introspection answer) is never
  cached and never read as "inactive": it raises ``IntrospectionError`` and the
  request fails closed.
* The cache holds at most ``max_entries`` answers and ``max_bytes`` of them (as JSON):
  an authorization server sending large answers for many tokens cannot grow the
  container's memory past that. Expired entries go first, then the oldest.
* One exchange ends within ``timeout`` (``INTROSPECTION_TIMEOUT``) and within the time the
  invocation has left (``budget.InvocationBudget``).

Entries expire on the monotonic clock (``core.lastgood``'s convention), so a wall-clock
step cannot stretch them; the wall clock is read once per answer, to turn the token's
``exp`` into a bound on that clock.
"""

from __future__ import annotations

import base64
import hashlib
import json
import math
import time
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import quote_plus, urlencode

from policy_engine.adapters.http import FetchError, KeepAliveClient
from policy_engine.budget import InvocationBudget
from policy_engine.core.lastgood import Clock
from policy_engine.errors import InactiveTokenError, IntrospectionError

__all__ = ["IntrospectionClient"]

#: Sends the form body with the headers, within the deadline in seconds; returns the JSON answer.
PostForm = Callable[[bytes, dict[str, str], float], Any]

_MAX_ENTRIES = 10_000
_MAX_ANSWER = 64 * 1024
#: Bytes of answers (as JSON) the cache holds: 10,000 answers of 1.6 KB, or 512 of the
#: largest accepted; about twice that in memory.
_MAX_CACHED_BYTES = 16 * 1024 * 1024
# What an entry costs besides its answer (key, times, the dict): counted so that a flood of
# inactive tokens is bounded by bytes too.
_ENTRY_BYTES = 200


class IntrospectionClient:
    """Asks an authorization server whether a token is active, and caches the answer."""

    def __init__(
        self,
        url: str,
        *,
        client_id: str,
        client_secret: str,
        auth_method: str,
        timeout: float,
        cache_ttl: float,
        negative_ttl: float,
        max_entries: int = _MAX_ENTRIES,
        max_bytes: int = _MAX_CACHED_BYTES,
        clock: Clock = time.monotonic,
        wall_clock: Clock = time.time,
        post_form: PostForm | None = None,
        budget: InvocationBudget | None = None,
    ) -> None:
        self.url = url
        self._client_id = client_id
        self._client_secret = client_secret
        self._auth_method = auth_method
        self._ttl = cache_ttl
        self._negative_ttl = negative_ttl
        self._max_entries = max_entries
        self._max_bytes = max_bytes
        self._cached_bytes = 0
        self._clock = clock
        self._wall_clock = wall_clock  # only to compare with exp, a wall-clock time (RFC 7662 §2.2)
        if post_form is None:
            # One kept-alive connection per container: a cache miss pays a round trip,
            # not a TCP and TLS handshake as well.
            client = KeepAliveClient(url, timeout=timeout, max_bytes=_MAX_ANSWER)
            post_form = lambda body, headers, timeout: client.request(  # noqa: E731
                "POST", body=body, headers=headers, timeout=timeout)
        self._post_form = post_form
        self._timeout = timeout
        # The authorizer's: an introspection also ends with the invocation it serves.
        self._budget = InvocationBudget() if budget is None else budget
        # key -> (expires, answer or None for inactive, bytes counted for it)
        self._cache: dict[str, tuple[float, dict[str, Any] | None, int]] = {}

    def introspect(self, token: str) -> dict[str, Any]:
        """The active answer's members for ``token`` (``active`` included).

        Raises:
            InactiveTokenError: the server says the token is not active (401).
            IntrospectionError: no usable answer (unreachable, timeout, non-200, malformed).
        """
        key = hashlib.sha256(token.encode("utf-8")).hexdigest()
        now = self._clock()
        hit = self._cache.get(key)
        if hit is not None:
            expires, answer, _ = hit
            if now < expires:
                if answer is None:
                    raise InactiveTokenError("token is not active (cached answer)")
                return answer
            self._forget(key)
        answer = self._ask(token)
        if answer["active"] is not True:
            self._store(key, now + self._negative_ttl, None)
            raise InactiveTokenError("token is not active")
        lifetime = self._ttl
        exp = answer.get("exp")
        if exp.__class__ is int or (exp.__class__ is float and math.isfinite(exp)):
            # An int past a float's range is no time to cache by (the claim check judges it).
            left = exp - self._wall_clock() if -(2**53) < exp < 2**53 else lifetime
            lifetime = min(lifetime, left)
        expires = now + lifetime
        self._store(key, expires, answer)
        return answer

    def _ask(self, token: str) -> dict[str, Any]:
        form = {"token": token, "token_type_hint": "access_token"}
        headers = {"Content-Type": "application/x-www-form-urlencoded"}
        if self._auth_method == "client_secret_post":
            form["client_id"] = self._client_id
            form["client_secret"] = self._client_secret
        else:
            # RFC 6749 §2.3.1: id and secret are form-encoded (Appendix B: a space is "+")
            # before the Basic encoding.
            pair = f"{quote_plus(self._client_id, safe='')}:{quote_plus(self._client_secret, safe='')}"
            headers["Authorization"] = "Basic " + base64.b64encode(pair.encode("utf-8")).decode("ascii")
        timeout = self._budget.limit(self._timeout)
        if timeout <= 0:
            raise IntrospectionError("no time is left in the invocation for introspection")
        try:
            answer = self._post_form(urlencode(form).encode("ascii"), headers, timeout)
        except FetchError as exc:
            raise IntrospectionError(f"introspection failed: {exc}") from exc
        if not isinstance(answer, Mapping) or not isinstance(answer.get("active"), bool):
            # RFC 7662 §2.2: "active" is a required boolean; "true" or 1 is a broken server.
            raise IntrospectionError("introspection answer has no boolean 'active'")
        return dict(answer)

    def _store(self, key: str, expires: float, answer: dict[str, Any] | None) -> None:
        if expires <= self._clock():
            return
        size = _ENTRY_BYTES + (0 if answer is None else len(json.dumps(answer, separators=(",", ":"))))
        if size > self._max_bytes:
            return
        self._forget(key)
        if len(self._cache) >= self._max_entries or self._cached_bytes + size > self._max_bytes:
            now = self._clock()
            for stale in [k for k, (until, _, _) in self._cache.items() if until <= now]:
                self._forget(stale)
            while len(self._cache) >= self._max_entries or self._cached_bytes + size > self._max_bytes:
                self._forget(next(iter(self._cache)))
        self._cache[key] = (expires, answer, size)
        self._cached_bytes += size

    def _forget(self, key: str) -> None:
        entry = self._cache.pop(key, None)
        if entry is not None:
            self._cached_bytes -= entry[2]
