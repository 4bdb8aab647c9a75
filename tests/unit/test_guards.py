"""Each guard of the decision path against the rule it shortens, on hostile inputs:
when the guard accepts, the rule accepts with the same value; when it does not, the
rule decides, so the guarded step and the rule alone always agree.

The guards: a remembered JOSE header (``jws.decode_jws``), the JSON scanner alone
(``jws.json_object``), a remembered API ARN (``arn.parse_method_arn``), integer times
(``claims.check_times``), a plain string ``aud`` (``claims.check_jwt_claims``), a
remembered scope string (``grants.read_grants``), a remembered scope text
(``Authorizer.decide``), a remembered policy (``PermissionSet.resources``), the
context's per-character bound (``decision.context_within_bounds``) and a counted tuple
of Resources (``decision.response_size_bound``). The response size bound, the last
guard of ``Authorizer.answer``, never under-counts: see ``test_response_size_bound.py``.

Two steps were rewritten rather than guarded (``jws.jws_segments`` finds the dots with
``partition``, ``jws.b64url_decode`` maps the alphabet with ``replace``): each is held
here to the way it was written before, on hostile inputs.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from policy_engine.adapters.memory import MemoryPermissionSource
from policy_engine.cache import PermissionCache
from policy_engine.core.arn import API_ARN_PATTERN, STAGE_NAME_PATTERN, parse_method_arn
from policy_engine.core.decision import (
    MAX_CONTEXT_BYTES,
    MAX_SCOPE_CHARS,
    Decision,
    context_chars,
    context_within_bounds,
    listable_scopes,
    response_size_bound,
)
from policy_engine.core.iam import ResourceMatcher, Verdict, evaluate_response, glob_matches, request_allowed
from policy_engine.core.memo import MEMO_ENTRIES, Memo
from policy_engine.core.permissions import PermissionSet, compile_records
from policy_engine.core.tokens import VerifiedToken, jws
from policy_engine.core.tokens.claims import (
    check_audience,
    check_jwt_claims,
    check_times,
    numeric_date,
)
from policy_engine.engine import Authorizer
from policy_engine.errors import ExpiredTokenError, InvalidClaimsError
from policy_engine.settings import Settings
from tests.support.forge import b64

API = "arn:aws:execute-api:us-east-1:123456789012:a1b2c3d4e5"
ISS = "https://idp.example.com"
NOW = 1_700_000_000.0

def read_scopes(payload, names, known=None):
    # SCOPE_CLAIMS as the runtime reads it: one scope source, its first present claim.
    from policy_engine.core.grants import SCOPE, GrantSource, read_grants

    return read_grants(payload, (GrantSource(SCOPE, tuple((name,) for name in names)),), known)


def outcome(rule: Callable[..., Any], *args: Any) -> tuple[str, Any]:
    """("ok", what ``rule(*args)`` returns) or ("refused", the type of what it raised)."""
    try:
        return ("ok", rule(*args))
    except Exception as exc:  # noqa: BLE001 - any refusal, compared by type
        return ("refused", type(exc).__name__)


json_scalars = st.one_of(st.none(), st.booleans(), st.integers(), st.integers(min_value=10**300),
                         st.floats(allow_nan=False), st.text(max_size=8))
json_values = st.recursive(json_scalars, lambda inner: st.lists(inner, max_size=3)
                           | st.dictionaries(st.text(max_size=4), inner, max_size=3), max_leaves=6)


def json_text(value: Any) -> str:
    return json.dumps(value)


# -- jws.decode_jws: a header segment read_header accepted before -----------------------

header_members = st.dictionaries(
    st.sampled_from(["alg", "kid", "typ", "jku", "x5u", "jwk", "x5c", "crit", "b64", "enc", "cty"]),
    st.one_of(st.sampled_from(["RS256", "RS384", "HS256", "none", "k1", ""]), json_values), max_size=5)
header_texts = st.one_of(
    header_members.map(json_text),
    st.tuples(header_members.map(json_text), st.sampled_from(["", " ", "x", "{}", "\x00"])).map("".join),
    st.text(max_size=20),
)


@settings(max_examples=300, deadline=None)
@given(texts=st.lists(header_texts, min_size=1, max_size=8),
       algorithms=st.sampled_from([("RS256",), ("RS256", "RS384")]))
def test_a_remembered_header_is_what_read_header_returns(texts, algorithms):
    memo: Memo = Memo()
    tokens = [f"{b64(text.encode())}.{b64(b'{}')}.{b64(b'sig')}" for text in texts]
    for _ in range(2):  # the first pass fills the memo, the second reads it
        for token in tokens:
            assert outcome(jws.decode_jws, token, 8192, algorithms, memo) == \
                outcome(jws.decode_jws, token, 8192, algorithms)
    for segment, header in memo.items():  # every entry is the rule's own answer for it
        assert jws.read_header(segment) == header


# -- jws.json_object: the scanner alone when the value ends where the text does --------

payload_texts = st.one_of(
    json_values.map(json_text),
    st.tuples(json_values.map(json_text), st.sampled_from(["", " ", "\n", "x", "}", "{}", "1", '"a"', "\x00", " x"]),
              st.sampled_from(["", " ", "\t"])).map(lambda t: t[2] + t[0] + t[1]),
    st.sampled_from(['{"a": 1, "a": 2}', '{"a": NaN}', '{"a": Infinity}', '{"a": 1e400}', "", "{", "[]", '"x"']),
    st.text(max_size=30),
)


@settings(max_examples=500, deadline=None)
@given(text=payload_texts)
def test_the_json_scanner_accepts_only_what_the_full_decoder_accepts_with_the_same_value(text):
    scanned = outcome(jws._scan_json, text, 0)
    if scanned[0] == "ok" and scanned[1][1] == len(text):  # the guard accepts
        assert jws._DECODER.decode(text) == scanned[1][0]

    def by_rule() -> Any:
        value = jws._DECODER.decode(text)
        if not isinstance(value, dict):
            raise TypeError("not an object")
        return value

    guarded, ruled = outcome(jws.json_object, b64(text.encode()).encode(), "payload"), outcome(by_rule)
    assert guarded[0] == ruled[0], (text, guarded, ruled)
    if guarded[0] == "ok":
        assert guarded[1] == ruled[1]


# -- arn.parse_method_arn: an API ARN the pattern matched before ------------------------

api_arns = st.one_of(st.just(API), st.sampled_from([API + "x", API.upper(), API + ":", "arn:aws:lambda:x", "", "*"]),
                     st.from_regex(r"arn:aws:execute-api:[a-z0-9-]{1,5}:\d{12}:[A-Za-z0-9*:]{1,6}", fullmatch=True),
                     st.text(alphabet="arn:aws-execute/*1", max_size=30))
stages = st.one_of(st.sampled_from(["dev", "", "*", "d*", "s" * 128, "s" * 129]), st.text(max_size=5))


@settings(max_examples=300, deadline=None)
@given(parts=st.lists(st.tuples(api_arns, stages, st.sampled_from(["GET", "", "*"]),
                                st.integers(0, 1700)), min_size=1, max_size=6))
def test_a_remembered_api_arn_and_stage_are_ones_the_patterns_match(parts):
    memo: Memo = Memo()
    values = [f"{api}/{stage}/{verb}/" + "p" * length for api, stage, verb, length in parts]
    for _ in range(2):
        for value in values:
            assert outcome(parse_method_arn, value, memo) == outcome(parse_method_arn, value)
    for pair, known in memo.items():
        api, _, stage = pair.partition("/")
        assert API_ARN_PATTERN.fullmatch(api) is not None and STAGE_NAME_PATTERN.fullmatch(stage) is not None
        assert known is True


# -- claims.check_times: an int is its own NumericDate ----------------------------------

dates = st.one_of(st.integers(min_value=int(NOW) - 10, max_value=int(NOW) + 10), st.integers(), st.booleans(),
                  st.none(), st.floats(), st.text(max_size=3), st.just(10**400), st.just(-(10**400)),
                  st.lists(st.integers(), max_size=1))


def check_times_by_rule(payload: dict[str, Any], now: float, leeway: float, required: bool) -> None:
    exp = numeric_date(payload, "exp", required)
    if exp is not None and exp <= now - leeway:
        raise ExpiredTokenError("expired")
    for name in ("nbf", "iat"):
        if name in payload and numeric_date(payload, name) > now + leeway:  # type: ignore[operator]
            raise InvalidClaimsError("future")


@settings(max_examples=500, deadline=None)
@given(payload=st.dictionaries(st.sampled_from(["exp", "nbf", "iat"]), dates), leeway=st.sampled_from([0, 5, 60]),
       required=st.booleans())
def test_an_integer_time_is_what_numeric_date_returns(payload, leeway, required):
    for name, value in payload.items():
        if value.__class__ is int:  # the guard accepts
            assert numeric_date(payload, name) == value
    assert outcome(check_times, payload, NOW, leeway, required) == \
        outcome(check_times_by_rule, payload, NOW, leeway, required)


def test_numeric_date_takes_ints_beyond_a_floats_range_like_the_guard():
    assert numeric_date({"exp": 10**400}, "exp") == 10**400
    for bad in (True, float("inf"), float("nan"), "1", None):
        assert outcome(numeric_date, {"exp": bad}, "exp") == ("refused", "InvalidClaimsError")


# -- claims.check_jwt_claims: a plain string aud naming an audience ---------------------

auds = st.one_of(st.sampled_from(["api", "other", "", "API"]),
                 st.lists(st.sampled_from(["api", "x", 1, None]), max_size=3), json_values)


@settings(max_examples=300, deadline=None)
@given(aud=auds)
def test_a_plain_string_aud_is_judged_as_check_audience_judges_it(aud):
    audiences = frozenset({"api"})
    if aud.__class__ is str and aud in audiences:  # the guard accepts
        assert check_audience(aud, audiences) is None
    payload = {"iss": ISS, "exp": int(NOW) + 60, "aud": aud}
    assert outcome(check_jwt_claims, {}, payload, ISS, audiences, NOW, 0, frozenset()) == \
        outcome(check_audience, aud, audiences)


# -- grants.read_grants: a scope string split before ------------------------------------

scope_values = st.one_of(st.text(alphabet=" ab:\t\u00e9", max_size=12), st.lists(st.text(alphabet="ab ", max_size=3)),
                         st.lists(json_scalars, max_size=2), json_scalars)


@settings(max_examples=300, deadline=None)
@given(payloads=st.lists(st.dictionaries(st.sampled_from(["scope", "scp"]), scope_values), min_size=1, max_size=8))
def test_a_remembered_scope_string_splits_as_the_rule_splits_it(payloads):
    memo: Memo = Memo()
    for _ in range(2):
        for payload in payloads:
            names = ("scope", "scp")
            assert outcome(read_scopes, payload, names, memo) == outcome(read_scopes, payload, names)
    for text, scopes in memo.items():
        assert read_scopes({"scope": text}, ("scope",)) == scopes


# -- Authorizer.decide: a scope set already written as the context's text ---------------

RECORDS = [{"arn": API, "stage": "dev", "httpVerb": "GET", "resource": "/pets", "scope": "pets:read"},
           {"arn": API, "stage": "*", "httpVerb": "POST", "resource": "/pets/*", "scope": "b"}]
scope_sets = st.frozensets(st.one_of(st.sampled_from(["pets:read", "b", "", "a b", "x" * 600]),
                                     st.text(alphabet="ab:\u00e9\U0001F600 ", max_size=8)), max_size=6)


def _authorizer() -> Authorizer:
    settings_ = Settings.from_environ({"ISSUER": ISS, "AUDIENCE": "a"})
    return Authorizer(settings_, keys=None,  # type: ignore[arg-type]
                      permissions=PermissionCache(MemoryPermissionSource(RECORDS), ttl=3600, max_stale=3600))


WARM = _authorizer()


@settings(max_examples=200, deadline=None)
@given(sets=st.lists(scope_sets, min_size=1, max_size=5))
def test_a_remembered_scope_text_is_the_text_the_rule_writes(sets):
    method_arn = parse_method_arn(f"{API}/dev/GET/pets")
    for _ in range(2):
        for scopes in sets:
            token = VerifiedToken(ISS, "p", scopes, {"sub": "p"})
            assert WARM.decide(token, method_arn) == _authorizer().decide(token, method_arn)
    for scopes, text in WARM._scope_texts.items():
        # the scope-kind grants (keys without a space), whole
        listable = listable_scopes(scopes)
        assert text == " ".join(listable) and len(text) <= MAX_SCOPE_CHARS
    assert len(WARM._scope_texts) <= MEMO_ENTRIES


# -- PermissionSet.resources: a policy computed before ----------------------------------

MAPPINGS = compile_records([
    *RECORDS,
    {"arn": API, "stage": "dev", "httpVerb": "*", "resource": "/orders/*", "scope": "orders"},
    {"arn": API, "stage": "prod", "httpVerb": "DELETE", "resource": "/pets/*", "scope": "admin"},
], lambda path: "test").grants


@settings(max_examples=200, deadline=None)
@given(calls=st.lists(st.tuples(st.frozensets(st.sampled_from(["pets:read", "b", "orders", "admin", "x"]), max_size=4),
                                st.sampled_from(["dev", "prod", "qa"])), min_size=1, max_size=10))
def test_a_remembered_policy_is_the_policy_the_mappings_grant(calls):
    remembering = PermissionSet(MAPPINGS)
    for _ in range(2):
        for scopes, stage in calls:
            assert remembering.resources(scopes, API, stage) == PermissionSet(MAPPINGS).resources(scopes, API, stage)


# -- decision.context_within_bounds: 12 bytes of JSON per character at most --------------

contexts = st.dictionaries(st.text(alphabet="a\"\\\x01\u00e9\U0001F600", min_size=1, max_size=30),
                           st.one_of(st.text(alphabet="a\"\\\x01\u00e9\U0001F600\ud800", max_size=700), st.integers(),
                                     st.booleans(), st.floats(allow_nan=False, allow_infinity=False)), max_size=12)


@settings(max_examples=300, deadline=None)
@given(context=contexts)
def test_the_per_character_bound_accepts_only_contexts_that_fit(context):
    chars = context_chars(context)
    if 12 * chars + 8 * len(context) + 2 <= MAX_CONTEXT_BYTES:  # the guard accepts
        assert len(json.dumps(context)) <= MAX_CONTEXT_BYTES
    if context_within_bounds(context, 0, chars):
        assert len(json.dumps(context)) <= MAX_CONTEXT_BYTES


# -- decision.response_size_bound: a tuple of Resources counted before -------------------

decisions = st.builds(
    lambda resources, denied, principal, stage: Decision(
        "Allow" if resources else "Deny", principal, API, stage, resources, "x", "v", {"sub": principal},
        None, denied),
    st.lists(st.sampled_from([f"{API}/dev/GET/pets", f"{API}/dev/*/*", f"{API}/dev/POST/" + "p" * 300, "", "\u00e9"]),
             max_size=6).map(tuple),
    st.lists(st.sampled_from([f"{API}/dev/DELETE/pets", ""]), max_size=2).map(tuple),
    st.text(max_size=8), st.sampled_from(["dev", "prod", ""]))


@settings(max_examples=300, deadline=None)
@given(calls=st.lists(decisions, min_size=1, max_size=8))
def test_a_counted_policy_bounds_the_response_as_the_rule_does(calls):
    memo: Memo = Memo()
    for _ in range(2):  # the first pass fills the memo, the second reads it
        for decision in calls:
            assert response_size_bound(decision, memo) == response_size_bound(decision)
            # Equal tuples that are distinct objects are the same key.
            copy = Decision(decision.effect, decision.principal_id, decision.api_arn, decision.stage,
                            tuple(list(decision.resources)), decision.reason, decision.version,
                            dict(decision.context), None, decision.denied)
            assert response_size_bound(copy, memo) == response_size_bound(decision)
    for resources, counted in memo.items():  # every entry is the rule's own count
        assert counted == sum(len(r) + 4 for r in resources)


# -- jws.jws_segments and jws.b64url_decode: as written before ---------------------------

def segments_by_split(token: str) -> tuple[bytes, bytes, bytes, bytes] | None:
    if not token.isascii() or "+" in token or "/" in token or "=" in token:
        return None
    raw = token.encode("ascii")
    parts = raw.split(b".")
    if len(parts) != 3 or not all(parts):
        return None
    return parts[0], parts[1], parts[2], raw[: len(parts[0]) + 1 + len(parts[1])]


token_texts = st.one_of(st.text(alphabet="ab.-_+/=~ \u00e9", max_size=12),
                        st.lists(st.text(alphabet="aZ9-_", max_size=4), max_size=5).map(".".join))


@settings(max_examples=500, deadline=None)
@given(token=token_texts)
def test_segments_are_found_as_a_split_finds_them(token):
    assert jws.jws_segments(token) == segments_by_split(token)


def decode_by_translate(segment: bytes) -> bytes:
    # The rule written the slow way: translate, decode strictly, and accept only the one
    # spelling an encoder gives those bytes (RFC 4648 §3.5: unused bits are zero).
    import base64
    import binascii

    standard = segment.translate(bytes.maketrans(b"-_", b"+/"))
    decoded = binascii.a2b_base64(standard + (b"", b"===", b"==", b"=")[len(segment) % 4], strict_mode=True)
    if base64.b64encode(decoded).rstrip(b"=") != standard:  # unpadded, as in a JWS
        raise binascii.Error("not the canonical spelling")
    return decoded


@settings(max_examples=500, deadline=None)
@given(segment=st.one_of(st.binary(max_size=12),
                         st.text(alphabet="AZaz09-_+/=.~ ", max_size=12).map(str.encode)))
def test_base64url_decodes_as_the_translation_decoded(segment):
    assert outcome(jws.b64url_decode, segment)[0] == outcome(decode_by_translate, segment)[0]
    if outcome(decode_by_translate, segment)[0] == "ok":
        assert jws.b64url_decode(segment) == decode_by_translate(segment)


def test_memos_stay_within_their_one_bound():
    memo: Memo = Memo()
    for i in range(5 * MEMO_ENTRIES):
        memo.remember(i, i)
        assert len(memo) <= MEMO_ENTRIES
    assert memo[5 * MEMO_ENTRIES - 1] == 5 * MEMO_ENTRIES - 1


# read_grants: the remembered grant set for the same claim values (several sources).
_CLAIM_VALUES = st.one_of(
    st.none(), st.text(max_size=12), st.lists(st.sampled_from(["a", "b", "a b", ""]), max_size=3),
    st.lists(st.one_of(st.integers(), st.lists(st.text(max_size=2), max_size=1)), min_size=1, max_size=2),
    st.integers(), st.booleans(), st.dictionaries(st.text(max_size=2), st.text(max_size=2), max_size=1),
)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(_CLAIM_VALUES, _CLAIM_VALUES, _CLAIM_VALUES), min_size=1, max_size=6))
def test_the_remembered_grant_set_is_what_the_rule_reads(payloads: list[tuple[Any, Any, Any]]) -> None:
    from policy_engine.core.grants import GrantSource, read_grants
    from policy_engine.errors import InvalidClaimsError

    sources = (GrantSource("scope", (("scope",), ("scp",))), GrantSource("group", (("groups",),)),
               GrantSource("role", (("access", "roles"),)))
    known: Memo = Memo()
    for scope, groups, roles in payloads * 2:  # every payload twice: the second time from the memo
        payload = {"scope": scope, "groups": groups, "access": {"roles": roles}}
        try:
            expected: Any = read_grants(payload, sources)
        except InvalidClaimsError:
            expected = InvalidClaimsError
        try:
            got: Any = read_grants(payload, sources, known)
        except InvalidClaimsError:
            got = InvalidClaimsError
        assert got == expected


# ResourceMatcher (core.iam): the guard beside glob_matches for Resource lists asked about
# again and again. Resources and ARNs are drawn from a small alphabet so that wildcards,
# slashes and shared prefixes collide often.
_arn_chars = st.sampled_from(list("ab/*?G"))
_resource = st.builds(lambda tail: "arn:x:api/prod/" + tail, st.text(_arn_chars, max_size=10))
_any_resource = st.one_of(_resource, st.text(_arn_chars, max_size=8), st.just("*"))
_request = st.builds(lambda tail: "arn:x:api/prod/" + tail, st.text(st.sampled_from(list("ab/G")), max_size=10))


@settings(max_examples=1000, deadline=None)
@given(resources=st.lists(_any_resource, max_size=8), arns=st.lists(_request, min_size=1, max_size=6))
def test_the_resource_matcher_answers_what_glob_matching_every_resource_answers(resources, arns):
    matcher = ResourceMatcher(resources)
    for arn in arns:
        assert matcher.matches(arn) == any(glob_matches(r, arn) for r in resources), (resources, arn)
    half = len(resources) // 2
    allow, deny = ResourceMatcher(resources[:half]), ResourceMatcher(resources[half:])
    for arn in arns:
        policy = {"principalId": "p", "policyDocument": {"Version": "2012-10-17", "Statement": [
            {"Effect": "Allow", "Action": "execute-api:Invoke", "Resource": resources[:half] or ["none"]},
            {"Effect": "Deny", "Action": "execute-api:Invoke", "Resource": resources[half:] or ["none"]}]}}
        assert request_allowed(allow, deny, arn) == (evaluate_response(policy, arn) is Verdict.ALLOW)
