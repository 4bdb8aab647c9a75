"""The cheap size bound never under-estimates the serialised response."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from policy_engine.core.decision import Decision, render_iam_response, response_size, response_size_bound

API = "arn:aws:execute-api:us-east-1:123456789012:a1b2c3d4e5"
resource = st.from_regex(r"[A-Za-z0-9\-._~!$&'()*+,;=:@%/]{0,60}", fullmatch=True).map(lambda p: f"{API}/dev/GET/{p}")
scalar = st.one_of(st.text(max_size=40), st.integers(), st.integers(min_value=10**200), st.floats(allow_nan=False, allow_infinity=False), st.booleans())


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
