"""Verification keys: JWKS documents turned into keys bound to one algorithm each, and
signature checks with them (RFC 7517, RFC 8725 §3.1).

PyJWT turns JWKs into keys and supplies its algorithm objects; which keys are usable
is decided here, strictly (no symmetric keys, no short RSA keys, no ambiguous kids).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from policy_engine.core.tokens.jws import ParsedJwt, b64url_decode
from policy_engine.errors import InvalidSignatureError, MalformedTokenError, UnsupportedAlgorithmError

if TYPE_CHECKING:  # cryptography is imported where keys are loaded, not at import time
    from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey

__all__ = ["VerificationKey", "check_signature", "load_jwks", "verify_signature"]


@dataclass(frozen=True, slots=True)
class VerificationKey:
    """A public key bound to exactly one algorithm (RFC 8725 §3.1).

    ``check(signing_input, signature)`` says whether the signature verifies; it may
    raise on malformed signatures.
    """

    kid: str
    algorithm: str
    key: Any
    check: Callable[[bytes, bytes], bool]


def _signature_check(key: Any, algorithm: Any) -> Callable[[bytes, bytes], bool]:
    """A verifier for one key and PyJWT algorithm object.

    RS256-family keys (nearly every IdP) get ``_pkcs1_v15_check``; every other family
    goes through PyJWT's own ``verify``.
    """
    from jwt.algorithms import RSAAlgorithm

    if type(algorithm) is RSAAlgorithm:
        # hash_alg is the hash class; typeshed declares `name` on instances only.
        return _pkcs1_v15_check(key, algorithm.hash_alg().name)
    return lambda message, signature: bool(algorithm.verify(message, key, signature))


# RFC 8017 §9.2, note 1: the DER DigestInfo that precedes the hash in an RSASSA-PKCS1-v1_5
# signature, per hash.
_DIGEST_INFO = {
    "sha256": bytes.fromhex("3031300d060960864801650304020105000420"),
    "sha384": bytes.fromhex("3041300d060960864801650304020205000430"),
    "sha512": bytes.fromhex("3051300d060960864801650304020305000440"),
}


def _pkcs1_v15_check(key: RSAPublicKey, hash_name: str) -> Callable[[bytes, bytes], bool]:
    """RSASSA-PKCS1-v1_5 verification (RFC 8017 §8.2.2) for one RSA public key.

    This is the RFC's own method, and what OpenSSL's ``RSA_verify`` does inside: the
    RSA operation and the check of the ``00 01 FF..FF 00`` padding (OpenSSL, through
    ``recover_data_from_signature``), then a byte comparison of what remains with the
    DigestInfo the message must have; nothing is parsed, so a malformed DigestInfo
    can never pass. It skips the signature context ``verify`` sets up on every call:
    measured inside real decisions, that saves 0.09-0.10 of the floor in
    ``benchmarks/decision.py``.
    """
    import hashlib

    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives.asymmetric import padding

    prefix = _DIGEST_INFO[hash_name]
    digest: Callable[[bytes], hashlib._Hash] = getattr(hashlib, hash_name)  # hashlib.sha256 and its kin
    recover, pkcs1, size = key.recover_data_from_signature, padding.PKCS1v15(), (key.key_size + 7) // 8

    def check(message: bytes, signature: bytes) -> bool:
        if len(signature) != size:  # §8.2.2 step 1; OpenSSL would accept a shorter one
            return False
        try:
            encoded = recover(signature, pkcs1, None)
        except InvalidSignature:  # bad padding, or a signature not below the modulus
            return False
        return encoded == prefix + digest(message).digest()

    return check


_FAMILIES = {
    "RSA": ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512"),
    "EC": ("ES256", "ES384", "ES512"),
    "OKP": ("EdDSA",),
}
_CURVE_ALG = {"P-256": "ES256", "P-384": "ES384", "P-521": "ES512"}
_MIN_RSA_BITS = 2048


def load_jwks(document: Any, algorithms: Collection[str]) -> tuple[dict[str, VerificationKey], list[str]]:
    """Turn a JWKS document into verification keys, skipping every key that is unsafe.

    Skipped (with a reason): symmetric ``oct`` keys, ``use`` other than ``sig``,
    ``key_ops`` without ``verify``, RSA under 2048 bits, no ``kid``, no algorithm in
    ``algorithms`` that fits the key (``_bind_algorithm``), key material that cannot be
    read (whatever its members hold), and kids listed more than once (which key is
    meant is then unknowable).

    Raises:
        ValueError: the document is not a JWKS (the adapter wraps it).
    """
    if not isinstance(document, Mapping) or not isinstance(document.get("keys"), list):
        raise ValueError("JWKS document has no 'keys' list")
    keys: dict[str, VerificationKey] = {}
    skipped: list[str] = []
    seen: dict[str, int] = {}
    for jwk in document["keys"]:
        if not isinstance(jwk, Mapping):
            skipped.append("a key that is not an object")
            continue
        kid = jwk.get("kid")
        if not isinstance(kid, str) or not kid:
            skipped.append("a key without kid")
            continue
        seen[kid] = seen.get(kid, 0) + 1
        try:
            loaded = _load_key(jwk, kid, algorithms)
        except (TypeError, ValueError, KeyError, AttributeError, OverflowError) as exc:
            # RFC 7517 §5: a key whose members cannot be read is ignored, not fatal. (What
            # else may fail, a missing module above all, must not pass for a bad key.)
            loaded = f"{kid}: unusable key ({type(exc).__name__})"
        if isinstance(loaded, str):
            skipped.append(loaded)
        else:
            keys[kid] = loaded
    for kid, count in seen.items():
        if count > 1 and kid in keys:
            del keys[kid]
            skipped.append(f"{kid}: listed {count} times")
    return keys, skipped


def _load_key(jwk: Mapping[str, Any], kid: str, algorithms: Collection[str]) -> VerificationKey | str:
    # One JWK as a verification key, or why it is skipped.
    kty = jwk.get("kty")
    family = _FAMILIES.get(kty) if isinstance(kty, str) else None
    if family is None:
        return f"{kid}: key type {kty!r} is not an asymmetric signing key"
    if "use" in jwk and jwk["use"] != "sig":
        return f"{kid}: use is {jwk['use']!r}, not 'sig'"
    key_ops = jwk.get("key_ops")
    if key_ops is not None and (not isinstance(key_ops, list) or "verify" not in key_ops):
        return f"{kid}: key_ops does not allow verify"
    algorithm = _bind_algorithm(jwk, family, algorithms)
    if algorithm is None:
        return f"{kid}: no allowed algorithm fits this key"
    rsa_key = _rsa_public_key(jwk, algorithm) if kty == "RSA" else None
    if rsa_key is not None:
        key, check = rsa_key, None
    else:
        # Every other key, and any RSA key the guard does not vouch for: PyJWT decides.
        from jwt import PyJWK  # deferred: PyJWT's key parsing is only needed for these keys

        try:
            parsed = PyJWK(dict(jwk), algorithm)
        except Exception as exc:  # noqa: BLE001 - PyJWT raises several types for malformed key material
            return f"{kid}: unusable key material ({type(exc).__name__})"
        key, check = parsed.key, parsed.Algorithm
    if kty == "RSA" and key.key_size < _MIN_RSA_BITS:
        return f"{kid}: RSA key of {key.key_size} bits (minimum {_MIN_RSA_BITS})"
    verifier = _pkcs1_v15_check(key, _PKCS1_HASH[algorithm]) if check is None else _signature_check(key, check)
    return VerificationKey(kid, algorithm, key, verifier)


# RSASSA-PKCS1-v1_5 algorithms (RFC 7518 §3.3) and their hashes.
_PKCS1_HASH = {"RS256": "sha256", "RS384": "sha384", "RS512": "sha512"}
_BASE64URL = re.compile(r"[A-Za-z0-9_-]+")


def _rsa_public_key(jwk: Mapping[str, Any], algorithm: str) -> Any | None:
    """The RSA public key PyJWT's ``PyJWK(jwk, algorithm)`` gives, for the common shape of
    an RS256/384/512 JWK (``n`` and ``e`` in plain base64url, no private members); ``None``
    for anything else, which PyJWT then decides.

    A guard beside PyJWT's rule, not a second rule: it reads the same two numbers the
    same way and builds the key with the same ``cryptography`` call, so PyJWT's key
    parsing (and its import, tens of milliseconds of every cold start) is needed only
    for other keys. A property test holds it to PyJWT's answer.
    """
    if algorithm not in _PKCS1_HASH or "d" in jwk:
        return None
    n, e = jwk.get("n"), jwk.get("e")
    if type(n) is not str or type(e) is not str or not _BASE64URL.fullmatch(n) or not _BASE64URL.fullmatch(e):
        return None
    try:
        modulus = int.from_bytes(b64url_decode(n.encode()), "big")
        exponent = int.from_bytes(b64url_decode(e.encode()), "big")
    except MalformedTokenError:  # a length no base64 has, or a spelling no encoder gives: PyJWT decides
        return None
    from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicNumbers

    try:
        return RSAPublicNumbers(exponent, modulus).public_key()
    except ValueError:  # numbers no RSA key has: PyJWT refuses them, and says so
        return None


def _bind_algorithm(jwk: Mapping[str, Any], family: tuple[str, ...], allowed: Collection[str]) -> str | None:
    """The one algorithm a key is used with (RFC 8725 §3.1), or ``None``: no allowed one fits.

    A declared ``alg`` must be of the key's family and allowed. An EC key's curve names
    its algorithm (RFC 7518 §3.4: ES256 is P-256, ES384 P-384, ES512 P-521), so a curve
    that disagrees with the declared ``alg`` fits none. An RSA key without ``alg`` (Entra
    ID and others publish such keys) is bound to RS256, the algorithm OpenID Connect
    makes the default (OpenID Connect Discovery 1.0 §3), when it is allowed; else to the
    one allowed RSA algorithm, if only one is.
    """
    declared = jwk.get("alg")
    if jwk.get("kty") == "EC":
        curve = jwk.get("crv")
        by_curve = _CURVE_ALG.get(curve) if isinstance(curve, str) else None
        if declared is not None and declared != by_curve:
            return None
        return by_curve if by_curve in allowed else None
    if declared is not None:
        return declared if isinstance(declared, str) and declared in family and declared in allowed else None
    candidates = [alg for alg in family if alg in allowed]
    if len(candidates) > 1 and "RS256" in candidates:
        return "RS256"
    return candidates[0] if len(candidates) == 1 else None


def verify_signature(token: ParsedJwt, key: VerificationKey) -> None:
    """Check the signature with ``key``; its bound algorithm must equal the header's.

    Raises:
        UnsupportedAlgorithmError: header ``alg`` differs from the key's algorithm.
        InvalidSignatureError: the signature does not verify.
    """
    check_signature(token.header["alg"], key, token.signing_input, token.signature)


def check_signature(alg: str, key: VerificationKey, signing_input: bytes, signature: bytes) -> None:
    """``verify_signature`` for a header's ``alg`` and the signature's parts.

    Raises:
        UnsupportedAlgorithmError: ``alg`` differs from the key's algorithm.
        InvalidSignatureError: the signature does not verify.
    """
    if alg != key.algorithm:
        raise UnsupportedAlgorithmError("token alg does not match the key's algorithm")
    try:
        valid = key.check(signing_input, signature)
    except Exception:  # noqa: BLE001 - malformed signatures raise inside the backend on some algorithms
        valid = False
    if not valid:
        raise InvalidSignatureError("token signature does not verify")
