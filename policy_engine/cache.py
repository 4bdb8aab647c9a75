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
"""

from __future__ import annotations

import time
from collections.abc import Callable

from policy_engine.core.permissions import (
    MAX_RESOURCE_ARN,
    PermissionSet,
    compile_records,
)
from policy_engine.errors import PolicyEngineError, StoreError
from policy_engine.logs import log
from policy_engine.ports import PermissionSource

__all__ = ["PermissionCache"]


class PermissionCache:
    """TTL cache with last-good fallback in front of a ``PermissionSource``."""

    def __init__(
        self,
        source: PermissionSource,
        *,
        ttl: float,
        max_stale: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.source = source
        self._ttl = ttl
        self._max_stale = max_stale
        self._clock = clock
        self._current: PermissionSet | None = None
        self._etag: str | None = None
        self._checked_at = float("-inf")
        self._confirmed_at = float("-inf")

    def get(self) -> PermissionSet:
        """The mappings to decide with now.

        Raises:
            StoreError: nothing usable is loaded (cold container, or past ``max_stale``).
        """
        now = self._clock()
        current = self._current
        if (
            current is not None
            and now - self._checked_at < self._ttl
            and now - self._confirmed_at <= self._max_stale
        ):
            return current
        self._checked_at = now
        try:
            raw = self.source.fetch(self._etag if current is not None else None)
            if raw is not None:
                fresh = compile_records(raw.records, raw.locate, version=raw.version,
                                        on_oversized=self._report_oversized)
                if current is None or fresh.version != current.version:
                    log("INFO", "permissions_loaded", source=self.source.description,
                        version=fresh.version, mappings=len(fresh))
                self._current, self._etag = fresh, raw.etag
            self._confirmed_at = now
        except Exception as exc:  # any failure, ours or not, falls back or fails closed
            stale = now - self._confirmed_at
            code = exc.code if isinstance(exc, PolicyEngineError) else "internal_error"
            if current is not None and stale <= self._max_stale:
                log("ERROR", "permissions_reload_failed", source=self.source.description, error=code,
                    detail=str(exc), serving_version=current.version, stale_seconds=round(stale))
                return current
            log("ERROR", "permissions_unavailable", source=self.source.description, error=code, detail=str(exc))
            if isinstance(exc, StoreError):
                raise
            raise StoreError(f"permissions from {self.source.description} are unavailable: {exc}") from exc
        assert self._current is not None
        return self._current

    def _report_oversized(self, api_arn: str, stage: str, resources: tuple[str, ...]) -> None:
        # Called once per (API, stage, granting scopes) a PermissionSet remembers: a store
        # published before validation counted the longest stage. Those routes are denied.
        log("ERROR", "resource_too_long", source=self.source.description, api=api_arn, stage=stage,
            limit=MAX_RESOURCE_ARN, dropped=len(resources), resources=list(resources[:3]),
            fix="shorten the resource or name the stage instead of '*', then sync again")
