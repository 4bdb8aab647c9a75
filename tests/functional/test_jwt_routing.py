"""Which token goes to introspection, through the real handler and a real endpoint on 127.0.0.1.

A JWT of a configured ISSUER is verified locally and never introspected, however it is
damaged: an authorization server that reads its own JWTs leniently would otherwise
answer ``active`` for ``<JWT>=`` and turn, say, an ID token into an Allow. The endpoint
here is worse than that: it answers ``active: true`` for every token it is asked about,
so any token that reaches it would be allowed, and the request log shows whether it did.
"""

from __future__ import annotations

import base64
import json
import secrets
import time

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from policy_engine.admin.local.idp import LocalIdentityProvider
from policy_engine.admin.local.invoke import invoke
from policy_engine.core.iam import Verdict
from tests.conftest import AUDIENCE, verdict
from tests.request_events import KINDS, event_of

CLIENT_ID, SECRET = "authorizer", "introspection-secret"
# What RFC 6750 allows in a bearer token (b64token), '=' included.
TOKEN_CHARS = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~+/="


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def active_for_everything(idp: LocalIdentityProvider) -> None:
    now = int(time.time())
    answer = {"active": True, "iss": idp.issuer, "sub": "whoever", "aud": AUDIENCE, "scope": "pets:read",
              "token_type": "Bearer", "exp": now + 3600}
    idp.introspection_override = lambda: (200, json.dumps(answer).encode())


@pytest.fixture
def handler(idp, make_handler):
    idp.register_client(CLIENT_ID, SECRET)
    active_for_everything(idp)
    return make_handler(INTROSPECTION_URL=idp.introspection_endpoint, INTROSPECTION_CLIENT_ID=CLIENT_ID,
                        INTROSPECTION_CLIENT_SECRET=SECRET)


def introspections(idp: LocalIdentityProvider) -> int:
    return idp.requests.count("POST /introspect")


def damaged(token: str) -> dict[str, str]:
    header, payload, signature = token.split(".")
    swapped = token.replace("-", "+").replace("_", "/")
    return {
        "pad=": token + "=",
        "pad==": token + "==",
        "slash": token + "/",
        "plus": token + "+",
        "tilde": token + "~",
        "letters": token + "AAAA",
        "dot": token + ".",
        "fourth-part": token + ".e30",
        "two-dots": token + "..",
        "padded-header": f"{header}=.{payload}.{signature}",
        "padded-payload": f"{header}.{payload}==.{signature}",
        "padded-segments": f"{header}==.{payload}=.{signature}=",
        "standard-alphabet": swapped if swapped != token else token + "/",
        "tilde-inside-payload": f"{header}.{payload[:9]}~{payload[9:]}.{signature}",
        "char-inside-header": f"{header[:5]}A{header[5:]}.{payload}.{signature}",
        "dot-inside-header": f"{header[:5]}.{header[5:]}.{payload}.{signature}",
        "dot-inside-payload": f"{header}.{payload[:12]}.{payload[12:]}.{signature}",
        "prefix": "A" + token,
        "no-signature": f"{header}.{payload}.",
        "header-and-payload": f"{header}.{payload}",
        "payload-only": payload,
    }


DAMAGE = list(damaged("a.b.c"))


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("how", DAMAGE)
def test_a_damaged_jwt_of_the_issuer_is_refused_and_never_introspected(idp, handler, kind, how):
    # An ID token: right issuer and signature, another audience; the endpoint would say active.
    token = damaged(idp.mint(scope="pets:read", audience="some-other-client", nonce="n"))[how]
    result = invoke(handler, event_of(kind, token, "GET", "/pets"))
    assert result.unauthorized, (how, result.error, result.response)
    assert introspections(idp) == 0


def test_the_undamaged_jwt_is_verified_locally(idp, handler):
    result = invoke(handler, event_of("REQUEST", idp.mint(scope="pets:read"), "GET", "/pets"))
    assert verdict(result, "GET", "/pets") is Verdict.ALLOW
    assert invoke(handler, event_of("REQUEST", idp.mint(audience="other"), "GET", "/pets")).unauthorized
    assert introspections(idp) == 0


@pytest.mark.parametrize(
    "token",
    [
        secrets.token_urlsafe(32) + "." + secrets.token_urlsafe(16),  # e.g. an HMAC-suffixed handle
        ".".join(secrets.token_urlsafe(12) for _ in range(3)),  # three parts, none of them JSON
        "ory_at_" + secrets.token_urlsafe(24) + "." + secrets.token_urlsafe(24),
        secrets.token_urlsafe(32) + "==",
        b64url(b'{"not": "a header"}') + "." + secrets.token_urlsafe(16),  # JSON, but no alg
    ],
    ids=["two-parts", "three-parts", "prefixed", "padded", "json-without-alg"],
)
def test_opaque_tokens_with_dots_still_go_to_introspection(idp, handler, token):
    result = invoke(handler, event_of("REQUEST", token, "GET", "/pets"))
    assert verdict(result, "GET", "/pets") is Verdict.ALLOW  # the endpoint's answer decided
    assert introspections(idp) == 1


def test_a_jwt_of_another_issuer_still_goes_to_introspection(idp, handler):
    # Not ours to verify: the migration case of docs/tokens.md, damaged or not.
    with LocalIdentityProvider() as other:
        token = other.mint(scope="pets:read")
    for sent, candidate in enumerate((token, token + "=", token + "/"), start=1):
        assert verdict(invoke(handler, event_of("REQUEST", candidate, "GET", "/pets")), "GET", "/pets") \
            is Verdict.ALLOW
        assert introspections(idp) == sent


def test_an_encrypted_jwt_goes_to_introspection(idp, handler):
    # A JWE (RFC 7516): only the authorization server can read it.
    header = b64url(json.dumps({"alg": "RSA-OAEP-256", "enc": "A256GCM", "kid": "as-key"}).encode())
    token = ".".join([header, *(b64url(secrets.token_bytes(n)) for n in (256, 12, 64, 16))])
    assert verdict(invoke(handler, event_of("REQUEST", token, "GET", "/pets")), "GET", "/pets") is Verdict.ALLOW
    assert introspections(idp) == 1


def test_a_jwt_header_with_an_unreadable_payload_is_refused_locally(idp, handler):
    # It may be ours with its payload damaged beyond reading: it must not leave.
    header = idp.mint().split(".")[0]
    token = f"{header}.{b64url(secrets.token_bytes(40))}.{b64url(secrets.token_bytes(256))}"
    assert invoke(handler, event_of("REQUEST", token, "GET", "/pets")).unauthorized
    assert introspections(idp) == 0


# Rewrites a lenient base64 reader undoes, any number of them: '+' and '/' for '-' and
# '_', a '~' anywhere, '=' anywhere.
rewrites = st.lists(st.tuples(st.sampled_from(["alphabet", "tilde", "pad"]), st.floats(0, 1)), max_size=6)


def rewrite(token: str, steps: list[tuple[str, float]]) -> str:
    for how, where in steps:
        at = int(where * len(token))
        if how == "alphabet":
            token = token.replace("-", "+", 1) if where < 0.5 else token.replace("_", "/", 1)
        else:
            token = token[:at] + ("~" if how == "tilde" else "=") + token[at:]
    return token


BASE64 = set(TOKEN_CHARS) - set(".~=")


def not_whole_quanta(text: str) -> bool:
    # Whole base64 quanta (4 characters, 3 bytes) spliced into the payload can make it
    # read as other claims naming another issuer: a different token, which no reader
    # recovers the original from (tests/unit/test_token_shape.py holds that case).
    return "." in text or sum(c in BASE64 for c in text) % 4 != 0


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    kind=st.sampled_from(KINDS),
    steps=rewrites,
    insert_at=st.floats(0, 1),
    inserted=st.text(TOKEN_CHARS, max_size=8).filter(not_whole_quanta),
    appended=st.text(TOKEN_CHARS, max_size=8),
)
def test_no_mutation_of_a_jwt_of_the_issuer_is_ever_introspected(idp, handler, kind, steps, insert_at, inserted,
                                                                  appended):
    # GIVEN a valid JWT of ISSUER, rewritten, with characters inserted at one place and appended
    token = idp.mint(scope="pets:read")
    mutated = rewrite(token, steps)
    at = int(insert_at * len(mutated))
    mutated = mutated[:at] + inserted + mutated[at:] + appended
    if mutated == token:
        return
    before = introspections(idp)
    result = invoke(handler, event_of(kind, mutated, "GET", "/pets"))
    # THEN it is refused here, and the endpoint that says active to anything never saw it
    assert result.unauthorized, (result.error, result.response)
    assert introspections(idp) == before
