"""Issuer keys over HTTP: OIDC discovery, JWKS fetch, and the cache rules around them.

Cache rules, per issuer and per container:

* A fetched key set is used for ``JWKS_CACHE_TTL`` seconds, then refreshed.
* If a refresh fails, the last good keys keep verifying for up to ``JWKS_MAX_STALE``
  more seconds (an IdP hiccup must not become an outage), and the failure is logged.
  Past that, verification fails closed.
* A ``kid`` that is not in the set triggers one refresh, at most once per
  ``JWKS_REFETCH_INTERVAL``, so forged kids cannot make us hammer the IdP.
* A new set replaces the old one only when it was fetched and parsed successfully.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Collection
from typing import Any

from policy_engine.adapters.http import FetchError, request_json
from policy_engine.core.tokens import VerificationKey, load_jwks
from policy_engine.core.urls import check_trusted_url
from policy_engine.errors import KeySourceError, UnknownKeyError
from policy_engine.logs import log

__all__ = ["JwksKeySource"]

FetchJson = Callable[[str, float], Any]


def _default_fetch(url: str, timeout: float) -> Any:
    return request_json(url, timeout=timeout)


class _IssuerKeys:
    __slots__ = ("fetched_at", "fresh_until", "issuer", "jwks_uri", "keys", "last_attempt")

    def __init__(self, issuer: str, jwks_uri: str | None) -> None:
        self.issuer = issuer
        self.jwks_uri = jwks_uri
        self.keys: dict[str, VerificationKey] | None = None
        self.fetched_at = float("-inf")
        self.fresh_until = float("-inf")  # fetched_at + JWKS_CACHE_TTL: the warm path's one check
        self.last_attempt = float("-inf")


class JwksKeySource:
    """``KeySource`` for one or more issuers, each with its JWKS URI or discovery."""

    def __init__(
        self,
        issuers: Collection[str],
        *,
        algorithms: Collection[str],
        jwks_uris: Collection[str] = (),
        timeout: float = 3.0,
        cache_ttl: float = 3600.0,
        refetch_interval: float = 30.0,
        max_stale: float = 21600.0,
        clock: Callable[[], float] = time.monotonic,
        fetch_json: FetchJson = _default_fetch,
    ) -> None:
        uris = list(jwks_uris) or [None] * len(issuers)
        self._issuers = {issuer: _IssuerKeys(issuer, uri) for issuer, uri in zip(issuers, uris)}
        self._algorithms = frozenset(algorithms)
        self._timeout = timeout
        self._ttl = cache_ttl
        self._refetch_interval = refetch_interval
        self._max_stale = max_stale
        self._clock = clock
        self._fetch_json = fetch_json

    def prefetch(self) -> None:
        """Load every issuer's keys now (at container start); failures are logged, not raised."""
        for state in self._issuers.values():
            try:
                self._refresh(state, self._clock())
            except KeySourceError as exc:
                log("WARN", "jwks_prefetch_failed", issuer=state.issuer, error=str(exc))

    def get_key(self, issuer: str, kid: str) -> VerificationKey:
        """The key ``issuer`` published under ``kid``.

        Raises:
            UnknownKeyError: the issuer's current key set has no such kid.
            KeySourceError: the issuer is not configured, or its keys cannot be had.
        """
        state = self._issuers.get(issuer)
        if state is None:
            raise KeySourceError("issuer is not configured")
        now = self._clock()
        if now <= state.fresh_until:
            key = state.keys.get(kid)  # type: ignore[union-attr]  # fresh_until is finite only with keys
            if key is not None:
                return key
        if state.keys is None:
            if now - state.last_attempt < self._refetch_interval:
                raise KeySourceError("JWKS unavailable (retrying after JWKS_REFETCH_INTERVAL)")
            self._refresh(state, now)
        elif now - state.fetched_at > self._ttl and now - state.last_attempt >= self._refetch_interval:
            try:
                self._refresh(state, now)
            except KeySourceError as exc:
                log("ERROR", "jwks_refresh_failed", issuer=issuer, error=str(exc),
                    stale_seconds=round(now - state.fetched_at))
        assert state.keys is not None
        if now - state.fetched_at > self._ttl + self._max_stale:
            raise KeySourceError("JWKS is older than JWKS_MAX_STALE and cannot be refreshed")
        key = state.keys.get(kid)
        if key is None:
            if now - state.last_attempt < self._refetch_interval:
                raise UnknownKeyError("token kid is not in the issuer's key set")
            self._refresh(state, now)
            key = state.keys.get(kid)
            if key is None:
                raise UnknownKeyError("token kid is not in the issuer's key set")
        return key

    def _refresh(self, state: _IssuerKeys, now: float) -> None:
        state.last_attempt = now
        try:
            uri = state.jwks_uri or self._discover(state.issuer)
            document = self._fetch_json(uri, self._timeout)
            keys, skipped = load_jwks(document, self._algorithms)
        except FetchError as exc:
            raise KeySourceError(f"JWKS fetch failed: {exc}") from exc
        except ValueError as exc:
            raise KeySourceError(f"JWKS is not usable: {exc}") from exc
        if not keys:
            raise KeySourceError("JWKS has no usable signing keys")
        if skipped:
            log("WARN", "jwks_keys_skipped", issuer=state.issuer, skipped=skipped)
        state.jwks_uri = uri
        state.keys = keys
        state.fetched_at = now
        state.fresh_until = now + self._ttl

    def _discover(self, issuer: str) -> str:
        url = issuer.rstrip("/") + "/.well-known/openid-configuration"
        document = self._fetch_json(url, self._timeout)
        if not isinstance(document, dict) or document.get("issuer") != issuer:
            # RFC 8414 §3.3: metadata for another issuer must not be used.
            raise ValueError("discovery document names another issuer")
        jwks_uri = document.get("jwks_uri")
        if not isinstance(jwks_uri, str) or check_trusted_url(jwks_uri):
            raise ValueError("discovery document has no trusted jwks_uri")
        return jwks_uri
