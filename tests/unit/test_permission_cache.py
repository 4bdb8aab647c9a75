"""PermissionCache: TTL, cheap change checks, last-good fallback, fail closed when cold."""

from __future__ import annotations

import itertools
import threading
import time

import pytest

from policy_engine import cache as cache_module
from policy_engine.cache import PermissionCache
from policy_engine.errors import CorruptStoreError, MissingStoreError, StoreError, StoreTooLargeError
from policy_engine.ports import RawPermissions

API = "arn:aws:execute-api:us-east-1:123456789012:a1b2c3d4e5"


class FakeSource:
    description = "fake"

    def __init__(self) -> None:
        self.records = [{"arn": API, "stage": "dev", "httpVerb": "GET", "resource": "/a", "scope": "r"}]
        self.etag = "1"
        self.fail: Exception | None = None
        self.calls: list[str | None] = []

    def fetch(self, known_etag):
        self.calls.append(known_etag)
        if self.fail:
            raise self.fail
        if known_etag == self.etag:
            return None
        return RawPermissions(list(self.records), lambda path: f"fake{path}", f"v{self.etag}", self.etag)


class Clock:
    now = 0.0

    def __call__(self):
        return self.now


def _cache(source, clock):
    return PermissionCache(source, ttl=60, max_stale=300, clock=clock)


def test_ttl_then_cheap_check_then_reload_only_on_change():
    source, clock = FakeSource(), Clock()
    cache = _cache(source, clock)
    assert cache.get().version == "v1"
    clock.now = 59
    cache.get()
    assert source.calls == [None]
    clock.now = 61
    assert cache.get().version == "v1"
    assert source.calls == [None, "1"]
    source.etag = "2"
    source.records.append({"arn": API, "stage": "dev", "httpVerb": "GET", "resource": "/b", "scope": "r"})
    clock.now = 122
    assert cache.get().version == "v2"


def test_store_failure_keeps_last_good_until_max_stale():
    source, clock = FakeSource(), Clock()
    cache = _cache(source, clock)
    good = cache.get()
    source.fail = StoreError("throttled")
    clock.now = 200
    assert cache.get() is good
    clock.now = 299
    assert cache.get() is good
    clock.now = 301  # max_stale counts from the last successful check (t=0)
    with pytest.raises(StoreError):
        cache.get()


def test_invalid_data_in_the_store_never_replaces_good_mappings():
    source, clock = FakeSource(), Clock()
    cache = _cache(source, clock)
    good = cache.get()
    source.etag = "3"
    source.records = [{"arn": "corrupt"}]
    clock.now = 61
    assert cache.get() is good


def test_cold_container_with_failing_store_raises():
    source = FakeSource()
    source.fail = RuntimeError("boom")
    with pytest.raises(StoreError):
        _cache(source, Clock()).get()


# -- loads with a deadline (stores): single flight, bounded waits, back-off ------------------


#: How long a blocked fake fetch waits before giving up by itself: only so that a cache
#: that waits without a bound fails these tests instead of hanging the suite.
GUARD = 5.0


class BlockingSource(FakeSource):
    """Answers at once until ``block()``; then each fetch waits for ``release()``."""

    def __init__(self) -> None:
        super().__init__()
        self._gate = threading.Event()
        self._gate.set()
        self.started = threading.Event()

    def block(self) -> None:
        self._gate.clear()
        self.started.clear()

    def release(self) -> None:
        self._gate.set()

    def fetch(self, known_etag):
        self.calls.append(known_etag)
        self.started.set()
        if not self._gate.wait(GUARD):
            raise StoreError("guard: the cache waited for a hung fetch")
        if known_etag == self.etag:
            return None
        return RawPermissions(list(self.records), lambda path: f"fake{path}", f"v{self.etag}", self.etag)


def _timed(call):
    started = time.monotonic()
    try:
        return call(), time.monotonic() - started
    except StoreError as exc:
        return exc, time.monotonic() - started


def test_a_warm_reload_that_hangs_serves_last_good_within_the_wait_and_never_twice():
    source, clock = BlockingSource(), Clock()
    cache = PermissionCache(source, ttl=60, max_stale=300, clock=clock, wait=0.3)
    good = cache.get()
    source.block()
    source.etag = "2"
    clock.now = 61
    served, waited = _timed(cache.get)
    print(f"warm request with a hung reload answered in {waited:.3f}s (wait 0.3s)")
    assert served is good and waited < 2.0
    # The reload is still hanging: later requests get the last good mappings at once,
    # and no second fetch starts while the first is in flight (single flight).
    clock.now = 200
    again, waited_again = _timed(cache.get)
    assert again is good and waited_again < 0.25
    assert source.calls == [None, "1"]
    source.release()
    for _ in range(100):  # the hung load lands when it finishes, for whoever asks next
        if cache.get().version == "v2":
            break
        time.sleep(0.02)
    assert cache.get().version == "v2"


def test_a_cold_load_that_hangs_fails_closed_within_the_wait():
    source, clock = BlockingSource(), Clock()
    source.block()
    cache = PermissionCache(source, ttl=60, max_stale=300, clock=clock, wait=0.3)
    failed, waited = _timed(cache.get)
    print(f"cold request with a hung load failed closed in {waited:.3f}s (wait 0.3s)")
    assert isinstance(failed, StoreError) and waited < 2.0
    assert "did not answer within" in str(failed)
    failed_again, _ = _timed(cache.get)
    assert isinstance(failed_again, StoreError)
    assert source.calls == [None]  # the second request joined the load in flight
    source.release()


def test_init_waits_its_own_bound():
    source = BlockingSource()
    source.block()
    cache = PermissionCache(source, ttl=60, max_stale=300, wait=0.1)
    threading.Timer(0.4, source.release).start()
    loaded, waited = _timed(lambda: cache.get(wait=3.0))
    assert not isinstance(loaded, StoreError) and loaded.version == "v1" and 0.3 < waited < 2.5


def test_a_cold_container_with_a_failing_store_backs_off_across_requests():
    source, clock = FakeSource(), Clock()
    source.fail = StoreError("unreachable")
    cache = PermissionCache(source, ttl=60, max_stale=300, clock=clock, wait=1.0)
    attempts = []
    for step in range(241):  # a request every 0.5 s for two minutes
        clock.now = step * 0.5
        before = len(source.calls)
        failed, waited = _timed(cache.get)
        assert isinstance(failed, StoreError)
        if len(source.calls) > before:
            attempts.append(clock.now)
        else:
            assert waited < 0.5  # during back-off: fail closed at once
    # 1 s, 2 s, 4 s ... after each failure, never more than the cap apart
    assert attempts[:6] == [0.0, 1.0, 3.0, 7.0, 15.0, 31.0]
    gaps = [b - a for a, b in itertools.pairwise(attempts)]
    assert max(gaps) <= cache_module.RETRY_BACKOFF_CAP + 0.5 and gaps[-1] >= cache_module.RETRY_BACKOFF_CAP
    assert len(source.calls) <= 8  # of 241 requests

    source.fail = None  # the store is back: the next attempt loads, and back-off is forgotten
    clock.now = attempts[-1] + cache_module.RETRY_BACKOFF_CAP
    assert cache.get().version == "v1"


@pytest.mark.parametrize("failure, code", [
    (MissingStoreError("no such table"), "store_missing"),
    (CorruptStoreError("a foreign item"), "store_corrupt"),
    (StoreTooLargeError("too big", etag="e"), "store_too_large"),
    (StoreError("throttled"), "store_unavailable"),
    (RuntimeError("boom"), "store_unavailable"),
])
def test_requests_refused_while_backing_off_keep_the_cause_of_the_failure(failure, code):
    # The decision line's reason: "store_missing" after a deploy means nothing was
    # published, on every refused request, not only on the one that asked the store.
    source, clock = FakeSource(), Clock()
    source.fail = failure
    cache = PermissionCache(source, ttl=60, max_stale=300, clock=clock, wait=1.0)
    for step in range(4):
        clock.now = step * 0.3  # the first asks, the others fall in the 1 s back-off
        with pytest.raises(StoreError) as refused:
            cache.get()
        assert refused.value.code == code
    assert len(source.calls) == 1


def test_a_warm_container_backs_off_too_and_serves_last_good_meanwhile():
    source, clock = FakeSource(), Clock()
    cache = PermissionCache(source, ttl=0.5, max_stale=300, clock=clock, wait=1.0)
    good = cache.get()
    source.fail = StoreError("throttled")
    for step in range(1, 41):
        clock.now = step * 0.5
        assert cache.get() is good
    # without back-off this is one check per request (40); with it, one per 1, 2, 4, 8 s
    assert 4 <= len(source.calls) - 1 <= 6


def test_a_long_outage_never_stops_the_retries():
    # 1,100 failed loads (about nine hours at the 30 s cap): the back-off stays at its cap,
    # and the first load after the store recovers succeeds. (2 ** 1024 once overflowed
    # a float here and left the failed load in flight for good: 500s after recovery.)
    source, clock = FakeSource(), Clock()
    source.fail = StoreError("down")
    cache = PermissionCache(source, ttl=60, max_stale=300, clock=clock, wait=1.0)
    for _ in range(1100):
        clock.now += 31
        with pytest.raises(StoreError):
            cache.get()
    assert len(source.calls) == 1100
    source.fail = None
    clock.now += 31
    assert cache.get().version == "v1"


def test_a_failed_reload_reports_how_stale_the_mappings_are_when_it_fails(capsys):
    # A load that fails after its whole deadline: the age is counted when it failed.
    import json

    source, clock = FakeSource(), Clock()
    cache = _cache(source, clock)
    good = cache.get()
    clock.now = 61

    class SlowFailure(FakeSource):
        def fetch(self, known_etag):
            clock.now += 8
            raise StoreError("timed out")

    cache.source = SlowFailure()
    assert cache.get() is good
    [line] = [json.loads(text) for text in capsys.readouterr().err.splitlines()
              if '"permissions_reload_failed"' in text]
    assert line["stale_seconds"] == 69
