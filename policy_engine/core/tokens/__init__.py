"""Token parsing and checking, without I/O, one module per concern:

* ``jws``: the bearer credential and the compact JWS (shape, base64url, JSON, header);
* ``keys``: JWKS documents into keys bound to one algorithm, and signature checks;
* ``claims``: the JWT claim rules, the caller's scopes and principal;
* ``introspection``: the same rules applied to RFC 7662 answers;
* ``issuers``: per-issuer rules, provider presets, Entra tenant templates;
* ``verifier``: ``JwtVerifier``, all of the above in one pass for one configuration.

PyJWT's generic ``decode`` lets through things an authorizer must not accept (string
``exp``, duplicate JSON members, ``oct`` keys from a JWKS, unbounded length; see
RFC 8725, JSON Web Token Best Current Practices). So the token is parsed here,
strictly, and PyJWT is used for what it is good at: turning JWKs into keys and
verifying signatures with its algorithm objects.
"""

from policy_engine.core.tokens.claims import principal_of, validate_claims
from policy_engine.core.tokens.introspection import validate_introspection
from policy_engine.core.tokens.issuers import PRESETS, IssuerRules, check_issuer_claims
from policy_engine.core.tokens.jws import (
    ParsedJwt,
    extract_bearer,
    may_be_jwt_of,
    parse_jwt,
)
from policy_engine.core.tokens.keys import VerificationKey, load_jwks, verify_signature
from policy_engine.core.tokens.verifier import JwtVerifier, VerifiedToken, hints_for

__all__ = [
    "PRESETS",
    "IssuerRules",
    "JwtVerifier",
    "ParsedJwt",
    "VerificationKey",
    "VerifiedToken",
    "check_issuer_claims",
    "extract_bearer",
    "hints_for",
    "load_jwks",
    "may_be_jwt_of",
    "parse_jwt",
    "principal_of",
    "validate_claims",
    "validate_introspection",
    "verify_signature",
]
