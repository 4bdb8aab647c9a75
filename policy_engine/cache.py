"""The one place that caches permission mappings in a container.

Rules:

* Loaded mappings are trusted for ``ttl`` seconds. After that the source is asked
  whether anything changed (``fetch(known_etag)``, cheap); only a changed source is
  reloaded, validated into a new ``PermissionSet``, and swapped in on success.
* If the source fails, or hands over invalid data, a warm container keeps deciding
  with its last good mappings for up to ``max_stale`` seconds after the last
  successful check and logs every failed attempt loudly. A container that never
  loaded anything, or whose mappings are too stale, raises: it never allows.
* Mappings load even when a long stage could make one of their Resources pass IAM's
  512 characters (``validate`` and ``sync`` refuse them; an older release did not):
  such a Resource is left out of the policy and logged (``resource_too_long``).
* After a failed attempt the next one waits ``RETRY_BACKOFF_BASE`` seconds, doubling
  with each further failure up to ``RETRY_BACKOFF_CAP``, across requests: a store that
  keeps failing sees a few requests a minute from a container, not one per request.
  Meanwhile a warm container serves its last good mappings and a cold one fails
  closed at once.

Deadlines (stores only, built with ``wait``): each store request has its own deadline
(``adapters/aws_http.py``), but a load is several requests and a retry, so what a
request waits for is bounded here: each load runs on a worker thread, at most one
per cache at a time (single flight), and a caller waits for it at most ``wait`` seconds
(``STORE_REQUEST_WAIT``; at init
``STORE_INIT_WAIT``). Past that, the request goes on without it: warm, with the last
good mappings (``permissions_reload_slow``); cold, failing closed with ``StoreError``.
A late load still lands when it finishes. Only the request that starts a reload waits
for it: a warm request arriving while it is in flight is served at once.
"""

from __future__ import annotations

import threading
import time

from policy_engine.core.lastgood import Backoff, Clock, LastGood
from policy_engine.core.permissions import (
    MAX_RESOURCE_ARN,
    PermissionSet,
    compile_records,
)
from policy_engine.errors import PolicyEngineError, StoreError
from policy_engine.logs import log
from policy_engine.ports import PermissionSource

__all__ = [
    "RETRY_BACKOFF_BASE",
    "RETRY_BACKOFF_CAP",
    "STORE_INIT_WAIT",
    "STORE_REQUEST_WAIT",
    "PermissionCache",
]

#: Seconds init waits for a store's first load. Lambda allows 10 s for the whole init
#: (runtime start, imports, the JWKS prefetch and this); 3 s leaves the rest room.
STORE_INIT_WAIT = 3.0
#: Seconds a request waits for a store load it needs. A healthy in-region check answers
#: in milliseconds and a 10,000-mapping load in about one second; 2 s keeps a hung store
#: far inside API Gateway's 10 s authorizer limit and Lambda's 10 s function timeout.
STORE_REQUEST_WAIT = 2.0
#: Seconds before the first retry after a failed load; doubles with each failure.
RETRY_BACKOFF_BASE = 1.0
#: Longest back-off between attempts: a recovered store is noticed within 30 s.
RETRY_BACKOFF_CAP = 30.0


class _Load:
    """One fetch-and-compile, run on a worker thread or inline."""

    __slots__ = ("done", "error", "started", "started_real")

    def __init__(self, started: float) -> None:
        self.done = threading.Event()
        self.started = started                  # the cache's clock: TTL and staleness
        self.started_real = time.monotonic()    # real time: how long callers may wait
        self.error: Exception | None = None


class PermissionCache:
    """TTL cache with last-good fallback, back-off and bounded waits in front of a ``PermissionSource``.

    ``wait`` is how long a request waits for a load (``None``: loads run inline on the
    caller's thread, for sources that cannot hang, such as files and memory).
    """

    def __init__(
        self,
        source: PermissionSource,
        *,
        ttl: float,
        max_stale: float,
        clock: Clock = time.monotonic,
        wait: float | None = None,
    ) -> None:
        self.source = source
        self._ttl = ttl
        self._clock = clock
        self._wait = wait
        # The mappings, when the source last confirmed them, and for how long they serve.
        self._good: LastGood[PermissionSet] = LastGood(max_stale)
        self._backoff = Backoff(RETRY_BACKOFF_BASE, RETRY_BACKOFF_CAP)
        self._etag: str | None = None
        self._checked_at = float("-inf")  # when the last load started: the TTL counts from it
        self._lock = threading.Lock()
        self._load: _Load | None = None  # the load in flight, if any
        self._last_error = ""

    def get(self, *, wait: float | None = None) -> PermissionSet:
        """The mappings to decide with now.

        ``wait`` overrides how long this call waits for a store load (init uses
        ``STORE_INIT_WAIT``); it has no effect on inline loads.

        Raises:
            StoreError: nothing usable is loaded (cold container, or past ``max_stale``),
                including while backing off after failures or when a load takes too long.
        """
        now = self._clock()
        good = self._good
        current = good.value
        # good.within(now), spelled out: this line runs on every request.
        if current is not None and now - self._checked_at < self._ttl and now - good.confirmed_at <= good.max_age:
            return current
        usable = current is not None and good.within(now)
        with self._lock:
            landed = good.value
            if landed is not None and landed is not current:
                return landed  # a load finished since this call looked
            load = self._load
            if load is None:
                if not self._backoff.ready(now):
                    # Backing off: the last attempt failed a moment ago; do not ask again yet.
                    if usable:
                        assert current is not None
                        return current
                    raise StoreError(f"permissions from {self.source.description} are unavailable "
                                     f"(retrying in {self._backoff.retry_at - now:.1f}s): {self._last_error}")
                load = self._load = _Load(now)
                self._checked_at = now
                starter = True
            else:
                starter = False
        bound = self._wait if wait is None else wait
        if self._wait is None:
            self._run(load, current)
        else:
            if starter:
                worker = threading.Thread(target=self._run, args=(load, current), daemon=True,
                                          name="permissions-load")
                try:
                    worker.start()
                except RuntimeError as exc:  # no thread to be had: a failed load, so back-off applies
                    load.error = exc
                    self._failed(load, current, exc)
                    load.done.set()
            # Warm requests never wait for someone else's load past its own budget; a cold
            # request has nothing to serve, so it waits its full bound for the load in flight.
            deadline = (load.started_real if usable and not starter else time.monotonic()) + (bound or 0.0)
            load.done.wait(max(0.0, deadline - time.monotonic()))
        return self._outcome(load, current, usable=usable, starter=starter, bound=bound)

    def _outcome(
        self, load: _Load, current: PermissionSet | None, *, usable: bool, starter: bool, bound: float | None
    ) -> PermissionSet:
        if load.done.is_set() and load.error is None:
            assert self._good.value is not None
            return self._good.value
        fresh = self._good.value
        if fresh is not None and fresh is not current:
            return fresh  # another load landed meanwhile
        if usable:
            assert current is not None
            if starter and not load.done.is_set():
                log("WARN", "permissions_reload_slow", source=self.source.description, waited_seconds=bound,
                    serving_version=current.version)
            return current
        if load.done.is_set():
            assert load.error is not None
            if isinstance(load.error, StoreError):
                raise load.error
            raise StoreError(f"permissions from {self.source.description} are unavailable: {load.error}")
        message = f"permissions from {self.source.description} did not answer within {bound:g}s"
        log("ERROR", "permissions_unavailable", source=self.source.description, error="store_timeout", detail=message)
        raise StoreError(message)

    def _run(self, load: _Load, current: PermissionSet | None) -> None:
        """Fetch, compile and record the outcome of ``load`` (never raises)."""
        try:
            raw = self.source.fetch(self._etag if current is not None else None)
            fresh = None if raw is None else compile_records(raw.records, raw.locate, version=raw.version,
                                                              on_oversized=self._report_oversized)
        except Exception as exc:  # noqa: BLE001 - any failure, ours or not, falls back or fails closed
            load.error = exc
            self._failed(load, current, exc)
        else:
            with self._lock:
                if raw is not None:
                    self._etag = raw.etag
                self._good.confirm(load.started, fresh)  # fresh is None: unchanged, still confirmed
                self._backoff.clear()
                self._load = None
            if fresh is not None and (current is None or fresh.version != current.version):
                log("INFO", "permissions_loaded", source=self.source.description, version=fresh.version,
                    mappings=len(fresh))
        finally:
            load.done.set()

    def _failed(self, load: _Load, current: PermissionSet | None, exc: Exception) -> None:
        code = exc.code if isinstance(exc, PolicyEngineError) else "internal_error"
        with self._lock:
            delay = self._backoff.failed(self._clock())
            self._last_error = str(exc)
            self._load = None
            stale = self._good.age(load.started)
            within = self._good.within(load.started)
        if current is not None and within:
            log("ERROR", "permissions_reload_failed", source=self.source.description, error=code,
                detail=str(exc), serving_version=current.version, stale_seconds=round(stale), retry_in_seconds=delay)
        else:
            log("ERROR", "permissions_unavailable", source=self.source.description, error=code, detail=str(exc),
                retry_in_seconds=delay)

    def _report_oversized(self, api_arn: str, stage: str, resources: tuple[str, ...]) -> None:
        # Called once per (API, stage, granting scopes) a PermissionSet remembers: a store
        # published before validation counted the longest stage. Those routes are denied.
        log("ERROR", "resource_too_long", source=self.source.description, api=api_arn, stage=stage,
            limit=MAX_RESOURCE_ARN, dropped=len(resources), resources=list(resources[:3]),
            fix="shorten the resource or name the stage instead of '*', then sync again")
