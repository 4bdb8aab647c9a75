"""The one place that reads the environment.

``Settings.from_environ()`` runs once per container. Every field documents its variable
and default; a bad value raises ``ConfigurationError`` naming the variable, so the
function fails at start-up instead of deciding with a half-read configuration.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from policy_engine.errors import ConfigurationError
from policy_engine.events import DEFAULT_IDENTITY_SOURCE, IdentitySource, parse_identity_source

__all__ = ["INTROSPECTION_AUTH_METHODS", "SUPPORTED_ALGORITHMS", "Settings"]

#: How the authorizer authenticates to the introspection endpoint (RFC 7662 §2.1, RFC 6749 §2.3.1).
INTROSPECTION_AUTH_METHODS = frozenset({"client_secret_basic", "client_secret_post"})

# Asymmetric algorithms only: HMAC needs a shared secret, which a public JWKS never is.
SUPPORTED_ALGORITHMS = frozenset(
    {"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"}
)

DEFAULT_PERMISSIONS_SOURCE = str(Path(__file__).resolve().parent.parent / "permissions")

# 100,000 mappings encode to a 15.6-20.5 MB S3 snapshot (short to long resource paths).
# Measured peak RSS with a 25 MB snapshot: 235 MiB after a cold load, 358 MiB during a
# warm reload (old and new sets both alive), well inside the template's 512 MB; at 33 MB
# the reload peak was 469 MiB. An uncapped 82 MB object took a container to 657 MB.
DEFAULT_PERMISSIONS_MAX_BYTES = 24 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class Settings:
    """Typed, validated configuration of one authorizer."""

    #: ``ISSUER``: exact ``iss`` values of JWTs verified locally, comma-separated.
    #: Required unless ``INTROSPECTION_URL`` is set.
    issuers: tuple[str, ...]
    #: ``AUDIENCE``: accepted ``aud`` values (or Cognito ``client_id``s). Required.
    audiences: tuple[str, ...]
    #: ``JWKS_URI``: one per issuer, comma-separated, in ``ISSUER`` order. Empty: OIDC discovery.
    jwks_uris: tuple[str, ...] = ()
    #: ``PERMISSIONS_SOURCE``: YAML file or folder, ``dynamodb://TABLE`` or ``s3://BUCKET/KEY``.
    permissions_source: str = DEFAULT_PERMISSIONS_SOURCE
    #: ``PERMISSIONS_CACHE_TTL``: seconds a warm container trusts loaded mappings (60).
    permissions_cache_ttl: float = 60.0
    #: ``PERMISSIONS_MAX_STALE``: seconds the last good mappings keep deciding while the
    #: store fails (900); past that, requests fail closed.
    permissions_max_stale: float = 900.0
    #: ``PERMISSIONS_MAX_BYTES``: most bytes one store load reads (the S3 object, or a
    #: table version's snapshot, uncompressed); a larger snapshot is refused (25165824, 24 MiB).
    permissions_max_bytes: int = DEFAULT_PERMISSIONS_MAX_BYTES
    #: ``ALLOWED_ALGORITHMS``: JWS algorithms accepted (``RS256``).
    algorithms: frozenset[str] = frozenset({"RS256"})
    #: ``CLOCK_LEEWAY``: seconds of clock skew tolerated on exp/nbf/iat (30, at most 300).
    leeway: float = 30.0
    #: ``SCOPE_CLAIMS``: claims read for scopes, first present wins (``scope,scp``).
    scope_claims: tuple[str, ...] = ("scope", "scp")
    #: ``TOKEN_TYPES``: if set, the JWT header ``typ`` must be one of these (e.g. ``at+jwt``).
    token_types: tuple[str, ...] = ()
    #: ``MAX_TOKEN_LENGTH``: longer tokens are refused before decoding (8192).
    max_token_length: int = 8192
    #: ``JWKS_TIMEOUT``: deadline in seconds for one whole JWKS or discovery exchange (3).
    jwks_timeout: float = 3.0
    #: ``JWKS_CACHE_TTL``: seconds a fetched key set is used before a refresh (3600).
    jwks_cache_ttl: float = 3600.0
    #: ``JWKS_REFETCH_INTERVAL``: minimum seconds between fetches caused by unknown kids (30).
    jwks_refetch_interval: float = 30.0
    #: ``JWKS_MAX_STALE``: seconds past ``JWKS_CACHE_TTL`` the last good keys keep
    #: verifying while the JWKS endpoint fails (21600).
    jwks_max_stale: float = 21600.0
    #: ``CONTEXT_CLAIMS``: token claims copied into the authorizer context when scalar.
    context_claims: tuple[str, ...] = ("sub", "client_id", "username", "iss")
    #: ``IDENTITY_SOURCE``: the authorizer's identity sources, comma-separated, written as in
    #: API Gateway (``method.request.header.Authorization`` or ``$request.header.Authorization``;
    #: add ``context.httpMethod,context.path`` or ``$context.routeKey`` for per-route cache keys).
    #: REQUEST and HTTP API events read the token from the first header or query string entry.
    identity_source: IdentitySource = DEFAULT_IDENTITY_SOURCE
    #: ``SIMPLE_RESPONSES``: ``true`` answers payload 2.0 events with ``{isAuthorized, context}``
    #: for the requested route (API Gateway's ``enableSimpleResponses``) (false).
    simple_responses: bool = False
    #: ``INTROSPECTION_URL``: RFC 7662 endpoint for tokens that are not JWTs of an ``ISSUER``.
    introspection_url: str | None = None
    #: ``INTROSPECTION_CLIENT_ID`` / ``INTROSPECTION_CLIENT_SECRET``: the resource server's
    #: credentials at the endpoint. Required with ``INTROSPECTION_URL``.
    introspection_client_id: str = ""
    introspection_client_secret: str = field(default="", repr=False)
    #: ``INTROSPECTION_AUTH_METHOD``: ``client_secret_basic`` (default) or ``client_secret_post``.
    introspection_auth_method: str = "client_secret_basic"
    #: ``INTROSPECTION_TIMEOUT``: deadline in seconds for one whole introspection exchange (2).
    introspection_timeout: float = 2.0
    #: ``INTROSPECTION_CACHE_TTL``: at most this many seconds an active answer is reused,
    #: and never past the token's ``exp`` (60). 0 disables the positive cache.
    introspection_cache_ttl: float = 60.0
    #: ``INTROSPECTION_NEGATIVE_CACHE_TTL``: seconds an ``active: false`` answer is reused (5).
    introspection_negative_cache_ttl: float = 5.0
    #: ``INTROSPECTION_ISSUER``: ``iss`` accepted in introspection answers, besides ``ISSUER``.
    introspection_issuer: str | None = None
    #: ``API_KEY_CLAIM``: token claim holding the caller's usage-plan API key.
    api_key_claim: str | None = None
    #: ``API_KEYS_FILE``: YAML file of API keys per client and routes that need one.
    api_keys_file: str | None = None

    @classmethod
    def from_environ(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """Build settings from ``environ`` (default ``os.environ``).

        Raises:
            ConfigurationError: a variable is missing or invalid; ``.variable`` names it.
        """
        env = os.environ if environ is None else environ
        introspection_url = env.get("INTROSPECTION_URL", "").strip() or None
        issuers = _csv(env, "ISSUER", required=introspection_url is None)
        for issuer in issuers:
            _check_url("ISSUER", issuer)
        audiences = _csv(env, "AUDIENCE", required=True)
        jwks_uris = _csv(env, "JWKS_URI")
        if jwks_uris and len(jwks_uris) != len(issuers):
            raise ConfigurationError(
                "JWKS_URI", f"gives {len(jwks_uris)} URIs for {len(issuers)} issuers; give one per ISSUER, in order"
            )
        for uri in jwks_uris:
            _check_url("JWKS_URI", uri)
        algorithms = frozenset(_csv(env, "ALLOWED_ALGORITHMS") or ("RS256",))
        unknown = sorted(algorithms - SUPPORTED_ALGORITHMS)
        if unknown:
            raise ConfigurationError(
                "ALLOWED_ALGORITHMS",
                f"{', '.join(unknown)} not supported; choose from {', '.join(sorted(SUPPORTED_ALGORITHMS))}",
            )
        leeway = _number(env, "CLOCK_LEEWAY", 30.0, maximum=300.0)
        ttl = _number(env, "PERMISSIONS_CACHE_TTL", 60.0, maximum=86400.0)
        source = env.get("PERMISSIONS_SOURCE", "").strip() or DEFAULT_PERMISSIONS_SOURCE
        identity_entries = _csv(env, "IDENTITY_SOURCE")
        identity = parse_identity_source(identity_entries) if identity_entries else DEFAULT_IDENTITY_SOURCE
        client_id = env.get("INTROSPECTION_CLIENT_ID", "").strip()
        client_secret = env.get("INTROSPECTION_CLIENT_SECRET", "")
        auth_method = env.get("INTROSPECTION_AUTH_METHOD", "").strip() or "client_secret_basic"
        if auth_method not in INTROSPECTION_AUTH_METHODS:
            raise ConfigurationError(
                "INTROSPECTION_AUTH_METHOD", f"{auth_method!r} is not one of {', '.join(sorted(INTROSPECTION_AUTH_METHODS))}"
            )
        if introspection_url is not None:
            _check_url("INTROSPECTION_URL", introspection_url)
            # RFC 7662 §2.1: the endpoint must know who asks; anonymous introspection
            # would let anyone with network access test stolen tokens.
            if not client_id:
                raise ConfigurationError("INTROSPECTION_CLIENT_ID", "is required with INTROSPECTION_URL")
            if not client_secret:
                raise ConfigurationError("INTROSPECTION_CLIENT_SECRET", "is required with INTROSPECTION_URL")
        simple = _flag(env, "SIMPLE_RESPONSES")
        if simple and not identity.per_route:
            # The cached boolean would answer every route of the API for this token.
            raise ConfigurationError(
                "SIMPLE_RESPONSES",
                "needs per-route identity sources: add $context.routeKey (or $context.httpMethod and "
                "$context.path) to IDENTITY_SOURCE and to the authorizer",
            )
        introspection_issuer = env.get("INTROSPECTION_ISSUER", "").strip() or None
        if introspection_issuer is not None:
            _check_url("INTROSPECTION_ISSUER", introspection_issuer)
        return cls(
            issuers=issuers,
            audiences=audiences,
            jwks_uris=jwks_uris,
            permissions_source=source,
            permissions_cache_ttl=ttl,
            permissions_max_stale=_number(env, "PERMISSIONS_MAX_STALE", 900.0),
            permissions_max_bytes=int(_number(env, "PERMISSIONS_MAX_BYTES", DEFAULT_PERMISSIONS_MAX_BYTES,
                                              minimum=1024, maximum=2**31)),
            algorithms=algorithms,
            leeway=leeway,
            scope_claims=_csv(env, "SCOPE_CLAIMS") or ("scope", "scp"),
            token_types=_csv(env, "TOKEN_TYPES"),
            max_token_length=int(_number(env, "MAX_TOKEN_LENGTH", 8192, minimum=64, maximum=65536)),
            jwks_timeout=_number(env, "JWKS_TIMEOUT", 3.0, minimum=0.1, maximum=10.0),
            jwks_cache_ttl=_number(env, "JWKS_CACHE_TTL", 3600.0, minimum=1.0),
            jwks_refetch_interval=_number(env, "JWKS_REFETCH_INTERVAL", 30.0),
            jwks_max_stale=_number(env, "JWKS_MAX_STALE", 21600.0),
            context_claims=_csv(env, "CONTEXT_CLAIMS") or ("sub", "client_id", "username", "iss"),
            identity_source=identity,
            simple_responses=simple,
            introspection_url=introspection_url,
            introspection_client_id=client_id,
            introspection_client_secret=client_secret,
            introspection_auth_method=auth_method,
            introspection_timeout=_number(env, "INTROSPECTION_TIMEOUT", 2.0, minimum=0.1, maximum=10.0),
            introspection_cache_ttl=_number(env, "INTROSPECTION_CACHE_TTL", 60.0, maximum=3600.0),
            introspection_negative_cache_ttl=_number(env, "INTROSPECTION_NEGATIVE_CACHE_TTL", 5.0, maximum=300.0),
            introspection_issuer=introspection_issuer,
            api_key_claim=env.get("API_KEY_CLAIM", "").strip() or None,
            api_keys_file=env.get("API_KEYS_FILE", "").strip() or None,
        )


def _csv(env: Mapping[str, str], name: str, *, required: bool = False) -> tuple[str, ...]:
    raw = env.get(name, "")
    values = tuple(part.strip() for part in raw.split(",") if part.strip())
    if required and not values:
        raise ConfigurationError(name, "is required (comma-separated list)")
    return values


def _flag(env: Mapping[str, str], name: str) -> bool:
    raw = env.get(name, "").strip().lower()
    if raw in ("", "false", "0", "no"):
        return False
    if raw in ("true", "1", "yes"):
        return True
    raise ConfigurationError(name, f"{raw!r} is not true or false")


def _number(
    env: Mapping[str, str], name: str, default: float, *, minimum: float = 0.0, maximum: float | None = None
) -> float:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ConfigurationError(name, f"{raw!r} is not a number") from None
    if not math.isfinite(value) or value < minimum or (maximum is not None and value > maximum):
        bounds = f"between {minimum:g} and {maximum:g}" if maximum is not None else f"at least {minimum:g}"
        raise ConfigurationError(name, f"{raw!r} must be {bounds}")
    return value


def _check_url(name: str, url: str) -> None:
    from policy_engine.core.urls import check_trusted_url

    problem = check_trusted_url(url)
    if problem:
        raise ConfigurationError(name, f"{url!r} {problem}")
