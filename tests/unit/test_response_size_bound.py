"""The cheap size bound never under-estimates the serialised response."""

from __future__ import annotations

import math

from hypothesis import given, settings
from hypothesis import strategies as st

from policy_engine.core.decision import Decision, render_iam_response, response_size, response_size_bound

API = "arn:aws:execute-api:us-east-1:123456789012:a1b2c3d4e5"
resource = st.from_regex(r"[A-Za-z0-9\-._~!$&'()*+,;=:@%/]{0,60}", fullmatch=True).map(lambda p: f"{API}/dev/GET/{p}")
scalar = st.one_of(st.text(max_size=40), st.integers(), st.integers(min_value=10**200),
                   st.floats(allow_nan=False, allow_infinity=False), st.booleans())


@settings(max_examples=200, deadline=None)
@given(
    principal=st.text(min_size=1, max_size=60),
    resources=st.lists(resource, max_size=30),
    denied=st.lists(resource, max_size=5),
    context=st.dictionaries(st.text(min_size=1, max_size=20), scalar, max_size=8),
    key=st.none() | st.text(max_size=40),
)
def test_bound_is_never_below_the_real_size(principal, resources, denied, context, key):
    decision = Decision(effect="Allow" if resources else "Deny", principal_id=principal, api_arn=API, stage="dev",
                        resources=tuple(resources), reason="x", version="v", context=context,
                        usage_identifier_key=key, denied=tuple(denied))
    assert response_size(render_iam_response(decision)) <= response_size_bound(decision)


def test_bound_holds_for_long_text_outside_the_basic_plane():
    # Each such character is one code point but a 12-byte surrogate pair in JSON.
    emoji = "\U0001F600" * 500
    decision = Decision(effect="Allow", principal_id=emoji, api_arn=API, stage="dev", resources=(f"{API}/dev/GET/x",),
                        reason="x", version="v", context={"sub": emoji, "n": "\x01" * 300}, usage_identifier_key=emoji)
    assert response_size(render_iam_response(decision)) <= response_size_bound(decision)


def test_non_finite_numbers_never_reach_the_context():
    from policy_engine.core.decision import scalar_context

    assert scalar_context({"a": float("inf"), "b": 1.5, "c": float("nan")}) == {"b": 1.5}


claim_value = st.one_of(scalar, st.none(), st.floats(), st.lists(st.text(max_size=10), max_size=3),
                        st.dictionaries(st.text(max_size=5), st.integers(), max_size=2))


@settings(max_examples=200, deadline=None)
@given(claims=st.dictionaries(st.sampled_from(["sub", "client_id", "username", "iss", "tenant", "scope"]), claim_value),
       names=st.lists(st.sampled_from(["sub", "client_id", "username", "iss", "tenant"]), unique=True))
def test_the_context_counted_while_built_is_what_the_bound_would_count(claims, names):
    from policy_engine.core.decision import context_chars, scalar_context, scalar_context_counted

    context, chars = scalar_context_counted(claims, names)
    # Written out from the documented rule, not from the function under test: strings,
    # booleans, integers and finite floats are kept, non-empty lists of strings are
    # joined with spaces, anything else is dropped.
    expected = {}
    for name in names:
        value = claims.get(name)
        if isinstance(value, (str, bool, int)) or (isinstance(value, float) and math.isfinite(value)):
            expected[name] = value
        elif isinstance(value, list) and value and all(isinstance(v, str) for v in value):
            expected[name] = " ".join(value)
    assert context == expected
    assert scalar_context(claims, names) == expected
    assert chars == sum(len(k) + len(v if isinstance(v, str) else str(v)) for k, v in expected.items())
    assert chars == context_chars(context)


def test_the_engine_hands_the_bound_exactly_the_characters_it_would_count():
    from dataclasses import replace

    from policy_engine.adapters.memory import MemoryPermissionSource
    from policy_engine.cache import PermissionCache
    from policy_engine.core.apikeys import ApiKeyRules
    from policy_engine.core.arn import parse_method_arn
    from policy_engine.core.tokens import VerifiedToken
    from policy_engine.engine import Authorizer
    from policy_engine.settings import Settings

    records = [{"arn": API, "stage": "dev", "httpVerb": "GET", "resource": "/pets", "scope": "pets:read"}]
    permissions = PermissionCache(MemoryPermissionSource(records), ttl=60, max_stale=60)
    settings = Settings.from_environ({"ISSUER": "https://idp.example.com", "AUDIENCE": "a",
                                      "CONTEXT_CLAIMS": "sub,tenant,roles,auth_time,scope"})
    keyed = ApiKeyRules(claim="key", by_client={"ü" * 7: "k" * 40})
    for api_keys in (None, keyed, ApiKeyRules(claim="key")):
        authorizer = Authorizer(settings, keys=None, permissions=permissions, api_keys=api_keys)  # type: ignore[arg-type]
        for scopes in (frozenset({"pets:read", "x"}), frozenset({"y"})):
            claims = {"sub": "ü" * 7, "tenant": "acme", "roles": ["a", "b"], "auth_time": 17, "scope": "x y"}
            token = VerifiedToken("https://idp.example.com", claims["sub"], scopes, claims)
            decision = authorizer.decide(token, parse_method_arn(f"{API}/dev/GET/pets"))
            assert decision.text_chars is not None
            assert response_size_bound(decision) == response_size_bound(replace(decision, text_chars=None))
