"""Everything ``policy-engine serve`` runs, in one object: identity provider, permission
table, the real handler and the local gateway, all on 127.0.0.1.

``LocalStack(options).start()`` brings them up in dependency order and ``stop()`` takes
them down in reverse; the end-to-end tests and ``demo`` drive it the same way the
command does.
"""

from __future__ import annotations

import contextlib
import os
import shlex
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from policy_engine.adapters.yaml_files import YamlPermissionSource
from policy_engine.admin.local.clients import OAuthClient
from policy_engine.admin.local.gateway import (
    HandlerAuthorizer,
    LocalGateway,
    PetsBackend,
    ProxyBackend,
    RouteTable,
)
from policy_engine.admin.local.idp import CLIENTS_FILE, LocalIdentityProvider, load_clients
from policy_engine.admin.local.invoke import load_handler
from policy_engine.admin.local.table import LocalTable
from policy_engine.admin.resources import EXAMPLE_PERMISSIONS
from policy_engine.core.permissions import PermissionSet, compile_records
from policy_engine.errors import ConfigurationError

__all__ = ["DEFAULT_PERMISSIONS", "LOCAL_GRANT_SOURCES", "LocalStack", "ServeOptions"]

#: The shipped pet store example (``permissions/`` of the repository).
DEFAULT_PERMISSIONS = EXAMPLE_PERMISSIONS
#: The handler's ``GRANT_SOURCES`` under ``serve``: scopes as by default, plus the groups,
#: roles and Auth0 permissions the local provider's shapes carry (``clients.yaml``), so a
#: client of any shape is judged by what its token holds. Not set when the environment
#: (or ``handler_env``) names its own sources: ``SCOPE_CLAIMS``, ``GRANT_SOURCES`` or ``IDP_PRESET``.
LOCAL_GRANT_SOURCES = ("scope:scope,scope:scp,scope:permissions,group:cognito:groups,group:groups,"
                       "role:roles,role:realm_access.roles")
_OWN_SOURCES = ("SCOPE_CLAIMS", "GRANT_SOURCES", "IDP_PRESET")


@dataclass
class ServeOptions:
    """What ``serve`` starts; the defaults are the shipped example."""

    permissions: Path = DEFAULT_PERMISSIONS
    clients_file: Path = CLIENTS_FILE
    host: str = "127.0.0.1"
    #: Gateway port (0: any free port); the IdP listens on ``idp_port``.
    port: int = 0
    idp_port: int = 0
    #: ``dynamodb`` (the default: a table migrated and synced from ``permissions``) or
    #: ``yaml`` (the handler reads the files directly).
    store: str = "dynamodb"
    table: str = "policy-engine-permissions"
    api: str | None = None
    #: Routes (and which need no authorizer) from this OpenAPI document instead of the files.
    openapi: Path | None = None
    #: API Gateway's import mode for the document's base path (ignore, prepend, split).
    base_path: str = "ignore"
    stages: tuple[str, ...] = ()
    token_header: str = "Authorization"
    token_regex: str | None = None
    #: Non-empty: a REQUEST authorizer with these identity sources (API Gateway syntax).
    identity_sources: tuple[str, ...] = ()
    cache_ttl: float = 300
    backend_url: str | None = None
    #: Extra environment for the handler (e.g. ``PERMISSIONS_CACHE_TTL``).
    handler_env: Mapping[str, str] = field(default_factory=dict)
    clock: Callable[[], float] = time.monotonic


class LocalStack:
    """The running pieces of ``serve``."""

    def __init__(self, options: ServeOptions | None = None) -> None:
        self.options = options or ServeOptions()
        self.clients = load_clients(self.options.clients_file)
        self.idp: LocalIdentityProvider | None = None
        self.table: LocalTable | None = None
        self.gateway: LocalGateway | None = None
        self.handler_environ: dict[str, str] = {}
        self.startup_seconds = 0.0
        #: What the last sync into the table said (``None`` with ``--store yaml``).
        self.last_publish: str | None = None

    # -- lifecycle ---------------------------------------------------------------

    def start(self) -> LocalStack:
        """Start IdP, table, handler and gateway; stop whatever started if one fails.

        Raises:
            ConfigurationError, PermissionsError, StoreError: a piece could not start.
        """
        started = time.perf_counter()
        options = self.options
        try:
            permissions = _load_permissions(options.permissions)
            with _binding("--idp-port", options.host, options.idp_port):
                self.idp = LocalIdentityProvider(options.host, options.idp_port, clients=self.clients.values())
            self.idp.start()
            source = str(options.permissions)
            aws_env: dict[str, str] = {}
            if options.store == "dynamodb":
                self.table = LocalTable(options.table, host=options.host).start()
                self.last_publish = self.table.publish(options.permissions).describe()
                source = self.table.source
                aws_env = self.table.environ
            elif options.store != "yaml":
                raise ConfigurationError("--store", f"{options.store!r} is not one of dynamodb, yaml")
            self.handler_environ = {
                # The provider's own issuer, then those of clients shaped with a path (Auth0, Entra).
                "ISSUER": ",".join(dict.fromkeys([self.idp.issuer, *sorted(
                    c.issuer(self.idp.issuer) for c in self.clients.values())])),
                "AUDIENCE": ",".join(sorted({c.audience_value for c in self.clients.values()})),
                "PERMISSIONS_SOURCE": source,
                # Pick up a rotated key on the next request; Lambda's default waits 30 s.
                "JWKS_REFETCH_INTERVAL": os.environ.get("JWKS_REFETCH_INTERVAL", "1"),
                **({} if any({**os.environ, **options.handler_env}.get(name, "").strip() for name in _OWN_SOURCES)
                   else {"GRANT_SOURCES": LOCAL_GRANT_SOURCES}),
                **aws_env,
                **({"IDENTITY_SOURCE": ",".join(options.identity_sources)} if options.identity_sources else {}),
                **options.handler_env,
            }
            module = load_handler(self.handler_environ)
            routes = self._routes(permissions)
            backend = ProxyBackend(options.backend_url) if options.backend_url else PetsBackend()
            with _binding("--port", options.host, options.port):
                self.gateway = LocalGateway(
                    HandlerAuthorizer(module), routes, backend=backend, token_header=options.token_header,
                    token_regex=options.token_regex, identity_sources=options.identity_sources or None,
                    cache_ttl=options.cache_ttl, clock=options.clock, host=options.host, port=options.port,
                    info=self._info,
                )
            self.gateway.start()
        except BaseException:
            self.stop()
            raise
        self.startup_seconds = time.perf_counter() - started
        return self

    def stop(self) -> None:
        """Stop everything that runs, newest first. Safe to call twice."""
        for piece in (self.gateway, self.table, self.idp):
            if piece is not None:
                piece.stop()
        self.gateway = self.table = self.idp = None

    def __enter__(self) -> LocalStack:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- while running -------------------------------------------------------------

    def sync(self) -> None:
        """Publish the permission files again (``dynamodb``); ``yaml`` reads them live anyway.

        Raises:
            PermissionsError, StoreError: the files are invalid or the table refused them.
        """
        if self.table is not None:
            self.last_publish = self.table.publish(self.options.permissions).describe()

    @property
    def gateway_url(self) -> str:
        assert self.gateway is not None, "not started"
        return self.gateway.url

    @property
    def token_endpoint(self) -> str:
        assert self.idp is not None, "not started"
        return self.idp.token_endpoint

    def _info(self) -> dict[str, Any]:
        assert self.idp is not None
        return {"issuer": self.idp.issuer, "token_endpoint": self.idp.token_endpoint,
                "rotate_endpoint": f"{self.idp.issuer}/admin/rotate",
                "permissions_source": self.handler_environ.get("PERMISSIONS_SOURCE"),
                "cache_ttl": self.options.cache_ttl}

    def _routes(self, permissions: PermissionSet) -> RouteTable:
        from_files = RouteTable.from_permissions(permissions, self.options.api)
        if self.options.openapi is None:
            return from_files
        stages = self.options.stages or tuple(sorted(from_files.stages or ("dev",)))
        return RouteTable.from_openapi(self.options.openapi, from_files.api_arn, stages,
                                       base_path=self.options.base_path)

    def describe(self) -> str:
        """What runs where, and ready-to-paste commands for the shipped example."""
        assert self.gateway is not None and self.idp is not None
        routes = self.gateway.routes
        stage = "dev" if routes.has_stage("dev") else sorted(routes.stages or {"dev"})[0]
        token_url = self.idp.token_endpoint
        api = f"{self.gateway.url}/{stage}"
        sources = self.options.identity_sources
        authorizer = f"REQUEST ({', '.join(sources)})" if sources else "TOKEN"
        effective = {**os.environ, **self.handler_environ}  # what the handler was loaded with
        lines = [
            f"identity provider  {self.idp.issuer}  (token endpoint {token_url}, JWKS {self.idp.jwks_uri})",
            f"permissions        {self.handler_environ['PERMISSIONS_SOURCE']}"
            + (f"  on {'moto at ' if self.table.embedded else ''}{self.table.endpoint}, migrated, then"
               f"\n                   sync {_shown(self.options.permissions)}: {self.last_publish}"
               if self.table else "  (read live by the handler)"),
            f"API gateway        {self.gateway.url}/{{stage}}/...  for {routes.api_arn}",
            *([f"                   routes of {_shown(self.options.openapi)}: {len(routes.routes)} operations, "
               f"{sum(not r.authorized for r in routes.routes)} without authorizer (security: [])"]
              if self.options.openapi is not None else []),
            f"                   stages {', '.join(sorted(routes.stages)) if routes.stages else 'any'}; "
            f"{authorizer} authorizer; cache TTL {self.options.cache_ttl:g} s; "
            f"backend {self.options.backend_url or 'built-in pets'}",
            "grant sources      " + next((f"{name}={effective[name]}" for name in _OWN_SOURCES
                                              if effective.get(name, "").strip()), "the default (SCOPE_CLAIMS)"),
            "clients            " + "; ".join(
                f"{c.client_id} ({c.shape}: {_held(c)})" for c in self.clients.values()),
            "",
            "Try it (for the shipped example):",
            "  # 1. get a token (client credentials, HTTP Basic)",
            f"  TOKEN=$(curl -s -u pets-reader:reader-secret -d grant_type=client_credentials "
            f"-d scope=pets:read {token_url} "
            "| python3 -c 'import json,sys; print(json.load(sys.stdin)[\"access_token\"])')",
            "  # 2. a route the token's scopes grant: 200",
            f"  curl -i -H \"Authorization: Bearer $TOKEN\" {api}/pets/1",
            "  # 3. a route outside the token's scopes: 403",
            f"  curl -i -X POST -H \"Authorization: Bearer $TOKEN\" -d '{{\"type\":\"parrot\"}}' {api}/pets",
            "  # 4. no token: 401",
            f"  curl -i {api}/pets",
            "  # 5. a user in group pet-sitters of tenant acme: its own tenant's path 200, another's 403",
            f"  TOKEN=$(curl -s -u sitter-jane:jane-secret -d grant_type=client_credentials {token_url} "
            "| python3 -c 'import json,sys; print(json.load(sys.stdin)[\"access_token\"])')",
            f"  curl -i -H \"Authorization: Bearer $TOKEN\" {api}/tenants/acme/pets",
            f"  curl -i -H \"Authorization: Bearer $TOKEN\" {api}/tenants/globex/pets",
            "  # rotate the signing keys",
            f"  curl -s -X POST {shlex.quote(self.idp.issuer + '/admin/rotate')}",
        ]
        if self.table is not None:
            env = " ".join(f"{k}={shlex.quote(v)}" for k, v in sorted(self.table.environ.items())
                           if k != "AWS_SESSION_TOKEN")
            lines += [
                "  # after editing the permission files, publish them to the running table",
                f"  {env} policy-engine sync {self.table.source} --permissions "
                f"{shlex.quote(_shown(self.options.permissions))}",
            ]
        return "\n".join(lines)


@contextlib.contextmanager
def _binding(option: str, host: str, port: int) -> Iterator[None]:
    try:
        yield
    except OSError as exc:
        raise ConfigurationError(option, f"cannot listen on {host}:{port} ({exc.strerror or exc}); "
                                 f"choose another port, or 0 for any free one") from exc


def _held(client: OAuthClient) -> str:
    held = [*client.scopes, *(f"group {g}" for g in client.groups), *(f"role {r}" for r in client.roles)]
    return " ".join(held) or "no scopes"


def _shown(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def _load_permissions(path: Path) -> PermissionSet:
    raw = YamlPermissionSource(path).fetch(None)
    assert raw is not None  # no etag given, so the source always answers
    return compile_records(raw.records, raw.locate, version=raw.version)
