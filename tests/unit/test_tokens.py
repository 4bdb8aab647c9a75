"""Each token check at its own layer, so removing any one of them fails a test
(the handler-level tests would still pass thanks to the layers behind it)."""

from __future__ import annotations

import json
import time

import pytest
from jwt.algorithms import RSAAlgorithm

from policy_engine.core.grants import SCOPE, GrantSource
from policy_engine.core.memo import MEMO_ENTRIES, Memo
from policy_engine.core.tokens import (
    JwtVerifier,
    extract_bearer,
    load_jwks,
    parse_jwt,
    principal_of,
    validate_claims,
    verify_signature,
)
from policy_engine.core.tokens.issuers import IssuerRules, normalize_token_types
from policy_engine.core.tokens.jws import decode_jws
from policy_engine.errors import (
    ExpiredTokenError,
    InvalidClaimsError,
    InvalidSignatureError,
    MalformedTokenError,
    UnsupportedAlgorithmError,
)
from policy_engine.settings import variable
from tests.support.forge import b64, claims, raw_token, rsa_key

ISS = "https://idp.example.com"
# The configured order (the first present claim wins), read from its one declaration.
SCOPE_CLAIMS = variable("SCOPE_CLAIMS").default

def read_scopes(payload, names, known=None):
    # SCOPE_CLAIMS as the runtime reads it: one scope source, its first present claim.
    from policy_engine.core.grants import SCOPE, GrantSource, read_grants

    return read_grants(payload, (GrantSource(SCOPE, tuple((name,) for name in names)),), known)


def _rules(token_types=()):
    # One issuer with the default grant source (SCOPE_CLAIMS, first present wins).
    return IssuerRules(ISS, frozenset({"policy-engine-demo"}), (GrantSource(SCOPE, tuple((n,) for n in SCOPE_CLAIMS)),),
                       normalize_token_types(token_types))
KEY = rsa_key()
JWK = {**json.loads(RSAAlgorithm.to_jwk(KEY.public_key())), "kid": "k1", "alg": "RS256"}


def _parse(token, algorithms=("RS256",)):
    return parse_jwt(token, max_length=8192, algorithms=set(algorithms))


def test_parse_refuses_algorithms_outside_the_allow_list_even_if_keys_would_refuse_too():
    token = raw_token({"alg": "HS256", "kid": "k1"}, claims(ISS), b"secret")
    with pytest.raises(UnsupportedAlgorithmError):
        _parse(token)


def test_verify_refuses_a_header_alg_other_than_the_keys_bound_alg():
    keys, _ = load_jwks({"keys": [JWK]}, {"RS256", "RS384"})
    token = _parse(raw_token({"alg": "RS384", "kid": "k1"}, claims(ISS), KEY), ("RS256", "RS384"))
    with pytest.raises(UnsupportedAlgorithmError):
        verify_signature(token, keys["k1"])


def test_verify_refuses_a_bad_signature():
    keys, _ = load_jwks({"keys": [JWK]}, {"RS256"})
    token = _parse(raw_token({"alg": "RS256", "kid": "k1"}, claims(ISS), rsa_key()))
    with pytest.raises(InvalidSignatureError):
        verify_signature(token, keys["k1"])


@pytest.mark.parametrize(
    "jwk,reason",
    [
        ({"kty": "oct", "kid": "s", "k": b64(b"x" * 32), "alg": "HS256"}, "not an asymmetric signing key"),
        ({**JWK, "use": "enc"}, "use is 'enc'"),
        ({**JWK, "key_ops": ["encrypt"]}, "key_ops does not allow verify"),
        ({**JWK, "alg": "PS256"}, "no allowed algorithm"),
        ({k: v for k, v in JWK.items() if k != "kid"}, "without kid"),
        ({**json.loads(RSAAlgorithm.to_jwk(rsa_key(1024).public_key())), "kid": "w", "alg": "RS256"}, "1024 bits"),
    ],
)
def test_load_jwks_skips_unsafe_keys_even_when_their_algorithm_is_passed(jwk, reason):
    keys, skipped = load_jwks({"keys": [jwk]}, {"RS256", "HS256"})
    assert keys == {}
    assert any(reason in line for line in skipped), skipped


def test_load_jwks_drops_kids_listed_twice():
    keys, skipped = load_jwks({"keys": [JWK, JWK]}, {"RS256"})
    assert keys == {} and "k1: listed 2 times" in skipped


def _ec_jwk(curve, kid, **members):
    from cryptography.hazmat.primitives.asymmetric import ec
    from jwt.algorithms import ECAlgorithm

    public = ec.generate_private_key(curve).public_key()
    return {**json.loads(ECAlgorithm.to_jwk(public)), "kid": kid, **members}


@pytest.mark.parametrize("members", [
    {"crv": ["P-256"]}, {"crv": {"name": "P-256"}}, {"crv": None, "alg": "ES256"}, {"x": 7}, {"alg": ["ES256"]},
    {"use": ["sig"]}, {"key_ops": [["verify"]]}, {"n": 5}, {"e": ["AQAB"]},
], ids=lambda m: json.dumps(m))
def test_a_key_whose_members_cannot_be_read_is_skipped_and_the_others_still_load(members):
    # RFC 7517 §5: a key the reader does not understand is ignored; one such key must
    # neither stop the set from loading nor stop the container (it used to raise TypeError).
    from cryptography.hazmat.primitives.asymmetric import ec

    rsa = "n" in members or "e" in members
    odd = {**({**JWK, "kid": "odd"} if rsa else _ec_jwk(ec.SECP256R1(), "odd")), **members}
    keys, skipped = load_jwks({"keys": [odd, JWK]}, {"RS256", "ES256"})
    assert list(keys) == ["k1"]
    assert any(line.startswith("odd: ") for line in skipped), skipped


@pytest.mark.parametrize("alg,curve", [("ES256", "SECP384R1"), ("ES384", "SECP256R1"), ("ES256", "SECP256K1")])
def test_an_ec_key_whose_curve_is_not_its_algorithms_is_skipped(alg, curve):
    # RFC 7518 §3.4: ES256 is ECDSA on P-256 (ES384 P-384, ES512 P-521).
    from cryptography.hazmat.primitives.asymmetric import ec

    keys, skipped = load_jwks({"keys": [_ec_jwk(getattr(ec, curve)(), "e1", alg=alg)]}, {"ES256", "ES384"})
    assert keys == {} and any("no allowed algorithm" in line for line in skipped), skipped


def test_an_ec_key_without_alg_is_bound_by_its_curve():
    from cryptography.hazmat.primitives.asymmetric import ec

    keys, _ = load_jwks({"keys": [_ec_jwk(ec.SECP384R1(), "e1")]}, {"ES256", "ES384"})
    assert keys["e1"].algorithm == "ES384"


@pytest.mark.parametrize("allowed,bound", [
    ({"RS256"}, "RS256"), ({"RS256", "PS256"}, "RS256"), ({"RS256", "RS384", "RS512"}, "RS256"),
    ({"PS256"}, "PS256"), ({"RS384", "PS256"}, None), ({"ES256"}, None),
])
def test_an_rsa_key_without_alg_is_bound_to_rs256_when_allowed(allowed, bound):
    # Entra ID publishes RSA keys without "alg"; allowing a second RSA algorithm must not
    # drop them (OpenID Connect's default, RS256, is chosen when it is allowed).
    keys, _ = load_jwks({"keys": [{k: v for k, v in JWK.items() if k != "alg"}]}, allowed)
    assert (keys["k1"].algorithm if keys else None) == bound


def test_max_token_length_bounds_the_token_whatever_the_spaces_before_it():
    token = "a" * 64
    assert extract_bearer("Bearer " + token, 64) == token
    assert extract_bearer("Bearer    " + token, 64) == token
    for header in ("Bearer " + token + "b", "Bearer  " + token + "b"):
        with pytest.raises(MalformedTokenError, match="MAX_TOKEN_LENGTH"):
            extract_bearer(header, 64)


@pytest.mark.parametrize("member", ["jku", "x5u", "jwk", "x5c", "crit", "b64"])
def test_parse_refuses_key_pointers_and_extensions(member):
    with pytest.raises(MalformedTokenError):
        _parse(raw_token({"alg": "RS256", "kid": "k1", member: "x"}, claims(ISS), KEY))


def test_parse_refuses_duplicate_members_and_overlong_tokens():
    payload = json.dumps(claims(ISS))[:-1] + ', "sub": "other"}'
    with pytest.raises(MalformedTokenError):
        _parse(raw_token({"alg": "RS256", "kid": "k1"}, payload, KEY))
    with pytest.raises(MalformedTokenError):
        parse_jwt(raw_token({"alg": "RS256", "kid": "k1"}, claims(ISS), KEY), max_length=100, algorithms={"RS256"})


def _claims_ok(**overrides):
    token = _parse(raw_token({"alg": "RS256", "kid": "k1", "typ": "at+jwt"}, claims(ISS, **overrides), KEY))
    validate_claims(token, issuer=ISS, audiences={"policy-engine-demo"}, now=time.time(), leeway=5,
                    token_types={"at+jwt"})


@pytest.mark.parametrize(
    "overrides,error",
    [
        ({"exp": None}, InvalidClaimsError),
        ({"exp": "9999999999"}, InvalidClaimsError),
        ({"exp": 1.5e300 * 1e10}, MalformedTokenError),  # JSON Infinity is refused at parse
        ({"exp": int(time.time()) - 10}, ExpiredTokenError),
        ({"nbf": int(time.time()) + 3600}, InvalidClaimsError),  # values are fixed at collection: leave a margin
        ({"iat": int(time.time()) + 3600}, InvalidClaimsError),
        ({"iss": ISS + "/"}, InvalidClaimsError),
        ({"aud": "other"}, InvalidClaimsError),
        ({"aud": None}, InvalidClaimsError),
        ({"aud": [1]}, InvalidClaimsError),
        ({"token_use": "id"}, InvalidClaimsError),
        ({"aud": None, "token_use": "access", "client_id": "other"}, InvalidClaimsError),
        ({"client_id": 5}, InvalidClaimsError),
    ],
)
def test_claim_rules(overrides, error):
    with pytest.raises(error):
        _claims_ok(**overrides)


def _step_by_step(token: str, keys: dict, now: float):
    # The small public functions in turn: what JwtVerifier must agree with.
    parsed = _parse(token)
    verify_signature(parsed, keys[parsed.kid])
    validate_claims(parsed, issuer=ISS, audiences={"policy-engine-demo"}, now=now, leeway=5, token_types={"at+jwt"})
    return principal_of(parsed.payload), read_scopes(parsed.payload, SCOPE_CLAIMS)


@pytest.mark.parametrize(
    "header,overrides",
    [({}, {}), ({}, {"sub": ""}), ({}, {"sub": None, "client_id": "policy-engine-demo"}), ({}, {"sub": None}),
     ({}, {"scp": ["a", "b"]}), ({}, {"scope": 7}), ({}, {"aud": ["x", "policy-engine-demo"]}), ({}, {"aud": ["x"]}),
     ({}, {"nbf": None}), ({}, {"iat": "1"}), ({}, {"exp": True}), ({}, {"exp": 1e20}), ({}, {"nbf": 1.5}),
     ({"typ": "JWT"}, {}), ({"kid": "k2"}, {}), ({"alg": "RS384"}, {}), ({}, {"iss": "https://other.example.com"})]
    + [({}, overrides) for overrides, _ in [
        ({"exp": None}, 0), ({"exp": "9999999999"}, 0), ({"exp": int(time.time()) - 10}, 0),
        ({"nbf": int(time.time()) + 3600}, 0), ({"iat": int(time.time()) + 3600}, 0), ({"aud": "other"}, 0),
        ({"aud": None}, 0), ({"aud": [1]}, 0), ({"token_use": "id"}, 0),
        ({"aud": None, "token_use": "access", "client_id": "other"}, 0), ({"client_id": 5}, 0)]],
)
def test_the_one_pass_verifier_agrees_with_the_rules_step_by_step(header, overrides):
    token = raw_token({"alg": "RS256", "kid": "k1", "typ": "at+jwt", **header}, claims(ISS, **overrides), KEY)
    other = rsa_key()
    keys = {"k1": load_jwks({"keys": [JWK]}, {"RS256"})[0]["k1"],
            "k2": load_jwks({"keys": [{**json.loads(RSAAlgorithm.to_jwk(other.public_key())), "kid": "k2",
                                      "alg": "RS256"}]}, {"RS256"})[0]["k2"]}
    asked: list[tuple[str, str]] = []

    def get_key(issuer: str, kid: str):
        asked.append((issuer, kid))
        return keys[kid]

    verifier = JwtVerifier(rules=[_rules(token_types=["application/at+jwt"])], algorithms=["RS256"], leeway=5,
                           max_length=8192)
    now = time.time()
    try:
        expected = _step_by_step(token, keys, now)
    except Exception as exc:  # noqa: BLE001 - whatever the reference refuses with, the verifier must too
        with pytest.raises(type(exc)):
            verifier.verify(token, get_key, now)
        # Keys are asked for only on behalf of a configured issuer.
        assert all(issuer == ISS for issuer, _ in asked)
        return
    verified = verifier.verify(token, get_key, now)
    assert (verified.principal_id, verified.grants) == expected
    assert verified.issuer == ISS and asked == [(ISS, "k1")]


def test_claims_accept_the_good_cases_and_only_them():
    # Each accepted case is paired with its nearest refused one, so a rule that accepted
    # everything (or nothing) fails here.
    _claims_ok()
    with pytest.raises(InvalidClaimsError):
        _claims_ok(aud="another-api")
    _claims_ok(aud=None, token_use="access", client_id="policy-engine-demo")
    with pytest.raises(InvalidClaimsError):
        _claims_ok(aud=None, token_use="access", client_id="another-client")
    _claims_ok(exp=int(time.time()) - 3)  # within leeway (5 s)
    with pytest.raises(ExpiredTokenError):
        _claims_ok(exp=int(time.time()) - 30)


def test_token_type_rule():
    token = _parse(raw_token({"alg": "RS256", "kid": "k1", "typ": "JWT"}, claims(ISS), KEY))
    with pytest.raises(InvalidClaimsError):
        validate_claims(token, issuer=ISS, audiences={"policy-engine-demo"}, now=time.time(), leeway=0,
                        token_types={"at+jwt"})


def test_scopes_are_exact_tokens_of_the_first_present_claim():
    assert read_scopes({"scope": "a  b c"}, ("scope", "scp")) == {"a", "b", "c"}
    assert read_scopes({"scp": ["a", "b"]}, ("scope", "scp")) == {"a", "b"}
    assert read_scopes({}, ("scope",)) == frozenset()
    for bad in ({"scope": 1}, {"scope": ["a", 2]}, {"scope": {"a": 1}}):
        with pytest.raises(InvalidClaimsError):
            read_scopes(bad, ("scope",))
    # A grant claim that is null is present with the wrong type: refused (401), and the
    # next alternative ("scp") is not read in its place.
    for bad in ({"scope": None}, {"scope": None, "scp": "a"}):
        with pytest.raises(InvalidClaimsError, match="scope claim is"):
            read_scopes(bad, ("scope", "scp"))


@pytest.mark.parametrize("header", ["Bearer ====", "Bearer a b", "Bearer\ta", "Basic a", "Bearer", "bearer  a="])
def test_bearer_rules(header):
    if header == "bearer  a=":
        assert extract_bearer(header, 100) == "a="
        return
    with pytest.raises(MalformedTokenError):
        extract_bearer(header, 100)


def test_remembered_headers_still_meet_the_algorithm_allow_list():
    headers: Memo = Memo()
    token = raw_token({"alg": "RS384", "kid": "k1"}, claims(ISS), KEY)
    assert decode_jws(token, 8192, ("RS256", "RS384"), headers)[0]["alg"] == "RS384"
    assert token.split(".")[0].encode() in headers  # now remembered
    with pytest.raises(UnsupportedAlgorithmError):
        decode_jws(token, 8192, ("RS256",), headers)


def test_remembered_headers_stay_bounded_under_forged_kids():
    headers: Memo = Memo()
    for i in range(3 * MEMO_ENTRIES):
        decode_jws(raw_token({"alg": "RS256", "kid": f"forged-{i}"}, claims(ISS), KEY), 8192, ("RS256",), headers)
        assert len(headers) <= MEMO_ENTRIES


def test_a_bad_header_is_never_remembered():
    headers: Memo = Memo()
    token = raw_token({"alg": "RS256", "kid": "k1", "jku": "https://evil.example"}, claims(ISS), KEY)
    for _ in range(2):
        with pytest.raises(MalformedTokenError):
            decode_jws(token, 8192, ("RS256",), headers)
    assert headers == {}


def test_remembered_scope_sets_stay_bounded_and_never_mix_callers():
    known: Memo = Memo()
    for i in range(1000):
        assert read_scopes({"scope": f"a{i}  b{i} "}, ("scope",), known) == frozenset({f"a{i}", f"b{i}"})
        assert len(known) <= MEMO_ENTRIES
    assert read_scopes({"scope": "a1 b1"}, ("scope",), known) == frozenset({"a1", "b1"})


def test_each_verifier_keeps_its_own_memos():
    # Per-authorizer memos: what one verifier remembered is never read by another.
    keys = {"k1": load_jwks({"keys": [JWK]}, {"RS256"})[0]["k1"]}
    options = {"rules": [_rules()], "algorithms": ["RS256"], "leeway": 5, "max_length": 8192}
    first, second = JwtVerifier(**options), JwtVerifier(**options)
    first.verify(raw_token({"alg": "RS256", "kid": "k1"}, claims(ISS), KEY), lambda issuer, kid: keys[kid],
                 time.time())
    assert len(first._headers) == 1 and len(first._grant_sets[ISS]) == 1
    assert len(second._headers) == 0 and len(second._grant_sets[ISS]) == 0


def test_remembered_grant_sets_never_cross_grant_sources():
    # The same claim values read under other sources are other grants: a set remembered
    # for one issuer's sources is never handed to an issuer whose sources differ.
    from policy_engine.core.grants import read_grants

    as_groups = (GrantSource("scope", (("scope",),)), GrantSource("group", (("groups",),)))
    as_roles = (GrantSource("scope", (("scope",),)), GrantSource("role", (("groups",),)))
    payload = {"scope": "a", "groups": ["admin"]}
    known: Memo = Memo()
    assert read_grants(payload, as_groups, known) == frozenset({"a", "group admin"})
    assert read_grants(dict(payload), as_groups, known) is read_grants(payload, as_groups, known)
    rules = [_rules(), IssuerRules("https://other.example.com", frozenset({"api"}), as_roles)]
    verifier = JwtVerifier(rules=rules, algorithms=["RS256"], leeway=5, max_length=8192)
    assert verifier._grant_sets[ISS] is not verifier._grant_sets["https://other.example.com"]


def test_a_remembered_grant_set_never_vouches_for_a_value_the_rule_refuses():
    from policy_engine.core.grants import read_grants

    sources = (GrantSource("scope", (("scope",),)), GrantSource("group", (("groups",),)))
    known: Memo = Memo()
    read_grants({"scope": "a", "groups": ["x"]}, sources, known)
    for bad in ([["x"]], [{"x": 1}], [1], {"x": 1}, 7, True):
        with pytest.raises(InvalidClaimsError):
            read_grants({"scope": "a", "groups": bad}, sources, known)


def test_a_scope_list_item_with_a_space_never_reads_as_a_grant_of_another_kind():
    # "group admin" is the grant key of the group admin; in a scope claim it is no scope
    # token at all, and must grant nothing (not the group's routes).
    from policy_engine.core.grants import GrantSource, read_grants

    scopes_only = (GrantSource("scope", (("scp",),)),)
    several = (GrantSource("scope", (("scp",),)), GrantSource("role", (("roles",),)))
    payload = {"scp": ["pets:read", "group admin", "role x"], "roles": ["Pets Reader"]}
    assert read_grants(payload, scopes_only) == frozenset({"pets:read"})
    assert read_grants(payload, scopes_only, Memo()) == frozenset({"pets:read"})
    assert read_grants(payload, several) == frozenset({"pets:read", "role Pets Reader"})
    assert read_grants(payload, several, Memo()) == frozenset({"pets:read", "role Pets Reader"})


def test_a_claim_path_through_a_value_that_is_not_an_object_is_refused():
    from policy_engine.core.grants import GrantSource, read_grants

    roles = (GrantSource("role", (("realm_access", "roles"),)),)
    assert read_grants({"realm_access": {"roles": ["admin"]}}, roles) == {"role admin"}
    assert read_grants({"realm_access": {}}, roles) == frozenset()  # absent: no grant
    assert read_grants({}, roles) == frozenset()
    for bad, problem in (({"realm_access": ["roles"]}, "realm_access claim is not an object"),
                         ({"realm_access": "roles"}, "realm_access claim is not an object"),
                         ({"realm_access": None}, "realm_access claim is null"),
                         ({"realm_access": {"roles": None}}, "realm_access.roles claim is null")):
        with pytest.raises(InvalidClaimsError, match=problem):
            read_grants(bad, roles)
