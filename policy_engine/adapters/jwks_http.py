"""Issuer keys over HTTP: OIDC discovery, JWKS fetch, and the cache rules around them.

Cache rules, per issuer and per container:

* A fetched key set is used for ``JWKS_CACHE_TTL`` seconds, then refreshed on the next
  request. This refresh is not held back by ``JWKS_REFETCH_INTERVAL``, so a key the
  issuer removed stops verifying within ``JWKS_CACHE_TTL``.
* A successful answer (200 and a JSON object with a ``keys`` list) is the issuer's
  word: it replaces the key set. If none of its keys is usable (``{"keys": []}``, or
  only keys that are skipped), no token of that issuer verifies until it publishes
  one, and an ERROR line (``jwks_no_usable_keys``) says so.
* Only a failed fetch (network, deadline, non-200, a body that is not a JWKS document,
  a bad discovery document) keeps the last good keys: they verify for up to
  ``JWKS_MAX_STALE`` more seconds (an IdP hiccup must not become an outage), and the
  failure is logged. Past that, verification fails closed. After a failure the
  endpoint is asked again at most once per min(``JWKS_CACHE_TTL``,
  ``JWKS_REFETCH_INTERVAL``), not on every request.
* A ``kid`` that is not in the set triggers one refresh, at most once per
  ``JWKS_REFETCH_INTERVAL`` counting only refreshes that unknown kids caused, so forged
  kids cannot make us hammer the IdP, while a key rotated in just after the container
  fetched its keys (at start, or at a ``JWKS_CACHE_TTL`` refresh) is found by the first
  token signed with it. It waits, like every request, while a failed fetch waits out
  its retry delay, and it is not made when the set was fetched for this very request.
* One refresh (discovery, when used, and the JWKS request together) must finish within
  ``JWKS_TIMEOUT``, a deadline for the whole exchange, and within the time the invocation
  has left (``budget.InvocationBudget``); at container start all issuers together get
  ``PREFETCH_BUDGET``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Collection
from typing import Any

from policy_engine.adapters.http import FetchError, request_json
from policy_engine.budget import InvocationBudget
from policy_engine.core.lastgood import Backoff, Clock, LastGood
from policy_engine.core.tokens import VerificationKey, load_jwks
from policy_engine.core.urls import check_trusted_url
from policy_engine.errors import KeySourceError, UnknownKeyError
from policy_engine.logs import log
from policy_engine.metrics import JWKS_FAILURES

__all__ = ["PREFETCH_BUDGET", "JwksKeySource"]

#: Seconds the key prefetch at container start may take, all issuers together (each
#: request gets min(JWKS_TIMEOUT, time left)). Lambda's init phase is limited to 10 s
#: (https://docs.aws.amazon.com/lambda/latest/dg/lambda-runtime-environment.html,
#: "Init phase"); this budget, the mapping store's own first-load budget and the
#: imports must fit in it with margin. Issuers not loaded in time load on first use.
PREFETCH_BUDGET = 3.0

FetchJson = Callable[[str, float], Any]

_JWKS_FAILURE = {JWKS_FAILURES: 1}


def _default_fetch(url: str, timeout: float) -> Any:
    return request_json(url, timeout=timeout)


class _IssuerKeys:
    __slots__ = ("backoff", "fresh_until", "good", "issuer", "jwks_uri", "kid_refresh_at")

    def __init__(self, issuer: str, jwks_uri: str | None, good: LastGood[dict[str, VerificationKey]],
                 backoff: Backoff) -> None:
        self.issuer = issuer
        self.jwks_uri = jwks_uri
        # The last key set the issuer published, usable JWKS_CACHE_TTL + JWKS_MAX_STALE after it.
        self.good = good
        self.fresh_until = float("-inf")  # good.confirmed_at + JWKS_CACHE_TTL: the fast path's one check
        # After a failed refresh: the next try waits min(JWKS_CACHE_TTL, JWKS_REFETCH_INTERVAL).
        self.backoff = backoff
        # The last refresh an unknown kid caused: the next waits JWKS_REFETCH_INTERVAL after it.
        self.kid_refresh_at = float("-inf")


class JwksKeySource:
    """``KeySource`` for one or more issuers, each with its JWKS URI or discovery.

    ``timeout``, ``cache_ttl``, ``refetch_interval`` and ``max_stale`` are
    ``JWKS_TIMEOUT``, ``JWKS_CACHE_TTL``, ``JWKS_REFETCH_INTERVAL`` and ``JWKS_MAX_STALE``:
    required here, so their defaults live only in ``Settings``. ``budget`` is the
    authorizer's: a refresh for a request also ends with the invocation.
    """

    def __init__(
        self,
        issuers: Collection[str],
        *,
        algorithms: Collection[str],
        jwks_uris: Collection[str | None] = (),
        timeout: float,
        cache_ttl: float,
        refetch_interval: float,
        max_stale: float,
        clock: Clock = time.monotonic,
        fetch_json: FetchJson = _default_fetch,
        budget: InvocationBudget | None = None,
    ) -> None:
        # One URI (or None: discovery) per issuer; zip(strict=True) keeps that true for direct callers.
        uris: list[str | None] = [*jwks_uris] or [None] * len(issuers)
        # After a failed refresh, the wait before the next try (a fixed interval): a failing
        # endpoint is not asked on every request, and a short TTL is not stretched to the interval.
        retry = min(cache_ttl, refetch_interval)
        self._issuers = {
            issuer: _IssuerKeys(issuer, uri, LastGood(cache_ttl + max_stale), Backoff(retry, retry))
            for issuer, uri in zip(issuers, uris, strict=True)
        }
        self._algorithms = frozenset(algorithms)
        self._timeout = timeout
        self._ttl = cache_ttl
        self._refetch_interval = refetch_interval
        self._clock = clock
        self._fetch_json = fetch_json
        self._budget = InvocationBudget() if budget is None else budget

    def prefetch(self, budget: float = PREFETCH_BUDGET) -> None:
        """Load every issuer's keys now (at container start), within ``budget`` seconds in all.

        Failures are logged, not raised. An issuer whose keys are not loaded by then is
        fetched on its first request, without waiting out a retry interval.
        """
        until = time.monotonic() + budget
        for state in self._issuers.values():
            if time.monotonic() >= until:
                log("WARN", "jwks_prefetch_skipped", issuer=state.issuer, error="the prefetch budget is spent")
                continue
            try:
                self._refresh(state, self._clock(), until)
            except KeySourceError:  # logged (jwks_prefetch_failed) by _refresh
                state.backoff.clear()

    def refresh_age(self) -> float | None:
        """Seconds since the oldest of the issuers' last successful JWKS fetches, counting
        only issuers fetched at least once (``None``: none yet)."""
        confirmed = [state.good.confirmed_at for state in self._issuers.values() if state.good.value is not None]
        return self._clock() - min(confirmed) if confirmed else None

    def get_key(self, issuer: str, kid: str) -> VerificationKey:
        """The key ``issuer`` published under ``kid``.

        Raises:
            UnknownKeyError: the issuer's current key set has no such kid.
            KeySourceError: the issuer is not configured, or its keys cannot be had (none
                loaded, too stale, or the issuer publishes no usable key).
        """
        state = self._issuers.get(issuer)
        if state is None:
            raise KeySourceError("issuer is not configured")
        now = self._clock()
        good = state.good
        refreshed = False
        if now <= state.fresh_until:
            key = good.value.get(kid)  # type: ignore[union-attr]  # fresh_until is finite only with keys
            if key is not None:
                return key
        elif state.backoff.ready(now):
            # Past the TTL (or never loaded), and no failure waiting out its delay: ask the issuer.
            try:
                refreshed = True
                self._refresh(state, now)
            except KeySourceError:  # a failed fetch is logged by _refresh
                if good.value is None:
                    raise
        keys = good.value
        if keys is None:
            raise KeySourceError("JWKS unavailable (retrying after min(JWKS_CACHE_TTL, JWKS_REFETCH_INTERVAL))")
        if not good.within(now):
            raise KeySourceError("JWKS is older than JWKS_MAX_STALE and cannot be refreshed")
        key = keys.get(kid)
        if (key is None and not refreshed and now - state.kid_refresh_at >= self._refetch_interval
                and state.backoff.ready(now)):
            # Counted once made: a refresh the invocation had no time for was not made (a
            # failed one waits out the back-off, which _refresh starts).
            self._refresh(state, now)
            state.kid_refresh_at = now
            keys = good.value
            assert keys is not None
            key = keys.get(kid)
        if key is None:
            if not keys:
                raise KeySourceError("the issuer's JWKS has no usable signing keys")
            raise UnknownKeyError("token kid is not in the issuer's key set")
        return key

    def _refresh(self, state: _IssuerKeys, now: float, until: float | None = None) -> None:
        prefetch = until is not None
        if until is None:
            # Discovery and JWKS share one JWKS_TIMEOUT: a request never waits for two, nor
            # past the invocation's own end.
            seconds = self._budget.limit(self._timeout)
            if seconds <= 0:
                # Not a fetch, so not a JWKS failure: the invocation is ending.
                raise KeySourceError("no time is left in the invocation for a JWKS refresh")
            until = time.monotonic() + seconds
        try:
            uri = state.jwks_uri or self._discover(state.issuer, until)
            document = self._fetch_json(uri, self._time_for(until))
            keys, skipped = load_jwks(document, self._algorithms)
        except FetchError as exc:
            raise self._failed(state, now, f"JWKS fetch failed: {exc}", prefetch) from exc
        except ValueError as exc:
            raise self._failed(state, now, f"JWKS is not usable: {exc}", prefetch) from exc
        if skipped:
            log("WARN", "jwks_keys_skipped", issuer=state.issuer, skipped=skipped)
        if not keys:
            # A valid answer with nothing usable in it revokes every key: keeping the
            # old ones would trust keys the issuer no longer publishes.
            log("ERROR", "jwks_no_usable_keys", issuer=state.issuer, skipped=len(skipped))
        state.jwks_uri = uri
        state.good.confirm(now, keys)
        state.fresh_until = now + self._ttl
        state.backoff.clear()

    def _failed(self, state: _IssuerKeys, now: float, error: str, prefetch: bool) -> KeySourceError:
        # Every failed fetch is logged and counted (JwksFailures), whatever asked for it: the
        # container's start, the TTL, or an unknown kid; the next try waits out the back-off.
        state.backoff.failed(now)
        if prefetch:
            log("WARN", "jwks_prefetch_failed", issuer=state.issuer, error=error, metrics=_JWKS_FAILURE)
        elif state.good.value is None:
            log("ERROR", "jwks_refresh_failed", issuer=state.issuer, error=error, metrics=_JWKS_FAILURE)
        else:
            log("ERROR", "jwks_refresh_failed", issuer=state.issuer, error=error,
                stale_seconds=round(state.good.age(now)), metrics=_JWKS_FAILURE)
        return KeySourceError(error)

    def _time_for(self, until: float) -> float:
        """One request's deadline: ``JWKS_TIMEOUT``, or less when a budget ends sooner."""
        left = until - time.monotonic()
        if left <= 0:
            raise FetchError("no time is left for the request")
        return min(self._timeout, left)

    def _discover(self, issuer: str, until: float) -> str:
        url = issuer.rstrip("/") + "/.well-known/openid-configuration"
        document = self._fetch_json(url, self._time_for(until))
        if not isinstance(document, dict) or document.get("issuer") != issuer:
            # RFC 8414 §3.3: metadata for another issuer must not be used.
            raise ValueError("discovery document names another issuer")
        jwks_uri = document.get("jwks_uri")
        if not isinstance(jwks_uri, str) or check_trusted_url(jwks_uri):
            raise ValueError("discovery document has no trusted jwks_uri")
        return jwks_uri
