"""One decision path, decided right whatever its memos remember.

Every request goes through ``Authorizer.answer``. Its guards (a JOSE header already
checked, an API ARN already matched, a scope string already split, a scope set already
written as text, integer times, a plain string ``aud``) only shorten rules; they never
change an outcome. Two kinds of authorizer share one real JWKS key source (127.0.0.1)
and the same mappings: ``warm``, whose memos earlier requests have filled, and a fresh
one per event, whose memos (its policy memo included) are empty, so every rule runs in
full. Every event below, and every claim set hypothesis signs, gets the same outcome
from both, and the right one: each named case states its own, and generated claim
sets are held to the public rules applied one by one.
"""

from __future__ import annotations

import ast
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
from policy_engine.admin.local.idp import LocalIdentityProvider
from policy_engine.bootstrap import key_source
from policy_engine.cache import PermissionCache
from policy_engine.core.decision import (
    MAX_RESPONSE_BYTES,
    response_size,
    response_size_bound,
)
from policy_engine.core.tokens import (
    parse_jwt,
    principal_of,
    validate_claims,
    verify_signature,
)
from policy_engine.engine import Authorizer
from policy_engine.settings import Settings
from tests.conftest import ROOT
from tests.support.forge import b64, sign

API = "arn:aws:execute-api:us-east-1:123456789012:a1b2c3d4e5"
AUDIENCE = "policy-engine-demo"
RECORDS = [
    {"arn": API, "stage": "dev", "httpVerb": "GET", "resource": "/pets", "scope": "pets:read"},
    {"arn": API, "stage": "dev", "httpVerb": "GET", "resource": "/pets/*", "scope": "pets:read"},
    {"arn": API, "stage": "dev", "httpVerb": "POST", "resource": "/pets", "scope": "pets:write"},
    # Too many routes for one response (8 KB).
    *({"arn": API, "stage": "dev", "httpVerb": "GET", "resource": f"/big/{i}/items", "scope": "big"}
      for i in range(150)),
]

def read_scopes(payload, names, known=None):
    # SCOPE_CLAIMS as the runtime reads it: one scope source, its first present claim.
    from policy_engine.core.grants import SCOPE, GrantSource, read_grants

    return read_grants(payload, (GrantSource(SCOPE, tuple((name,) for name in names)),), known)


class Pair:
    """A warm authorizer, and fresh ones built on demand with the same settings and keys."""

    def __init__(self, idp: LocalIdentityProvider, **env: str) -> None:
        self.idp = idp
        self.settings = Settings.from_environ({"ISSUER": idp.issuer, "AUDIENCE": AUDIENCE, "JWKS_URI": idp.jwks_uri,
                                               **env})
        self.keys = key_source(self.settings)
        self.warm = self.fresh()
        # Fill the memos the guards read (header, API ARN, scope strings and texts, policies).
        for scope in ("pets:read", "pets:write", "pets:read pets:write", "other", None):
            self.warm.answer(event(idp.mint(scope=scope)))

    def fresh(self) -> Authorizer:
        permissions = PermissionCache(MemoryPermissionSource(RECORDS), ttl=3600, max_stale=3600)
        return Authorizer(self.settings, keys=self.keys, permissions=permissions)

    def outcomes(self, event_: Any) -> tuple[Any, Any]:
        return _outcome(self.warm, event_), _outcome(self.fresh(), event_)


def _outcome(authorizer: Authorizer, event_: Any) -> Any:
    try:
        answer = authorizer.answer(event_)
    except Exception as exc:  # noqa: BLE001 - every refusal is an outcome to compare
        return ("refused", type(exc).__name__, str(exc))
    return ("answered", answer.response, answer.shape, answer.decision.reason)


def _summary(outcome: Any) -> str:
    # What a case must come to: the error's type, or the policy's effect and reason.
    if outcome[0] == "refused":
        return outcome[1]
    return f"{outcome[1]['policyDocument']['Statement'][0]['Effect']} {outcome[3]}"


def event(token: str | None, *, scheme: str = "Bearer ", arn: str = f"{API}/dev/GET/pets/7", **extra: Any) -> dict:
    return {"type": "TOKEN", "authorizationToken": None if token is None else scheme + token, "methodArn": arn,
            **extra}


@pytest.fixture(scope="module")
def pair() -> Iterator[Pair]:
    with LocalIdentityProvider() as idp:
        yield Pair(idp)


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


GRANTED, NO_GRANT = "Allow granted", "Deny no_grant"
MALFORMED, CLAIMS, EVENT = "MalformedTokenError", "InvalidClaimsError", "EventError"


def _cases(idp: LocalIdentityProvider) -> list[tuple[str, Any, str]]:
    """(name, event, the outcome it must get)."""
    now = int(time.time())
    good = idp.mint(scope="pets:read")
    head, body, signature = good.split(".")
    flipped = base64.urlsafe_b64decode(signature + "==")
    flipped = b64(flipped[:-1] + bytes([flipped[-1] ^ 1]))
    cases: list[tuple[str, Any, str]] = [
        ("no token", event(None), "MissingTokenError"),
        ("empty", {"type": "TOKEN", "authorizationToken": "", "methodArn": f"{API}/dev/GET/pets"}, "MissingTokenError"),
        ("lower-case scheme", event(good, scheme="bearer "), GRANTED),
        ("two spaces", event(good, scheme="Bearer  "), GRANTED),
        ("other scheme", event(good, scheme="Basic "), MALFORMED),
        ("no scheme", event(good, scheme=""), MALFORMED),
        ("trailing padding", event(good + "="), MALFORMED),
        ("two tokens", event(good + " " + good), MALFORMED),
        ("plus sign", event(good.replace("-", "+", 1) if "-" in good else good[:-1] + "+"), MALFORMED),
        ("bad signature", event(f"{head}.{body}.{flipped}"), "InvalidSignatureError"),
        ("short signature", event(f"{head}.{body}.{b64(base64.urlsafe_b64decode(signature + '==')[:-3])}"),
         "InvalidSignatureError"),
        ("four segments", event(good + ".x"), MALFORMED),
        ("version key", event(good, version=None), GRANTED),
        ("version 1.0", {**event(good), "version": "1.0"}, "MissingTokenError"),
        ("not a dict", [event(good)], EVENT),
        ("no methodArn", {"type": "TOKEN", "authorizationToken": f"Bearer {good}"}, EVENT),
        ("stage wildcard", event(good, arn=f"{API}/*/GET/pets"), EVENT),
        ("stage too long", event(good, arn=f"{API}/{'s' * 129}/GET/pets"), EVENT),
        ("unknown API", event(good, arn="arn:aws:execute-api:us-east-1:123456789012:zzzz/dev/GET/pets"), NO_GRANT),
        ("bad API", event(good, arn="arn:aws:lambda:us-east-1:123456789012:x/dev/GET/pets"), EVENT),
        ("other stage", event(good, arn=f"{API}/prod/GET/pets"), NO_GRANT),
        ("deny", event(idp.mint(scope="nothing")), NO_GRANT),
        ("policy too large", event(idp.mint(scope="big")), "PolicyTooLargeError"),
        ("no scope", event(idp.mint(scope=None)), NO_GRANT),
        ("unknown kid", event(idp.mint(headers={"kid": "nobody"})), "UnknownKeyError"),
        ("new header member", event(idp.mint(headers={"x-extra": 1})), GRANTED),
        ("duplicate member", event(_forged(idp, {}, json.dumps(_claims(idp))[:-1] + ', "sub": "other"}')), MALFORMED),
        ("whitespace around payload", event(_forged(idp, {}, " " + json.dumps(_claims(idp)) + " ")), GRANTED),
        ("trailing bytes after the payload", event(_forged(idp, {}, json.dumps(_claims(idp)) + "x")), MALFORMED),
        ("a second object after the payload", event(_forged(idp, {}, json.dumps(_claims(idp)) + "{}")), MALFORMED),
        ("payload not an object", event(_forged(idp, {}, "[1]")), MALFORMED),
        ("Cognito access token", event(_forged(idp, {}, _claims(idp, aud=None, token_use="access",
                                                                  client_id=AUDIENCE))), GRANTED),
    ]
    for name, value, expected in [
        ("exp", now - 3600, "ExpiredTokenError"), ("exp", float(now + 600), GRANTED), ("exp", str(now + 600), CLAIMS),
        ("exp", True, CLAIMS), ("exp", None, CLAIMS), ("nbf", now + 3600, CLAIMS), ("nbf", float(now), GRANTED),
        ("nbf", "0", CLAIMS), ("nbf", True, CLAIMS), ("iat", now + 3600, CLAIMS), ("iat", 1.5, GRANTED),
        ("aud", [AUDIENCE], GRANTED), ("aud", ["x"], CLAIMS), ("aud", "x", CLAIMS), ("aud", None, CLAIMS),
        ("token_use", "id", CLAIMS), ("token_use", "access", GRANTED), ("iss", "https://other", CLAIMS),
        ("iss", 7, CLAIMS), ("sub", "", GRANTED), ("sub", 7, CLAIMS), ("client_id", 7, CLAIMS),
        ("scope", ["pets:read"], GRANTED), ("scope", ["pets:read", 7], CLAIMS), ("scope", 7, CLAIMS),
        ("scp", "pets:read", GRANTED),
        ("scp", [1], GRANTED),  # scope comes first (SCOPE_CLAIMS=scope,scp) and is present
        ("username", 5, GRANTED), ("username", "ann", GRANTED), ("username", ["a", "b"], GRANTED),
    ]:
        claims = _claims(idp, **{name: value})
        if value is None:
            claims.pop(name, None)
        cases.append((f"{name}={value!r}", event(_forged(idp, {}, claims)), expected))
    cases.append(("iat null", event(_forged(idp, {}, {**_claims(idp), "iat": None})), CLAIMS))
    cases.append(("no sub, no client_id", event(_forged(idp, {}, _claims(idp, sub=None, client_id=None))), CLAIMS))
    cases.append(("scp only, a list with a number", event(_forged(idp, {}, _claims(idp, scope=None, scp=[1]))), CLAIMS))
    return cases


def test_every_odd_or_hostile_event_is_decided_right_warm_or_cold(pair):
    # Twice: the second time, whatever the first remembered (a new header) is warm.
    for attempt in (1, 2):
        for name, case, expected in _cases(pair.idp):
            warm, cold = pair.outcomes(case)
            assert warm == cold, (attempt, name)
            assert _summary(warm) == expected, (attempt, name, warm)


def test_plain_tokens_are_granted_alike_warm_or_cold(pair):
    for scope in ("pets:read", "pets:write", "pets:read pets:write", "other"):
        token_event = event(pair.idp.mint(scope=scope, subject=f"client-{scope}"))
        warm, cold = pair.outcomes(token_event)
        assert warm == cold and warm[0] == "answered"
        # The size bound's characters, counted on the way, are what it would recount.
        decision = pair.warm.answer(token_event).decision
        assert response_size_bound(decision) == response_size_bound(replace(decision, text_chars=None))
    for token in (pair.idp.mint(scope=["pets:read"]), pair.idp.mint(scope="pets:read", sub=None)):
        warm, cold = pair.outcomes(event(token))
        assert warm == cold and _summary(warm) == GRANTED


def test_an_alg_other_than_the_keys_is_refused_even_when_the_signature_fits_the_key():
    # RFC 8725 §3.1: the header says RS384, the key is bound to RS256, and the signature
    # is a valid RS256 one. Only the alg comparison refuses it, remembered header or not.
    with LocalIdentityProvider() as idp:
        pair = Pair(idp, ALLOWED_ALGORITHMS="RS256,RS384")
        confused = event(_forged(idp, {"alg": "RS384"}, _claims(idp), signed_as="RS256"))
        for _ in (1, 2):
            warm, cold = pair.outcomes(confused)
            assert warm == cold and warm[:2] == ("refused", "UnsupportedAlgorithmError")


def test_the_signature_is_checked_once_per_decision_even_when_the_token_is_refused(pair):
    # An expired, validly signed token: one signature check, then the claim rule refuses it.
    checks: list[bytes] = []
    authorizer = pair.fresh()
    key = pair.keys.get_key(pair.idp.issuer, pair.idp.keys[0].kid)

    class CountingKeys:
        def get_key(self, issuer: str, kid: str) -> Any:
            def check(message: bytes, signature: bytes) -> bool:
                checks.append(message)
                return key.check(message, signature)
            return replace(key, check=check)

    authorizer.keys = CountingKeys()  # type: ignore[assignment]
    expired = event(pair.idp.mint(lifetime=-3600))
    for expected in (1, 2):
        assert _outcome(authorizer, expired)[:2] == ("refused", "ExpiredTokenError")
        assert len(checks) == expected


def test_memos_belong_to_one_authorizer(pair):
    fresh = pair.fresh()
    warm, cold = pair.warm, fresh
    warm_memos = (warm._api_stages, warm._scope_texts, warm._resource_chars, warm._jwt._headers,
                  *warm._jwt._grant_sets.values())
    fresh_memos = (cold._api_stages, cold._scope_texts, cold._resource_chars, cold._jwt._headers,
                   *cold._jwt._grant_sets.values())
    assert all(warm_memos) and not any(fresh_memos)
    assert all(a is not b for a, b in zip(warm_memos, fresh_memos, strict=True))


def test_no_module_reads_another_modules_private_names():
    # Memos, and every other private name, are read only in the module that owns them.
    found = []
    for path in sorted((ROOT / "policy_engine").rglob("*.py")) + sorted((ROOT / "handler").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith(("policy_engine", "handler")):
                found += [f"{path.name}: {alias.name}" for alias in node.names if alias.name.startswith("_")]
    assert found == []


# The three checks a second path once copied without a test of its own: each of these
# fails when its check is deleted (in core.arn, core.tokens.jws), with the memos warm.

def test_a_method_arn_longer_than_api_gateway_allows_is_refused_for_a_known_api(pair):
    token = pair.idp.mint(scope="pets:read")
    prefix = f"{API}/dev/GET/"
    at_limit, over = prefix + "p" * (1600 - len(prefix)), prefix + "p" * (1601 - len(prefix))
    assert pair.warm._api_stages.get(f"{API}/dev") is True  # the API ARN and stage are remembered as valid
    assert _summary(_outcome(pair.warm, event(token, arn=at_limit))) == GRANTED
    refused = _outcome(pair.warm, event(token, arn=over))
    assert refused[:2] == ("refused", EVENT) and "longer" in refused[2]


def test_a_token_over_max_token_length_is_refused_even_when_its_header_is_remembered():
    with LocalIdentityProvider() as idp:
        # A token a little over the limit: within the bearer value's own bound (16 more
        # characters), so only the JWS length rule can refuse it.
        long_token = idp.mint(scope="pets:read", note="n" * 600)
        pair = Pair(idp, MAX_TOKEN_LENGTH=str(len(long_token) - 1))
        head = long_token.split(".")[0].encode()
        assert head in pair.warm._jwt._headers  # the same header is remembered
        refused = _outcome(pair.warm, event(long_token))
        assert refused[:2] == ("refused", MALFORMED) and "MAX_TOKEN_LENGTH" in refused[2]
        assert _summary(_outcome(pair.warm, event(idp.mint(scope="pets:read", note="n" * 500)))) == GRANTED


def test_trailing_bytes_after_the_payload_json_are_refused_warm_or_cold(pair):
    claims = json.dumps(_claims(pair.idp))
    for tail in ("x", "}", "{}", "1", '"a"', "\x00", " x"):
        warm, cold = pair.outcomes(event(_forged(pair.idp, {}, claims + tail)))
        assert warm == cold and warm[:2] == ("refused", MALFORMED), tail


numbers = st.one_of(st.integers(min_value=-2, max_value=2).map(lambda d: int(time.time()) + d * 3600),
                    st.floats(allow_nan=False, allow_infinity=False, min_value=0, max_value=4e9), st.booleans(),
                    st.none(), st.text(max_size=3))
texts = st.one_of(st.sampled_from(["", "c1", AUDIENCE, "pets:read", "pets:read pets:write", "access", "id"]),
                  st.integers(), st.lists(st.sampled_from([AUDIENCE, "x", "pets:read"]), max_size=2), st.none())


def _by_the_public_rules(pair: Pair, token: str) -> str | None:
    """The error type the public rules raise one by one, without any memo, or None."""
    settings_ = pair.settings
    try:
        parsed = parse_jwt(token, max_length=settings_.max_token_length, algorithms=settings_.algorithms)
        verify_signature(parsed, pair.keys.get_key(pair.idp.issuer, parsed.kid))
        validate_claims(parsed, issuer=pair.idp.issuer, audiences=settings_.audiences, now=time.time(),
                        leeway=settings_.leeway)
        principal_of(parsed.payload)
        read_scopes(parsed.payload, settings_.scope_claims)
    except Exception as exc:  # noqa: BLE001 - whichever rule refuses, by type
        return type(exc).__name__
    return None


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(exp=numbers, nbf=numbers, iat=numbers, aud=texts, sub=texts, client_id=texts, scope=texts, scp=texts,
       token_use=texts, username=texts)
def test_signed_claim_sets_are_decided_by_the_rules_warm_or_cold(pair, **claims):
    payload = {"iss": pair.idp.issuer, **{k: v for k, v in claims.items() if v is not None}}
    token = _forged(pair.idp, {}, payload)
    warm, cold = pair.outcomes(event(token))
    assert warm == cold
    refused_by_rules = _by_the_public_rules(pair, token)
    if refused_by_rules is None:
        assert warm[0] == "answered", warm
    else:
        assert warm[:2] == ("refused", refused_by_rules)


@pytest.fixture(scope="module")
def wide_pair() -> Iterator[Pair]:
    # Room for 10,001 scopes in a JWT, and a claim of the caller's choosing in the context.
    with LocalIdentityProvider() as idp:
        yield Pair(idp, MAX_TOKEN_LENGTH="65536", CONTEXT_CLAIMS="sub,client_id,username,iss,tenant")


def _base36(n: int) -> str:
    digits = "0123456789abcdefghijklmnopqrstuvwxyz"
    return digits[n] if n < 36 else _base36(n // 36) + digits[n % 36]


def _context_cases(idp: LocalIdentityProvider) -> list[tuple[str, str]]:
    """(name, token): around every context bound."""
    many = ["pets:read", *(_base36(i) for i in range(9_999)), "pets:write"]
    at_scope_limit = ["pets:read", *(f"x{i:03d}" for i in range(204))]  # 1,029 characters: one over
    under_scope_limit = at_scope_limit[:-2]
    return [
        ("10,001 scopes", idp.mint(scope=" ".join(many))),
        ("5,000 scopes as a list", idp.mint(scope=many[:5000])),
        ("scope list one scope over", idp.mint(scope=" ".join(at_scope_limit))),
        ("scope list just under", idp.mint(scope=" ".join(under_scope_limit))),
        ("a listed scope with a space", idp.mint(scope=["pets:read", "a b"])),
        ("an empty listed scope", idp.mint(scope=["pets:read", ""])),
        ("sub of 6,000 characters", idp.mint(subject="u" * 6000)),
        ("sub of 256 characters", idp.mint(subject="u" * 256, client_id="c1")),
        ("username of 257 characters", idp.mint(username="n" * 257)),
        ("username of 256 characters", idp.mint(username="n" * 256)),
        ("claims over 1,024 characters together", idp.mint(username="n" * 250, tenant="t" * 250,
                                                           subject="u" * 250, client_id="c" * 250)),
        ("astral tenant (2,400 bytes of JSON: within the bounds)", idp.mint(tenant="\U0001F600" * 200)),
        ("tenant of quotes and backslashes", idp.mint(tenant='"\\' * 100)),
        ("long scopes and long claims", idp.mint(scope=" ".join(many[:3000]), username="n" * 3000)),
    ]


def test_huge_scope_sets_and_long_claims_are_answered_alike_warm_or_cold(wide_pair):
    for attempt in (1, 2):
        for name, token in _context_cases(wide_pair.idp):
            warm, cold = wide_pair.outcomes(event(token))
            assert warm == cold, (attempt, name)
            assert warm[0] == "answered", (name, warm)
            assert response_size(warm[1]) <= MAX_RESPONSE_BYTES, name


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(scopes=st.lists(st.text(alphabet="ab:\U0001F600 ", min_size=0, max_size=12), max_size=200),
       username=st.text(alphabet="n\"\\\x01\u00e9\U0001F600", max_size=300), length=st.integers(0, 1100))
def test_generated_scope_sets_and_claims_are_answered_alike_warm_or_cold(wide_pair, scopes, username, length):
    token = wide_pair.idp.mint(scope=["pets:read", *scopes], username=username, tenant="t" * length)
    for _ in range(2):
        warm, cold = wide_pair.outcomes(event(token))
        assert warm == cold
        assert warm[0] == "answered" and response_size(warm[1]) <= MAX_RESPONSE_BYTES
