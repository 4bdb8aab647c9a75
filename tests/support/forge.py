"""Hand-made JWTs: any header, any payload bytes, signed (or not) with any key.

PyJWT refuses to produce most hostile tokens, so tests build them here.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
import uuid
from typing import Any

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def claims(issuer: str, **overrides: Any) -> dict[str, Any]:
    now = int(time.time())
    base = {"iss": issuer, "sub": "forged-client", "aud": "policy-engine-demo", "iat": now,
            "exp": now + 600, "scope": "pets:read", "jti": uuid.uuid4().hex}
    base.update(overrides)
    return {k: v for k, v in base.items() if v is not None}


def raw_token(header: dict[str, Any] | str, payload: dict[str, Any] | str, key: Any = None,
              alg: str | None = None) -> str:
    head = header if isinstance(header, str) else json.dumps(header)
    body = payload if isinstance(payload, str) else json.dumps(payload)
    signing_input = f"{b64(head.encode())}.{b64(body.encode())}"
    alg = alg or (json.loads(head).get("alg") if head.startswith("{") else "RS256")
    return f"{signing_input}.{b64(sign(signing_input.encode(), key, alg))}"


def sign(data: bytes, key: Any, alg: str) -> bytes:
    if key is None or alg == "none":
        return b""
    if alg.startswith("HS"):
        return hmac.new(key, data, hashlib.sha256).digest()
    if alg == "RS256":
        return key.sign(data, padding.PKCS1v15(), hashes.SHA256())
    if alg == "RS384":
        return key.sign(data, padding.PKCS1v15(), hashes.SHA384())
    if alg == "RS512":
        return key.sign(data, padding.PKCS1v15(), hashes.SHA512())
    if alg == "PS256":
        return key.sign(data, padding.PSS(padding.MGF1(hashes.SHA256()), 32), hashes.SHA256())
    if alg == "ES256":
        from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

        r, s = decode_dss_signature(key.sign(data, ec.ECDSA(hashes.SHA256())))
        return r.to_bytes(32, "big") + s.to_bytes(32, "big")
    raise ValueError(alg)


def rsa_key(bits: int = 2048) -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=bits)
