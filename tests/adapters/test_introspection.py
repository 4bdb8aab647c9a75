"""The introspection adapter against a real RFC 7662 endpoint on 127.0.0.1."""

from __future__ import annotations

import time

import pytest

from policy_engine.adapters.introspection import IntrospectionClient
from policy_engine.admin.local.idp import LocalIdentityProvider
from policy_engine.errors import InactiveTokenError, IntrospectionError

CLIENT_ID, SECRET = "policy-engine", "s3cret with spaces & symbols:"


class Clock:
    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def server(idp: LocalIdentityProvider) -> LocalIdentityProvider:
    idp.register_client(CLIENT_ID, SECRET)
    return idp


def client(server: LocalIdentityProvider, clock: Clock | None = None, **options) -> IntrospectionClient:
    settings = {"client_id": CLIENT_ID, "client_secret": SECRET, "auth_method": "client_secret_basic",
                "timeout": 2.0, "cache_ttl": 60.0, "negative_ttl": 5.0}
    # One fake clock serves as both clocks unless a test sets the wall clock apart.
    clocks = {"clock": clock or time.monotonic, "wall_clock": clock or time.time}
    return IntrospectionClient(server.introspection_endpoint, **{**settings, **clocks, **options})


def calls(server: LocalIdentityProvider) -> int:
    return server.requests.count("POST /introspect")


@pytest.mark.parametrize("method", ["client_secret_basic", "client_secret_post"])
def test_active_answer_with_either_client_authentication(server, method):
    token = server.issue_opaque(scope="pets:read", subject="svc-a")
    answer = client(server, auth_method=method).introspect(token)
    assert answer["active"] is True and answer["sub"] == "svc-a" and answer["scope"] == "pets:read"
    assert server.introspection_auth == [method]


def test_wrong_client_secret_is_a_failure_not_an_inactive_token(server):
    bad = client(server, client_secret="wrong")
    with pytest.raises(IntrospectionError, match="answered 401"):
        bad.introspect(server.issue_opaque())


def test_unknown_and_revoked_tokens_are_inactive(server):
    c = client(server, negative_ttl=0)
    with pytest.raises(InactiveTokenError):
        c.introspect("never-issued")
    token = server.issue_opaque()
    server.revoke(token)
    with pytest.raises(InactiveTokenError):
        c.introspect(token)


@pytest.mark.parametrize(
    "status, body",
    [
        (500, b'{"error":"server_error"}'),
        (200, b"not json"),
        (200, b'{"active":"true","sub":"x"}'),  # a string is not the boolean true
        (200, b'{"sub":"x","scope":"pets:read"}'),  # active missing
        (200, b'[{"active":true}]'),
        (302, b""),
    ],
)
def test_unusable_answers_fail_closed_and_are_not_cached(server, status, body):
    c = client(server)
    token = server.issue_opaque()
    server.introspection_override = lambda: (status, body)
    with pytest.raises(IntrospectionError):
        c.introspect(token)
    # the failure was not remembered as "inactive": the next call asks again and succeeds
    server.introspection_override = None
    assert c.introspect(token)["active"] is True
    assert calls(server) == 2


def test_timeout_fails_closed(server):
    def slow():
        time.sleep(0.5)
        return 200, b'{"active":true}'

    server.introspection_override = slow
    with pytest.raises(IntrospectionError, match=r"TimeoutError|timed out"):
        client(server, timeout=0.1).introspect(server.issue_opaque())


def test_positive_answers_are_cached_up_to_the_maximum(server):
    clock = Clock()
    c = client(server, clock, cache_ttl=60)
    token = server.issue_opaque(lifetime=3600)
    c.introspect(token)
    clock.now += 59
    c.introspect(token)
    assert calls(server) == 1
    clock.now += 2
    c.introspect(token)
    assert calls(server) == 2


def test_positive_answers_are_never_cached_past_exp(server):
    clock = Clock()
    c = client(server, clock, cache_ttl=600)
    token = server.issue_opaque(lifetime=10)
    c.introspect(token)
    server.revoke(token)
    clock.now += 9
    assert c.introspect(token)["active"] is True  # still cached, within exp
    clock.now += 2
    with pytest.raises(InactiveTokenError):
        c.introspect(token)


def test_negative_answers_are_cached_briefly(server):
    clock = Clock()
    c = client(server, clock, negative_ttl=5)
    for _ in range(3):
        with pytest.raises(InactiveTokenError):
            c.introspect("unknown-token")
    assert calls(server) == 1
    clock.now += 6
    with pytest.raises(InactiveTokenError):
        c.introspect("unknown-token")
    assert calls(server) == 2


def test_cache_is_keyed_by_a_hash_never_the_token(server):
    c = client(server)
    token = server.issue_opaque()
    c.introspect(token)
    assert token not in repr(c._cache)
    assert all(len(key) == 64 for key in c._cache)


def test_cache_stays_bounded(server):
    c = client(server, max_entries=3)
    for _ in range(5):
        c.introspect(server.issue_opaque())
    assert len(c._cache) == 3


def test_cache_stays_bounded_in_bytes_whatever_the_answers_hold(server):
    # Large answers (up to the 64 KB an answer may have) for many tokens: the cache keeps
    # the newest that fit its byte budget, and still answers every token from the server.
    import json

    c = client(server, max_bytes=200_000)
    padding = ["x" * 100] * 400  # about 41 KB as JSON
    answers = []
    for i in range(20):
        body = json.dumps({"active": True, "sub": f"svc-{i}", "scope": "pets:read", "padding": padding}).encode()
        server.introspection_override = lambda body=body: (200, body)
        answers.append(c.introspect(f"token-{i}"))
    held = [entry for entry in c._cache.values()]
    assert 1 < len(held) <= 4 and c._cached_bytes == sum(entry[2] for entry in held) <= 200_000
    assert [entry[1]["sub"] for entry in held] == [a["sub"] for a in answers[-len(held):]]
    assert c.introspect("token-19")["sub"] == "svc-19"  # the newest is served from the cache


def test_a_wall_clock_step_back_does_not_stretch_the_cache(server):
    # TTLs run on the monotonic clock; the wall clock only bounds an entry by the token's exp.
    monotonic, wall = Clock(), Clock()
    c = client(server, monotonic, wall_clock=wall, cache_ttl=60)
    token = server.issue_opaque(lifetime=3600)
    c.introspect(token)
    server.revoke(token)
    wall.now -= 3600  # NTP (or an operator) steps the wall clock back an hour
    monotonic.now += 61
    wall.now += 61
    with pytest.raises(InactiveTokenError):
        c.introspect(token)
    assert calls(server) == 2


def test_exp_bounds_an_entry_even_when_the_clocks_disagree(server):
    monotonic, wall = Clock(), Clock()
    monotonic.now = 5.0  # a monotonic clock has its own origin
    c = client(server, monotonic, wall_clock=wall, cache_ttl=600)
    token = server.issue_opaque(lifetime=10)
    c.introspect(token)
    server.revoke(token)
    monotonic.now += 9
    assert c.introspect(token)["active"] is True
    monotonic.now += 2
    with pytest.raises(InactiveTokenError):
        c.introspect(token)


@pytest.mark.parametrize("exp", [10**400, -(10**400), 1e308], ids=["int past a float", "negative", "huge float"])
def test_an_exp_no_float_can_hold_is_no_failure(server, exp):
    # JSON integers have no bound; the cache lifetime is computed without converting one
    # to a float, so the answer reaches the claim rules (which judge exp) instead of a 500.
    body = b'{"active": true, "sub": "ann", "exp": ' + str(exp).encode() + b"}"
    server.routes[("POST", "/introspect")] = lambda handler, request_body: (200, {}, body)
    clock = Clock()
    c = client(server, clock)
    assert c.introspect("opaque-token-1")["exp"] == exp
    c.introspect("opaque-token-1")
    assert calls(server) == 1  # cached, for at most INTROSPECTION_CACHE_TTL


def test_basic_credentials_are_form_encoded_as_rfc_6749_appendix_b_writes_them():
    # RFC 6749 §2.3.1 and Appendix B: " %&+£€" is written "+%25%26%2B%C2%A3%E2%82%AC".
    import base64
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    seen: list[str] = []

    class Recorder(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self.rfile.read(int(self.headers["Content-Length"]))
            seen.append(self.headers["Authorization"])
            body = b'{"active": true, "sub": "svc"}'
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    with ThreadingHTTPServer(("127.0.0.1", 0), Recorder) as httpd:
        thread = threading.Thread(target=httpd.serve_forever, daemon=True)
        thread.start()
        try:
            introspector = IntrospectionClient(
                f"http://127.0.0.1:{httpd.server_address[1]}/introspect", client_id="rs client",
                client_secret=" %&+£€", auth_method="client_secret_basic", timeout=2.0, cache_ttl=0.0,
                negative_ttl=0.0)
            assert introspector.introspect("opaque")["active"] is True
        finally:
            httpd.shutdown()
            thread.join(5)
    (authorization,) = seen
    assert authorization.startswith("Basic ")
    assert base64.b64decode(authorization[6:]).decode() == "rs+client:+%25%26%2B%C2%A3%E2%82%AC"
