"""The one place that reads the environment.

``Settings.from_environ()`` runs once per container. Every field documents its variable
and default; a bad value raises ``ConfigurationError`` naming the variable, so the
function fails at start-up instead of deciding with a half-read configuration.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from policy_engine.errors import ConfigurationError

__all__ = ["SUPPORTED_ALGORITHMS", "Settings"]

# Asymmetric algorithms only: HMAC needs a shared secret, which a public JWKS never is.
SUPPORTED_ALGORITHMS = frozenset(
    {"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"}
)

DEFAULT_PERMISSIONS_SOURCE = str(Path(__file__).resolve().parent.parent / "permissions")


@dataclass(frozen=True, slots=True)
class Settings:
    """Typed, validated configuration of one authorizer."""

    #: ``ISSUER``: exact ``iss`` values accepted, comma-separated. Required.
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
    #: ``JWKS_TIMEOUT``: seconds for one JWKS or discovery request (3).
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

    @classmethod
    def from_environ(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """Build settings from ``environ`` (default ``os.environ``).

        Raises:
            ConfigurationError: a variable is missing or invalid; ``.variable`` names it.
        """
        env = os.environ if environ is None else environ
        issuers = _csv(env, "ISSUER", required=True)
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
        return cls(
            issuers=issuers,
            audiences=audiences,
            jwks_uris=jwks_uris,
            permissions_source=source,
            permissions_cache_ttl=ttl,
            permissions_max_stale=_number(env, "PERMISSIONS_MAX_STALE", 900.0),
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
        )


def _csv(env: Mapping[str, str], name: str, *, required: bool = False) -> tuple[str, ...]:
    raw = env.get(name, "")
    values = tuple(part.strip() for part in raw.split(",") if part.strip())
    if required and not values:
        raise ConfigurationError(name, "is required (comma-separated list)")
    return values


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
