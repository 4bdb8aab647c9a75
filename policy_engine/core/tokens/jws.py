"""Bearer credentials and compact JWS parsing, strictly, before any key is looked up.

RFC 6750 §2.1 (the ``Bearer`` credential), RFC 7515 §7.1 (compact serialisation) and
RFC 8725 (JSON Web Token Best Current Practices): one token, three base64url segments
without padding, JSON objects without duplicate members or non-JSON constants, and a
header that names an algorithm and a key id but never a key of its own choosing.
"""

from __future__ import annotations

import binascii
import json
import re
from collections.abc import Callable, Collection
from dataclasses import dataclass
from typing import Any

from policy_engine.core.memo import Memo
from policy_engine.errors import (
    MalformedTokenError,
    MissingTokenError,
    UnsupportedAlgorithmError,
)

__all__ = [
    "ParsedJwt",
    "b64url_decode",
    "decode_jws",
    "extract_bearer",
    "json_object",
    "jws_segments",
    "may_be_jwt_of",
    "parse_jwt",
    "read_header",
]

# Character checks by bytes.translate(delete=...) instead of regexes: the same
# rules, a fraction of the cost on ~1 KB tokens, and this runs on every request.
_ALNUM = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
# RFC 6750 §2.1 b64token: 1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"="
_B64TOKEN_CHARS = _ALNUM + b"-._~+/"
# Header members that point at keys chosen by the token's author (RFC 8725 §3.10).
_KEY_POINTERS = ("jku", "x5u", "jwk", "x5c")
_MAX_KID = 256


def extract_bearer(header: object, max_length: int) -> str:
    """The token from an ``Authorization: Bearer <token>`` value.

    Raises:
        MissingTokenError: no header value.
        MalformedTokenError: not a string, another scheme, several credentials, too long.
    """
    if header.__class__ is not str or not header:
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
    if len(token) > max_length:  # the bound above also lets the scheme and spaces through
        raise MalformedTokenError("token is longer than MAX_TOKEN_LENGTH")
    body = token.encode("ascii")
    if body[-1:] == b"=":  # '=' only as trailing padding
        body = body.rstrip(b"=")
    if not body or body.translate(None, _B64TOKEN_CHARS):
        raise MalformedTokenError("Authorization is not 'Bearer <token>' with exactly one token")
    return token


def jws_segments(token: str) -> tuple[bytes, bytes, bytes, bytes] | None:
    """Header, payload, signature and signing input of a compact JWS, still encoded.

    Bytes from here on: one encoding serves splitting, decoding and the signing input.
    Only '+', '/' and '=' are looked for here; every other character outside the
    base64url alphabet is refused by the strict decoding each segment goes through.
    """
    # Looked for in the str: `bytes in bytes` first tries the needle as an integer and
    # builds (then drops) a TypeError every time.
    if not token.isascii() or "+" in token or "/" in token or "=" in token:
        return None
    # Two partitions find the dots with memchr; split looks at every byte in Python's
    # own loop. An int needle (the dot's code) keeps `in` on memchr as well.
    signing_input, _, signature = token.encode("ascii").rpartition(b".")
    head, dot, body = signing_input.partition(b".")
    if not dot or _DOT in body or not head or not body or not signature:
        return None
    return head, body, signature, signing_input


_DOT = ord(".")
_URLSAFE_TO_STANDARD = bytes.maketrans(b"-_", b"+/")
_PADDING = (b"", b"===", b"==", b"=")
# The last character of a segment whose length leaves bits over (RFC 4648 §3.5): 2 or 3
# characters per final group carry 4 or 2 unused bits, which must be zero. Decoders that
# ignore them give one token many spellings, each a new authorizer cache key.
_CANONICAL_LAST = (b"", b"", b"AQgw", b"AEIMQUYcgkosw048")  # by len % 4; 1 is no length at all


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
    segments = jws_segments(token)
    if segments is not None:  # the common case: a well-formed JWS, read strictly
        try:
            issuer = json_object(segments[1], "payload").get("iss")
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


def b64url_decode(segment: bytes) -> bytes:
    """A base64url segment without padding, decoded strictly.

    Raises:
        MalformedTokenError: a character outside the alphabet, an impossible length, or
            unused bits that are not zero.
    """
    # base64url without padding: map to the standard alphabet, pad, and decode strictly,
    # which refuses any character outside the alphabet (the caller has refused '+', '/'
    # and '=' already, which are inside the standard one).
    # Two replace calls, not translate: they find the few '-' and '_' with memchr
    # instead of mapping every byte (the same bytes out; measured with callgrind).
    left = len(segment) % 4
    if (left > 1 and segment[-1] not in _CANONICAL_LAST[left]) or b"=" in segment:
        raise MalformedTokenError("token segment is not canonical base64url (padding, or unused bits not zero)")
    try:
        return binascii.a2b_base64(segment.replace(b"-", b"+").replace(b"_", b"/") + _PADDING[left],
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


# The C scanner every JSONDecoder carries as scan_once; typeshed does not declare it.
_scan_json: Callable[[str, int], tuple[Any, int]] = _DECODER.scan_once  # type: ignore[attr-defined]


def json_object(segment: bytes, what: str) -> dict[str, Any]:
    """The JSON object a base64url segment holds: one object and nothing after it.

    Raises:
        MalformedTokenError: not base64url, not UTF-8, not JSON, duplicate members,
            ``NaN``/``Infinity``, or not an object.
    """
    raw = b64url_decode(segment)
    try:
        text = raw.decode("utf-8")
        # Guard: the C scanner alone (JSONDecoder.decode adds two regex calls) when the
        # value ends exactly where the text does. Anything else (whitespace around the
        # value, trailing bytes, not JSON) goes to the full decoder, which judges it.
        try:
            value, end = _scan_json(text, 0)
        except StopIteration:
            end = -1
        if end != len(text):
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
    """A structurally valid, not yet verified JWS (what ``parse_jwt`` returns)."""

    header: dict[str, Any]
    payload: dict[str, Any]
    signing_input: bytes
    signature: bytes

    @property
    def kid(self) -> str:
        kid: str = self.header["kid"]  # parse_jwt admits only a string kid
        return kid

    @property
    def alg(self) -> str:
        alg: str = self.header["alg"]  # parse_jwt admits only a string alg
        return alg


def read_header(segment: bytes) -> dict[str, Any]:
    """The JOSE header of a JWS, decoded and checked: ``alg`` a string, a usable ``kid``,
    no member that points at a key (RFC 8725 §3.10), no critical extensions.

    Whether ``alg`` is allowed is not judged here (see ``decode_jws``).

    Raises:
        MalformedTokenError: not base64url JSON, or a member above is wrong.
        UnsupportedAlgorithmError: ``alg`` is not a string.
    """
    header = json_object(segment, "header")
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


def decode_jws(
    token: str, max_length: int, algorithms: Collection[str], headers: Memo[bytes, dict[str, Any]] | None = None
) -> tuple[dict[str, Any], dict[str, Any], bytes, bytes]:
    """Header, payload, signing input and signature of a compact JWS (not yet verified).

    ``headers`` is the caller's memo of ``read_header``'s answers (see ``core.memo``):
    every token of one issuer and key carries the same header segment, so it is read
    and checked once per distinct segment. The memo is keyed by the exact segment and
    holds only headers ``read_header`` accepted; every other rule here (the length, the
    shape, the algorithm allow-list, the payload and signature) runs on every call.

    Raises:
        MalformedTokenError: length, shape, encoding, JSON or header members are wrong.
        UnsupportedAlgorithmError: ``alg`` is not in ``algorithms``.
    """
    if len(token) > max_length:
        raise MalformedTokenError("token is longer than MAX_TOKEN_LENGTH")
    segments = jws_segments(token)
    if segments is None:
        raise MalformedTokenError("token is not a three-part base64url JWS")
    head, body, signature, signing_input = segments
    # Guard: a segment read_header has accepted before is the same header again.
    header = headers.get(head) if headers is not None else None
    if header is None:
        header = read_header(head)
        if headers is not None:
            headers.remember(head, header)
    if header["alg"] not in algorithms:
        raise UnsupportedAlgorithmError("token alg is not an allowed algorithm")
    return header, json_object(body, "payload"), signing_input, b64url_decode(signature)


def parse_jwt(token: str, *, max_length: int, algorithms: Collection[str]) -> ParsedJwt:
    """Split and decode a compact JWS, rejecting anything odd before any key lookup.

    Raises:
        MalformedTokenError: length, shape, encoding, JSON or header members are wrong.
        UnsupportedAlgorithmError: ``alg`` is not in ``algorithms`` (``none`` and HS* never are).
    """
    return ParsedJwt(*decode_jws(token, max_length, algorithms))
