"""Token parsing and checking, without I/O.

PyJWT's generic ``decode`` lets through things an authorizer must not accept (string
``exp``, duplicate JSON members, ``oct`` keys from a JWKS, unbounded length; see
RFC 8725, JSON Web Token Best Current Practices), and it is slower than needed on the
warm path. So the token is parsed here, strictly, and PyJWT is used for what it is
good at: turning JWKs into keys and verifying signatures with its algorithm objects.
"""

from __future__ import annotations

import binascii
import json
import math
import re
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from typing import Any

from policy_engine.errors import (
    ExpiredTokenError,
    InvalidClaimsError,
    InvalidSignatureError,
    MalformedTokenError,
    MissingTokenError,
    UnsupportedAlgorithmError,
)

__all__ = [
    "JwtVerifier",
    "ParsedJwt",
    "VerificationKey",
    "VerifiedToken",
    "extract_bearer",
    "load_jwks",
    "may_be_jwt_of",
    "parse_jwt",
    "principal_of",
    "read_scopes",
    "validate_claims",
    "validate_introspection",
    "verify_signature",
]

# Character checks by bytes.translate(delete=...) instead of regexes: the same
# rules, a fraction of the cost on ~1 KB tokens, and this runs on every request.
_ALNUM = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
# RFC 6750 §2.1 b64token: 1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"="
_B64TOKEN_CHARS = _ALNUM + b"-._~+/"
# Header members that point at keys chosen by the token's author (RFC 8725 §3.10).
_KEY_POINTERS = ("jku", "x5u", "jwk", "x5c")
_MAX_KID = 256
# Claims that, when present, must be strings: they reach the context and the principal.
_STRING_CLAIMS = ("sub", "client_id", "scope")


def extract_bearer(header: object, max_length: int) -> str:
    """The token from an ``Authorization: Bearer <token>`` value.

    Raises:
        MissingTokenError: no header value.
        MalformedTokenError: not a string, another scheme, several credentials, too long.
    """
    if header is None or header == "":
        raise MissingTokenError("no Authorization value")
    if not isinstance(header, str):
        raise MalformedTokenError("Authorization value is not a string")
    if len(header) > max_length + 16:
        raise MalformedTokenError("token is longer than MAX_TOKEN_LENGTH")
    # Scheme case-insensitive (RFC 9110 §11.1), then one or more spaces, then the token.
    if header[:7].lower() != "bearer " or not header.isascii():
        raise MalformedTokenError("Authorization is not 'Bearer <token>' with exactly one token")
    token = header[7:]
    if token[:1] == " ":
        token = token.lstrip(" ")
    body = token.encode("ascii")
    if body[-1:] == b"=":  # '=' only as trailing padding
        body = body.rstrip(b"=")
    if not body or body.translate(None, _B64TOKEN_CHARS):
        raise MalformedTokenError("Authorization is not 'Bearer <token>' with exactly one token")
    return token


def _jws_segments(token: str) -> tuple[bytes, bytes, bytes, bytes] | None:
    """Header, payload, signature and signing input of a compact JWS, still encoded.

    Bytes from here on: one encoding serves splitting, decoding and the signing input.
    Only '+', '/' and '=' are looked for here; every other character outside the
    base64url alphabet is refused by the strict decoding each segment goes through.
    """
    # Looked for in the str: `bytes in bytes` first tries the needle as an integer and
    # builds (then drops) a TypeError every time.
    if not token.isascii() or "+" in token or "/" in token or "=" in token:
        return None
    raw = token.encode("ascii")
    segments = raw.split(b".")
    if len(segments) != 3:
        return None
    head, body, signature = segments
    if not head or not body or not signature:
        return None
    return head, body, signature, raw[: len(head) + 1 + len(body)]


_URLSAFE_TO_STANDARD = bytes.maketrans(b"-_", b"+/")
_PADDING = (b"", b"===", b"==", b"=")


def may_be_jwt_of(token: str, issuers: Collection[str]) -> bool:
    """Whether ``token`` is, or may be, a JWT of one of ``issuers``: such a token is
    verified locally (or refused) and must never be sent to introspection.

    Decided by shape, not by whether the token parses: an authorization server that
    reads its own JWTs leniently could otherwise be asked about ``<JWT>=`` and answer
    ``active``. Each dot-separated part is decoded leniently for this judgement only:
    characters outside base64 are dropped (``=`` padding, ``~``), ``+/`` count as
    ``-_``, and a member is found wherever it is, whatever surrounds it. Then the
    token is such a JWT when

    * any part names one of ``issuers`` (an ``iss`` member with that value), or
    * its first part holds a JOSE header (an ``alg`` member), unless the token is
      shown to be someone else's: its second part decodes, whole, to a JSON object
      that does not name one of ``issuers`` (a JWT of another issuer, or without
      ``iss``), or the header has ``enc`` (a JWE, which only its recipient can read).

    Every other token, including opaque ones with dots, is not. With no ``issuers``,
    no token is. Nothing read here is trusted; it only chooses the path.
    """
    if not issuers:
        return False
    segments = _jws_segments(token)
    if segments is not None:  # the common case: a well-formed JWS, read strictly
        try:
            issuer = _json_object(segments[1], "payload").get("iss")
        except MalformedTokenError:
            issuer = None
        if issuer.__class__ is str and issuer in issuers:
            return True
    parts = token.split(".")
    texts = [_lenient_text(part) for part in parts]
    if any(_names_issuer(text, issuers) for text in texts):
        return True
    if _JOSE_MEMBER.search(texts[0]) is None:
        return False  # no JOSE header: an opaque token
    if _JWE_MEMBER.search(texts[0]) is not None:
        return False
    # A payload that cannot be read whole may be one of ours, damaged: it never leaves.
    return len(parts) < 2 or _whole_object(parts[1]) is None


# Bytes that are not in either base64 alphabet, dropped when judging a token's shape.
_NOT_BASE64 = bytes(sorted(set(range(256)) - set(_ALNUM + b"+/-_")))
_JOSE_MEMBER = re.compile(r'"alg"\s*:')
_JWE_MEMBER = re.compile(r'"enc"\s*:')
_ISS_MEMBER = re.compile(r'"iss"\s*:\s*("(?:[^"\\\x00-\x1f]|\\.)*")')


def _lenient_bytes(part: str) -> bytes:
    data = part.encode("ascii", "ignore").translate(_URLSAFE_TO_STANDARD, _NOT_BASE64)
    if len(data) % 4 == 1:  # a dangling character carries no whole byte
        data = data[:-1]
    return binascii.a2b_base64(data + b"=" * (-len(data) % 4))


def _lenient_text(part: str) -> str:
    return _lenient_bytes(part).decode("utf-8", "replace")


def _names_issuer(text: str, issuers: Collection[str]) -> bool:
    # The member itself, wherever it is: what follows it may be damaged.
    for literal in _ISS_MEMBER.findall(text):
        try:
            value = json.loads(literal)
        except ValueError:
            continue
        if value in issuers:
            return True
    return False


def _whole_object(part: str) -> dict[str, Any] | None:
    # The payload read with only the encoding forgiven: one JSON object and nothing else.
    try:
        value = _DECODER.decode(_lenient_bytes(part).decode("utf-8"))
    except (ValueError, RecursionError, MalformedTokenError):
        return None
    return value if value.__class__ is dict else None


def _b64decode(segment: bytes) -> bytes:
    # base64url without padding: map to the standard alphabet, pad, and decode strictly,
    # which refuses any character outside the alphabet (the caller has refused '+', '/'
    # and '=' already, which are inside the standard one).
    try:
        return binascii.a2b_base64(segment.translate(_URLSAFE_TO_STANDARD) + _PADDING[len(segment) % 4],
                                   strict_mode=True)
    except (binascii.Error, ValueError):
        raise MalformedTokenError("token segment is not base64url") from None


def _object_without_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result = dict(pairs)
    if len(result) != len(pairs):
        # Two parsers that disagree on which duplicate wins is a classic bypass.
        raise MalformedTokenError("token JSON has duplicate member names")
    return result


def _reject_constant(name: str) -> Any:
    raise MalformedTokenError(f"token JSON contains {name}")


# Built once: json.loads() with hooks would build a new decoder on every call.
_DECODER = json.JSONDecoder(object_pairs_hook=_object_without_duplicates, parse_constant=_reject_constant)


_scan_json = _DECODER.scan_once


def _json_object(segment: bytes, what: str) -> dict[str, Any]:
    raw = _b64decode(segment)
    try:
        text = raw.decode("utf-8")
        # The C scanner directly: JSONDecoder.decode adds two regex calls per segment.
        try:
            value, end = _scan_json(text, 0)
        except StopIteration:
            end = -1
        if end != len(text):  # whitespace around the value, or not JSON: the full decoder judges
            value = _DECODER.decode(text)
    except MalformedTokenError:
        raise
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise MalformedTokenError(f"token {what} is not valid JSON") from None
    if value.__class__ is not dict:
        raise MalformedTokenError(f"token {what} is not a JSON object")
    return value


@dataclass(slots=True)
class ParsedJwt:
    """A structurally valid, not yet verified JWS (slotted, not a NamedTuple or frozen:
    it is built on every request and costs half as much)."""

    header: dict[str, Any]
    payload: dict[str, Any]
    signing_input: bytes
    signature: bytes

    @property
    def kid(self) -> str:
        return self.header["kid"]

    @property
    def alg(self) -> str:
        return self.header["alg"]


# Every token of one issuer and key carries the same header segment, so its checked
# decoding is remembered by the exact (signed) bytes. Bounded: forged headers cannot
# grow it. Entries are never mutated; the algorithm allow-list is applied on every call.
_checked_headers: dict[bytes, dict[str, Any]] = {}
_HEADER_MEMO_LIMIT = 64


def _check_header(header: dict[str, Any]) -> dict[str, Any]:
    if not isinstance(header.get("alg"), str):
        raise UnsupportedAlgorithmError("token alg is not an allowed algorithm")
    for member in _KEY_POINTERS:
        if member in header:
            raise MalformedTokenError(f"token header names its own key ({member})")
    if "crit" in header or "b64" in header:
        raise MalformedTokenError("token header uses critical extensions")
    kid = header.get("kid")
    if not isinstance(kid, str) or not kid or len(kid) > _MAX_KID:
        raise MalformedTokenError("token header has no usable kid")
    return header


def parse_jwt(token: str, *, max_length: int, algorithms: Collection[str]) -> ParsedJwt:
    """Split and decode a compact JWS, rejecting anything odd before any key lookup.

    Raises:
        MalformedTokenError: length, shape, encoding, JSON or header members are wrong.
        UnsupportedAlgorithmError: ``alg`` is not in ``algorithms`` (``none`` and HS* never are).
    """
    return ParsedJwt(*_decode_jws(token, max_length, algorithms))


def _decode_jws(
    token: str, max_length: int, algorithms: Collection[str]
) -> tuple[dict[str, Any], dict[str, Any], bytes, bytes]:
    # parse_jwt's work, as a tuple: the warm path (JwtVerifier) needs no ParsedJwt.
    if len(token) > max_length:
        raise MalformedTokenError("token is longer than MAX_TOKEN_LENGTH")
    segments = _jws_segments(token)
    if segments is None:
        raise MalformedTokenError("token is not a three-part base64url JWS")
    head, body, signature, signing_input = segments
    header = _checked_headers.get(head)
    if header is None:
        header = _check_header(_json_object(head, "header"))
        if len(_checked_headers) >= _HEADER_MEMO_LIMIT:
            _checked_headers.clear()
        _checked_headers[head] = header
    if header["alg"] not in algorithms:
        raise UnsupportedAlgorithmError("token alg is not an allowed algorithm")
    return header, _json_object(body, "payload"), signing_input, _b64decode(signature)


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
        return _pkcs1_v15_check(key, algorithm.hash_alg.name)
    return lambda message, signature: bool(algorithm.verify(message, key, signature))


# RFC 8017 §9.2, note 1: the DER DigestInfo that precedes the hash in an RSASSA-PKCS1-v1_5
# signature, per hash.
_DIGEST_INFO = {
    "sha256": bytes.fromhex("3031300d060960864801650304020105000420"),
    "sha384": bytes.fromhex("3041300d060960864801650304020205000430"),
    "sha512": bytes.fromhex("3051300d060960864801650304020305000440"),
}


def _pkcs1_v15_check(key: Any, hash_name: str) -> Callable[[bytes, bytes], bool]:
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

    prefix, digest = _DIGEST_INFO[hash_name], getattr(hashlib, hash_name)
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
    ``key_ops`` without ``verify``, RSA under 2048 bits, no ``kid``, an algorithm
    outside ``algorithms``, and kids listed more than once (which key is meant is
    then unknowable).

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
        kty = jwk.get("kty")
        family = _FAMILIES.get(kty) if isinstance(kty, str) else None
        if family is None:
            skipped.append(f"{kid}: key type {kty!r} is not an asymmetric signing key")
            continue
        if "use" in jwk and jwk["use"] != "sig":
            skipped.append(f"{kid}: use is {jwk['use']!r}, not 'sig'")
            continue
        key_ops = jwk.get("key_ops")
        if key_ops is not None and (not isinstance(key_ops, list) or "verify" not in key_ops):
            skipped.append(f"{kid}: key_ops does not allow verify")
            continue
        algorithm = _bind_algorithm(jwk, family, algorithms)
        if algorithm is None:
            skipped.append(f"{kid}: no allowed algorithm fits this key")
            continue
        rsa_key = _rsa_public_key(jwk, algorithm) if kty == "RSA" else None
        if rsa_key is not None:
            key, check = rsa_key, None
        else:
            # Every other key, and any RSA key the guard does not vouch for: PyJWT decides.
            from jwt import PyJWK

            try:
                parsed = PyJWK(dict(jwk), algorithm)
            except Exception as exc:  # PyJWT raises several types for malformed key material
                skipped.append(f"{kid}: unusable key material ({type(exc).__name__})")
                continue
            key, check = parsed.key, parsed.Algorithm
        if kty == "RSA" and key.key_size < _MIN_RSA_BITS:
            skipped.append(f"{kid}: RSA key of {key.key_size} bits (minimum {_MIN_RSA_BITS})")
            continue
        verifier = _pkcs1_v15_check(key, _PKCS1_HASH[algorithm]) if check is None else _signature_check(key, check)
        keys[kid] = VerificationKey(kid, algorithm, key, verifier)
    for kid, count in seen.items():
        if count > 1 and kid in keys:
            del keys[kid]
            skipped.append(f"{kid}: listed {count} times")
    return keys, skipped


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
        modulus = int.from_bytes(_b64decode(n.encode()), "big")
        exponent = int.from_bytes(_b64decode(e.encode()), "big")
    except MalformedTokenError:  # a length no base64 has
        return None
    from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicNumbers

    try:
        return RSAPublicNumbers(exponent, modulus).public_key()
    except ValueError:  # numbers no RSA key has: PyJWT refuses them, and says so
        return None


def _bind_algorithm(jwk: Mapping[str, Any], family: tuple[str, ...], allowed: Collection[str]) -> str | None:
    declared = jwk.get("alg")
    if declared is not None:
        return declared if isinstance(declared, str) and declared in family and declared in allowed else None
    if jwk.get("kty") == "EC":
        by_curve = _CURVE_ALG.get(jwk.get("crv"))  # type: ignore[arg-type]
        return by_curve if by_curve in allowed else None
    candidates = [alg for alg in family if alg in allowed]
    return candidates[0] if len(candidates) == 1 else None


def verify_signature(token: ParsedJwt, key: VerificationKey) -> None:
    """Check the signature with ``key``; its bound algorithm must equal the header's.

    Raises:
        UnsupportedAlgorithmError: header ``alg`` differs from the key's algorithm.
        InvalidSignatureError: the signature does not verify.
    """
    _check_signature(token.header["alg"], key, token.signing_input, token.signature)


def _check_signature(alg: str, key: VerificationKey, signing_input: bytes, signature: bytes) -> None:
    if alg != key.algorithm:
        raise UnsupportedAlgorithmError("token alg does not match the key's algorithm")
    try:
        valid = key.check(signing_input, signature)
    except Exception:  # malformed signatures raise inside the backend on some algorithms
        valid = False
    if not valid:
        raise InvalidSignatureError("token signature does not verify")


def _numeric_date(payload: Mapping[str, Any], name: str, required: bool = False) -> float | None:
    value = payload.get(name)
    if value.__class__ is int:  # the common case, first: bool is a subclass, so not this
        return value
    if value is None:
        if required or name in payload:
            raise InvalidClaimsError(f"{name} claim is {'missing' if name not in payload else 'null'}")
        return None
    # bool is an int in Python; a JSON true is not a date (RFC 7519 §2 NumericDate).
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise InvalidClaimsError(f"{name} claim is not a number")
    return float(value)


def _check_times(payload: Mapping[str, Any], now: float, leeway: float, exp_required: bool) -> None:
    # Integers, the common case, skip the general check (bool is not int by __class__).
    exp = payload.get("exp")
    if exp.__class__ is not int:
        exp = _numeric_date(payload, "exp", exp_required)
    if exp is not None and exp <= now - leeway:
        raise ExpiredTokenError("token has expired")
    if "nbf" in payload:
        _not_after(payload, "nbf", now + leeway, "token is not valid yet (nbf)")
    if "iat" in payload:
        _not_after(payload, "iat", now + leeway, "token was issued in the future (iat)")


def _not_after(payload: Mapping[str, Any], name: str, limit: float, problem: str) -> None:
    value = payload[name]
    if value.__class__ is not int:
        value = _numeric_date(payload, name)  # refuses a null: present means checked
    if value is not None and value > limit:
        raise InvalidClaimsError(problem)


def _check_audience(aud: Any, audiences: Collection[str]) -> None:
    if aud.__class__ is str:
        if aud in audiences:
            return
        raise InvalidClaimsError("aud does not name this API")
    if not isinstance(aud, list) or not all(isinstance(a, str) for a in aud):
        raise InvalidClaimsError("aud claim is not a string or list of strings")
    if not any(a in audiences for a in aud):
        raise InvalidClaimsError("aud does not name this API")


def validate_claims(
    token: ParsedJwt,
    *,
    issuer: str,
    audiences: Collection[str],
    now: float,
    leeway: float,
    token_types: Collection[str] = (),
) -> None:
    """Check issuer, times, audience, claim types and token type of a verified token.

    ``exp`` is required; ``nbf`` and ``iat`` are honoured when present. ``aud`` must
    name one of ``audiences``. Cognito access tokens carry no ``aud``: for them
    ``token_use`` must be ``access`` and ``client_id`` one of ``audiences``. A
    ``token_use`` other than ``access`` (Cognito ID tokens) is always refused. ``sub``,
    ``client_id`` and ``scope``, when present, must be strings.

    Raises:
        ExpiredTokenError: ``exp`` has passed (beyond ``leeway``).
        InvalidClaimsError: any other claim is missing, mistyped or wrong.
    """
    _check_jwt_claims(token.header, token.payload, issuer, audiences, now, leeway, token_types)


def _check_jwt_claims(
    header: Mapping[str, Any],
    payload: Mapping[str, Any],
    issuer: str,
    audiences: Collection[str],
    now: float,
    leeway: float,
    token_types: Collection[str],
) -> None:
    if payload.get("iss") != issuer:
        raise InvalidClaimsError("iss is not the expected issuer")
    _check_times(payload, now, leeway, True)
    token_use = payload.get("token_use")
    if token_use is not None and token_use != "access":
        raise InvalidClaimsError("token_use is not 'access'")
    if "aud" in payload:
        aud = payload["aud"]
        if aud.__class__ is not str or aud not in audiences:  # else the general check decides
            _check_audience(aud, audiences)
    elif token_use == "access":
        client_id = payload.get("client_id")
        if not isinstance(client_id, str) or client_id not in audiences:
            raise InvalidClaimsError("client_id is not an accepted audience")
    else:
        raise InvalidClaimsError("token has no aud claim")
    for name in _STRING_CLAIMS:
        if name in payload and payload[name].__class__ is not str:
            raise InvalidClaimsError(f"{name} claim is not a string")
    if token_types:
        typ = header.get("typ")
        normalized = typ.lower().removeprefix("application/") if isinstance(typ, str) else None
        if normalized not in token_types:
            raise InvalidClaimsError("token typ is not an accepted token type")


# RFC 7662 §2.2 token_type values meaning "an access token" (RFC 6749 §7.1 names "bearer").
_ACCESS_TOKEN_TYPES = frozenset({"bearer", "access_token"})


def validate_introspection(
    answer: Mapping[str, Any],
    *,
    issuers: Collection[str],
    audiences: Collection[str],
    now: float,
    leeway: float,
) -> None:
    """Apply the JWT claim rules to an introspection answer, for the members it carries.

    ``active`` must be the boolean ``true``. ``iss``, ``aud``, ``exp``, ``nbf``, ``iat`` are
    optional in RFC 7662, so each is checked only when present, exactly as for a JWT;
    ``token_type``, when present, must name an access token (a refresh token is not one).
    A member that is present is checked, whatever its type: a ``null``, list or object
    where RFC 7662 §2.2 says string or number makes the answer untrustworthy, so the
    token is refused like an inactive one (401), never a crash on the unexpected type.

    Raises:
        ExpiredTokenError: ``exp`` has passed (beyond ``leeway``).
        InvalidClaimsError: any member present is mistyped or wrong.
    """
    if answer.get("active") is not True:
        raise InvalidClaimsError("introspection answer is not active")
    if "iss" in answer:
        iss = answer["iss"]
        if iss.__class__ is not str:  # a list is unhashable: the set lookup below would raise
            raise InvalidClaimsError("iss member is not a string")
        if iss not in issuers:
            raise InvalidClaimsError("iss is not a configured issuer")
    _check_times(answer, now, leeway, False)
    if "aud" in answer:
        _check_audience(answer["aud"], audiences)
    if "token_type" in answer:
        token_type = answer["token_type"]
        if not isinstance(token_type, str) or token_type.lower() not in _ACCESS_TOKEN_TYPES:
            raise InvalidClaimsError("token_type is not an access token")
    for name in ("sub", "client_id", "scope", "username"):
        if name in answer and not isinstance(answer[name], str):
            raise InvalidClaimsError(f"{name} member is not a string")


# A container sees a handful of distinct scope strings (one per client profile), so
# each is split once; bounded, and frozensets are immutable, so sharing them is safe.
_scope_sets: dict[str, frozenset[str]] = {}
_SCOPE_MEMO_LIMIT = 256


def read_scopes(payload: Mapping[str, Any], claim_names: Collection[str]) -> frozenset[str]:
    """The caller's scopes: the first present claim of ``claim_names``.

    A string is split on single spaces (RFC 6749 §3.3; other whitespace stays inside a
    scope, which then matches nothing); a list must hold only strings (``scp``).
    Matching later is exact and case-sensitive.

    Raises:
        InvalidClaimsError: the claim has any other type.
    """
    for name in claim_names:
        if name not in payload:
            continue
        value = payload[name]
        if isinstance(value, str):
            scopes = _scope_sets.get(value)
            if scopes is None:
                scopes = frozenset(part for part in value.split(" ") if part)
                if len(_scope_sets) >= _SCOPE_MEMO_LIMIT:
                    _scope_sets.clear()
                _scope_sets[value] = scopes
            return scopes
        if isinstance(value, list) and all(isinstance(part, str) for part in value):
            return frozenset(value)
        raise InvalidClaimsError(f"{name} claim is not a space-separated string or a list of strings")
    return frozenset()


def principal_of(payload: Mapping[str, Any]) -> str:
    """``sub``, or ``client_id`` for machine clients whose tokens have no subject.

    Raises:
        InvalidClaimsError: neither is a non-empty string.
    """
    sub = payload.get("sub")
    if isinstance(sub, str) and sub:
        return sub
    client_id = payload.get("client_id")
    if isinstance(client_id, str) and client_id:
        return client_id
    raise InvalidClaimsError("token has neither sub nor client_id")


@dataclass(slots=True)
class VerifiedToken:
    """A token whose signature and claims checked out (``kind``: ``jwt`` or ``opaque``)."""

    issuer: str
    principal_id: str
    scopes: frozenset[str]
    claims: Mapping[str, Any]
    kind: str = "jwt"


class JwtVerifier:
    """Every JWT rule of one configuration, applied in one pass.

    The same rules as ``parse_jwt``, ``verify_signature``, ``validate_claims``,
    ``principal_of`` and ``read_scopes`` in turn (it calls their parts), without the
    intermediate objects: this is what every warm decision runs.
    """

    __slots__ = ("_issuers", "_audiences", "_algorithms", "_leeway", "_max_length", "_token_types", "_scope_claims")

    def __init__(
        self,
        *,
        issuers: Collection[str],
        audiences: Collection[str],
        algorithms: Collection[str],
        leeway: float,
        max_length: int,
        token_types: Collection[str],
        scope_claims: Collection[str],
    ) -> None:
        self._issuers = frozenset(issuers)
        self._audiences = frozenset(audiences)
        self._algorithms = tuple(algorithms)
        self._leeway = leeway
        self._max_length = max_length
        self._token_types = frozenset(t.lower().removeprefix("application/") for t in token_types)
        self._scope_claims = tuple(scope_claims)

    def verify(self, token: str, get_key: Callable[[str, str], VerificationKey], now: float) -> VerifiedToken:
        """Verify a compact JWS with the key ``get_key(issuer, kid)`` returns.

        Raises:
            TokenError: any problem with the token (API Gateway answers 401).
            KeySourceError: raised by ``get_key`` when the issuer's keys cannot be had.
        """
        header, payload, signing_input, signature = _decode_jws(token, self._max_length, self._algorithms)
        issuer = payload.get("iss")
        if issuer.__class__ is not str or issuer not in self._issuers:
            # Keys are chosen by a configured issuer, never by what an unknown token says.
            raise InvalidClaimsError("iss is not a configured issuer")
        _check_signature(header["alg"], get_key(issuer, header["kid"]), signing_input, signature)
        _check_jwt_claims(header, payload, issuer, self._audiences, now, self._leeway, self._token_types)
        # sub, when present, is a string by now; an empty or absent one needs the general rule.
        principal = payload.get("sub") or principal_of(payload)
        return VerifiedToken(issuer, principal, read_scopes(payload, self._scope_claims), payload)
