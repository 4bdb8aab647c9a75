"""The authorizer context is bounded; the grant never is (docs/decisions.md, "Outcomes").

Generated callers (scope sets of any size, with odd and non-ASCII scopes, claims of any
length and kind) and policies of any size up to what fits alone: every answer stays
within 8 KB, keeps the policy the scopes grant, and copies only whole scopes the caller
holds and whole claim values.
"""

from __future__ import annotations

import hashlib
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from policy_engine.adapters.memory import MemoryPermissionSource
from policy_engine.cache import PermissionCache
from policy_engine.core.decision import (
    MAX_CLAIM_CHARS,
    MAX_CONTEXT_BYTES,
    MAX_CONTEXT_VALUE,
    MAX_RESPONSE_BYTES,
    MAX_SCOPE_CHARS,
    response_size,
    scalar_context,
)
from policy_engine.core.iam import evaluate_response
from policy_engine.core.tokens import VerifiedToken
from policy_engine.engine import Authorizer
from policy_engine.settings import Settings

API = "arn:aws:execute-api:us-east-1:123456789012:a1b2c3d4e5"
CLAIMS = ("sub", "client_id", "username", "tenant", "roles", "level")


def _authorizer(routes: int, **env: str) -> Authorizer:
    records = [{"arn": API, "stage": "dev", "httpVerb": "GET", "resource": f"/reports/r{i:03}/items/*",
                "scope": "reports"} for i in range(routes)]
    records.append({"arn": API, "stage": "*", "httpVerb": "GET", "resource": "/pets", "scope": "pets:read"})
    settings_ = Settings.from_environ({"ISSUER": "https://idp.example.com", "AUDIENCE": "a",
                                       "CONTEXT_CLAIMS": ",".join(CLAIMS), **env})
    authorizer = Authorizer(settings_, keys=None,  # type: ignore[arg-type]
                            permissions=PermissionCache(MemoryPermissionSource(records), ttl=3600, max_stale=3600))
    return authorizer


def _answer(authorizer: Authorizer, token: VerifiedToken, event: dict[str, Any]) -> dict[str, Any]:
    authorizer.authenticate = lambda request: token  # type: ignore[method-assign]
    return authorizer.answer(event).response


TOKEN_EVENT = {"type": "TOKEN", "authorizationToken": "Bearer x", "methodArn": f"{API}/dev/GET/pets"}

scope_names = st.one_of(st.sampled_from(["reports", "pets:read", "", "a b", "x", "group pet-readers"]),
                        st.text(alphabet="ab:\"\\\x01\u00e9\U0001F600 ", max_size=40))
claim_values = st.one_of(st.text(alphabet="u\"\\\x01\u00e9\U0001F600", max_size=700),
                         st.integers(min_value=-10**300, max_value=10**300), st.booleans(),
                         st.lists(st.text(alphabet="ab", max_size=300), max_size=4))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(scopes=st.frozensets(scope_names, max_size=400), many=st.integers(0, 3000),
       claims=st.fixed_dictionaries({}, optional={name: claim_values for name in CLAIMS}),
       sub=st.text(alphabet="u\U0001F600\ud800", min_size=1, max_size=700), routes=st.integers(0, 80))
def test_every_answer_fits_keeps_its_grant_and_copies_only_whole_things(scopes, many, claims, sub, routes):
    scopes = scopes | {f"bulk-{i}" for i in range(many)}
    token = VerifiedToken("https://idp.example.com", sub, frozenset(scopes), {"sub": sub, **claims})
    authorizer = _authorizer(routes)
    response = _answer(authorizer, token, TOKEN_EVENT)
    # THEN it fits, and grants exactly what a caller with the same scopes and nothing else is granted
    assert response_size(response) <= MAX_RESPONSE_BYTES
    plain = _answer(_authorizer(routes), VerifiedToken("https://idp.example.com", "p", token.grants, {}), TOKEN_EVENT)
    assert response["policyDocument"] == plain["policyDocument"]
    for path in ("pets", "reports/r000/items/1", "reports/r079/items/x"):
        arn = f"{API}/dev/GET/{path}"
        assert evaluate_response(response, arn) == evaluate_response(plain, arn)
    context = response["context"]
    _check_context(context, token)
    # the principal is the subject, or the digest of one too long to send
    expected = sub if len(sub) <= 256 else "sha256:" + hashlib.sha256(sub.encode("utf-8", "surrogatepass")).hexdigest()
    assert response["principalId"] == expected


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(scopes=st.frozensets(scope_names, max_size=300), many=st.integers(0, 3000),
       claims=st.fixed_dictionaries({}, optional={name: claim_values for name in CLAIMS}))
def test_simple_responses_fit_and_copy_only_whole_things(scopes, many, claims):
    scopes = scopes | {f"bulk-{i}" for i in range(many)}
    token = VerifiedToken("https://idp.example.com", "c1", frozenset(scopes), {"sub": "c1", **claims})
    authorizer = _authorizer(3, SIMPLE_RESPONSES="true",
                             IDENTITY_SOURCE="$request.header.Authorization,$context.routeKey")
    event = {"version": "2.0", "type": "REQUEST", "routeArn": f"{API}/dev/GET/pets", "routeKey": "GET /pets",
             "identitySource": ["Bearer x", "GET /pets"], "headers": {"authorization": "Bearer x"}}
    response = _answer(authorizer, token, event)
    assert response_size(response) <= MAX_RESPONSE_BYTES
    assert response["isAuthorized"] is ("pets:read" in scopes)
    _check_context(response["context"], token)


def _check_context(context: dict[str, Any], token: VerifiedToken) -> None:
    assert response_size(context) <= MAX_CONTEXT_BYTES
    listed = context["scope"].split(" ") if context["scope"] else []
    # The scope-kind grants: keys without a space (any other is "<kind> <value>", core.grants).
    scopes = {grant for grant in token.grants if grant and " " not in grant}
    # only whole scopes the caller holds, never a piece of one, never another kind's
    # grant; every one unless marked
    assert set(listed) <= scopes and len(listed) == len(set(listed))
    assert len(context["scope"]) <= MAX_SCOPE_CHARS
    if context.get("scopeTruncated") is not True:
        assert set(listed) == scopes and "scopeCount" not in context
    else:
        assert context["scopeCount"] == len(scopes) and len(listed) < len(scopes)
    # claims: whole values or nothing, and a name for each one left out
    copied = scalar_context(token.claims, CLAIMS)
    omitted = context.get("contextOmitted", "").split()
    kept = [name for name in CLAIMS if name in context]
    assert sorted(kept + omitted) == sorted(copied)
    claim_chars = 0
    for name in kept:
        assert context[name] == copied[name]
        text = copied[name] if isinstance(copied[name], str) else str(copied[name])
        assert len(text) <= MAX_CONTEXT_VALUE
        claim_chars += len(name) + len(text)
    assert claim_chars <= MAX_CLAIM_CHARS
