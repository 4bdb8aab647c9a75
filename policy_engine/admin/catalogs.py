"""Catalog files for ``validate``: scopes, clients and APIs, read from YAML with line numbers.

Formats (examples in ``catalog/``)::

    # scopes.yaml: every scope the identity provider issues
    scopes:
      pets:read: Read pets          # name: description
    without_routes: [openid, email] # may be held, expected to grant nothing
    groups:                         # optional: groups mappings may name (same shape as scopes)
      pet-readers: Cognito group of read-only staff
    roles:                          # optional: roles mappings may name
      Pets.Read.All: Entra app role

    # clients.yaml: who holds which scopes (policy size per client)
    issuer: https://idp.example.com  # optional, for size estimates
    clients:
      - id: pet-store-web
        scopes: [pets:read, pets:write]
        groups: [pet-readers]        # optional, as are roles

    # apis.yaml: each API's stages and routes (or an OpenAPI file)
    apis:
      - arn: arn:aws:execute-api:us-east-1:123456789012:a1b2c3d4e5
        stages: [dev, prod]
        routes: [GET /pets, GET /pets/{petId}, ANY /store/{proxy+}]
        openapi: petstore.yaml   # optional, relative to this file: its operations are added to
                                 # the routes, and validate checks the mappings' coverage of its
                                 # security (admin.coverage)

Every problem raises ``PermissionsError`` naming ``file:line``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from policy_engine.adapters.yaml_files import load_yaml_document
from policy_engine.admin.lint import ApiCatalog, ApiEntry, Client, ClientCatalog, ScopeCatalog
from policy_engine.admin.openapi import OpenApiDocument, read_openapi
from policy_engine.core.arn import API_ARN_PATTERN
from policy_engine.core.grants import grant_key
from policy_engine.core.permissions import Locate
from policy_engine.errors import PermissionsError

__all__ = ["load_api_catalog", "load_client_catalog", "load_scope_catalog"]


def _read(path: Path, keys: set[str] | None, shape: str) -> tuple[dict[str, Any], Locate, str]:
    display = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise PermissionsError(f"{display}: cannot read ({getattr(exc, 'strerror', None) or exc})") from None
    document, locate = load_yaml_document(text, display)
    _expect(document, dict, locate(()), f"expected {shape}")
    unknown = sorted(set(document) - keys) if keys is not None else []
    if unknown:
        raise PermissionsError(f"{locate((unknown[0],))}: unknown key {unknown[0]!r} (expected {shape})")
    return document, locate, display


def _expect(value: Any, kind: type, where: str, what: str) -> Any:
    if not isinstance(value, kind):
        raise PermissionsError(f"{where}: {what}")
    return value


def _strings(value: Any, where: str, what: str) -> list[str]:
    if isinstance(value, str):
        return [value]
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise PermissionsError(f"{where}: {what} must be a list of strings")
    return value


def load_scope_catalog(path: str | Path) -> ScopeCatalog:
    """Read a scope catalog.

    Raises:
        PermissionsError: unreadable file or wrong shape (with ``file:line``).
    """
    document, locate, display = _read(Path(path), {"scopes", "without_routes", "groups", "roles"},
                                      "'scopes:' (and optionally 'without_routes:', 'groups:', 'roles:')")

    def names(key: str) -> dict[str, str]:
        declared = document.get(key) or {}
        if isinstance(declared, list):
            declared = {name: "" for name in _strings(declared, locate((key,)), key)}
        _expect(declared, dict, locate((key,)), f"{key} must map each name to a description (or be a list)")
        return {str(name): locate((key, name)) for name in declared}

    without = {name: locate(("without_routes", i))
               for i, name in enumerate(_strings(document.get("without_routes") or [], locate(("without_routes",)),
                                                 "without_routes"))}
    return ScopeCatalog(names("scopes"), without, display, groups=names("groups"), roles=names("roles"))


def load_client_catalog(path: str | Path) -> ClientCatalog:
    """Read a client catalog.

    Raises:
        PermissionsError: unreadable file or wrong shape (with ``file:line``).
    """
    document, locate, _ = _read(Path(path), {"clients", "issuer"}, "'clients:' (and optionally 'issuer:')")
    issuer = document.get("issuer")
    if issuer is not None:
        _expect(issuer, str, locate(("issuer",)), "issuer must be a URL string")
    listed = _expect(document.get("clients"), list, locate(("clients",)), "clients must be a list")
    clients = []
    for i, item in enumerate(listed):
        where = locate(("clients", i))
        _expect(item, dict, where, "a client needs 'id' and 'scopes'")
        client_id = _expect(item.get("id"), str, where, "a client needs an 'id' string")
        held = set(_strings(item.get("scopes") or [], locate(("clients", i, "scopes")), "scopes"))
        for kind in ("group", "role"):
            values = _strings(item.get(kind + "s") or [], locate(("clients", i, kind + "s")), kind + "s")
            held.update(grant_key(kind, value) for value in values)
        clients.append(Client(client_id, frozenset(held), where))
    return ClientCatalog(clients, issuer)


def load_api_catalog(path: str | Path) -> ApiCatalog:
    """Read an API catalog (and the OpenAPI files it names).

    Raises:
        PermissionsError: unreadable file or wrong shape (with ``file:line``).
    """
    file = Path(path)
    document, locate, display = _read(file, {"apis"}, "'apis:'")
    listed = _expect(document.get("apis"), list, locate(("apis",)), "apis must be a list")
    apis: dict[str, ApiEntry] = {}
    for i, item in enumerate(listed):
        where = locate(("apis", i))
        _expect(item, dict, where, "an API needs 'arn', 'stages' and 'routes' or 'openapi'")
        unknown = sorted(set(item) - {"arn", "name", "stages", "routes", "openapi"})
        if unknown:
            raise PermissionsError(f"{locate(('apis', i, unknown[0]))}: unknown key {unknown[0]!r}")
        arn = _expect(item.get("arn"), str, locate(("apis", i, "arn")), "arn must be an API ARN")
        if not API_ARN_PATTERN.fullmatch(arn):
            raise PermissionsError(f"{locate(('apis', i, 'arn'))}: {arn!r} is not an API ARN")
        stages = _strings(item.get("stages") or [], locate(("apis", i, "stages")), "stages")
        routes: list[tuple[str, str]] = []
        for r, text in enumerate(_strings(item.get("routes") or [], locate(("apis", i, "routes")), "routes")):
            verb, _, route_path = text.strip().partition(" ")
            if not route_path.strip().startswith("/"):
                raise PermissionsError(f"{locate(('apis', i, 'routes', r))}: route {text!r} must read 'VERB /path'")
            routes.append((verb.upper(), route_path.strip()))
        spec: OpenApiDocument | None = None
        if "openapi" in item:
            named = _expect(item["openapi"], str, locate(("apis", i, "openapi")), "openapi must be a path")
            # OpenApiError is a PermissionsError naming the document's own file:line.
            spec = read_openapi(file.parent / named)
            routes += [(op.verb, op.path) for op in spec.operations]
        apis[arn] = ApiEntry(arn, frozenset(stages), tuple(routes), where, spec)
    return ApiCatalog(apis, display)
