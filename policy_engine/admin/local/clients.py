"""Clients of the local identity provider, and the token shapes of the providers they imitate.

A client in ``clients.yaml`` names a ``shape``; the provider mints that client's tokens
with the claim names and JSON types the imitated provider documents, so a configuration
can be tried locally against tokens that look like Cognito's, Okta's, Auth0's, Entra ID's,
Keycloak's or RFC 9068's. Every token is still signed by the local provider's key; issuers
that carry a path (Auth0's trailing slash, Entra's tenant) are served on the local host,
each with its own discovery document.

Sources for each shape: Cognito
https://docs.aws.amazon.com/cognito/latest/developerguide/amazon-cognito-user-pools-using-the-access-token.html
(and ``…-using-the-id-token.html``); Okta https://developer.okta.com/docs/reference/api/oidc/ ;
Auth0 https://auth0.com/docs/secure/tokens/access-tokens/access-token-profiles ; Entra ID
https://learn.microsoft.com/en-us/entra/identity-platform/access-token-claims-reference ;
Keycloak https://www.keycloak.org/docs/latest/server_admin/#audience-support ; RFC 9068 §2.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from policy_engine.adapters.yaml_files import load_yaml_document
from policy_engine.core.permissions import Locate
from policy_engine.errors import ConfigurationError, PermissionsError

__all__ = [
    "CLIENTS_FILE",
    "DEFAULT_SHAPE",
    "DEFAULT_TENANT",
    "ID_TOKEN_SHAPES",
    "SHAPES",
    "OAuthClient",
    "load_clients",
    "token_claims",
]

#: The clients shipped with the repository (see the file's comments).
CLIENTS_FILE = Path(__file__).resolve().parent / "clients.yaml"

#: Every shape a client may name, in the order error messages list them.
SHAPES = ("cognito-m2m", "cognito", "okta", "auth0", "auth0-rbac", "entra-v2-app", "entra-v2-delegated",
          "entra-v1", "keycloak", "rfc9068", "plain")
#: What a client without ``shape`` gets: a Cognito client-credentials token, as before shapes existed.
DEFAULT_SHAPE = "cognito-m2m"
#: Shapes with an ID token a resource server can tell apart (a client-credentials grant has none).
ID_TOKEN_SHAPES = ("cognito", "okta", "auth0", "auth0-rbac", "entra-v2-delegated", "entra-v1", "keycloak",
                   "rfc9068")
#: The Entra tenant (``tid``) of clients that name none; invented, GUID-shaped as Entra's are.
DEFAULT_TENANT = "5e3c1a2b-7d4f-4e6a-9b8c-0d1e2f3a4b5c"

# The grant lists each shape carries (the YAML keys); anything else goes in ``claims``.
_GRANTS: dict[str, frozenset[str]] = {
    "cognito-m2m": frozenset({"scopes"}),
    "cognito": frozenset({"scopes", "groups"}),
    "okta": frozenset({"scopes", "groups"}),
    "auth0": frozenset({"scopes"}),
    "auth0-rbac": frozenset({"scopes", "permissions"}),
    "entra-v2-app": frozenset({"roles"}),
    "entra-v2-delegated": frozenset({"scopes", "roles", "groups"}),
    "entra-v1": frozenset({"scopes", "roles", "groups"}),
    "keycloak": frozenset({"scopes", "roles", "clientRoles"}),
    "rfc9068": frozenset({"scopes", "groups", "roles"}),
    "plain": frozenset({"scopes", "groups", "roles", "permissions"}),
}
_GRANT_KEYS = ("scopes", "groups", "roles", "permissions", "clientRoles")
_KEYS = ("client_id", "client_secret", "shape", "style", "token", "audience", "tenant", *_GRANT_KEYS, "claims")
# ``style`` is the name the key had when only two shapes existed; it keeps its two values.
_STYLES = {"cognito": "cognito-m2m", "okta": "okta"}
# Claims the provider itself owns: a client cannot set them.
_RESERVED_CLAIMS = ("iss", "iat", "exp", "nbf")

_SCOPE = re.compile(r"[\x21\x23-\x5B\x5D-\x7E]+")  # RFC 6749 §3.3 scope-token
_GUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_MAX_VALUE = 256


@dataclass(frozen=True, slots=True)
class OAuthClient:
    """A confidential client allowed the client-credentials grant for ``scopes``.

    Its tokens have the claims of ``shape``; ``groups``, ``roles``, ``permissions`` and
    ``client_roles`` are the grants the shape puts in them, ``claims`` extra claims
    added last (``None`` removes one).
    """

    client_id: str
    client_secret: str
    scopes: tuple[str, ...]
    shape: str = DEFAULT_SHAPE
    audience: tuple[str, ...] = ()
    groups: tuple[str, ...] = ()
    roles: tuple[str, ...] = ()
    permissions: tuple[str, ...] = ()
    client_roles: tuple[tuple[str, tuple[str, ...]], ...] = ()
    claims: Mapping[str, Any] = field(default_factory=dict)
    tenant: str = DEFAULT_TENANT
    #: ``access`` or ``id``: what the token endpoint hands out for this client.
    token: str = "access"

    @property
    def audience_value(self) -> str:
        """What the authorizer's ``AUDIENCE`` must list to accept this client's access tokens."""
        if self.shape in ("cognito", "cognito-m2m"):
            return self.client_id  # no aud: the authorizer matches client_id
        audiences = self._audiences()
        return audiences[0] if audiences else self.client_id

    def issuer(self, base: str) -> str:
        """This client's ``iss`` on a local provider whose own issuer is ``base``."""
        if self.shape.startswith("auth0"):
            return f"{base}/auth0/"  # Auth0 issuers end with a slash
        if self.shape.startswith("entra-v2"):
            return f"{base}/{self.tenant}/v2.0"
        if self.shape == "entra-v1":
            return f"{base}/{self.tenant}/"
        return base

    def _audiences(self) -> list[str]:
        audiences = list(self.audience)
        if self.shape == "keycloak":
            # Keycloak's Audience Resolve mapper adds each client the caller holds roles of.
            audiences += [name for name, _ in self.client_roles if name not in audiences]
            return audiences
        return audiences or [self.client_id]


def token_claims(client: OAuthClient, base_issuer: str, scopes: list[str], *, now: int, lifetime: int,
                 token: str | None = None) -> tuple[dict[str, Any], dict[str, Any]]:
    """The payload and the JWS header fields of a token for ``client`` granting ``scopes``.

    ``token`` (default: the client's) is ``access`` or ``id``. Header fields set to ``None``
    are left out of the header.

    Raises:
        ConfigurationError: an ID token asked of a shape that has none.
    """
    kind = token or client.token
    if kind == "id" and client.shape not in ID_TOKEN_SHAPES:
        raise ConfigurationError("token", f"shape {client.shape} has no ID token (shapes that do: "
                                          f"{', '.join(ID_TOKEN_SHAPES)})")
    mint = _Mint(client, client.issuer(base_issuer), [s for s in client.scopes if s in set(scopes)], now,
                 now + lifetime, kind == "id")
    payload, header = _BUILDERS[client.shape](mint)
    payload.update(client.claims)
    return {k: v for k, v in payload.items() if v is not None}, header


@dataclass(frozen=True, slots=True)
class _Mint:
    client: OAuthClient
    iss: str
    scopes: list[str]
    now: int
    exp: int
    id_token: bool

    def user(self, salt: str = "") -> str:
        """A stable user id for this client (the user its tokens speak for)."""
        return str(uuid.uuid5(uuid.NAMESPACE_URL, f"policy-engine-local:{salt}{self.client.client_id}"))

    def aud(self, extra: tuple[str, ...] = ()) -> str | list[str] | None:
        audiences = [self.client.client_id] if self.id_token else self.client._audiences()
        audiences += [a for a in extra if a not in audiences]
        if not audiences:
            return None
        return audiences[0] if len(audiences) == 1 else audiences

    def listed(self, values: tuple[str, ...]) -> list[str] | None:
        return list(values) if values else None

    def scope(self) -> str | None:
        return " ".join(self.scopes) or None


_NO_TYP: dict[str, Any] = {"typ": None}
_JWT: dict[str, Any] = {"typ": "JWT"}
_AT_JWT: dict[str, Any] = {"typ": "at+jwt"}


def _cognito_m2m(m: _Mint) -> tuple[dict[str, Any], dict[str, Any]]:
    # Client credentials: no user, no aud, sub is the client (observed), version 2 (observed).
    c = m.client
    return {"sub": c.client_id, "iss": m.iss, "iat": m.now, "exp": m.exp, "token_use": "access",
            "scope": " ".join(m.scopes), "auth_time": m.now, "version": 2, "jti": str(uuid.uuid4()),
            "client_id": c.client_id}, _NO_TYP


def _cognito(m: _Mint) -> tuple[dict[str, Any], dict[str, Any]]:
    c = m.client
    common = {"sub": m.user(), "cognito:groups": m.listed(c.groups), "iss": m.iss, "auth_time": m.now,
              "iat": m.now, "exp": m.exp, "jti": str(uuid.uuid4()), "origin_jti": str(uuid.uuid4())}
    if m.id_token:
        # ID tokens: token_use id, the app client in aud, no scope and no client_id.
        return {**common, "token_use": "id", "aud": c.client_id, "cognito:username": c.client_id}, _NO_TYP
    return {**common, "token_use": "access", "scope": m.scope(), "client_id": c.client_id,
            "username": c.client_id}, _NO_TYP


def _okta(m: _Mint) -> tuple[dict[str, Any], dict[str, Any]]:
    c = m.client
    common = {"ver": 1, "iss": m.iss, "sub": c.client_id, "iat": m.now, "exp": m.exp,
              "groups": m.listed(c.groups)}
    if m.id_token:
        # ID tokens: aud is the client, no cid/scp; Okta's examples start ID-token jtis with "ID.".
        return {**common, "jti": f"ID.{uuid.uuid4().hex}", "aud": c.client_id, "amr": ["pwd"],
                "auth_time": m.now}, _NO_TYP
    return {**common, "jti": f"AT.{uuid.uuid4().hex}", "aud": m.aud(), "cid": c.client_id,
            "scp": list(m.scopes)}, _NO_TYP


def _auth0(m: _Mint) -> tuple[dict[str, Any], dict[str, Any]]:
    c = m.client
    rbac = c.shape == "auth0-rbac"
    # RBAC permissions are a user's; without RBAC this is the client-credentials token.
    sub = f"auth0|{m.user().replace('-', '')[:24]}" if rbac or m.id_token else f"{c.client_id}@clients"
    common = {"iss": m.iss, "sub": sub, "iat": m.now, "exp": m.exp}
    if m.id_token:
        return {**common, "aud": c.client_id}, _JWT
    # Asking for openid as well adds the userinfo endpoint to aud, which becomes a list.
    userinfo = (f"{m.iss}userinfo",) if "openid" in m.scopes else ()
    payload = {**common, "aud": m.aud(userinfo), "azp": c.client_id, "scope": m.scope()}
    if rbac:
        payload["permissions"] = list(c.permissions)
    else:
        payload["gty"] = "client-credentials"
    return payload, _JWT


def _entra(m: _Mint) -> tuple[dict[str, Any], dict[str, Any]]:
    c = m.client
    v1 = c.shape == "entra-v1"
    app_only = c.shape == "entra-v2-app" or (v1 and not c.scopes)
    oid = m.user("oid:")
    common = {"iss": m.iss, "iat": m.now, "nbf": m.now, "exp": m.exp, "oid": oid,
              "sub": oid if app_only else m.user("sub:"), "tid": c.tenant, "ver": "1.0" if v1 else "2.0",
              "roles": m.listed(c.roles), "groups": m.listed(c.groups)}
    if m.id_token:
        return {**common, "aud": c.client_id}, _JWT
    client_claims = {"appid": c.client_id, "appidacr": "1" if app_only else "0"} if v1 else \
        {"azp": c.client_id, "azpacr": "1" if app_only else "0"}
    # scp only in delegated (user) tokens; app-only tokens carry roles instead.
    scp = None if app_only else m.scope()
    return {**common, "aud": m.aud(), **client_claims, "scp": scp,
            "idtyp": "app" if app_only else None}, _JWT


def _keycloak(m: _Mint) -> tuple[dict[str, Any], dict[str, Any]]:
    c = m.client
    common = {"iss": m.iss, "iat": m.now, "exp": m.exp, "jti": str(uuid.uuid4()), "sub": m.user(),
              "azp": c.client_id, "preferred_username": f"service-account-{c.client_id}"}
    if m.id_token:
        return {**common, "aud": c.client_id, "typ": "ID"}, _JWT
    realm = {"roles": list(c.roles)} if c.roles else None
    resource = {name: {"roles": list(roles)} for name, roles in c.client_roles} or None
    return {**common, "aud": m.aud(), "typ": "Bearer", "scope": m.scope(), "realm_access": realm,
            "resource_access": resource, "client_id": c.client_id}, _JWT


def _rfc9068(m: _Mint) -> tuple[dict[str, Any], dict[str, Any]]:
    c = m.client
    common = {"iss": m.iss, "sub": c.client_id, "iat": m.now, "exp": m.exp, "jti": uuid.uuid4().hex}
    if m.id_token:
        # Explicit typing is what tells them apart (RFC 9068 §5): an ID token is no at+jwt.
        return {**common, "aud": c.client_id, "auth_time": m.now}, _JWT
    return {**common, "aud": m.aud(), "client_id": c.client_id, "scope": m.scope(),
            "groups": m.listed(c.groups), "roles": m.listed(c.roles)}, _AT_JWT


def _plain(m: _Mint) -> tuple[dict[str, Any], dict[str, Any]]:
    # What ``LocalIdentityProvider.mint`` signs by default, with the grant lists under their own names.
    c = m.client
    return {"iss": m.iss, "sub": c.client_id, "aud": m.aud(), "client_id": c.client_id, "iat": m.now,
            "exp": m.exp, "jti": uuid.uuid4().hex, "scope": m.scope(), "groups": m.listed(c.groups),
            "roles": m.listed(c.roles), "permissions": m.listed(c.permissions)}, _AT_JWT


_BUILDERS: dict[str, Callable[[_Mint], tuple[dict[str, Any], dict[str, Any]]]] = {
    "cognito-m2m": _cognito_m2m, "cognito": _cognito, "okta": _okta, "auth0": _auth0, "auth0-rbac": _auth0,
    "entra-v2-app": _entra, "entra-v2-delegated": _entra, "entra-v1": _entra, "keycloak": _keycloak,
    "rfc9068": _rfc9068, "plain": _plain,
}


# -- the clients file ------------------------------------------------------------------


def load_clients(path: str | Path = CLIENTS_FILE) -> dict[str, OAuthClient]:
    """Read a clients file: ``clients: [{client_id, client_secret, shape, scopes, ...}]``.

    Raises:
        ConfigurationError: the file is missing or not YAML, or an entry is invalid: every
            problem is listed with its ``file:line``, unknown keys included.
    """
    where = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
        document, locate = load_yaml_document(text, where)
    except OSError as exc:
        raise ConfigurationError("clients file", f"{where}: cannot read ({exc.strerror or exc})") from None
    except UnicodeDecodeError:
        raise ConfigurationError("clients file", f"{where}: not UTF-8 text") from None
    except PermissionsError as exc:
        raise ConfigurationError("clients file", str(exc)) from None
    problems: list[str] = []
    entries = document.get("clients") if isinstance(document, dict) else None
    if not isinstance(entries, list) or not entries:
        raise ConfigurationError("clients file", f"{locate(())}: needs a non-empty 'clients' list")
    if isinstance(document, dict):
        problems += [f"{locate((key,))}: unknown field {key!r} (expected clients)"
                     for key in document if key != "clients"]
    clients: dict[str, OAuthClient] = {}
    for index, entry in enumerate(entries):
        client = _client(entry, ("clients", index), locate, problems)
        if client is None:
            continue
        if client.client_id in clients:
            problems.append(f"{locate(('clients', index, 'client_id'))}: client_id {client.client_id!r} "
                            f"appears twice")
        clients[client.client_id] = client
    if problems:
        raise ConfigurationError("clients file", "\n".join(problems))
    return clients


def _client(entry: Any, at: tuple[int | str, ...], locate: Locate, problems: list[str]) -> OAuthClient | None:
    if not isinstance(entry, dict):
        problems.append(f"{locate(at)}: a client must be a mapping with client_id and client_secret")
        return None
    before = len(problems)

    def bad(key: str | tuple[int | str, ...], message: str) -> None:
        problems.append(f"{locate((*at, *(key if isinstance(key, tuple) else (key,))))}: {message}")

    for key in entry:
        if key not in _KEYS:
            bad(str(key), f"unknown field {key!r} (expected {', '.join(_KEYS)})")
    for key in ("client_id", "client_secret"):
        if not isinstance(entry.get(key), str) or not entry[key]:
            problems.append(f"{locate((*at, key) if key in entry else at)}: a client needs {key} "
                            f"(a non-empty string)")
    shape = _shape(entry, bad)
    token = entry.get("token", "access")
    if token not in ("access", "id"):
        bad("token", f"token must be access or id, not {token!r}")
    elif token == "id" and shape is not None and shape not in ID_TOKEN_SHAPES:
        bad("token", f"shape {shape} has no ID token (shapes that do: {', '.join(ID_TOKEN_SHAPES)})")
    lists = {key: _strings(entry, key, bad, scope=key == "scopes") for key in ("scopes", "groups", "roles",
                                                                                "permissions")}
    client_roles = _client_roles(entry, bad)
    audience = _audience(entry, bad)
    tenant = entry.get("tenant", DEFAULT_TENANT)
    if "tenant" in entry:
        if shape is not None and not shape.startswith("entra"):
            bad("tenant", f"tenant is the Entra tenant id (tid); shape {shape} has none")
        elif not isinstance(tenant, str) or not _GUID.fullmatch(tenant):
            bad("tenant", "tenant must be a tenant id in lower-case GUID form, as Entra writes it")
    if shape is not None:
        for key in _GRANT_KEYS:
            if key in entry and key not in _GRANTS[shape]:
                carriers = [s for s in SHAPES if key in _GRANTS[s]]
                bad(key, f"shape {shape} carries no {key} (shapes that do: {', '.join(carriers)}); "
                         f"put other claims under claims")
    claims = _claims(entry, bad)
    if len(problems) > before or shape is None:
        return None
    return OAuthClient(
        entry["client_id"], entry["client_secret"], lists["scopes"], shape, audience, lists["groups"],
        lists["roles"], lists["permissions"], client_roles, claims, tenant, token,
    )


def _shape(entry: dict[str, Any], bad: Callable[[str, str], None]) -> str | None:
    if "shape" in entry and "style" in entry:
        bad("style", "give shape or style (its older name), not both")
        return None
    if "style" in entry:
        style = entry["style"]
        if not isinstance(style, str) or style not in _STYLES:
            bad("style", f"style {style!r} is not one of {', '.join(_STYLES)} (style is the older name of "
                         f"shape: one of {', '.join(SHAPES)})")
            return None
        return _STYLES[style]
    shape = entry.get("shape", DEFAULT_SHAPE)
    if not isinstance(shape, str) or shape not in SHAPES:
        bad("shape", f"shape {shape!r} is not one of {', '.join(SHAPES)}")
        return None
    return shape


def _value_problem(value: Any, *, scope: bool) -> str | None:
    if not isinstance(value, str):
        return "must be a string"
    if scope:
        return None if _SCOPE.fullmatch(value) else "is not a scope token (RFC 6749 §3.3: no spaces, quotes " \
                                                    "or backslashes)"
    if not value or len(value) > _MAX_VALUE:
        return f"must have 1 to {_MAX_VALUE} characters"
    if _CONTROL.search(value) or value != value.strip():
        return "must not hold control characters or start or end with whitespace"
    return None


def _strings(entry: dict[str, Any], key: str, bad: Callable[[Any, str], None], *, scope: bool) -> tuple[str, ...]:
    values = entry.get(key, [])
    if not isinstance(values, list):
        bad(key, f"{key} must be a list of strings")
        return ()
    for i, value in enumerate(values):
        problem = _value_problem(value, scope=scope)
        if problem:
            bad((key, i), f"{key}[{i}] {value!r} {problem}")
    if len(set(map(str, values))) != len(values):
        bad(key, f"{key} lists a value twice")
    return tuple(str(v) for v in values)


def _client_roles(entry: dict[str, Any], bad: Callable[[Any, str], None]) -> tuple[tuple[str, tuple[str, ...]], ...]:
    value = entry.get("clientRoles", {})
    if not isinstance(value, dict):
        bad("clientRoles", "clientRoles must map a client id to a list of its roles")
        return ()
    out: list[tuple[str, tuple[str, ...]]] = []
    for name, roles in value.items():
        if not isinstance(name, str) or _value_problem(name, scope=False):
            bad(("clientRoles", name), f"clientRoles: {name!r} is not a client id")
            continue
        if not isinstance(roles, list) or not roles:
            bad(("clientRoles", name), f"clientRoles.{name} must be a non-empty list of role names")
            continue
        for i, role in enumerate(roles):
            problem = _value_problem(role, scope=False)
            if problem:
                bad(("clientRoles", name, i), f"clientRoles.{name}[{i}] {role!r} {problem}")
        out.append((name, tuple(str(r) for r in roles)))
    return tuple(out)


def _audience(entry: dict[str, Any], bad: Callable[[Any, str], None]) -> tuple[str, ...]:
    value = entry.get("audience")
    if value is None and "audience" not in entry:
        return ()
    values = value if isinstance(value, list) else [value]
    if not values or not all(isinstance(v, str) and v and not _CONTROL.search(v) for v in values):
        bad("audience", "audience must be a string or a non-empty list of strings")
        return ()
    return tuple(values)


def _claims(entry: dict[str, Any], bad: Callable[[Any, str], None]) -> dict[str, Any]:
    value = entry.get("claims", {})
    if not isinstance(value, dict):
        bad("claims", "claims must map claim names to values")
        return {}
    for name, claim in value.items():
        if not isinstance(name, str) or not name:
            bad(("claims", name), f"claims: {name!r} is not a claim name")
        elif name in _RESERVED_CLAIMS:
            bad(("claims", name), f"claims: {name} is set by the identity provider itself")
        elif not _is_json(claim):
            bad(("claims", name), f"claims.{name} must be a JSON value (string, number, true/false, null, "
                                  f"list or mapping with string keys)")
    return dict(value)


def _is_json(value: Any) -> bool:
    if value is None or isinstance(value, (str, bool, int, float)):
        return True
    if isinstance(value, list):
        return all(_is_json(v) for v in value)
    if isinstance(value, dict):
        return all(isinstance(k, str) and _is_json(v) for k, v in value.items())
    return False
