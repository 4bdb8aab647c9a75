"""Every token the authorizer must refuse, through the real handler and a real JWKS.

Each case would be accepted if the check it names were removed: the tokens are
otherwise valid (right key, issuer, audience, unexpired) unless the case says so.
"""

from __future__ import annotations

import base64
import json
import time

import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from jwt.algorithms import ECAlgorithm, RSAAlgorithm

from policy_engine.admin.local.invoke import invoke
from policy_engine.core.iam import Verdict
from tests.conftest import token_event, verdict
from tests.support.forge import b64, claims, raw_token, rsa_key


def _signed(idp, header_extra=None, **claim_overrides):
    key = idp.keys[0]
    header = {"alg": "RS256", "typ": "at+jwt", "kid": key.kid, **(header_extra or {})}
    return raw_token(header, claims(idp.issuer, **claim_overrides), key.private_key)


def _refused(handler, token) -> bool:
    result = invoke(handler, token_event(token, "GET", "/pets"))
    return result.unauthorized


def test_control_a_forged_but_correct_token_is_allowed(idp, make_handler):
    # The forge itself produces acceptable tokens; every refusal below is due to one change.
    result = invoke(make_handler(), token_event(_signed(idp), "GET", "/pets"))
    assert verdict(result, "GET", "/pets") is Verdict.ALLOW


@pytest.mark.parametrize("header", ["bearer {t}", "BEARER {t}", "Bearer   {t}"])
def test_bearer_scheme_is_case_insensitive(idp, make_handler, header):
    event = token_event(None)
    event["authorizationToken"] = header.format(t=idp.mint())
    assert verdict(invoke(make_handler(), event), "GET", "/pets") is Verdict.ALLOW


@pytest.mark.parametrize(
    "header",
    [None, "", "{t}", "Basic {t}", "Bearer", "Bearer ", "Bearer {t} {t}", "Bearer {t},Bearer {t}",
     "Bearer\t{t}", "Bearer {t} ", " Bearer {t}", "Token {t}", "Bearer ====", "Bearer {t}\u00e9",
     "Bearer {t}\n"],
)
def test_authorization_value_must_be_exactly_one_bearer_token(idp, make_handler, header):
    event = token_event(None)
    event["authorizationToken"] = header.format(t=idp.mint()) if header is not None else None
    assert invoke(make_handler(), event).unauthorized


def test_token_that_is_not_a_string_is_refused(idp, make_handler):
    event = token_event(None)
    event["authorizationToken"] = ["Bearer", idp.mint()]
    assert invoke(make_handler(), event).unauthorized


@pytest.mark.parametrize("method_arn", [None, "", 12, "arn:aws:lambda:us-east-1:1:function:x",
                                        "arn:aws:execute-api:us-east-1:123456789012:a1b2c3d4e5"])
def test_malformed_event_is_refused(idp, make_handler, method_arn):
    event = token_event(idp.mint())
    event["methodArn"] = method_arn
    assert invoke(make_handler(), event).unauthorized


def test_event_of_unknown_type_is_refused(idp, make_handler):
    event = token_event(idp.mint())
    event["type"] = "SOMETHING"
    assert invoke(make_handler(), event).unauthorized


@pytest.mark.parametrize("alg", ["none", "None", "NONE"])
def test_alg_none_is_refused(idp, make_handler, alg):
    token = raw_token({"alg": alg, "kid": idp.keys[0].kid}, claims(idp.issuer), None, alg="none")
    assert _refused(make_handler(), token)


def test_hmac_signed_with_the_public_key_is_refused(idp, make_handler):
    public_pem = idp.keys[0].public_jwk()["n"].encode()
    token = raw_token({"alg": "HS256", "kid": idp.keys[0].kid}, claims(idp.issuer), public_pem)
    assert _refused(make_handler(ALLOWED_ALGORITHMS="RS256"), token)


def test_hmac_algorithms_cannot_even_be_configured(idp, make_handler):
    from policy_engine.errors import ConfigurationError

    with pytest.raises(ConfigurationError) as info:
        make_handler(ALLOWED_ALGORITHMS="RS256,HS256")
    assert info.value.variable == "ALLOWED_ALGORITHMS"


def test_wrong_signature_is_refused(idp, make_handler):
    other = rsa_key()
    token = raw_token({"alg": "RS256", "kid": idp.keys[0].kid}, claims(idp.issuer), other)
    assert _refused(make_handler(), token)


def test_stripped_signature_is_refused(idp, make_handler):
    head, body, _ = _signed(idp).split(".")
    assert _refused(make_handler(), f"{head}.{body}.")
    assert _refused(make_handler(), f"{head}.{body}")


@pytest.mark.parametrize("member,value", [("jku", "https://evil.example/jwks"), ("x5u", "https://evil.example/c"),
                                          ("jwk", {"kty": "RSA"}), ("x5c", ["MIIB"]), ("crit", ["exp"])])
def test_headers_pointing_at_other_keys_are_refused(idp, make_handler, member, value):
    assert _refused(make_handler(), _signed(idp, {member: value}))


def test_missing_kid_is_refused(idp, make_handler):
    token = raw_token({"alg": "RS256"}, claims(idp.issuer), idp.keys[0].private_key)
    assert _refused(make_handler(), token)


def test_header_alg_must_equal_the_key_algorithm(idp, make_handler):
    key = idp.keys[0]
    token = raw_token({"alg": "RS384", "kid": key.kid}, claims(idp.issuer), key.private_key)
    assert _refused(make_handler(ALLOWED_ALGORITHMS="RS256,RS384"), token)


def _serve_jwks(idp, keys):
    idp.jwks_override = lambda: (200, json.dumps({"keys": keys}).encode())


def _extra_key(idp, kid, **jwk_members):
    key = rsa_key()
    jwk = {**json.loads(RSAAlgorithm.to_jwk(key.public_key())), "kid": kid, "alg": "RS256", **jwk_members}
    _serve_jwks(idp, [jwk, idp.keys[0].public_jwk()])
    return raw_token({"alg": "RS256", "kid": kid}, claims(idp.issuer), key)


def test_keys_marked_for_encryption_are_not_used(idp, make_handler):
    token = _extra_key(idp, "enc1", use="enc")
    handler = make_handler()
    assert _refused(handler, token)
    assert not _refused(handler, _signed(idp))


def test_key_ops_without_verify_are_not_used(idp, make_handler):
    token = _extra_key(idp, "ops1", key_ops=["encrypt"])
    handler = make_handler()
    assert _refused(handler, token)
    assert not _refused(handler, _signed(idp))


def test_a_jwks_without_any_usable_key_fails_closed(idp, make_handler):
    _serve_jwks(idp, [{**idp.keys[0].public_jwk(), "use": "enc"}])
    result = invoke(make_handler(), token_event(_signed(idp)))
    assert result.response is None and result.error == "AuthorizerFailure"


def test_rsa_keys_under_2048_bits_are_not_used(idp, make_handler):
    weak = rsa_key(1024)
    jwk = {**json.loads(RSAAlgorithm.to_jwk(weak.public_key())), "kid": "weak", "alg": "RS256"}
    _serve_jwks(idp, [jwk, idp.keys[0].public_jwk()])
    token = raw_token({"alg": "RS256", "kid": "weak"}, claims(idp.issuer), weak)
    handler = make_handler()
    assert _refused(handler, token)
    assert not _refused(handler, _signed(idp))  # the strong key in the same set still works


def test_symmetric_oct_keys_in_a_jwks_are_never_loaded(idp, make_handler):
    secret = b"0123456789abcdef0123456789abcdef"
    _serve_jwks(idp, [{"kty": "oct", "kid": "sym", "k": b64(secret), "alg": "HS256"}, idp.keys[0].public_jwk()])
    token = raw_token({"alg": "HS256", "kid": "sym"}, claims(idp.issuer), secret)
    assert _refused(make_handler(), token)


def test_duplicate_kids_in_a_jwks_make_that_kid_unusable(idp, make_handler):
    other = rsa_key()
    twin = {**json.loads(RSAAlgorithm.to_jwk(other.public_key())), "kid": idp.keys[0].kid, "alg": "RS256"}
    _serve_jwks(idp, [idp.keys[0].public_jwk(), twin])
    result = invoke(make_handler(), token_event(_signed(idp)))
    assert result.response is None


@pytest.mark.parametrize(
    "overrides",
    [
        {"iss": "https://evil.example"},
        {"aud": "someone-else"},
        {"aud": ["someone-else", "another"]},
        {"aud": None},
        {"exp": None},
        {"exp": "9999999999"},
        {"exp": True},
        {"exp": int(time.time()) - 3600},
        {"nbf": int(time.time()) + 3600},
        {"iat": int(time.time()) + 3600},
        {"scope": 42},
        {"scope": {"pets:read": True}},
        {"token_use": "id"},
        {"sub": None, "client_id": None},
        {"sub": 7},
    ],
    ids=lambda o: ",".join(f"{k}={v!r}"[:30] for k, v in o.items()),
)
def test_claims_that_must_be_refused(idp, make_handler, overrides):
    assert _refused(make_handler(), _signed(idp, **overrides))


def test_scp_claim_of_the_wrong_type_is_refused(idp, make_handler):
    assert _refused(make_handler(), _signed(idp, scope=None, scp=["pets:read", 3]))  # scope absent


@pytest.mark.parametrize("nulls", [{"scope": None}, {"scope": None, "scp": "pets:read"}])
def test_a_grant_claim_that_is_null_is_refused_not_read_as_absent(idp, make_handler, nulls):
    # A JSON null is a claim of the wrong type: 401, and the next alternative (scp) is
    # not read in its place.
    key = idp.keys[0]
    payload = {**claims(idp.issuer), **nulls}
    token = raw_token({"alg": "RS256", "typ": "at+jwt", "kid": key.kid}, payload, key.private_key)
    assert '"scope": null' in base64.urlsafe_b64decode(token.split(".")[1] + "==").decode()
    assert _refused(make_handler(), token)


def test_leeway_is_honoured_and_bounded(idp, make_handler):
    just_expired = _signed(idp, exp=int(time.time()) - 10)
    assert not _refused(make_handler(CLOCK_LEEWAY="30"), just_expired)
    assert _refused(make_handler(CLOCK_LEEWAY="0"), just_expired)


def test_cognito_access_token_matches_client_id_when_it_has_no_aud(idp, make_handler):
    token = _signed(idp, aud=None, token_use="access", client_id="policy-engine-demo")
    assert not _refused(make_handler(), token)
    other_client = _signed(idp, aud=None, token_use="access", client_id="other-app")
    assert _refused(make_handler(), other_client)


def test_array_aud_with_our_audience_is_accepted(idp, make_handler):
    assert not _refused(make_handler(), _signed(idp, aud=["other", "policy-engine-demo"]))


def test_token_type_is_checked_when_configured(idp, make_handler):
    handler = make_handler(TOKEN_TYPES="at+jwt")
    assert not _refused(handler, _signed(idp))
    assert _refused(handler, _signed(idp, {"typ": "JWT"}))


def test_duplicate_json_members_are_refused(idp, make_handler):
    key = idp.keys[0]
    payload = json.dumps(claims(idp.issuer))[:-1] + ', "iss": "https://evil.example"}'
    token = raw_token({"alg": "RS256", "kid": key.kid}, payload, key.private_key)
    assert _refused(make_handler(), token)
    header = f'{{"alg": "RS256", "kid": "{key.kid}", "alg": "none"}}'
    assert _refused(make_handler(), raw_token(header, claims(idp.issuer), key.private_key, alg="RS256"))


@pytest.mark.parametrize("payload", ['["not", "an", "object"]', '"string"', '{"exp": NaN}', "\ufeff{}"])
def test_payload_that_is_not_a_plain_json_object_is_refused(idp, make_handler, payload):
    key = idp.keys[0]
    assert _refused(make_handler(), raw_token({"alg": "RS256", "kid": key.kid}, payload, key.private_key))


def test_tokens_over_the_length_cap_are_refused_before_decoding(idp, make_handler):
    big = _signed(idp, padding="x" * 9000)
    assert _refused(make_handler(), big)
    assert not _refused(make_handler(MAX_TOKEN_LENGTH="20000"), big)


def test_padding_and_non_base64url_characters_are_refused(idp, make_handler):
    head, body, sig = _signed(idp).split(".")
    assert _refused(make_handler(), f"{head}.{body}.{sig}==")
    assert _refused(make_handler(), f"{head}.{body.replace('-', '+')}x.{sig}")
    assert _refused(make_handler(), f"{head}.{body}.{sig}.{sig}")


_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"


def _respelt(segment: str) -> str:
    # The same bytes spelt otherwise: the last character's unused low bits set (RFC 4648 §3.5).
    unused = {2: 0b1111, 3: 0b11}[len(segment) % 4]
    return segment[:-1] + _ALPHABET[_ALPHABET.index(segment[-1]) | unused]


def test_a_segment_whose_unused_bits_are_set_is_refused(idp, make_handler):
    # Each respelling decodes to the same bytes (and verifies): refusing them keeps one
    # token one authorizer cache key, and one string for any list of revoked tokens.
    import base64

    handler = make_handler()
    body = {**claims(idp.issuer), "pad": "x"}
    for extra in ("", "y", "yz"):  # payload lengths of all three remainders
        body["pad"] = "x" + extra
        head, payload, sig = _signed(idp, pad=body["pad"]).split(".")
        assert not _refused(handler, f"{head}.{payload}.{sig}")
        for parts in ([head, payload, _respelt(sig)] if len(sig) % 4 else [],
                      [head, _respelt(payload), sig] if len(payload) % 4 else [],
                      [_respelt(head), payload, sig] if len(head) % 4 else []):
            if parts:
                respelt = ".".join(parts)
                assert [base64.urlsafe_b64decode(p + "==") for p in respelt.split(".")] == \
                       [base64.urlsafe_b64decode(p + "==") for p in (head, payload, sig)]
                assert _refused(handler, respelt), respelt


@pytest.mark.parametrize("stray", ["~", "!", "%", "\\", "\n"])
def test_a_stray_character_in_an_otherwise_valid_signature_is_refused(idp, make_handler, stray):
    # Lenient base64 decoders skip such characters, and the signature would still verify.
    # Four of them keep the length's padding arithmetic intact, so only strictness refuses.
    head, body, sig = _signed(idp).split(".")
    handler = make_handler()
    assert not _refused(handler, f"{head}.{body}.{sig}")
    assert _refused(handler, f"{head}.{body}.{sig[:10]}{stray * 4}{sig[10:]}")


def test_es256_and_ps256_verify_when_configured(idp, make_handler):
    ec_key = ec.generate_private_key(ec.SECP256R1())
    ec_jwk = {**json.loads(ECAlgorithm.to_jwk(ec_key.public_key())), "kid": "ec1", "use": "sig"}
    ps_key = rsa_key()
    ps_jwk = {**json.loads(RSAAlgorithm.to_jwk(ps_key.public_key())), "kid": "ps1", "alg": "PS256"}
    _serve_jwks(idp, [ec_jwk, ps_jwk])
    es_token = raw_token({"alg": "ES256", "kid": "ec1"}, claims(idp.issuer), ec_key)
    ps_token = raw_token({"alg": "PS256", "kid": "ps1"}, claims(idp.issuer), ps_key)
    assert _refused(make_handler(), es_token)  # RS256 only by default
    handler = make_handler(ALLOWED_ALGORITHMS="ES256,PS256")
    assert not _refused(handler, es_token)
    assert not _refused(handler, ps_token)


@pytest.mark.parametrize("alg", ["RS384", "RS512"])
def test_rs384_and_rs512_verify_when_configured_and_only_with_their_own_hash(idp, make_handler, alg):
    key = rsa_key()
    _serve_jwks(idp, [{**json.loads(RSAAlgorithm.to_jwk(key.public_key())), "kid": "r1", "alg": alg}])
    token = raw_token({"alg": alg, "kid": "r1"}, claims(idp.issuer), key)
    handler = make_handler(ALLOWED_ALGORITHMS=f"RS256,{alg}")
    assert verdict(invoke(handler, token_event(token, "GET", "/pets")), "GET", "/pets") is Verdict.ALLOW
    # The same key, the same header, but signed with SHA-256 instead of the JWK's hash.
    assert _refused(handler, raw_token({"alg": alg, "kid": "r1"}, claims(idp.issuer), key, alg="RS256"))
