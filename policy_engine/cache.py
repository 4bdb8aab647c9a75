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
(``STORE_REQUEST_WAIT``, and never past the time the invocation has left:
``budget.InvocationBudget``; at init ``STORE_INIT_WAIT``). Past that, the request goes on
without it: warm, with the last good mappings (``permissions_reload_slow``); cold,
failing closed with ``StoreError``.
A late load still lands when it finishes. Only the request that starts a reload waits
for it: a warm request arriving while it is in flight is served at once.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from policy_engine.budget import InvocationBudget
from policy_engine.core.lastgood import Backoff, Clock, LastGood
from policy_engine.core.permissions import (
    MAX_RESOURCE_ARN,
    PermissionSet,
    compile_records,
    content_digest,
)
from policy_engine.errors import MissingStoreError, PolicyEngineError, StoreError
from policy_engine.logs import log
from policy_engine.metrics import STORE_FAILURES
from policy_engine.ports import PermissionSource

__all__ = [
    "RETRY_BACKOFF_BASE",
    "RETRY_BACKOFF_CAP",
    "STORE_INIT_WAIT",
    "STORE_REQUEST_WAIT",
    "CandidateCache",
    "PermissionCache",
    "digest_of",
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


_STORE_FAILURE = {STORE_FAILURES: 1}


def digest_of(permissions: PermissionSet) -> str:
    """The content digest of ``permissions`` (``core.permissions.content_digest``): its
    version when that is one (files), else computed from its mappings (stores label
    versions ``v7``, ``c3``)."""
    version = permissions.version
    if version.startswith("sha256:"):
        return version
    return content_digest((*grant.route, grant.needs) for grant in permissions.grants)


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
        digests: bool = False,
        budget: InvocationBudget | None = None,
    ) -> None:
        self.source = source
        self._ttl = ttl
        self._clock = clock
        self._wait = wait
        # The authorizer's: a request never waits for a load past the invocation's own end.
        self._budget = InvocationBudget() if budget is None else budget
        # The mappings, when the source last confirmed them, and for how long they serve.
        self._good: LastGood[PermissionSet] = LastGood(max_stale)
        self._backoff = Backoff(RETRY_BACKOFF_BASE, RETRY_BACKOFF_CAP)
        self._etag: str | None = None
        self._checked_at = float("-inf")  # when the last load started: the TTL counts from it
        self._lock = threading.Lock()
        self._load: _Load | None = None  # the load in flight, if any
        self._last_error = ""
        self._last_code: str | None = None  # the StoreError code of the last failure, if it was one
        # For the health line and shadow evaluation: when the store published the set
        # in use, and its content digest (computed on the loading thread, with ``digests``).
        self._digests = digests
        self._published: tuple[PermissionSet | None, str | None] = (None, None)
        self._digest: tuple[PermissionSet | None, str] = (None, "")

    def peek(self) -> PermissionSet | None:
        """The mappings last loaded, if any; never loads, never raises."""
        return self._good.value

    def refresh_age(self) -> float | None:
        """Seconds since the source last confirmed the mappings (a load, or a check that
        found nothing changed); ``None`` before the first."""
        good = self._good
        return None if good.value is None else self._clock() - good.confirmed_at

    def published_at(self, permissions: PermissionSet) -> str | None:
        """When the store recorded the publish of ``permissions`` (ISO 8601), if it did."""
        held, at = self._published
        return at if held is permissions else None

    def digest(self, permissions: PermissionSet) -> str:
        """The content digest of ``permissions`` (``digest_of``), from the loading thread when
        the cache was built with ``digests``."""
        held, digest = self._digest
        if held is permissions:
            return digest
        digest = digest_of(permissions)
        self._digest = (permissions, digest)
        return digest

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
                                     f"(retrying in {self._backoff.retry_at - now:.1f}s): {self._last_error}",
                                     code=self._last_code)
                load = self._load = _Load(now)
                self._checked_at = now
                starter = True
            else:
                starter = False
        bound = self._wait if wait is None else wait
        if wait is None and bound is not None:
            bound = max(0.0, self._budget.limit(bound))
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
        log("ERROR", "permissions_unavailable", source=self.source.description, error="store_timeout", detail=message,
            metrics=_STORE_FAILURE)
        raise StoreError(message)

    def _run(self, load: _Load, current: PermissionSet | None) -> None:
        """Fetch, compile and record the outcome of ``load`` (never raises)."""
        try:
            raw = self.source.fetch(self._etag if current is not None else None)
            if raw is None and current is None:  # "unchanged" with nothing loaded: no mappings
                raise StoreError(f"{self.source.description}: answered 'unchanged' to a first load")
            fresh = None if raw is None else compile_records(raw.records, raw.locate, version=raw.version,
                                                              on_oversized=self._report_oversized)
            digest = (fresh, digest_of(fresh)) if fresh is not None and self._digests else None
        except Exception as exc:  # noqa: BLE001 - any failure, ours or not, falls back or fails closed
            load.error = exc
            self._failed(load, current, exc)
        else:
            with self._lock:
                if raw is not None:
                    self._etag = raw.etag
                    self._published = (fresh, raw.published_at)
                if digest is not None:
                    self._digest = digest
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
            self._last_code = exc.code if isinstance(exc, StoreError) else None
            self._load = None
            # Its age now (the load may have taken its whole deadline), judged as of its start.
            stale = self._good.age(self._clock())
            within = self._good.within(load.started)
        if current is not None and within:
            log("ERROR", "permissions_reload_failed", source=self.source.description, error=code,
                detail=str(exc), serving_version=current.version, stale_seconds=round(stale), retry_in_seconds=delay,
                metrics=_STORE_FAILURE)
        else:
            log("ERROR", "permissions_unavailable", source=self.source.description, error=code, detail=str(exc),
                retry_in_seconds=delay, metrics=_STORE_FAILURE)

    def _report_oversized(self, api_arn: str, stage: str, resources: tuple[str, ...]) -> None:
        # Called once per (API, stage, granting scopes) a PermissionSet remembers: a store
        # published before validation counted the longest stage. Those routes are denied.
        log("ERROR", "resource_too_long", source=self.source.description, api=api_arn, stage=stage,
            limit=MAX_RESOURCE_ARN, dropped=len(resources), resources=list(resources[:3]),
            fix="shorten the resource or name the stage instead of '*', then sync again")


def _ignore_oversized(api_arn: str, stage: str, resources: tuple[str, ...]) -> None:
    # The live cache reports these for the live mappings; a candidate's only shape the shadow.
    return None


class CandidateCache:
    """The candidate permission set that shadow evaluation compares with the live one
    (``PERMISSIONS_CANDIDATE``). Unlike ``PermissionCache`` it never makes a request wait
    and never raises:

    * ``get()`` answers what is loaded, or ``None`` (nothing yet, no candidate published,
      or the last one confirmed more than ``max_stale`` seconds ago). When ``ttl`` has
      passed since the last attempt it starts a load: on a worker thread (``background``:
      stores, which can hang), else inline (files). A cold cache has nothing until its
      first load lands: those requests are not shadowed.
    * ``MissingStoreError`` from the source means there is no candidate: nothing is
      served, nothing is logged but the change (``candidate_removed``), and the source is
      asked again after ``ttl``.
    * Any other failure (a corrupt candidate, a store that fails) is logged once per
      failure state (``candidate_unavailable``, WARN: again only after a success or
      with another error code); the candidate loaded before keeps serving within
      ``max_stale``; the source is asked again after ``ttl``.

    ``source`` builds the reader on the first load, so that a reader that cannot be built
    is a candidate failure like any other, never a failed start.
    """

    def __init__(
        self,
        source: Callable[[], PermissionSource],
        description: str,
        *,
        ttl: float,
        max_stale: float,
        background: bool,
        clock: Clock = time.monotonic,
    ) -> None:
        self.description = description
        self._factory = source
        self._source: PermissionSource | None = None
        self._ttl = ttl
        self._max_stale = max_stale
        self._background = background
        self._clock = clock
        self._good: LastGood[PermissionSet] = LastGood(max_stale)
        self._digest = ""
        self._etag: str | None = None
        self._checked_at = float("-inf")
        self._lock = threading.Lock()
        self._idle = threading.Event()
        self._idle.set()
        self._failing: str | None = None

    def get(self) -> PermissionSet | None:
        """The candidate to shadow with now, or ``None``; starts a load when one is due."""
        now = self._clock()
        if now - self._checked_at >= self._ttl and self._idle.is_set():
            self._start(now)
        good = self._good
        value = good.value
        if value is None or now - good.confirmed_at > good.max_age:
            return None
        return value

    def peek(self) -> PermissionSet | None:
        """The candidate loaded, if any (staleness aside); never loads."""
        return self._good.value

    @property
    def digest(self) -> str:
        """The content digest of the candidate loaded (``digest_of``; empty: none)."""
        return self._digest

    def wait(self, timeout: float) -> bool:
        """Wait up to ``timeout`` seconds for the load in flight; whether none is left."""
        return self._idle.wait(timeout)

    def _start(self, now: float) -> None:
        with self._lock:
            if not self._idle.is_set():
                return
            self._idle.clear()
            self._checked_at = now
        if not self._background:
            self._run(now)
            return
        try:
            threading.Thread(target=self._run, args=(now,), daemon=True, name="candidate-load").start()
        except RuntimeError as exc:  # no thread to be had: a failed attempt, retried after ttl
            self._failed(exc)
            self._idle.set()

    def _run(self, started: float) -> None:
        held = self._good.value
        try:
            if self._source is None:
                self._source = self._factory()
            raw = self._source.fetch(self._etag if held is not None else None)
            if raw is None:
                self._good.confirm(started)
            else:
                fresh = compile_records(raw.records, raw.locate, version=raw.version, on_oversized=_ignore_oversized)
                digest = digest_of(fresh)
                with self._lock:
                    self._good.confirm(started, fresh)
                    self._digest, self._etag = digest, raw.etag
                if held is None or held.version != fresh.version:
                    log("INFO", "candidate_loaded", source=self.description, version=fresh.version,
                        mappings=len(fresh))
            self._failing = None
        except MissingStoreError:
            with self._lock:
                self._good = LastGood(self._max_stale)
                self._digest, self._etag = "", None
            self._failing = None
            if held is not None:
                log("INFO", "candidate_removed", source=self.description, version=held.version)
        except Exception as exc:  # noqa: BLE001 - a candidate never fails anything but its own shadow
            self._failed(exc)
        finally:
            self._idle.set()

    def _failed(self, exc: Exception) -> None:
        code = exc.code if isinstance(exc, PolicyEngineError) else "internal_error"
        if code == self._failing:
            return
        self._failing = code
        held = self._good.value
        # serving_version only when a candidate is still shadowed, as the docs list it
        # (left out, not null, like every optional member of a line).
        if held is None:
            log("WARN", "candidate_unavailable", source=self.description, error=code, detail=str(exc))
        else:
            log("WARN", "candidate_unavailable", source=self.description, error=code, detail=str(exc),
                serving_version=held.version)
