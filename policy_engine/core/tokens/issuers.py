"""Per-issuer rules: which audiences, grant sources, token types and provider checks apply
to a token, chosen by its ``iss``; provider presets; Entra multi-tenant issuer templates.

Where each rule comes from, most specific first:

* an ``IDENTITY_PROVIDERS`` entry: its own keys, then its ``preset``'s, then the global
  settings (``AUDIENCE``; ``GRANT_SOURCES``, else the ``SCOPE_CLAIMS`` default; ``TOKEN_TYPES``);
* an ``ISSUER`` issuer: ``GRANT_SOURCES`` and ``TOKEN_TYPES`` when set, then ``IDP_PRESET``'s,
  then the ``SCOPE_CLAIMS`` default.

Presets follow what each provider documents about its access tokens:

* ``cognito``: scopes in ``scope``, groups in ``cognito:groups``; ``token_use`` must be
  ``access`` (ID tokens carry ``id``). Amazon Cognito developer guide, "Understanding the
  access token" and "Verifying a JSON Web Token":
  https://docs.aws.amazon.com/cognito/latest/developerguide/amazon-cognito-user-pools-using-the-access-token.html
* ``okta``: scopes in ``scp`` (a list; its introspection answers write them in ``scope``,
  as RFC 7662 §2.2 does), groups in ``groups`` (a custom claim of a custom authorization
  server). ID tokens carry the client id as ``aud``, so the API audience refuses them.
  https://developer.okta.com/docs/reference/api/oidc/
* ``auth0``: scopes in ``scope``; RBAC ``permissions`` are API permissions, read as scopes.
  ID tokens carry the client id as ``aud``.
  https://auth0.com/docs/get-started/apis/enable-role-based-access-control-for-apis
* ``entra``: delegated scopes in ``scp``, app roles in ``roles`` (v1.0 and v2.0 alike). ID
  tokens carry the client application's id as ``aud``: only the API's own identifiers may be
  listed as audiences. That is not enough when the API and the client are one app
  registration (its ID tokens then name the API): an access token names its client in
  ``azp`` (v2.0) or ``appid`` (v1.0), which ID tokens never carry, so one of them is required.
  https://learn.microsoft.com/en-us/entra/identity-platform/access-token-claims-reference and
  https://learn.microsoft.com/en-us/entra/identity-platform/id-token-claims-reference
* ``keycloak``: scopes in ``scope``, realm roles in ``realm_access.roles`` (client roles
  need a ``role:resource_access.<client>.roles`` source: a client role means something only
  with its client); the payload's ``typ``, when present, must be ``Bearer`` (ID tokens say
  ``ID``). https://www.keycloak.org/docs/latest/server_admin/#audience-support
* ``oidc``: RFC 9068 JWT access tokens: scopes in ``scope`` (or ``scp``); the header ``typ``
  must be ``at+jwt`` (RFC 9068 §2.1 and §4).

Entra multi-tenant: an issuer written with ``{tenantid}`` (as Entra's tenant-independent
metadata writes it) and an explicit ``tenants`` allow-list becomes one concrete issuer per
tenant, each with its own keys; a token of such an issuer must carry ``tid`` equal to the
tenant in its ``iss`` (Microsoft identity platform, "Access tokens", validating the issuer
of multi-tenant applications: https://learn.microsoft.com/en-us/entra/identity-platform/access-tokens).
"""

from __future__ import annotations

import json
import re
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from policy_engine.core.grants import (
    COMMON_GRANT_CLAIMS,
    KIND_PATTERN,
    GrantSource,
    parse_claim_path,
)
from policy_engine.core.jsonobjects import unique_members
from policy_engine.core.urls import check_trusted_url
from policy_engine.errors import ConfigurationError, InvalidClaimsError

__all__ = [
    "PRESETS",
    "TENANT_PLACEHOLDER",
    "IdentityProvider",
    "IssuerRules",
    "Preset",
    "check_issuer_claims",
    "normalize_token_types",
    "parse_grant_sources",
    "parse_identity_providers",
    "resolve_issuers",
]

#: Written in an issuer (and optionally its ``jwksUri``) where the tenant id goes.
TENANT_PLACEHOLDER = "{tenantid}"

# A tenant id is a GUID (8-4-4-4-12 hex digits), as Entra writes it in `tid` and `iss`.
_GUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")

_PROVIDER_KEYS = ("issuer", "preset", "audiences", "grantSources", "tenants", "tokenTypes", "jwksUri")


def _sources(*texts: str) -> tuple[GrantSource, ...]:
    return tuple(GrantSource(kind, (parse_claim_path(claim),)) for kind, _, claim in (t.partition(":") for t in texts))


@dataclass(frozen=True, slots=True)
class Preset:
    """What a provider puts in its access tokens, and how to refuse its other tokens."""

    sources: tuple[GrantSource, ...]
    #: Header ``typ`` values required (lower case, without ``application/``); empty: not checked.
    token_types: tuple[str, ...] = ()
    #: Cognito: the payload's ``token_use`` must be ``access``.
    token_use_access: bool = False
    #: Keycloak: the payload's ``typ``, when present, must be this.
    payload_typ: str | None = None
    #: Entra: at least one of these claims must be a non-empty string (the client's id).
    client_claims: tuple[str, ...] = ()


#: The presets by name (see the module docstring for the sources behind each).
PRESETS: Mapping[str, Preset] = {
    "cognito": Preset(_sources("scope:scope", "group:cognito:groups"), token_use_access=True),
    "okta": Preset(_sources("scope:scp", "scope:scope", "group:groups")),
    "auth0": Preset(_sources("scope:scope", "scope:permissions")),
    "entra": Preset(_sources("scope:scp", "role:roles"), client_claims=("azp", "appid")),
    "keycloak": Preset(_sources("scope:scope", "role:realm_access.roles"), payload_typ="Bearer"),
    "oidc": Preset(_sources("scope:scope", "scope:scp"), token_types=("at+jwt",)),
}


@dataclass(frozen=True, slots=True)
class IdentityProvider:
    """One ``IDENTITY_PROVIDERS`` entry as written; ``None`` (or empty) where a key is not given."""

    issuer: str
    preset: str | None = None
    audiences: tuple[str, ...] = ()
    grant_sources: tuple[GrantSource, ...] | None = None
    tenants: tuple[str, ...] = ()
    token_types: tuple[str, ...] | None = None
    jwks_uri: str | None = None


@dataclass(frozen=True, slots=True)
class IssuerRules:
    """Everything the verifier applies to the tokens of one concrete issuer.

    ``token_types`` are already lower case and without ``application/``. ``tenant`` is
    set for an issuer expanded from an Entra template: the token's ``tid`` must equal it.
    """

    issuer: str
    audiences: frozenset[str]
    sources: tuple[GrantSource, ...]
    token_types: frozenset[str] = frozenset()
    jwks_uri: str | None = None
    tenant: str | None = None
    token_use_access: bool = False
    payload_typ: str | None = None
    preset: str | None = None
    client_claims: tuple[str, ...] = ()
    #: Whether ``check_issuer_claims`` has anything to check (the verifier's guard).
    checks: bool = field(init=False)
    #: The common grant claims no source reads: a token holding one gets a hint.
    hint_claims: frozenset[str] = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "checks", bool(self.tenant or self.token_use_access or self.payload_typ
                                                or self.client_claims))
        read = {path[0] for source in self.sources for path in source.paths}
        object.__setattr__(self, "hint_claims", frozenset(COMMON_GRANT_CLAIMS) - read)


def check_issuer_claims(payload: Mapping[str, Any], rules: IssuerRules) -> None:
    """The provider checks of ``rules``: the Entra tenant and client, Cognito's ``token_use``,
    Keycloak's ``typ``.

    Raises:
        InvalidClaimsError: the token is not an access token of this issuer's kind, or its
            ``tid`` is missing or not the tenant of its ``iss``.
    """
    if rules.tenant is not None and payload.get("tid") != rules.tenant:
        raise InvalidClaimsError("tid is missing or is not the tenant of iss")
    if rules.token_use_access and payload.get("token_use") != "access":
        raise InvalidClaimsError("token_use is not 'access'")
    if rules.payload_typ is not None and "typ" in payload and payload["typ"] != rules.payload_typ:
        raise InvalidClaimsError("typ claim is not the access-token type")
    if rules.client_claims and not any(
            isinstance(payload.get(name), str) and payload[name] for name in rules.client_claims):
        raise InvalidClaimsError(f"token names no client ({' or '.join(rules.client_claims)}): not an access token")


def normalize_token_types(token_types: Collection[str]) -> frozenset[str]:
    """``typ`` values as the verifier compares them: lower case, without ``application/``."""
    return frozenset(t.lower().removeprefix("application/") for t in token_types)


def parse_grant_sources(entries: Sequence[str], name: str, where: str = "") -> tuple[GrantSource, ...]:
    """Grant sources written ``kind:claim`` (the kind is the text before the first ``:``).

    Raises:
        ConfigurationError: for the variable ``name`` (the problem starts with ``where``):
            an entry without a kind, a kind that is not ``[a-z][a-z0-9_-]{0,31}``, a
            malformed claim path, or an entry given twice.
    """
    sources: list[GrantSource] = []
    for entry in entries:
        kind, colon, claim = entry.strip().partition(":")
        if not colon or not claim:
            raise ConfigurationError(name, f"{where}{entry!r} is not 'kind:claim' (e.g. scope:scope, "
                                           "group:cognito:groups)")
        if not KIND_PATTERN.fullmatch(kind):
            raise ConfigurationError(name, f"{where}{entry!r}: the kind {kind!r} must match {KIND_PATTERN.pattern}")
        try:
            path = parse_claim_path(claim)
        except ValueError as exc:
            raise ConfigurationError(name, f"{where}{entry!r}: {exc}") from None
        source = GrantSource(kind, (path,))
        if source in sources:
            raise ConfigurationError(name, f"{where}{entry!r} is given twice")
        sources.append(source)
    return tuple(sources)


def parse_identity_providers(text: str, name: str = "IDENTITY_PROVIDERS") -> tuple[IdentityProvider, ...]:
    """The entries of an ``IDENTITY_PROVIDERS`` JSON list.

    Raises:
        ConfigurationError: named ``name``; the problem names the entry (``[index]``) and key.
    """
    try:
        document = json.loads(text, object_pairs_hook=unique_members)
    except ValueError as exc:
        raise ConfigurationError(name, f"is not JSON ({exc})") from None
    except RecursionError:
        raise ConfigurationError(name, "is nested too deeply to be a list of issuers") from None
    if not isinstance(document, list) or not document:
        raise ConfigurationError(name, "must be a non-empty JSON list of objects, one per issuer")
    return tuple(_provider(entry, f"[{index}]", name) for index, entry in enumerate(document))


def _strings(value: Any, where: str, name: str, key: str, *, allow_empty: bool = False) -> tuple[str, ...]:
    if (not isinstance(value, list) or not (value or allow_empty)
            or not all(isinstance(v, str) and v.strip() for v in value)):
        raise ConfigurationError(name, f"{where}.{key} must be a {'' if allow_empty else 'non-empty '}"
                                       "list of non-empty strings")
    return tuple(v.strip() for v in value)


def _url(value: Any, where: str, name: str, key: str, template: bool) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ConfigurationError(name, f"{where}.{key} must be a URL")
    url = value.strip()
    if TENANT_PLACEHOLDER in url and not template:
        raise ConfigurationError(name, f"{where}.{key} may hold {TENANT_PLACEHOLDER} only when the issuer does")
    segments = url.split("/")
    if url.count(TENANT_PLACEHOLDER) > 1 or any(TENANT_PLACEHOLDER in s and s != TENANT_PLACEHOLDER for s in segments):
        raise ConfigurationError(name, f"{where}.{key}: {TENANT_PLACEHOLDER} must be one whole path segment, once")
    # Any other brace is a template this product does not fill.
    if "{" in url.replace(TENANT_PLACEHOLDER, "") or "}" in url.replace(TENANT_PLACEHOLDER, ""):
        raise ConfigurationError(name, f"{where}.{key}: only {TENANT_PLACEHOLDER} may be written in braces")
    problem = check_trusted_url(url.replace(TENANT_PLACEHOLDER, "00000000-0000-0000-0000-000000000000"))
    if problem:
        raise ConfigurationError(name, f"{where}.{key} {url!r} {problem}")
    return url


def _provider(entry: Any, where: str, name: str) -> IdentityProvider:
    if not isinstance(entry, dict):
        raise ConfigurationError(name, f"{where} is not an object")
    unknown = sorted(set(entry) - set(_PROVIDER_KEYS))
    if unknown:
        raise ConfigurationError(name, f"{where}: unknown key {unknown[0]!r} (known: {', '.join(_PROVIDER_KEYS)})")
    if "issuer" not in entry:
        raise ConfigurationError(name, f"{where}.issuer is required")
    raw_issuer = entry["issuer"]
    template = isinstance(raw_issuer, str) and TENANT_PLACEHOLDER in raw_issuer
    issuer = _url(raw_issuer, where, name, "issuer", template)
    preset = entry.get("preset")
    if preset is not None and preset not in PRESETS:
        raise ConfigurationError(name, f"{where}.preset {preset!r} is not one of {', '.join(sorted(PRESETS))}")
    audiences = _strings(entry["audiences"], where, name, "audiences") if "audiences" in entry else ()
    sources = None
    if "grantSources" in entry:
        sources = parse_grant_sources(_strings(entry["grantSources"], where, name, "grantSources"), name,
                                      f"{where}.grantSources: ")
    token_types = None
    if "tokenTypes" in entry:
        token_types = _strings(entry["tokenTypes"], where, name, "tokenTypes", allow_empty=True)
    tenants: tuple[str, ...] = ()
    if "tenants" in entry:
        if not template:
            raise ConfigurationError(name, f"{where}.tenants needs an issuer template with {TENANT_PLACEHOLDER}")
        tenants = tuple(t.lower() for t in _strings(entry["tenants"], where, name, "tenants"))
        bad = [t for t in tenants if not _GUID.fullmatch(t)]
        if bad:
            raise ConfigurationError(name, f"{where}.tenants: {bad[0]!r} is not a tenant id (a GUID)")
        if len(set(tenants)) != len(tenants):
            raise ConfigurationError(name, f"{where}.tenants lists a tenant twice")
    elif template:
        # A template without an allow-list would accept any Entra tenant in the world.
        raise ConfigurationError(name, f"{where}: an issuer with {TENANT_PLACEHOLDER} needs 'tenants', "
                                       "an explicit list of the tenant ids (GUIDs) allowed")
    jwks_uri = _url(entry["jwksUri"], where, name, "jwksUri", template) if "jwksUri" in entry else None
    return IdentityProvider(issuer, preset, audiences, sources, tenants, token_types, jwks_uri)


def resolve_issuers(
    *,
    issuers: Sequence[str],
    audiences: Collection[str],
    jwks_uris: Sequence[str],
    default_sources: tuple[GrantSource, ...],
    grant_sources: tuple[GrantSource, ...],
    token_types: Collection[str],
    preset: str | None,
    providers: Sequence[IdentityProvider],
) -> tuple[IssuerRules, ...]:
    """The rules of every concrete issuer: ``ISSUER``'s, then each entry's (templates expanded).

    ``default_sources`` are the ``SCOPE_CLAIMS`` sources; ``grant_sources`` and
    ``token_types`` the explicit ``GRANT_SOURCES``/``TOKEN_TYPES`` (empty when unset).

    Raises:
        ConfigurationError: an issuer is configured twice, or an entry has no audiences
            and ``AUDIENCE`` is unset.
    """
    rules: dict[str, IssuerRules] = {}

    def add(rule: IssuerRules, where: str, variable: str) -> None:
        if rule.issuer in rules:
            raise ConfigurationError(variable, f"{where}{': ' if where else ''}issuer {rule.issuer!r} is configured "
                                               "twice")
        rules[rule.issuer] = rule

    chosen = PRESETS[preset] if preset else None
    top_sources = grant_sources or (chosen.sources if chosen else default_sources)
    top_types = normalize_token_types(token_types or (chosen.token_types if chosen else ()))
    uris: list[str | None] = [*jwks_uris] or [None] * len(issuers)
    for issuer, uri in zip(issuers, uris, strict=True):
        add(IssuerRules(issuer, frozenset(audiences), top_sources, top_types, uri,
                        token_use_access=bool(chosen and chosen.token_use_access),
                        payload_typ=chosen.payload_typ if chosen else None, preset=preset,
                        client_claims=chosen.client_claims if chosen else ()),
            "", "ISSUER")
    for index, provider in enumerate(providers):
        where = f"[{index}]"
        own = PRESETS[provider.preset] if provider.preset else None
        entry_audiences = provider.audiences or tuple(audiences)
        if not entry_audiences:
            raise ConfigurationError("IDENTITY_PROVIDERS", f"[{index}] has no 'audiences' and AUDIENCE is unset")
        sources = (provider.grant_sources if provider.grant_sources is not None
                   else own.sources if own else grant_sources or default_sources)
        # A preset that checks no token type (all but oidc) leaves TOKEN_TYPES in force:
        # naming a preset must not drop a check the operator turned on for every issuer.
        types = normalize_token_types(provider.token_types if provider.token_types is not None
                                      else own.token_types if own and own.token_types else token_types)
        tenants: Sequence[str | None] = provider.tenants or (None,)
        for tenant in tenants:
            concrete, uri_text = provider.issuer, provider.jwks_uri
            if tenant is not None:
                concrete = concrete.replace(TENANT_PLACEHOLDER, tenant)
                uri_text = uri_text.replace(TENANT_PLACEHOLDER, tenant) if uri_text else None
            add(IssuerRules(concrete, frozenset(entry_audiences), sources, types, uri_text, tenant,
                            token_use_access=bool(own and own.token_use_access),
                            payload_typ=own.payload_typ if own else None, preset=provider.preset,
                            client_claims=own.client_claims if own else ()),
                where, "IDENTITY_PROVIDERS")
    return tuple(rules.values())

