"""core.tokens.may_be_jwt_of (which tokens never go to introspection) and the member
types of introspection answers, without I/O."""

from __future__ import annotations

import base64
import json
import secrets

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from policy_engine.core.tokens import may_be_jwt_of, validate_introspection
from policy_engine.errors import InvalidClaimsError, TokenError

ISSUER = "https://idp.example.com/tenant"
OTHER = "https://other.example.com"
TOKEN_CHARS = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~+/="


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def jws(payload: dict, header: dict | None = None, text: str | None = None) -> str:
    head = b64url(json.dumps(header or {"alg": "RS256", "kid": "k1", "typ": "at+jwt"}).encode())
    body = b64url((text if text is not None else json.dumps(payload)).encode())
    return f"{head}.{body}.{b64url(secrets.token_bytes(256))}"


TOKEN = jws({"iss": ISSUER, "sub": "u", "aud": "api", "exp": 4102444800, "scope": "pets:read"})


@pytest.mark.parametrize(
    "token",
    [
        TOKEN,
        TOKEN + "=",
        TOKEN + "==",
        TOKEN + "/",
        TOKEN + ".",
        "A" + TOKEN,
        TOKEN.split(".", 1)[1],  # without its header
        jws({"iss": ISSUER}, {"alg": "none"}),
        jws({}, text='{"iss": "https:\\/\\/idp.example.com\\/tenant"}'),  # escaped slashes name it too
        jws({}, text='{"iss": "' + ISSUER + '", "sub": "u", broken'),  # the member, whatever follows
        jws({"sub": "u"}, {"alg": "RS256", "iss": ISSUER}),  # replicated in the header (RFC 7519 §5.3)
        jws({}, text="not json at all"),  # a JOSE header and a payload that cannot be read
        jws({}, text='{"iss": "' + OTHER + '"} trailing'),  # not whole: may be a damaged one of ours
        jws({}, text='{"iss": "' + OTHER + '", "iss": "x"}'),  # duplicate members: not readable
        b64url(b'{"alg":"RS256"}'),  # a header alone
    ],
)
def test_tokens_that_stay_local(token):
    assert may_be_jwt_of(token, {ISSUER}) is True


@pytest.mark.parametrize(
    "token",
    [
        secrets.token_urlsafe(32),
        secrets.token_urlsafe(32) + "." + secrets.token_urlsafe(16),
        "a.b.c",
        "....",
        b64url(b'{"kid": "no alg here"}') + "." + secrets.token_urlsafe(8),
        jws({"iss": OTHER, "sub": "u"}),  # a JWT of another issuer: introspection decides
        jws({"iss": OTHER}) + "=",
        jws({"sub": "u"}),  # readable, names no configured issuer
        jws({"iss": ["x", ISSUER + "x"]}),
        ".".join([b64url(b'{"alg":"RSA-OAEP","enc":"A256GCM"}'),
                  *(b64url(secrets.token_bytes(n)) for n in (256, 12, 64, 16))]),  # a JWE
    ],
)
def test_tokens_that_may_go_to_introspection(token):
    assert may_be_jwt_of(token, {ISSUER}) is False


def test_without_issuers_nothing_is_local():
    assert may_be_jwt_of(TOKEN, ()) is False


BASE64 = set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_+/")


def mutate(token: str, steps: list[tuple[str, float]], insert_at: float, inserted: str, appended: str) -> str:
    # Characters a lenient reader ignores or maps back ('~', '=', '+' and '/' for '-' and
    # '_'), any number of them, then anything inserted at one place, and anything appended.
    for char, where in steps:
        at = int(where * len(token))
        if char in "+/":
            token = token[:at] + token[at:].replace("-" if char == "+" else "_", char, 1)
        else:
            token = token[:at] + char + token[at:]
    at = int(insert_at * len(token))
    return token[:at] + inserted + token[at:] + appended


def names_another_issuer(token: str) -> bool:
    """The second part, base64url-decoded after dropping '~' and '=', is a whole JSON
    object whose iss is not ISSUER: by its shape, a JWT of another issuer."""
    parts = token.split(".")
    if len(parts) < 2:
        return False
    text = "".join(c for c in parts[1] if c in BASE64).replace("+", "-").replace("/", "_")
    text = text[: len(text) - (len(text) % 4 == 1)]
    try:
        payload = json.loads(base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)).decode("utf-8"))
    except ValueError:
        return False
    return isinstance(payload, dict) and payload.get("iss") != ISSUER


mutations = {
    "steps": st.lists(st.tuples(st.sampled_from("~=+/"), st.floats(0, 1)), max_size=8),
    "insert_at": st.floats(0, 1),
    "inserted": st.text(TOKEN_CHARS, max_size=12),
    "appended": st.text(TOKEN_CHARS, max_size=12),
}


@settings(max_examples=2000, deadline=None)
@given(**mutations)
def test_a_mutated_jwt_of_the_issuer_stays_local_unless_its_claims_changed(steps, insert_at, inserted, appended):
    # Whole base64 quanta spliced into the payload can make it read as other claims, with
    # another iss: a different token that no reader recovers the original from, and by
    # shape a JWT of another issuer, which docs/tokens.md sends to introspection. Nothing else
    # may leave.
    token = mutate(TOKEN, steps, insert_at, inserted, appended)
    assert may_be_jwt_of(token, {ISSUER}) or names_another_issuer(token)


@settings(max_examples=2000, deadline=None)
@given(**{**mutations, "inserted": st.text(TOKEN_CHARS, min_size=1, max_size=12).filter(
    lambda s: "." in s or sum(c in BASE64 for c in s) % 4 != 0)})
def test_a_jwt_of_the_issuer_with_anything_but_whole_quanta_inserted_stays_local(steps, insert_at, inserted,
                                                                                  appended):
    assert may_be_jwt_of(mutate(TOKEN, steps, insert_at, inserted, appended), {ISSUER}) is True


@settings(max_examples=500, deadline=None)
@given(st.lists(st.binary(min_size=1, max_size=48), min_size=1, max_size=5))
def test_random_opaque_tokens_with_dots_are_not_jwts(parts):
    assert may_be_jwt_of(".".join(b64url(p) for p in parts), {ISSUER}) is False


WRONG = {"null": None, "bool": True, "int": 7, "list": ["x"], "object": {"x": 1}, "string": "1"}
STRINGS = ("iss", "aud", "scope", "sub", "client_id", "token_type", "username")
DATES = ("exp", "nbf", "iat")
CASES = [(m, w) for m in STRINGS for w in WRONG if w != "string"] + [(m, w) for m in DATES for w in WRONG if w != "int"]


@pytest.mark.parametrize("member, wrong", CASES)
def test_a_present_member_of_the_wrong_type_is_a_token_error(member, wrong):
    answer = {"active": True, "iss": ISSUER, "aud": "api", "sub": "u", "exp": 4102444800, member: WRONG[wrong]}
    with pytest.raises(TokenError):
        validate_introspection(answer, issuers={ISSUER}, audiences={"api"}, now=1000.0, leeway=30)


def test_an_iss_list_is_refused_even_when_it_names_the_issuer():
    with pytest.raises(InvalidClaimsError, match="iss member is not a string"):
        validate_introspection({"active": True, "iss": [ISSUER]}, issuers={ISSUER}, audiences={"api"},
                               now=1000.0, leeway=30)
