"""The common warm decision, specialised: a TOKEN event carrying a JWT of an ``ISSUER``.

Why it exists. Under AWS's runtime client every invocation starts with caches that the
runtime's own work has just used, and the layered path (event, methodArn, bearer,
JWS, signature, claims, decision, response, size: some 30 small functions and five
objects) then costs about 1.55 times the floor of signature check plus decoding
(``benchmarks/lambda_runtime.py``). The same work in one function body costs about
1.35 times. This module is that body, for the case nearly every request is.

The contract that keeps it safe:

* **It only ever accepts.** Each of its checks is the general path's check, or a
  stricter one. Anything it is not sure of goes to the general path (it returns
  ``None``): another event kind, a scheme not spelled ``Bearer``, a header not yet
  remembered, a signature that does not verify, a claim of an unusual type, any
  refusal at all. So every refusal, with its error and log line, comes from the
  general path, which stays the one statement of the rules.
* The calls it shares with the general path (the key source, ``read_scopes``, the
  permission cache) raise what they would raise there, because every check before
  them passed here and is at least as strict.
* ``tests/unit/test_warm_path.py`` holds its answers equal to the general path's;
  every rejection test of the suite runs through it first.
"""

from __future__ import annotations

import binascii
from collections.abc import Callable
from typing import Any

from policy_engine.cache import PermissionCache
from policy_engine.core.arn import _KNOWN_API_ARNS, MAX_STAGE_NAME
from policy_engine.core.decision import (
    ALLOW,
    DENY,
    MAX_CLAIM_CHARS,
    MAX_CONTEXT_VALUE,
    MAX_PRINCIPAL,
    MAX_RESPONSE_BYTES,
    OWN_CONTEXT_KEY_CHARS,
    Answer,
    Decision,
    render_iam_response,
    response_size_bound,
)
from policy_engine.core.tokens import (
    _B64TOKEN_CHARS,
    _PADDING,
    _URLSAFE_TO_STANDARD,
    _checked_headers,
    _scan_json,
    read_scopes,
)
from policy_engine.ports import KeySource

__all__ = ["WarmPath"]

# _KNOWN_API_ARNS and _checked_headers are the general path's own memos, shared on
# purpose: this trusts exactly the API ARNs and JWS headers it has already checked.

_a2b = binascii.a2b_base64
_MAX_METHOD_ARN = 1600


class WarmPath:
    """``answer(event)``: the general path's answer for the common case, or ``None``.

    Only for configurations whose every request that passes these checks is decided
    by them alone: no API key rules and no ``TOKEN_TYPES`` (``Authorizer`` builds it
    only then).
    """

    __slots__ = ("_keys", "_permissions", "_clock", "_issuers", "_audiences", "_algorithms", "_leeway",
                 "_max_length", "_scope_claims", "_context_claims", "_scope_texts")

    def __init__(
        self,
        *,
        keys: KeySource,
        permissions: PermissionCache,
        clock: Callable[[], float],
        issuers: frozenset[str],
        audiences: frozenset[str],
        algorithms: tuple[str, ...],
        leeway: float,
        max_length: int,
        scope_claims: tuple[str, ...],
        context_claims: tuple[str, ...],
        scope_texts: dict[frozenset[str], str],
    ) -> None:
        self._keys = keys
        self._permissions = permissions
        self._clock = clock
        self._issuers = issuers
        self._audiences = audiences
        self._algorithms = algorithms
        self._leeway = leeway
        self._max_length = max_length
        self._scope_claims = scope_claims
        self._context_claims = context_claims
        self._scope_texts = scope_texts  # the Authorizer's own memo, so both paths fill one

    def answer(self, event: Any) -> Answer | None:
        """The answer for a plain TOKEN event with a valid JWT, or ``None`` for the general path."""
        # The event and its methodArn (general path: events.read_event, arn.parse_method_arn).
        if event.__class__ is not dict or "version" in event or event.get("type") != "TOKEN":
            return None
        method_arn = event.get("methodArn")
        if method_arn.__class__ is not str or len(method_arn) > _MAX_METHOD_ARN:
            return None
        parts = method_arn.split("/", 3)
        if len(parts) < 3:
            return None
        api_arn, stage = parts[0], parts[1]
        # Only API ARNs the general path has already judged valid.
        if (_KNOWN_API_ARNS.get(api_arn) is not True or not stage or not parts[2] or "*" in stage
                or len(stage) > MAX_STAGE_NAME):
            return None

        # The bearer token and its JWS segments (tokens.extract_bearer, tokens._decode_jws),
        # spelled exactly "Bearer <token>" with one space and no padding.
        authorization = event.get("authorizationToken")
        if authorization.__class__ is not str or authorization[:7] != "Bearer ":
            return None
        token = authorization[7:]
        if (len(token) > self._max_length or not token.isascii()
                or "+" in token or "/" in token or "=" in token):
            return None
        raw = token.encode("ascii")
        if raw.translate(None, _B64TOKEN_CHARS):
            return None
        segments = raw.split(b".")
        if len(segments) != 3:
            return None
        head, body, signature = segments
        if not head or not body or not signature:
            return None
        # A header the general path has checked and remembered, with an allowed alg.
        header = _checked_headers.get(head)
        if header is None or header["alg"] not in self._algorithms:
            return None
        try:
            text = _a2b(body.translate(_URLSAFE_TO_STANDARD) + _PADDING[len(body) % 4], strict_mode=True).decode()
            payload, end = _scan_json(text, 0)
            signature = _a2b(signature.translate(_URLSAFE_TO_STANDARD) + _PADDING[len(signature) % 4],
                             strict_mode=True)
        except Exception:  # not base64url, not UTF-8, not JSON, duplicate members: the general path says which
            return None
        if end != len(text) or payload.__class__ is not dict:
            return None

        # Issuer, key and signature (tokens.JwtVerifier.verify).
        issuer = payload.get("iss")
        if issuer.__class__ is not str or issuer not in self._issuers:
            return None
        key = self._keys.get_key(issuer, header["kid"])
        if header["alg"] != key.algorithm:
            return None
        try:
            if not key.check(raw[: len(head) + 1 + len(body)], signature):
                return None
        except Exception:
            return None

        # Claims (tokens._check_jwt_claims), integers and strings only.
        now, leeway = self._clock(), self._leeway
        exp = payload.get("exp")
        if exp.__class__ is not int or exp <= now - leeway:
            return None
        if "nbf" in payload:
            nbf = payload["nbf"]
            if nbf.__class__ is not int or nbf > now + leeway:
                return None
        if "iat" in payload:
            iat = payload["iat"]
            if iat.__class__ is not int or iat > now + leeway:
                return None
        token_use = payload.get("token_use")
        if token_use is not None and token_use != "access":
            return None
        aud = payload.get("aud")
        if aud.__class__ is not str or aud not in self._audiences:
            return None
        for name in ("sub", "client_id", "scope"):
            if name in payload and payload[name].__class__ is not str:
                return None
        principal = payload.get("sub") or payload.get("client_id")
        if not principal or len(principal) > MAX_PRINCIPAL:
            return None  # the general path writes its digest
        scopes = read_scopes(payload, self._scope_claims)

        # The decision, its context and response (Authorizer.decide, decision.render_iam_response).
        permissions = self._permissions.get()
        version = permissions.version
        resources = permissions.resources(scopes, api_arn, stage)
        context: dict[str, Any] = {}
        chars = 0
        for name in self._context_claims:
            value = payload.get(name)
            if value.__class__ is str:
                if len(value) > MAX_CONTEXT_VALUE:
                    return None  # the general path leaves it out
                context[name] = value
                chars += len(name) + len(value)
            elif value is not None:
                return None  # numbers, lists: the general path's scalar_context
        if chars > MAX_CLAIM_CHARS:
            return None  # the general path bounds the context
        scope_text = self._scope_texts.get(scopes)
        if scope_text is None:
            return None  # the general path sorts and remembers it, or bounds the context
        context["scope"] = scope_text
        context["policyVersion"] = version
        # The context's other bound, MAX_CONTEXT_BYTES, needs no check: the size bound
        # below counts 12 bytes per character, so it holds whenever that bound does.
        chars += len(principal) + OWN_CONTEXT_KEY_CHARS + len(scope_text) + len(version)
        if resources:
            decision = Decision(ALLOW, principal, api_arn, stage, resources, "granted", version, context,
                                None, (), chars)
        else:
            decision = Decision(DENY, principal, api_arn, stage, (), "no_grant", version, context, None, (), chars)
        if response_size_bound(decision) > MAX_RESPONSE_BYTES:
            return None
        return Answer(decision, render_iam_response(decision), "policy")

