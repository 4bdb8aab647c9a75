"""PermissionCache: TTL, cheap change checks, last-good fallback, fail closed when cold."""

from __future__ import annotations

import pytest

from policy_engine.cache import PermissionCache
from policy_engine.errors import StoreError
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
