"""RS256/384/512 signatures are checked by recovering the encoded message and comparing
it (RFC 8017 §8.2.2) rather than through ``cryptography``'s ``verify``. Here the two
are run side by side on valid signatures and on hand-built encodings that a lax
verifier would accept: both must agree, and only the valid ones may pass.
"""

from __future__ import annotations

import hashlib
import random

import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding
from jwt.algorithms import RSAAlgorithm

from policy_engine.core.tokens.keys import _DIGEST_INFO, _signature_check
from tests.support.forge import rsa_key

KEY = rsa_key()
PUBLIC = KEY.public_key()
N, D, K = PUBLIC.public_numbers().n, KEY.private_numbers().d, 256
MESSAGE = b"eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJjbGllbnQifQ"
SHA256 = hashlib.sha256(MESSAGE).digest()


def raw_signature(encoded: bytes, length: int = K) -> bytes:
    """The RSA private operation on any encoded message: signs what no signer would."""
    return pow(int.from_bytes(encoded, "big"), D, N).to_bytes(length, "big")


def encoded(body: bytes, *, block_type: bytes = b"\x01", filler: bytes | None = None) -> bytes:
    """``00 || block_type || filler || 00 || body``, ``filler`` being FF..FF to length k by default."""
    filler = b"\xff" * (K - 3 - len(body)) if filler is None else filler
    message = b"\x00" + block_type + filler + b"\x00" + body
    assert len(message) == K
    return message


def reference(message: bytes, signature: bytes, hash_alg: hashes.HashAlgorithm) -> bool:
    try:
        PUBLIC.verify(signature, message, padding.PKCS1v15(), hash_alg)
    except InvalidSignature:
        return False
    return True


def _algorithm(name: str) -> RSAAlgorithm:
    return RSAAlgorithm({"RS256": RSAAlgorithm.SHA256, "RS384": RSAAlgorithm.SHA384,
                         "RS512": RSAAlgorithm.SHA512}[name])


def ours(message: bytes, signature: bytes, name: str = "RS256") -> bool:
    return _signature_check(PUBLIC, _algorithm(name))(message, signature)


def test_the_fast_check_is_used_for_rs_algorithms():
    check = _signature_check(PUBLIC, _algorithm("RS256"))
    assert check.__qualname__.startswith("_pkcs1_v15_check")


@pytest.mark.parametrize("name,hash_alg", [("RS256", hashes.SHA256()), ("RS384", hashes.SHA384()),
                                           ("RS512", hashes.SHA512())])
def test_valid_signatures_pass_for_each_hash(name, hash_alg):
    signature = KEY.sign(MESSAGE, padding.PKCS1v15(), hash_alg)
    assert ours(MESSAGE, signature, name) is True
    assert ours(MESSAGE + b"x", signature, name) is False
    # A signature made with another hash never passes for this one.
    other = "RS512" if name != "RS512" else "RS256"
    assert ours(MESSAGE, signature, other) is False


GOOD_BODY = _DIGEST_INFO["sha256"] + SHA256

HOSTILE = {
    "the valid encoding, as a control": encoded(GOOD_BODY),
    "block type 2 (encryption padding)": encoded(GOOD_BODY, block_type=b"\x02"),
    "a padding byte that is not FF": encoded(
        GOOD_BODY, filler=b"\xff" * 100 + b"\x7f" + b"\xff" * (K - 3 - len(GOOD_BODY) - 101)
    ),
    "fewer than 8 padding bytes": encoded(b"\x00" * (K - 10 - len(GOOD_BODY)) + GOOD_BODY, filler=b"\xff" * 7),
    "no zero separator": b"\x00\x01" + b"\xff" * (K - 2 - len(GOOD_BODY)) + GOOD_BODY,
    # Bleichenbacher 2006: a verifier that parses the DigestInfo and ignores what follows.
    "garbage after the digest": encoded(GOOD_BODY + b"\x00" * 20),
    "garbage inside the padding": encoded(GOOD_BODY, filler=b"\xff" * 8 + b"\x00" * (K - 3 - 8 - len(GOOD_BODY))),
    "a SHA-384 DigestInfo around the SHA-256 hash": encoded(_DIGEST_INFO["sha384"][:-1] + b"\x20" + SHA256),
    "a DigestInfo without the NULL parameters": encoded(
        bytes.fromhex("302f300b0609608648016503040201" "0420") + SHA256
    ),
    "the hash alone": encoded(SHA256),
    "the hash of another message": encoded(_DIGEST_INFO["sha256"] + hashlib.sha256(b"other").digest()),
}


@pytest.mark.parametrize("case", list(HOSTILE))
def test_hand_built_encodings_agree_with_cryptography(case):
    signature = raw_signature(HOSTILE[case])
    expected = case == "the valid encoding, as a control"
    assert reference(MESSAGE, signature, hashes.SHA256()) is expected
    assert ours(MESSAGE, signature) is expected


@pytest.mark.parametrize("signature", [
    bytes(K), b"\xff" * K, N.to_bytes(K, "big"), (N + 1).to_bytes(K, "big"), b"", b"\x01",
])
def test_signatures_outside_the_rsa_range_fail(signature):
    assert reference(MESSAGE, signature, hashes.SHA256()) is False
    assert ours(MESSAGE, signature) is False


def test_a_valid_signature_of_the_wrong_length_fails():
    # RFC 8017 §8.2.2 step 1. A signature whose first byte is 0 still recovers the same
    # number without it; OpenSSL's recover takes it, so the length is checked first.
    for counter in range(20000):
        message = MESSAGE + str(counter).encode()
        signature = KEY.sign(message, padding.PKCS1v15(), hashes.SHA256())
        if signature[0] == 0:
            break
    else:  # pragma: no cover - about 1 in 200 signatures starts with 0
        pytest.fail("no signature starting with a zero byte found")
    assert ours(message, signature) is True
    for changed in (signature[1:], b"\x00" + signature):
        assert reference(message, changed, hashes.SHA256()) is False
        assert ours(message, changed) is False


def test_flipped_bits_never_pass():
    signature = KEY.sign(MESSAGE, padding.PKCS1v15(), hashes.SHA256())
    rng = random.Random(5)
    for _ in range(64):
        flipped = bytearray(signature)
        flipped[rng.randrange(K)] ^= 1 << rng.randrange(8)
        assert ours(MESSAGE, bytes(flipped)) is False
