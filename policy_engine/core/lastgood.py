"""The last good value of a fallible source, its staleness bound, and the back-off after failures.

Shared by the two caches that keep serving while their source fails: the permission
mappings (``policy_engine.cache``) and each issuer's keys (``adapters.jwks_http``).
Pure: the caller passes the time and does the fetching.

Clock convention, for every cache in the package: TTLs, staleness bounds, back-off and
deadlines are measured on a monotonic clock (``time.monotonic``), which an NTP step or
a manual change of the wall clock cannot move. The wall clock (``time.time``) is read
only to compare with a token's ``exp``/``nbf``/``iat``, which are wall-clock times
(RFC 7519 §4.1.4); a cache bounded by ``exp`` converts that bound to the monotonic
clock once, when it stores the entry (``adapters.introspection``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Generic, TypeVar

__all__ = ["Backoff", "Clock", "LastGood"]

#: A source of seconds: ``time.monotonic`` at run time, a fake in tests.
Clock = Callable[[], float]

T = TypeVar("T")

_NEVER = float("-inf")
_MAX_DOUBLINGS = 64


class LastGood(Generic[T]):
    """The last value a source confirmed, and how long it may serve after that.

    ``max_age`` is counted from the last confirmation (a load, or a check that found
    nothing changed). Within it, a caller whose source fails keeps serving ``value``;
    past it, ``usable`` is false and the caller must fail closed. ``value`` is
    ``None`` until the first success.
    """

    __slots__ = ("confirmed_at", "max_age", "value")

    def __init__(self, max_age: float) -> None:
        self.max_age = max_age
        self.value: T | None = None
        self.confirmed_at = _NEVER

    def usable(self, now: float) -> bool:
        """A value is held and was confirmed at most ``max_age`` seconds before ``now``."""
        return self.value is not None and self.within(now)

    def within(self, now: float) -> bool:
        """The last confirmation is at most ``max_age`` seconds before ``now`` (value aside)."""
        return now - self.confirmed_at <= self.max_age

    def age(self, now: float) -> float:
        """Seconds since the last confirmation (infinite before the first)."""
        return now - self.confirmed_at

    def confirm(self, at: float, value: T | None = None) -> None:
        """The source answered at ``at``: with a new ``value``, or (``None``) that nothing changed."""
        if value is not None:
            self.value = value
        self.confirmed_at = at


class Backoff:
    """When a failing source may be asked again.

    After the n-th failure in a row the next attempt waits ``base * 2**(n-1)`` seconds,
    at most ``cap``; ``base == cap`` is a fixed interval. A success clears it. Any
    number of failures keeps the delay at ``cap``: an outage of any length ends with
    the first attempt after the source recovers.
    """

    __slots__ = ("base", "cap", "failures", "retry_at")

    def __init__(self, base: float, cap: float) -> None:
        self.base = base
        self.cap = cap
        self.failures = 0
        self.retry_at = _NEVER

    def ready(self, now: float) -> bool:
        """No failure is waiting out its delay at ``now``."""
        return now >= self.retry_at

    def failed(self, now: float) -> float:
        """Record a failure at ``now``; the delay before the next attempt."""
        self.failures += 1
        # The exponent stops growing long before 2**n could overflow a float.
        delay = min(self.cap, self.base * 2.0 ** min(self.failures - 1, _MAX_DOUBLINGS))
        self.retry_at = now + delay
        return delay

    def clear(self) -> None:
        """A success (or a reason to try at once): the next attempt need not wait."""
        self.failures = 0
        self.retry_at = _NEVER
