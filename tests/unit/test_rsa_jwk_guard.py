"""RSA keys load without PyJWT, and exactly as PyJWT would load them.

``load_jwks`` builds RS256/384/512 keys of the common shape itself (``_rsa_public_key``),
so a cold start never imports PyJWT's key parsing; every other key goes to ``PyJWK``.
The guard is held to ``PyJWK``: whatever it accepts, PyJWT accepts as the same key.
"""

from __future__ import annotations

import base64
import subprocess
import sys

from cryptography.hazmat.primitives.asymmetric import rsa
from hypothesis import given, settings
from hypothesis import strategies as st
from jwt import PyJWK

from policy_engine.core.tokens.keys import _rsa_public_key, load_jwks
from tests.conftest import ROOT

KEYS = [rsa.generate_private_key(public_exponent=65537, key_size=bits).public_key() for bits in (1024, 2048)]


def b64url(number: int, pad: int = 0) -> str:
    raw = b"\0" * pad + number.to_bytes((number.bit_length() + 7) // 8 or 1, "big")
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def encodings(number: int) -> st.SearchStrategy[object]:
    plain = b64url(number)
    return st.one_of(
        st.just(plain),
        st.integers(0, 3).map(lambda pad: b64url(number, pad)),             # leading zero bytes
        st.just(plain + "="), st.just(plain + "=="),                          # padding PyJWT tolerates
        st.just(plain.replace("-", "+").replace("_", "/")),                   # the standard alphabet
        st.integers(0, len(plain)).map(lambda i: plain[:i] + " " + plain[i:]),
        st.integers(0, len(plain)).map(lambda i: plain[:i] + "*" + plain[i:]),
        st.integers(1, 3).map(lambda cut: plain[:-cut]),                      # truncated
        st.text(alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_=+/", max_size=12),
        st.just(number), st.none(), st.just(plain.encode()),
    )


def jwks(key: rsa.RSAPublicKey) -> st.SearchStrategy[dict[str, object]]:
    numbers = key.public_numbers()
    return st.fixed_dictionaries(
        {"kty": st.just("RSA"), "n": encodings(numbers.n), "e": st.one_of(encodings(numbers.e), encodings(3),
                                                                          encodings(1), encodings(2))},
        optional={"d": encodings(numbers.e), "kid": st.just("k"), "alg": st.sampled_from(["RS256", "PS256"])},
    )


def pyjwt_key(jwk: dict[str, object], algorithm: str) -> object | None:
    try:
        return PyJWK(dict(jwk), algorithm).key
    except Exception:  # noqa: BLE001 - PyJWT raises several types; any of them is a refusal
        return None


@settings(max_examples=200, deadline=None)
@given(st.sampled_from(KEYS).flatmap(jwks), st.sampled_from(["RS256", "RS384", "RS512", "PS256", "ES256"]))
def test_whatever_the_guard_builds_pyjwt_builds_the_same(jwk, algorithm):
    key = _rsa_public_key(jwk, algorithm)
    if key is not None:
        theirs = pyjwt_key(jwk, algorithm)
        assert theirs is not None and isinstance(theirs, rsa.RSAPublicKey)
        assert theirs.public_numbers() == key.public_numbers()


def test_the_common_shape_is_built_by_the_guard_and_others_fall_through():
    numbers = KEYS[1].public_numbers()
    common = {"kty": "RSA", "kid": "k", "use": "sig", "alg": "RS256", "n": b64url(numbers.n), "e": b64url(numbers.e)}
    assert _rsa_public_key(common, "RS256").public_numbers() == numbers
    assert _rsa_public_key(common, "PS256") is None                 # PSS: PyJWT's own verify
    assert _rsa_public_key({**common, "d": "AQAB"}, "RS256") is None  # private members: PyJWT decides
    keys, skipped = load_jwks({"keys": [common, {**common, "kid": "pss", "alg": "PS256"}]}, {"RS256", "PS256"})
    assert set(keys) == {"k", "pss"} and not skipped
    assert keys["k"].key.public_numbers() == keys["pss"].key.public_numbers() == numbers


def test_loading_an_rs256_key_set_does_not_import_pyjwt():
    numbers = KEYS[1].public_numbers()
    document = {"keys": [{"kty": "RSA", "kid": "k", "alg": "RS256", "n": b64url(numbers.n), "e": b64url(numbers.e)}]}
    code = ("import sys; from policy_engine.core.tokens import load_jwks; "
            f"keys, skipped = load_jwks({document!r}, {{'RS256'}}); assert list(keys) == ['k'], skipped; "
            "print(sorted(m for m in sys.modules if m == 'jwt' or m.startswith('jwt.')))")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True, timeout=60)
    assert out.stdout.strip() == "[]"
