"""The one place that reads the environment, and the one declaration of each variable.

``Settings.from_environ()`` runs once per container. Every field declares its variable
(name, kind, default, bounds, meaning) once; a bad value raises ``ConfigurationError``
naming the variable, so the function fails at start-up instead of deciding with a
half-read configuration. Kept to the standard library: it is on the cold-start path.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import MISSING, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from policy_engine.core.grants import SCOPE, GrantSource
from policy_engine.core.tokens.issuers import (
    PRESETS,
    IdentityProvider,
    IssuerRules,
    parse_grant_sources,
    parse_identity_providers,
    resolve_issuers,
)
from policy_engine.errors import ConfigurationError
from policy_engine.events import (
    DEFAULT_IDENTITY_SOURCE,
    IdentitySource,
    parse_identity_source,
)
from policy_engine.metrics import DEFAULT_NAMESPACE, LOCAL_FUNCTION_NAME

__all__ = [
    "INTROSPECTION_AUTH_METHODS",
    "SUPPORTED_ALGORITHMS",
    "VARIABLES",
    "Settings",
    "Variable",
    "near_misses",
    "number_text",
    "read_variable",
    "variable",
]

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


# CloudWatch's namespace rule (PutMetricData's Namespace: these characters, 1-255, not
# starting with ':').
_NAMESPACE = re.compile(r"[A-Za-z0-9.\-_/# ][A-Za-z0-9.\-_/#: ]{0,254}")

#: Metadata key under which each ``Settings`` field carries its ``Variable``.
_DECLARATION = "variable"


@dataclass(frozen=True, slots=True)
class Variable:
    """One environment variable, declared once: everything else reads these facts.

    ``kind`` says how the text is read: ``list`` (comma-separated, to a tuple), ``set``
    (the same, to a frozenset), ``number``, ``integer``, ``flag`` (true/false),
    ``text`` (stripped; empty means the default), ``secret`` (taken as written),
    ``identity`` (API Gateway identity sources), ``sources`` (comma-separated
    ``kind:claim`` grant sources) or ``providers`` (a JSON list of identity providers).
    ``minimum``/``maximum`` bound numbers, ``choices`` bound words, ``urls`` asks for
    trusted URLs. ``shown`` is the configuration table's default cell where the value itself is not
    what a reader needs (a machine path).
    ``attribute`` and ``default`` are filled in from the ``Settings`` field that declares it.
    """

    name: str
    kind: str
    meaning: str
    minimum: float = 0.0
    maximum: float | None = None
    choices: frozenset[str] = frozenset()
    urls: bool = False
    required: bool = False
    #: Other variables whose presence makes this required one optional.
    required_unless: tuple[str, ...] = ()
    shown: str | None = None
    attribute: str = ""
    default: Any = None


def _declare(name: str, kind: str, meaning: str, **facts: Any) -> dict[str, Variable]:
    return {_DECLARATION: Variable(name, kind, meaning, **facts)}


@dataclass(frozen=True, slots=True)
class Settings:
    """Typed, validated configuration of one authorizer.

    Each field declares its variable (``Variable``) and default once; ``from_environ``,
    the adapters (through ``bootstrap``) and the configuration table of docs/configuration.md (generated
    by ``python -m policy_engine.admin.cli.settings_doc --write``) all read that declaration.
    """

    issuers: tuple[str, ...] = field(metadata=_declare(
        "ISSUER", "list", "accepted `iss` values of JWTs verified locally, exact match (https; plain http "
        "only on loopback)", urls=True, required=True, required_unless=("INTROSPECTION_URL", "IDENTITY_PROVIDERS"),
        shown="required (optional with `INTROSPECTION_URL` or `IDENTITY_PROVIDERS`)"))
    audiences: tuple[str, ...] = field(metadata=_declare(
        "AUDIENCE", "list", "accepted `aud` values (or Cognito app client ids); the default of "
        "`IDENTITY_PROVIDERS` entries without `audiences`", required=True, required_unless=("IDENTITY_PROVIDERS",),
        shown="required (optional when every `IDENTITY_PROVIDERS` entry names its `audiences`)"))
    jwks_uris: tuple[str, ...] = field(default=(), metadata=_declare(
        "JWKS_URI", "list", "one JWKS URL per issuer, in `ISSUER` order; unset: OIDC discovery from "
        "`{ISSUER}/.well-known/openid-configuration`", urls=True, shown="discovery"))
    permissions_source: str = field(default=DEFAULT_PERMISSIONS_SOURCE, metadata=_declare(
        "PERMISSIONS_SOURCE", "text", "a YAML file or folder, a compiled snapshot file (`policy-engine "
        "compile`: a `*.json` name, or any file that starts like one; the bundle ships one as `permissions`), "
        "`dynamodb://TABLE` or `s3://BUCKET/KEY` "
        "(see [Permission stores](stores.md)); set to a file or folder that does not exist (or to anything "
        "else that is neither, such as a device), it stops the function at start",
        shown="`permissions` beside the package"))
    permissions_cache_ttl: float = field(default=60.0, metadata=_declare(
        "PERMISSIONS_CACHE_TTL", "number", "seconds a warm container trusts loaded mappings before a cheap "
        "\"changed?\" check", maximum=86400.0))
    permissions_max_stale: float = field(default=900.0, metadata=_declare(
        "PERMISSIONS_MAX_STALE", "number", "seconds the last good mappings keep deciding while the store fails "
        "(counted from the last successful check); then fail closed"))
    permissions_max_bytes: int = field(default=DEFAULT_PERMISSIONS_MAX_BYTES, metadata=_declare(
        "PERMISSIONS_MAX_BYTES", "integer", "most bytes one store load reads (the S3 object, or a table "
        "version's snapshot, uncompressed); a larger snapshot is refused", minimum=1024, maximum=2.0**31,
        shown="25165824 (24 MiB)"))
    permissions_candidate: str = field(default="auto", metadata=_declare(
        "PERMISSIONS_CANDIDATE", "text", "the candidate permissions every decision is also evaluated against "
        "(shadow evaluation: the live mappings still decide; differences are logged as `shadow_diff`): `auto` "
        "reads the candidate `sync --candidate` publishes beside a `dynamodb://` or `s3://` "
        "`PERMISSIONS_SOURCE` (a file source has none), `off` evaluates none (either word in any case), "
        "anything else is a YAML file "
        "or folder or a compiled snapshot file"))
    algorithms: frozenset[str] = field(default=frozenset({"RS256"}), metadata=_declare(
        "ALLOWED_ALGORITHMS", "set", "JWS algorithms accepted; HMAC (a public JWKS is never a shared secret) "
        "and `none` never are", choices=SUPPORTED_ALGORITHMS))
    leeway: float = field(default=30.0, metadata=_declare(
        "CLOCK_LEEWAY", "number", "seconds of clock skew tolerated on `exp`/`nbf`/`iat`", maximum=300.0))
    scope_claims: tuple[str, ...] = field(default=("scope", "scp"), metadata=_declare(
        "SCOPE_CLAIMS", "list", "top-level claims read for scopes, in this order: the first present wins "
        "(the default grant source; `GRANT_SOURCES` replaces it)"))
    grant_sources: tuple[GrantSource, ...] = field(default=(), metadata=_declare(
        "GRANT_SOURCES", "sources", "claims the caller's grants are read from, each `kind:claim` (kind: "
        "`scope`, `group`, `role` or any `[a-z][a-z0-9_-]*`; claim: a top-level name such as `cognito:groups`, "
        "a dotted path such as `realm_access.roles` (`\\.` for a dot inside a name), or a URL-named claim "
        "taken whole); the grants are the "
        "union of all sources. Replaces `SCOPE_CLAIMS` and the `IDP_PRESET`'s sources "
        "(see [Identity providers](providers.md))"))
    idp_preset: str | None = field(default=None, metadata=_declare(
        "IDP_PRESET", "text", "the grant sources and access-token checks of one provider, for the `ISSUER` "
        "issuers (see [Identity providers](providers.md))", choices=frozenset(PRESETS)))
    identity_providers: tuple[IdentityProvider, ...] = field(default=(), metadata=_declare(
        "IDENTITY_PROVIDERS", "providers", "one object per issuer with its own settings: `issuer` (Entra: "
        "may hold `{tenantid}`, then `tenants` lists the allowed tenant GUIDs), `preset`, `audiences`, "
        "`grantSources`, `tokenTypes`, `jwksUri` (see [Identity providers](providers.md))"))
    token_types: tuple[str, ...] = field(default=(), metadata=_declare(
        "TOKEN_TYPES", "list", "if set, the JWT header `typ` must be one of these, e.g. `at+jwt` (RFC 9068); "
        "replaces the `IDP_PRESET`'s"))
    max_token_length: int = field(default=8192, metadata=_declare(
        "MAX_TOKEN_LENGTH", "integer", "characters; a longer token is refused before any decoding",
        minimum=64, maximum=65536))
    jwks_timeout: float = field(default=3.0, metadata=_declare(
        "JWKS_TIMEOUT", "number", "deadline in seconds for one whole JWKS refresh (discovery, when used, and "
        "the JWKS request together): lookup, connect, TLS, status, headers and a body of at most 512 KB",
        minimum=0.1, maximum=10.0))
    jwks_cache_ttl: float = field(default=3600.0, metadata=_declare(
        "JWKS_CACHE_TTL", "number", "seconds a fetched key set is used before a refresh; a key the issuer "
        "removed stops verifying within this time", minimum=1.0))
    jwks_refetch_interval: float = field(default=30.0, metadata=_declare(
        "JWKS_REFETCH_INTERVAL", "number", "minimum seconds between refetches caused by unknown `kid`s (the "
        "`JWKS_CACHE_TTL` refresh does not wait for it)"))
    jwks_max_stale: float = field(default=21600.0, metadata=_declare(
        "JWKS_MAX_STALE", "number", "seconds past `JWKS_CACHE_TTL` the last good keys keep verifying while "
        "the JWKS endpoint fails (asked again at most once per min(`JWKS_CACHE_TTL`, "
        "`JWKS_REFETCH_INTERVAL`))"))
    context_claims: tuple[str, ...] = field(default=("sub", "client_id", "username", "iss"), metadata=_declare(
        "CONTEXT_CLAIMS", "list", "token claims copied into the authorizer `context`: strings, numbers and booleans "
        "as they are, lists of strings joined with spaces, anything else left out (bounded: see the `context` "
        "rules)"))
    identity_source: IdentitySource = field(default=DEFAULT_IDENTITY_SOURCE, metadata=_declare(
        "IDENTITY_SOURCE", "identity", "the authorizer's identity sources as API Gateway writes them; the "
        "first header or query string entry holds the token (see [Identity sources](events.md#identity-sources))",
        shown="`method.request.header.Authorization`"))
    simple_responses: bool = field(default=False, metadata=_declare(
        "SIMPLE_RESPONSES", "flag", "`true` answers payload 2.0 events with `{isAuthorized, context}` for the "
        "requested route (API Gateway's `enableSimpleResponses`); needs per-route identity sources"))
    introspection_url: str | None = field(default=None, metadata=_declare(
        "INTROSPECTION_URL", "text", "RFC 7662 introspection endpoint for tokens that are not JWTs of an "
        "`ISSUER` (https; plain http only on loopback); setting it turns opaque tokens on", urls=True))
    introspection_client_id: str = field(default="", metadata=_declare(
        "INTROSPECTION_CLIENT_ID", "text", "the resource server's own client id at the endpoint",
        shown="required with `INTROSPECTION_URL`"))
    introspection_client_secret: str = field(default="", repr=False, metadata=_declare(
        "INTROSPECTION_CLIENT_SECRET", "secret", "its client secret (never logged)",
        shown="required with `INTROSPECTION_URL`"))
    introspection_auth_method: str = field(default="client_secret_basic", metadata=_declare(
        "INTROSPECTION_AUTH_METHOD", "text", "how the authorizer authenticates to the endpoint: HTTP Basic, "
        "or id and secret in the form body (RFC 6749 §2.3.1)", choices=INTROSPECTION_AUTH_METHODS))
    introspection_timeout: float = field(default=2.0, metadata=_declare(
        "INTROSPECTION_TIMEOUT", "number", "deadline in seconds for one whole introspection exchange: lookup, "
        "connect, TLS, sending, status, headers and a body of at most 64 KB", minimum=0.1, maximum=10.0))
    introspection_cache_ttl: float = field(default=60.0, metadata=_declare(
        "INTROSPECTION_CACHE_TTL", "number", "longest time in seconds an `active: true` answer is reused, never "
        "past the token's `exp`; 0 disables the positive cache", maximum=3600.0))
    introspection_negative_cache_ttl: float = field(default=5.0, metadata=_declare(
        "INTROSPECTION_NEGATIVE_CACHE_TTL", "number", "seconds an `active: false` answer is reused",
        maximum=300.0))
    introspection_issuer: str | None = field(default=None, metadata=_declare(
        "INTROSPECTION_ISSUER", "text", "`iss` accepted in introspection answers, besides the configured issuers; "
        "answers of a configured issuer get its audiences and grant sources, others `AUDIENCE` and the default sources",
        urls=True))
    api_key_claim: str | None = field(default=None, metadata=_declare(
        "API_KEY_CLAIM", "text", "token claim holding the caller's usage-plan API key (20 to 128 printable "
        "characters; anything else counts as no key)"))
    api_keys_file: str | None = field(default=None, metadata=_declare(
        "API_KEYS_FILE", "text", "YAML file of API keys per client and the routes that need one (example: "
        "`examples/api-keys.yaml`); a regular file of at most 8 MiB"))

    metrics: bool = field(default=True, metadata=_declare(
        "METRICS", "flag", "`false` leaves the CloudWatch metrics (Embedded Metric Format members) out of the "
        "log lines"))
    metrics_namespace: str = field(default=DEFAULT_NAMESPACE, metadata=_declare(
        "METRICS_NAMESPACE", "text", "CloudWatch namespace of the metrics (1-255 characters: letters, digits, "
        "`.-_/#: ` and spaces; not `AWS/...`)"))
    function_name: str = field(default=LOCAL_FUNCTION_NAME, metadata=_declare(
        "AWS_LAMBDA_FUNCTION_NAME", "text", "set by Lambda: the metrics' `FunctionName` dimension"))

    @classmethod
    def from_environ(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """Build settings from ``environ`` (default ``os.environ``), reading every declared variable.

        Raises:
            ConfigurationError: a variable is missing or invalid; ``.variable`` names it.
        """
        env = os.environ if environ is None else environ
        if environ is None:
            _log_near_misses(env)
        settings = cls(**{var.attribute: read_variable(var, env) for var in VARIABLES})
        if settings.grant_sources and env.get("SCOPE_CLAIMS", "").strip():
            raise ConfigurationError(
                "GRANT_SOURCES",
                "and SCOPE_CLAIMS are both set; write every source in GRANT_SOURCES "
                "(e.g. scope:scope,scope:scp,group:cognito:groups) and unset SCOPE_CLAIMS",
            )
        if settings.idp_preset and env.get("SCOPE_CLAIMS", "").strip():
            raise ConfigurationError(
                "SCOPE_CLAIMS",
                "and IDP_PRESET are both set; the preset names its sources (to read others, write them all "
                "in GRANT_SOURCES) and unset SCOPE_CLAIMS",
            )
        if settings.identity_providers and not settings.audiences and settings.issuers:
            raise ConfigurationError("AUDIENCE", "is required with ISSUER (comma-separated list)")
        if settings.introspection_url is not None and not settings.audiences:
            raise ConfigurationError("AUDIENCE", "is required with INTROSPECTION_URL (comma-separated list)")
        if settings.jwks_uris and len(settings.jwks_uris) != len(settings.issuers):
            raise ConfigurationError(
                "JWKS_URI",
                f"gives {len(settings.jwks_uris)} URIs for {len(settings.issuers)} issuers; "
                "give one per ISSUER, in order",
            )
        if settings.introspection_url is not None:
            # RFC 7662 §2.1: the endpoint must know who asks; anonymous introspection
            # would let anyone with network access test stolen tokens.
            if not settings.introspection_client_id:
                raise ConfigurationError("INTROSPECTION_CLIENT_ID", "is required with INTROSPECTION_URL")
            if not settings.introspection_client_secret:
                raise ConfigurationError("INTROSPECTION_CLIENT_SECRET", "is required with INTROSPECTION_URL")
        if settings.simple_responses and not settings.identity_source.per_route:
            # The cached boolean would answer every route of the API for this token.
            raise ConfigurationError(
                "SIMPLE_RESPONSES",
                "needs per-route identity sources: add $context.routeKey (or $context.httpMethod and "
                "$context.path) to IDENTITY_SOURCE and to the authorizer",
            )
        if not _NAMESPACE.fullmatch(settings.metrics_namespace) or settings.metrics_namespace.startswith("AWS/"):
            # CloudWatch drops the metrics of a line whose namespace it refuses: say so at start-up.
            raise ConfigurationError(
                "METRICS_NAMESPACE",
                f"{settings.metrics_namespace!r} is not a CloudWatch namespace (1-255 characters of letters, "
                "digits, spaces and . - _ / # :, not starting with ':' or AWS/)",
            )
        candidate = settings.permissions_candidate
        if candidate.lower() in ("auto", "off") and candidate not in ("auto", "off"):
            # The two words in any case, as flags are read ("OFF" is no file to load).
            settings = replace(settings, permissions_candidate=candidate.lower())
        elif candidate not in ("auto", "off") and "://" in candidate:
            raise ConfigurationError(
                "PERMISSIONS_CANDIDATE",
                f"{candidate!r}: a store's candidate is read with 'auto' (its PERMISSIONS_SOURCE); "
                "name a YAML file or folder or a compiled snapshot file, or 'off'",
            )
        settings.issuer_rules()  # an issuer configured twice, an entry without audiences
        return settings

    @property
    def default_grant_sources(self) -> tuple[GrantSource, ...]:
        """The grant sources of the ``ISSUER`` issuers and of introspection answers:
        ``GRANT_SOURCES``, else the ``IDP_PRESET``'s, else ``SCOPE_CLAIMS`` (literal
        top-level names, the first present one read)."""
        if self.grant_sources:
            return self.grant_sources
        if self.idp_preset:
            return PRESETS[self.idp_preset].sources
        return self._scope_claims_sources()

    def _scope_claims_sources(self) -> tuple[GrantSource, ...]:
        return (GrantSource(SCOPE, tuple((name,) for name in self.scope_claims)),)

    def issuer_rules(self) -> tuple[IssuerRules, ...]:
        """The rules of every concrete issuer (``core.tokens.issuers``), ``ISSUER``'s first.

        Raises:
            ConfigurationError: an issuer is configured twice, or an ``IDENTITY_PROVIDERS``
                entry has no audiences and ``AUDIENCE`` is unset.
        """
        return resolve_issuers(
            issuers=self.issuers, audiences=self.audiences, jwks_uris=self.jwks_uris,
            default_sources=self._scope_claims_sources(),
            grant_sources=self.grant_sources, token_types=self.token_types, preset=self.idp_preset,
            providers=self.identity_providers,
        )


#: Every variable, in declaration order (the configuration table's order).
VARIABLES: tuple[Variable, ...] = tuple(
    # A required field has no default; its unset value (when ``required_unless`` allows
    # it) is the empty list.
    replace(f.metadata[_DECLARATION], attribute=f.name, default=() if f.default is MISSING else f.default)
    for f in fields(Settings)
)
_BY_NAME = {var.name: var for var in VARIABLES}
# Declared names by their first three characters ("ISS<") and by their last three (">UER").
_BY_END: dict[str, tuple[str, ...]] = {}
for _key, _name in [(k, v.name) for v in VARIABLES for k in (v.name[:3] + "<", ">" + v.name[-3:])]:
    _BY_END[_key] = (*_BY_END.get(_key, ()), _name)
del _key, _name


def variable(name: str) -> Variable:
    """The declaration of the variable ``name``.

    Raises:
        KeyError: no such variable is declared.
    """
    return _BY_NAME[name]


def read_variable(var: Variable, environ: Mapping[str, str]) -> Any:
    """The value of one variable in ``environ``, parsed and checked as declared.

    Raises:
        ConfigurationError: the value is missing (when required) or invalid.
    """
    name, kind = var.name, var.kind
    if kind in ("list", "set", "identity", "sources"):
        values = _csv(environ, name)
        if not values and environ.get(name, "").strip():
            # Only commas: a list that names nothing is a mistake, not the default.
            raise ConfigurationError(name, "lists no value (only commas); leave it empty or unset for the default")
        if not values:
            if var.required and not any(environ.get(other, "").strip() for other in var.required_unless):
                raise ConfigurationError(name, "is required (comma-separated list)")
            return var.default
        if kind == "identity":
            return parse_identity_source(values, name)
        if kind == "sources":
            return parse_grant_sources(values, name)
        unknown = sorted(set(values) - var.choices) if var.choices else []
        if unknown:
            raise ConfigurationError(
                name, f"{', '.join(unknown)} not supported; choose from {', '.join(sorted(var.choices))}"
            )
        for value in values if var.urls else ():
            _check_url(name, value)
        return frozenset(values) if kind == "set" else values
    if kind in ("number", "integer"):
        number = _number(environ, name, var.default, minimum=var.minimum, maximum=var.maximum)
        if kind == "number":
            return number
        raw = environ.get(name, "").strip()
        if raw and not _WHOLE.fullmatch(raw):
            raise ConfigurationError(name, f"{raw!r} is not a whole number")
        return int(number)
    if kind == "flag":
        return _flag(environ, name) if environ.get(name, "").strip() else var.default
    if kind == "providers":
        text = environ.get(name, "").strip()
        return parse_identity_providers(text, name) if text else var.default
    if kind == "secret":
        # Kept as written (a secret may hold spaces), but only spaces count as unset.
        secret = environ.get(name, "")
        return secret if secret.strip() else var.default
    if kind == "text":
        text = environ.get(name, "").strip()
        if not text:
            return var.default
        if var.choices and text not in var.choices:
            raise ConfigurationError(name, f"{text!r} is not one of {', '.join(sorted(var.choices))}")
        if var.urls:
            _check_url(name, text)
        return text
    raise AssertionError(f"{name}: unknown kind {kind!r}")


def near_misses(names: Iterable[str]) -> list[tuple[str, str]]:
    """``(name, declared name)`` for each of ``names`` that looks like a typo of a declared variable.

    A near miss is another case of a declared name (``issuer``), or a name within one edit
    (two for names of 8 characters or more) of one that shares its first or its last three
    characters: ``SCOPE_CLAIM``, ``PERMISSION_SOURCE``, ``AUDIENCES``. Declared names never
    are. Cheap enough for every cold start: a name that shares neither end with a declared
    one costs two dictionary lookups, and no distance is computed for it.
    """
    found = []
    for name in names:
        if name in _BY_NAME:
            continue
        upper = name.upper()
        if upper in _BY_NAME:
            found.append((name, upper))
            continue
        candidates = _BY_END.get(upper[:3] + "<", ()) + _BY_END.get(">" + upper[-3:], ())
        for known in candidates:
            limit = 2 if len(known) >= 8 else 1
            if abs(len(known) - len(upper)) <= limit and _within(upper, known, limit):
                found.append((name, known))
                break
    return found


def _within(a: str, b: str, limit: int) -> bool:
    # Optimal string alignment distance of a and b is at most limit; only the cells
    # within limit of the diagonal can be, so only those are computed.
    far = limit + 1
    previous2: list[int] = []
    previous = [j if j <= limit else far for j in range(len(b) + 1)]
    for i in range(1, len(a) + 1):
        current = [i if i <= limit else far] + [far] * len(b)
        low, high = max(1, i - limit), min(len(b), i + limit)
        for j in range(low, high + 1):
            cost = min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (a[i - 1] != b[j - 1]))
            if i > 1 and j > 1 and a[i - 1] == b[j - 2] and a[i - 2] == b[j - 1]:
                cost = min(cost, previous2[j - 2] + 1)
            current[j] = min(cost, far)
        if min(current[max(0, low - 1):high + 1]) > limit:
            return False
        previous2, previous = previous, current
    return previous[-1] <= limit


def _log_near_misses(environ: Mapping[str, str]) -> None:
    # A typo of a variable name leaves its default in force without a word; say so once
    # per container, naming the variable (never its value, which may be a secret). Only
    # a warning: nothing here may keep the authorizer from starting.
    try:
        found = near_misses(environ)
        if found:
            from policy_engine.logs import log

            for name, known in found:
                log("WARN", "unknown_variable", variable=name, did_you_mean=known,
                    detail=f"{name} is not a policy-engine variable and is ignored; did you mean {known}?")
    except Exception:  # noqa: BLE001 - a warning that cannot be written is not worth an outage
        pass


def _csv(env: Mapping[str, str], name: str) -> tuple[str, ...]:
    raw = env.get(name, "")
    return tuple(part.strip() for part in raw.split(",") if part.strip())


def _flag(env: Mapping[str, str], name: str) -> bool:
    raw = env.get(name, "").strip().lower()
    if raw in ("", "false", "0", "no"):
        return False
    if raw in ("true", "1", "yes"):
        return True
    raise ConfigurationError(name, f"{raw!r} is not true or false")


_DECIMAL = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
_WHOLE = re.compile(r"[+-]?[0-9]+")


def _number(
    env: Mapping[str, str], name: str, default: float, *, minimum: float = 0.0, maximum: float | None = None
) -> float:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    # Plain ASCII decimal notation: float() would also take '1_0', other scripts' digits,
    # 'inf' and 'nan', none of which a person means as a setting.
    if not _DECIMAL.fullmatch(raw):
        raise ConfigurationError(name, f"{raw!r} is not a number")
    value = float(raw)
    if not math.isfinite(value) or value < minimum or (maximum is not None and value > maximum):
        bounds = (f"between {number_text(minimum)} and {number_text(maximum)}" if maximum is not None
                  else f"at least {number_text(minimum)}")
        raise ConfigurationError(name, f"{raw!r} must be {bounds}")
    return value


def number_text(value: float) -> str:
    """``value`` as a person writes it: ``60``, ``0.1``, ``2147483648``."""
    return str(int(value)) if float(value).is_integer() else repr(float(value))


def _check_url(name: str, url: str) -> None:
    from policy_engine.core.urls import check_trusted_url

    problem = check_trusted_url(url)
    if problem:
        raise ConfigurationError(name, f"{url!r} {problem}")
