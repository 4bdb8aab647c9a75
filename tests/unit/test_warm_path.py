"""The warm path answers exactly as the general path does, and only ever accepts.

Two authorizers share one real JWKS key source (127.0.0.1) and one permission cache:
one as built, one with the warm path switched off. Every event below, and every claim
set hypothesis signs, must get the same outcome from both, whether that is a response
or an error. Events the warm path is built for must actually take it.
"""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from policy_engine.adapters.memory import MemoryPermissionSource
from policy_engine.bootstrap import key_source
from policy_engine.cache import PermissionCache
from policy_engine.core.apikeys import ApiKeyRules
from policy_engine.core.decision import (
    MAX_RESPONSE_BYTES,
    response_size,
    response_size_bound,
)
from policy_engine.engine import Authorizer
from policy_engine.local.idp import LocalIdentityProvider
from policy_engine.settings import Settings
from tests.support.forge import b64, sign

API = "arn:aws:execute-api:us-east-1:123456789012:a1b2c3d4e5"
AUDIENCE = "policy-engine-demo"
RECORDS = [
    {"arn": API, "stage": "dev", "httpVerb": "GET", "resource": "/pets", "scope": "pets:read"},
    {"arn": API, "stage": "dev", "httpVerb": "GET", "resource": "/pets/*", "scope": "pets:read"},
    {"arn": API, "stage": "dev", "httpVerb": "POST", "resource": "/pets", "scope": "pets:write"},
    # Too many routes for one response (8 KB).
    *({"arn": API, "stage": "dev", "httpVerb": "GET", "resource": f"/big/{i}/items", "scope": "big"} for i in range(150)),
]


class Pair:
    def __init__(self, idp: LocalIdentityProvider, **env: str) -> None:
        self.idp = idp
        settings_ = Settings.from_environ({"ISSUER": idp.issuer, "AUDIENCE": AUDIENCE, "JWKS_URI": idp.jwks_uri, **env})
        keys = key_source(settings_)
        permissions = PermissionCache(MemoryPermissionSource(RECORDS), ttl=3600, max_stale=3600)
        self.warm = Authorizer(settings_, keys=keys, permissions=permissions)
        self.general = Authorizer(settings_, keys=keys, permissions=permissions)
        self.general._warm = None  # the path under comparison, switched off
        # Warm the memos the warm path relies on (header, API ARN, scope texts).
        for scope in ("pets:read", "pets:write", "pets:read pets:write", "other", None):
            for authorizer in (self.warm, self.general):
                authorizer.answer(event(idp.mint(scope=scope)))

    def outcomes(self, event_: Any) -> tuple[Any, Any]:
        return _outcome(self.warm, event_), _outcome(self.general, event_)


def _outcome(authorizer: Authorizer, event_: Any) -> Any:
    try:
        answer = authorizer.answer(event_)
    except Exception as exc:
        return ("refused", type(exc).__name__, str(exc))
    return ("answered", answer.response, answer.shape, answer.decision.reason)


def event(token: str | None, *, scheme: str = "Bearer ", arn: str = f"{API}/dev/GET/pets/7", **extra: Any) -> dict:
    return {"type": "TOKEN", "authorizationToken": None if token is None else scheme + token, "methodArn": arn,
            **extra}


@pytest.fixture(scope="module")
def pair() -> Iterator[Pair]:
    with LocalIdentityProvider() as idp:
        yield Pair(idp)


def test_plain_tokens_take_the_warm_path_and_get_the_general_answer(pair):
    for scope in ("pets:read", "pets:write", "pets:read pets:write", "other"):
        token_event = event(pair.idp.mint(scope=scope, subject=f"client-{scope}"))
        taken = pair.warm._warm.answer(token_event)
        assert taken is not None
        # The size bound's characters, counted on the way, are what it would recount.
        decision = taken.decision
        assert response_size_bound(decision) == response_size_bound(replace(decision, text_chars=None))
        warm, general = pair.outcomes(token_event)
        assert warm == general and warm[0] == "answered"
    # scp as a list, and a machine client without sub.
    for token in (pair.idp.mint(scope=["pets:read"]), pair.idp.mint(scope="pets:read", sub=None)):
        assert pair.warm._warm.answer(event(token)) is not None
        warm, general = pair.outcomes(event(token))
        assert warm == general and warm[0] == "answered"


def _forged(idp: LocalIdentityProvider, header: dict | str, payload: dict | str, signed_as: str = "RS256") -> str:
    head = header if isinstance(header, str) else json.dumps({"alg": "RS256", "kid": idp.keys[0].kid, "typ": "at+jwt",
                                                               **header})
    body = payload if isinstance(payload, str) else json.dumps(payload)
    signing_input = f"{b64(head.encode())}.{b64(body.encode())}"
    return f"{signing_input}.{b64(sign(signing_input.encode(), idp.keys[0].private_key, signed_as))}"


def _claims(idp: LocalIdentityProvider, **overrides: Any) -> dict[str, Any]:
    now = int(time.time())
    claims = {"iss": idp.issuer, "sub": "c1", "aud": AUDIENCE, "client_id": "c1", "iat": now, "exp": now + 600,
              "scope": "pets:read"}
    claims.update(overrides)
    return {k: v for k, v in claims.items() if v is not None}


def _cases(idp: LocalIdentityProvider) -> list[tuple[str, Any]]:
    now = int(time.time())
    good = idp.mint(scope="pets:read")
    head, body, signature = good.split(".")
    flipped = base64.urlsafe_b64decode(signature + "==")
    flipped = b64(flipped[:-1] + bytes([flipped[-1] ^ 1]))
    cases: list[tuple[str, Any]] = [
        ("no token", event(None)),
        ("empty", {"type": "TOKEN", "authorizationToken": "", "methodArn": f"{API}/dev/GET/pets"}),
        ("lower-case scheme", event(good, scheme="bearer ")),
        ("two spaces", event(good, scheme="Bearer  ")),
        ("other scheme", event(good, scheme="Basic ")),
        ("no scheme", event(good, scheme="")),
        ("trailing padding", event(good + "=")),
        ("two tokens", event(good + " " + good)),
        ("plus sign", event(good.replace("-", "+", 1) if "-" in good else good[:-1] + "+")),
        ("bad signature", event(f"{head}.{body}.{flipped}")),
        ("short signature", event(f"{head}.{body}.{signature[:-4]}")),
        ("four segments", event(good + ".x")),
        ("version key", event(good, version=None)),
        ("version 1.0", {**event(good), "version": "1.0"}),
        ("not a dict", [event(good)]),
        ("no methodArn", {"type": "TOKEN", "authorizationToken": f"Bearer {good}"}),
        ("stage wildcard", event(good, arn=f"{API}/*/GET/pets")),
        ("stage too long", event(good, arn=f"{API}/{'s' * 129}/GET/pets")),
        ("unknown API", event(good, arn="arn:aws:execute-api:us-east-1:123456789012:zzzz/dev/GET/pets")),
        ("bad API", event(good, arn="arn:aws:lambda:us-east-1:123456789012:x/dev/GET/pets")),
        ("other stage", event(good, arn=f"{API}/prod/GET/pets")),
        ("deny", event(idp.mint(scope="nothing"))),
        ("policy too large", event(idp.mint(scope="big"))),
        ("no scope", event(idp.mint(scope=None))),
        ("unknown kid", event(idp.mint(headers={"kid": "nobody"}))),
        ("new header member", event(idp.mint(headers={"x-extra": 1}))),
        ("duplicate member", event(_forged(idp, {}, json.dumps(_claims(idp))[:-1] + ', "sub": "other"}'))),
        ("whitespace around payload", event(_forged(idp, {}, " " + json.dumps(_claims(idp)) + " "))),
        ("payload not an object", event(_forged(idp, {}, "[1]"))),
        ("Cognito access token", event(_forged(idp, {}, _claims(idp, aud=None, token_use="access",
                                                                  client_id=AUDIENCE)))),
    ]
    for name, value in [("exp", now - 3600), ("exp", float(now + 600)), ("exp", str(now + 600)), ("exp", True),
                        ("exp", None), ("nbf", now + 3600), ("nbf", float(now)), ("nbf", "0"),
                        ("iat", now + 3600), ("iat", 1.5), ("aud", [AUDIENCE]), ("aud", ["x"]), ("aud", "x"),
                        ("aud", None), ("token_use", "id"), ("token_use", "access"), ("iss", "https://other"),
                        ("iss", 7), ("sub", ""), ("sub", 7), ("client_id", 7), ("scope", ["pets:read"]),
                        ("scope", 7), ("scp", "pets:read"), ("scp", [1]), ("username", 5), ("username", "ann"),
                        ("username", ["a", "b"])]:
        claims = _claims(idp, **{name: value})
        if value is None:
            claims.pop(name, None)
        cases.append((f"{name}={value!r}", event(_forged(idp, {}, claims))))
    cases.append(("iat null", event(_forged(idp, {}, {**_claims(idp), "iat": None}))))
    cases.append(("no sub, no client_id", event(_forged(idp, {}, _claims(idp, sub=None, client_id=None)))))
    return cases


def test_every_odd_or_hostile_event_gets_the_general_paths_outcome(pair):
    # Twice: the second time, whatever the first remembered (a new header) is warm.
    for attempt in (1, 2):
        for name, case in _cases(pair.idp):
            warm, general = pair.outcomes(case)
            assert warm == general, (attempt, name)


def test_an_alg_other_than_the_keys_is_refused_even_when_the_signature_fits_the_key():
    # RFC 8725 §3.1: the header says RS384, the key is bound to RS256, and the signature
    # is a valid RS256 one. Only the alg comparison refuses it.
    with LocalIdentityProvider() as idp:
        pair = Pair(idp, ALLOWED_ALGORITHMS="RS256,RS384")
        confused = event(_forged(idp, {"alg": "RS384"}, _claims(idp), signed_as="RS256"))
        for _ in (1, 2):
            warm, general = pair.outcomes(confused)
            assert warm == general and general[:2] == ("refused", "UnsupportedAlgorithmError")


def test_configurations_it_does_not_cover_do_not_build_it():
    with LocalIdentityProvider() as idp:
        assert Pair(idp, TOKEN_TYPES="at+jwt").warm._warm is None
        settings_ = Settings.from_environ({"ISSUER": idp.issuer, "AUDIENCE": AUDIENCE, "JWKS_URI": idp.jwks_uri})
        keyed = Authorizer(settings_, keys=key_source(settings_),
                           permissions=PermissionCache(MemoryPermissionSource(RECORDS), ttl=60, max_stale=60),
                           api_keys=ApiKeyRules(claim="key"))
        assert keyed._warm is None


numbers = st.one_of(st.integers(min_value=-2, max_value=2).map(lambda d: int(time.time()) + d * 3600),
                    st.floats(allow_nan=False, allow_infinity=False, min_value=0, max_value=4e9), st.booleans(),
                    st.none(), st.text(max_size=3))
texts = st.one_of(st.sampled_from(["", "c1", AUDIENCE, "pets:read", "pets:read pets:write", "access", "id"]),
                  st.integers(), st.lists(st.sampled_from([AUDIENCE, "x", "pets:read"]), max_size=2), st.none())


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(exp=numbers, nbf=numbers, iat=numbers, aud=texts, sub=texts, client_id=texts, scope=texts, scp=texts,
       token_use=texts, username=texts)
def test_signed_claim_sets_get_the_general_paths_outcome(pair, **claims):
    payload = {"iss": pair.idp.issuer, **{k: v for k, v in claims.items() if v is not None}}
    warm, general = pair.outcomes(event(_forged(pair.idp, {}, payload)))
    assert warm == general


@pytest.fixture(scope="module")
def wide_pair() -> Iterator[Pair]:
    # Room for 10,001 scopes in a JWT, and a claim of the caller's choosing in the context.
    with LocalIdentityProvider() as idp:
        yield Pair(idp, MAX_TOKEN_LENGTH="65536", CONTEXT_CLAIMS="sub,client_id,username,iss,tenant")


def _base36(n: int) -> str:
    digits = "0123456789abcdefghijklmnopqrstuvwxyz"
    return digits[n] if n < 36 else _base36(n // 36) + digits[n % 36]


def _context_cases(idp: LocalIdentityProvider) -> list[tuple[str, str, bool]]:
    """(name, token, whether the warm path may answer it): around every context bound."""
    many = ["pets:read", *(_base36(i) for i in range(9_999)), "pets:write"]
    at_scope_limit = ["pets:read", *(f"x{i:03d}" for i in range(204))]  # 1,029 characters: one over
    under_scope_limit = at_scope_limit[:-2]
    cases = [
        ("10,001 scopes", idp.mint(scope=" ".join(many)), False),
        ("5,000 scopes as a list", idp.mint(scope=many[:5000]), False),
        ("scope list one scope over", idp.mint(scope=" ".join(at_scope_limit)), False),
        # sent whole, but too large for the warm path's 12-bytes-a-character size bound
        ("scope list just under", idp.mint(scope=" ".join(under_scope_limit)), False),
        ("a listed scope with a space", idp.mint(scope=["pets:read", "a b"]), False),
        ("an empty listed scope", idp.mint(scope=["pets:read", ""]), False),
        ("sub of 6,000 characters", idp.mint(subject="u" * 6000), False),
        ("sub of 256 characters", idp.mint(subject="u" * 256, client_id="c1"), True),
        ("username of 257 characters", idp.mint(username="n" * 257), False),
        ("username of 256 characters", idp.mint(username="n" * 256), True),
        ("claims over 1,024 characters together", idp.mint(username="n" * 250, tenant="t" * 250,
                                                           subject="u" * 250, client_id="c" * 250), False),
        ("astral tenant (2,400 bytes of JSON: within the bounds)", idp.mint(tenant="\U0001F600" * 200), True),
        ("tenant of quotes and backslashes", idp.mint(tenant='"\\' * 100), True),
        ("long scopes and long claims", idp.mint(scope=" ".join(many[:3000]), username="n" * 3000), False),
    ]
    return cases


def test_huge_scope_sets_and_long_claims_get_the_general_paths_outcome(wide_pair):
    for attempt in (1, 2):
        for name, token, warm_may_answer in _context_cases(wide_pair.idp):
            warm, general = wide_pair.outcomes(event(token))
            assert warm == general, (attempt, name)
            assert general[0] == "answered", (name, general)
            response = general[1]
            assert response_size(response) <= MAX_RESPONSE_BYTES, name
            if attempt == 2:  # every memo the general path fills is filled by now
                taken = wide_pair.warm._warm.answer(event(token))
                assert (taken is not None) == warm_may_answer, name


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(scopes=st.lists(st.text(alphabet="ab:\U0001F600 ", min_size=0, max_size=12), max_size=200),
       username=st.text(alphabet="n\"\\\x01\u00e9\U0001F600", max_size=300), length=st.integers(0, 1100))
def test_generated_scope_sets_and_claims_get_the_general_paths_outcome(wide_pair, scopes, username, length):
    token = wide_pair.idp.mint(scope=["pets:read", *scopes], username=username, tenant="t" * length)
    for _ in range(2):
        warm, general = wide_pair.outcomes(event(token))
        assert warm == general
        assert general[0] == "answered" and response_size(general[1]) <= MAX_RESPONSE_BYTES
