"""The JWKS adapter against a real HTTP server on 127.0.0.1, with a controllable clock."""

from __future__ import annotations

import json
import time

import pytest

from policy_engine.adapters.jwks_http import JwksKeySource
from policy_engine.budget import InvocationBudget
from policy_engine.errors import ConfigurationError, KeySourceError, UnknownKeyError
from policy_engine.settings import Settings
from tests.support.trickle import TricklingServer, hard_limit


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _source(idp, clock, *, issuers=None, **overrides):
    options = {"algorithms": {"RS256"}, "timeout": 1.0, "cache_ttl": 300, "refetch_interval": 30,
               "max_stale": 600, "clock": clock}
    options.update(overrides)
    if "jwks_uris" not in options:
        options["jwks_uris"] = [idp.jwks_uri]
    return JwksKeySource(issuers or [idp.issuer], **options)


def _log_lines(capsys) -> list[dict]:
    # Our log lines only: a loopback server thread of another test may print a traceback.
    return [json.loads(line) for line in capsys.readouterr().err.splitlines() if line.startswith("{")]


def _jwks_requests(idp) -> int:
    return sum(1 for r in idp.requests if r == "GET /jwks.json")


def test_keys_are_cached_per_container(idp):
    source = _source(idp, Clock())
    kid = idp.keys[0].kid
    assert source.get_key(idp.issuer, kid).kid == kid
    source.get_key(idp.issuer, kid)
    assert _jwks_requests(idp) == 1


def test_unknown_kid_refetches_at_most_once_per_interval(idp):
    clock = Clock()
    source = _source(idp, clock)
    source.get_key(idp.issuer, idp.keys[0].kid)
    for _ in range(20):
        with pytest.raises(UnknownKeyError):
            source.get_key(idp.issuer, "forged-kid")
    assert _jwks_requests(idp) == 2  # the first forged kid asked once, and started the cooldown
    clock.now += 29
    with pytest.raises(UnknownKeyError):
        source.get_key(idp.issuer, "another-forged-kid")
    assert _jwks_requests(idp) == 2
    clock.now += 2
    with pytest.raises(UnknownKeyError):
        source.get_key(idp.issuer, "forged-kid")
    assert _jwks_requests(idp) == 3


@pytest.mark.parametrize("after", ["the first fetch", "a cache-TTL refresh"])
def test_a_key_rotated_in_right_after_a_fetch_is_found_by_its_first_token(idp, after):
    # The refetch interval counts refreshes that unknown kids caused, not the fetch at
    # container start or a TTL refresh: a new container must not refuse a freshly
    # rotated key for JWKS_REFETCH_INTERVAL.
    clock = Clock()
    source = _source(idp, clock)
    source.get_key(idp.issuer, idp.keys[0].kid)
    if after == "a cache-TTL refresh":
        clock.now += 301
        source.get_key(idp.issuer, idp.keys[0].kid)
    fetched = _jwks_requests(idp)
    new = idp.rotate()
    clock.now += 1
    assert source.get_key(idp.issuer, new.kid).kid == new.kid
    assert _jwks_requests(idp) == fetched + 1


def test_a_kid_refresh_the_invocation_had_no_time_for_does_not_hold_back_the_next_one(idp):
    # Out of time, the refresh is not made (500, fail closed); it must not count as made,
    # or the rotated key would be refused for JWKS_REFETCH_INTERVAL.
    clock, budget = Clock(), InvocationBudget()
    source = _source(idp, clock, budget=budget)
    source.get_key(idp.issuer, idp.keys[0].kid)
    fetched = _jwks_requests(idp)
    new = idp.rotate()
    clock.now += 1
    budget.begin(lambda: 100)  # 0.1 s left: less than the reserve
    with pytest.raises(KeySourceError, match="no time is left"):
        source.get_key(idp.issuer, new.kid)
    assert _jwks_requests(idp) == fetched
    budget.begin(None)
    assert source.get_key(idp.issuer, new.kid).kid == new.kid
    assert _jwks_requests(idp) == fetched + 1


def test_an_unknown_kid_does_not_refetch_a_set_fetched_for_the_same_request(idp):
    clock = Clock()
    source = _source(idp, clock)
    source.get_key(idp.issuer, idp.keys[0].kid)
    clock.now += 301  # past the TTL: this request refreshes the set, which lacks the kid
    with pytest.raises(UnknownKeyError):
        source.get_key(idp.issuer, "forged-kid")
    assert _jwks_requests(idp) == 2


def test_an_unknown_kid_waits_out_a_failed_fetch(idp):
    clock = Clock()
    source = _source(idp, clock)
    kid = idp.keys[0].kid
    source.get_key(idp.issuer, kid)
    idp.jwks_override = lambda: (503, b"unavailable")
    clock.now += 301  # the TTL refresh fails: the last good keys still verify
    assert source.get_key(idp.issuer, kid).kid == kid
    asked = _jwks_requests(idp)
    clock.now += 1
    with pytest.raises(UnknownKeyError):
        source.get_key(idp.issuer, "forged-kid")
    assert _jwks_requests(idp) == asked


def test_rotated_key_is_found_by_one_refetch(idp):
    clock = Clock()
    source = _source(idp, clock)
    source.get_key(idp.issuer, idp.keys[0].kid)
    new = idp.rotate()
    clock.now += 31
    assert source.get_key(idp.issuer, new.kid).kid == new.kid


def test_endpoint_down_keeps_last_good_keys_up_to_max_stale(idp):
    clock = Clock()
    source = _source(idp, clock)
    kid = idp.keys[0].kid
    source.get_key(idp.issuer, kid)
    idp.jwks_override = lambda: (503, b"unavailable")
    clock.now += 301  # past the TTL: refresh fails, cached keys still verify
    assert source.get_key(idp.issuer, kid).kid == kid
    clock.now += 500  # still within TTL + max_stale
    assert source.get_key(idp.issuer, kid).kid == kid
    clock.now += 200  # beyond: fail closed
    with pytest.raises(KeySourceError):
        source.get_key(idp.issuer, kid)
    idp.jwks_override = None
    clock.now += 31
    assert source.get_key(idp.issuer, kid).kid == kid  # recovers once the IdP is back


def test_a_broken_answer_never_replaces_good_keys(idp):
    clock = Clock()
    source = _source(idp, clock)
    kid = idp.keys[0].kid
    source.get_key(idp.issuer, kid)
    idp.jwks_override = lambda: (200, b'{"keys": "nope"}')
    clock.now += 301
    assert source.get_key(idp.issuer, kid).kid == kid


def test_cold_start_with_endpoint_down_fails_closed(idp):
    idp.jwks_override = lambda: (500, b"{}")
    with pytest.raises(KeySourceError):
        _source(idp, Clock()).get_key(idp.issuer, idp.keys[0].kid)


def test_discovery_finds_the_jwks_uri(idp):
    source = _source(idp, Clock(), jwks_uris=())
    assert source.get_key(idp.issuer, idp.keys[0].kid)
    assert "GET /.well-known/openid-configuration" in idp.requests


def test_discovery_for_another_issuer_is_refused(idp):
    idp.routes[("GET", "/.well-known/openid-configuration")] = lambda h, b: (
        200, {}, b'{"issuer": "https://other.example", "jwks_uri": "https://other.example/jwks"}')
    with pytest.raises(KeySourceError):
        _source(idp, Clock(), jwks_uris=()).get_key(idp.issuer, idp.keys[0].kid)


def test_redirects_are_not_followed(idp):
    idp.routes[("GET", "/moved")] = lambda h, b: (302, {"Location": idp.jwks_uri}, b"")
    with pytest.raises(KeySourceError):
        _source(idp, Clock(), jwks_uris=[f"{idp.issuer}/moved"]).get_key(idp.issuer, idp.keys[0].kid)
    assert _jwks_requests(idp) == 0


def test_slow_endpoint_times_out_quickly(idp):
    def slow(handler, body):
        time.sleep(1.5)
        return 200, {}, b"{}"

    idp.routes[("GET", "/slow")] = slow
    started = time.monotonic()
    with pytest.raises(KeySourceError):
        _source(idp, Clock(), jwks_uris=[f"{idp.issuer}/slow"], timeout=0.3).get_key(idp.issuer, "k")
    assert time.monotonic() - started < 1.2


@pytest.mark.parametrize("variable,value", [("ISSUER", "http://idp.example.com"),
                                            ("JWKS_URI", "http://idp.example.com/jwks"),
                                            ("JWKS_URI", "ftp://127.0.0.1/jwks")])
def test_key_material_only_over_https_except_loopback(variable, value):
    env = {"ISSUER": "https://idp.example.com", "AUDIENCE": "a", variable: value}
    with pytest.raises(ConfigurationError) as info:
        Settings.from_environ(env)
    assert info.value.variable == variable


def test_loopback_http_is_accepted_for_local_development():
    settings = Settings.from_environ({"ISSUER": "http://127.0.0.1:9000", "AUDIENCE": "a",
                                      "JWKS_URI": "http://localhost:9000/jwks.json"})
    assert settings.jwks_uris == ("http://localhost:9000/jwks.json",)


# Revocation: the issuer's answer is its word (issue 13, item 3).

def test_a_removed_key_stops_verifying_once_the_cache_ttl_has_passed(idp):
    # The unknown-kid refetch interval is longer than the TTL; it must not delay the TTL refresh.
    clock = Clock()
    source = _source(idp, clock, cache_ttl=300, refetch_interval=900)
    old = idp.keys[0].kid
    source.get_key(idp.issuer, old)
    new = idp.rotate(keep_old=False)
    clock.now += 299
    assert source.get_key(idp.issuer, old).kid == old  # within the TTL the cached set is used
    clock.now += 2
    with pytest.raises(UnknownKeyError):
        source.get_key(idp.issuer, old)
    assert source.get_key(idp.issuer, new.kid).kid == new.kid
    assert _jwks_requests(idp) == 2


@pytest.mark.parametrize("document", [
    b'{"keys": []}',
    b'{"keys": [{"kty": "oct", "kid": "k1", "k": "c2VjcmV0"}]}',
    b'{"keys": [{"kty": "RSA", "kid": "k2", "use": "enc", "n": "AQAB", "e": "AQAB"}]}',
], ids=["no keys", "only an oct key", "only an enc key"])
def test_an_answer_without_usable_keys_revokes_every_key(idp, capsys, document):
    clock = Clock()
    source = _source(idp, clock)
    kid = idp.keys[0].kid
    source.get_key(idp.issuer, kid)
    idp.jwks_override = lambda: (200, document)
    clock.now += 301
    with pytest.raises(KeySourceError):
        source.get_key(idp.issuer, kid)
    assert any(e["level"] == "ERROR" and e["event"] == "jwks_no_usable_keys" and e["issuer"] == idp.issuer
               for e in _log_lines(capsys))
    for _ in range(5):  # and it stays so, without a request per token
        with pytest.raises(KeySourceError):
            source.get_key(idp.issuer, kid)
    # The first fetch, the TTL refresh, and one refetch for the kid it no longer has.
    assert _jwks_requests(idp) == 3
    idp.jwks_override = None  # the issuer publishes keys again: found by the next refetch
    clock.now += 31
    assert source.get_key(idp.issuer, kid).kid == kid


def test_an_answer_without_usable_keys_at_cold_start_fails_closed(idp):
    idp.jwks_override = lambda: (200, b'{"keys": []}')
    with pytest.raises(KeySourceError):
        _source(idp, Clock()).get_key(idp.issuer, idp.keys[0].kid)


@pytest.mark.parametrize("answer", [(500, b'{"keys": []}'), (200, b"<html>busy</html>"), (200, b"[]"),
                                    (200, b'{"keys": {}}'), (200, b'{"no": "keys"}')],
                         ids=["500", "not JSON", "a list", "keys not a list", "no keys member"])
def test_a_failed_or_unparsable_answer_keeps_the_last_good_keys(idp, answer):
    clock = Clock()
    source = _source(idp, clock)
    kid = idp.keys[0].kid
    source.get_key(idp.issuer, kid)
    idp.jwks_override = lambda: answer
    clock.now += 301
    assert source.get_key(idp.issuer, kid).kid == kid


def test_a_timed_out_refresh_keeps_the_last_good_keys(idp):
    clock = Clock()
    source = _source(idp, clock, timeout=0.3)
    kid = idp.keys[0].kid
    source.get_key(idp.issuer, kid)
    idp.jwks_override = lambda: (time.sleep(1), (200, b'{"keys": []}'))[1]
    clock.now += 301
    assert source.get_key(idp.issuer, kid).kid == kid


def test_a_failing_endpoint_is_asked_at_most_once_per_retry_interval(idp):
    # After a failed TTL refresh the next try waits min(JWKS_CACHE_TTL, JWKS_REFETCH_INTERVAL).
    clock = Clock()
    source = _source(idp, clock, cache_ttl=300, refetch_interval=60)
    kid = idp.keys[0].kid
    source.get_key(idp.issuer, kid)
    idp.jwks_override = lambda: (503, b"unavailable")
    clock.now += 301
    for _ in range(10):
        assert source.get_key(idp.issuer, kid).kid == kid
    assert _jwks_requests(idp) == 2
    clock.now += 59
    source.get_key(idp.issuer, kid)
    assert _jwks_requests(idp) == 2
    clock.now += 2
    source.get_key(idp.issuer, kid)
    assert _jwks_requests(idp) == 3

    clock = Clock()  # now the TTL is the shorter one
    short = _source(idp, clock, cache_ttl=20, refetch_interval=600)
    idp.jwks_override = None
    short.get_key(idp.issuer, kid)
    idp.jwks_override = lambda: (503, b"unavailable")
    clock.now += 21
    short.get_key(idp.issuer, kid)
    clock.now += 19
    short.get_key(idp.issuer, kid)
    assert _jwks_requests(idp) == 5
    clock.now += 2
    short.get_key(idp.issuer, kid)
    assert _jwks_requests(idp) == 6


# The prefetch at container start: one budget for all issuers (issue 13, item 5).

def test_prefetch_shares_one_budget_and_leaves_the_rest_to_first_use(idp, capsys):
    with TricklingServer(list, interval=0.2) as hung:  # accepts and never answers
        source = _source(idp, time.monotonic, jwks_uris=[f"{hung.url}/jwks.json", idp.jwks_uri], timeout=10,
                         issuers=[hung.url, idp.issuer])
        started = time.monotonic()
        with hard_limit(8):
            source.prefetch(budget=0.5)
        elapsed = time.monotonic() - started
    assert elapsed < 2.5
    events = {(e["event"], e["issuer"]) for e in _log_lines(capsys) if e["event"].startswith("jwks_prefetch")}
    assert events == {("jwks_prefetch_failed", hung.url), ("jwks_prefetch_skipped", idp.issuer)}
    assert _jwks_requests(idp) == 0
    assert source.get_key(idp.issuer, idp.keys[0].kid)  # fetched on first use


def test_a_failed_prefetch_does_not_delay_the_first_request(idp):
    idp.jwks_override = lambda: (503, b"starting up")
    source = _source(idp, Clock())
    source.prefetch()
    idp.jwks_override = None
    kid = idp.keys[0].kid
    assert source.get_key(idp.issuer, kid).kid == kid
    assert _jwks_requests(idp) == 2


def test_discovery_and_jwks_share_one_jwks_timeout():
    # GIVEN discovery that answers slowly but completely (about 1.6 s) and a JWKS URI that
    # never answers, with JWKS_TIMEOUT=2
    with TricklingServer(list) as hung_jwks, TricklingServer(lambda: discovery_pieces, interval=0.2) as discovery:
        body = json.dumps({"issuer": discovery.url, "jwks_uri": f"{hung_jwks.url}/jwks.json"}).encode()
        head = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n" % len(body)
        discovery_pieces = [head] + [body[len(body) * i // 8:len(body) * (i + 1) // 8] for i in range(8)]
        source = _source(None, time.monotonic, jwks_uris=[], timeout=2, issuers=[discovery.url])
        started = time.monotonic()
        # WHEN the first request needs the keys
        with hard_limit(8), pytest.raises(KeySourceError):
            source.get_key(discovery.url, "any-kid")
        elapsed = time.monotonic() - started
    # THEN discovery and JWKS together took one JWKS_TIMEOUT, not one each (3.6 s)
    print(f"discovery (1.6 s) + hung JWKS with JWKS_TIMEOUT=2: {elapsed:.2f} s")
    assert elapsed < 2.8


def test_every_failed_fetch_is_logged_and_counted(idp, capsys):
    # The JwksFailures alarm counts failed fetches: a warm container whose issuer is down
    # must count each fetch it makes (a first fetch, the TTL refresh, an unknown kid's
    # refresh), not only the one at container start.
    clock = Clock()
    source = _source(idp, clock, cache_ttl=300, refetch_interval=30)
    kid = idp.keys[0].kid
    idp.jwks_override = lambda: (503, b"unavailable")
    with pytest.raises(KeySourceError):
        source.get_key(idp.issuer, kid)  # never loaded: a first fetch fails
    clock.now += 31
    idp.jwks_override = None
    source.get_key(idp.issuer, kid)
    idp.jwks_override = lambda: (503, b"unavailable")
    clock.now += 31
    with pytest.raises(KeySourceError):
        source.get_key(idp.issuer, "rotated-in")  # an unknown kid's refresh fails
    clock.now += 300  # the TTL refresh fails; the last good keys still verify
    assert source.get_key(idp.issuer, kid).kid == kid
    failed = [line for line in _log_lines(capsys) if line["event"] == "jwks_refresh_failed"]
    assert len(failed) == 3 == _jwks_requests(idp) - 1
    assert all(line["JwksFailures"] == 1 and line["issuer"] == idp.issuer for line in failed)
    assert "stale_seconds" not in failed[0] and [line["stale_seconds"] for line in failed[1:]] == [31, 331]
