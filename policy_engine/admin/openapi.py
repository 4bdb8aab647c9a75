"""Read an OpenAPI 3.x or Swagger 2.0 document into API Gateway routes and what each needs.

``read_openapi`` returns every operation as API Gateway deploys it (verb, route path with
the import's base-path mode applied) and its effective security as alternatives of grant
keys. ``import openapi`` writes permission YAML from it; ``validate --openapi`` and
``serve --openapi`` check and serve against it. Nothing here decides a request.

Security, as the specifications define it (Security Requirement Object, Operation Object
``security``: https://spec.openapis.org/oas/v3.1.1 , https://spec.openapis.org/oas/v3.0.4 ,
https://spec.openapis.org/oas/v2.0):

- the operation's ``security`` replaces the document's root ``security`` (no merge); an
  operation with neither declares nothing, and is read *fail closed*: secured, by nothing
  the authorizer can grant (``requirements == ()``);
- ``security: []`` removes every requirement: the operation needs no authorization
  (``requirements is None``), as does ``x-amazon-apigateway-auth: {type: NONE}``;
  ``AWS_IAM`` there is IAM (SigV4) authorization, which API Gateway checks itself;
- the list is an OR of requirement objects; one object is an AND of its schemes; the
  scopes listed for an OAuth 2.0 or OpenID Connect scheme are ALL required (RFC 6749
  §3.3 scope tokens, case-sensitive);
- an empty object ``{}`` makes anonymous access acceptable. API Gateway calls the
  authorizer for every request of a route that has one, so the closest grant the
  authorizer can give is "any authenticated caller" (``frozenset()``).

Schemes whose scopes the authorizer reads: ``oauth2``, ``openIdConnect`` and any scheme
with ``x-amazon-apigateway-authorizer`` (how API Gateway describes a Lambda or Cognito
authorizer: an ``apiKey`` header scheme plus the extension,
https://docs.aws.amazon.com/apigateway/latest/developerguide/api-gateway-swagger-extensions-authorizer.html).
API keys, HTTP basic or bearer without the extension, mutual TLS and schemes whose
``x-amazon-apigateway-authtype`` starts with ``aws`` (IAM) are enforced by API Gateway or
nobody, never by the authorizer: an alternative made only of them is dropped (a
narrowing). Inside an alternative that also names an OAuth scheme, only the OAuth part is
kept when the rest is an API key or mutual TLS, which API Gateway checks beside a Lambda
authorizer; with HTTP basic or bearer or IAM in it, nothing would check the rest, so the
alternative is dropped too (each case is written in ``Operation.notes``).

Paths are API Gateway resource paths
(https://docs.aws.amazon.com/apigateway/latest/developerguide/api-gateway-known-issues.html):
segments of letters, digits, ``_ - . , :``, a ``{name}`` parameter as a whole segment, a
greedy ``{name+}`` only as the last one, one variable child per parent
(https://docs.aws.amazon.com/apigateway/latest/developerguide/api-gateway-method-settings-method-request.html).
``x-amazon-apigateway-any-method`` is the ``ANY`` method
(https://docs.aws.amazon.com/apigateway/latest/developerguide/api-gateway-swagger-extensions-any-method.html).
Swagger 2.0's ``basePath``, or OpenAPI 3's ``basePath`` server variable or server URL
path, is applied as API Gateway's REST import does with ``ignore`` (the default),
``prepend`` or ``split``
(https://docs.aws.amazon.com/apigateway/latest/developerguide/api-gateway-import-api-basePath.html).
Servers are never stages.

Every problem raises ``OpenApiError`` naming ``file:line`` and the element.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from policy_engine.adapters.yaml_files import load_yaml_document
from policy_engine.core.grants import SCOPE, grant_key
from policy_engine.core.permissions import FieldProblem, Locate, grant_value_rule
from policy_engine.errors import OpenApiError, PermissionsError

__all__ = ["BASE_PATH_MODES", "OpenApiDocument", "Operation", "Skipped", "read_openapi"]

#: API Gateway's REST import modes for the document's base path.
BASE_PATH_MODES = ("ignore", "prepend", "split")

# Path Item fields that are operations API Gateway deploys, in the specification's order.
_METHODS = ("get", "put", "post", "delete", "options", "head", "patch")
_ANY_METHOD = "x-amazon-apigateway-any-method"
# Operations a document may hold that API Gateway has no method for.
_OTHER_METHODS = {"trace": "TRACE", "query": "QUERY"}
_PATH_ITEM_FIELDS = frozenset({"$ref", "summary", "description", "servers", "parameters", "additionalOperations",
                               *_METHODS, *_OTHER_METHODS})

# The Operation Object's fields (OpenAPI 3.x and Swagger 2.0 together). A key that spells
# one of them in another case ("Security") is a typo that would silently drop the
# operation's own requirements (the root's, maybe weaker, would apply): an error. Other
# unknown keys are left alone, as tools write all sorts.
_OPERATION_FIELDS = frozenset({"tags", "summary", "description", "externalDocs", "operationId", "parameters",
                               "requestBody", "responses", "callbacks", "deprecated", "security", "servers",
                               "consumes", "produces", "schemes"})
_OPERATION_FIELDS_FOLDED = {name.lower(): name for name in _OPERATION_FIELDS}

# API Gateway resource path segments (REST import rules, see the module docstring).
_LITERAL = re.compile(r"[A-Za-z0-9_.,:-]+")
_PARAMETER = re.compile(r"\{([A-Za-z0-9_.-]+)(\+?)\}")
_OPENAPI_VERSION = re.compile(r"3\.[0-2](\.\d+)?(-[0-9A-Za-z.-]+)?")
# A JSON "\ud83d\ude00" escape pair: valid JSON, refused by YAML's double-quoted scalars.
_SURROGATE_PAIR = re.compile(r"(?<!\\)((?:\\\\)*)\\u([dD][89abAB][0-9a-fA-F]{2})\\u([dD][c-fC-F][0-9a-fA-F]{2})")
_IDENTIFIER = re.compile(r"[A-Za-z_$][A-Za-z0-9_$-]*")

_scope_rule = grant_value_rule(SCOPE)

Where = tuple[int | str, ...]


@dataclass(frozen=True, slots=True)
class Operation:
    """One method of one API Gateway route and the grants that authorize it.

    ``verb``: ``GET`` ... or ``ANY`` (``x-amazon-apigateway-any-method``). ``path``: the
    route path as deployed (``/pet/{petId}``, ``/store/{proxy+}``), base-path mode
    applied. ``where``: ``file:line`` of the operation.

    ``requirements``: ``None`` when the operation needs no authorization (``security:
    []``, or ``x-amazon-apigateway-auth`` ``NONE``). Otherwise an OR of alternatives, each
    an AND of grant keys (scope names); ``frozenset()`` is any authenticated caller and
    is then the only alternative; no alternative is a superset of another. ``()``: secured,
    but by nothing the authorizer reads (API keys, HTTP basic, IAM, or no security
    declared at all): no caller is granted it. ``notes`` says why for every alternative
    left out, and anything else a reader of the import report should know.
    """

    verb: str
    path: str
    where: str
    requirements: tuple[frozenset[str], ...] | None
    notes: tuple[str, ...]

    @property
    def route(self) -> str:
        """The API Gateway route key, ``GET /pet/{petId}``."""
        return f"{self.verb} {self.path}"


@dataclass(frozen=True, slots=True)
class Skipped:
    """An operation of the document that is not an API Gateway method (``TRACE``, the
    HTTP API ``$default`` route): reported, never mapped."""

    verb: str
    path: str
    where: str
    reason: str


@dataclass(frozen=True, slots=True)
class OpenApiDocument:
    """What ``read_openapi`` read: the source as given, its ``sha256:`` digest, the
    ``openapi``/``swagger`` version, ``info.title``, the operations sorted by (path,
    verb), the operations left out, and notes about the whole document."""

    source: str
    digest: str
    version: str
    title: str
    operations: tuple[Operation, ...]
    skipped: tuple[Skipped, ...] = ()
    notes: tuple[str, ...] = ()
    base_path: str = ""


@dataclass(frozen=True, slots=True)
class _Scheme:
    name: str
    authorizer: bool  # the authorizer reads its scopes
    label: str
    scopes: frozenset[str] | None  # declared scopes, when the document declares them
    # API Gateway checks it itself on a method that also has a Lambda authorizer: usage-plan
    # API keys (apiKeyRequired) and mutual TLS (the custom domain's truststore). Nothing
    # checks HTTP basic or bearer there, and IAM is another authorization type of the method.
    beside_authorizer: bool = False


Requirements = tuple[frozenset[str], ...] | None


def read_openapi(path: str | Path, *, base_path: str = "ignore") -> OpenApiDocument:
    """Read the OpenAPI 3.x or Swagger 2.0 document at ``path`` (YAML or JSON).

    ``base_path`` is API Gateway's import mode for the document's base path: ``ignore``,
    ``prepend`` or ``split``.

    Raises:
        OpenApiError: the file cannot be read, is not YAML/JSON, is not an OpenAPI 3.x
            or Swagger 2.0 document, has a field of the wrong shape, names an undeclared
            security scheme, holds a path API Gateway cannot deploy or a remote ``$ref``
            (every problem as ``file:line: ...``).
    """
    display = str(path)
    if base_path not in BASE_PATH_MODES:
        raise OpenApiError(f"base path mode {base_path!r} is not one of {', '.join(BASE_PATH_MODES)}")
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise OpenApiError(f"{display}: cannot read ({exc.strerror or exc})") from None
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise OpenApiError(f"{display}: not UTF-8 text") from None
    if "\\u" in text:
        text = _SURROGATE_PAIR.sub(_join_surrogates, text)
    try:
        document, locate = load_yaml_document(text, display)
    except PermissionsError as exc:
        raise OpenApiError([p.replace(": invalid YAML: ", ": not valid YAML or JSON: ") for p in exc.problems]) \
            from None
    reader = _Reader(document, locate, text.splitlines())
    version, title = reader.header()
    operations, skipped, notes, prefix = reader.operations(base_path)
    return OpenApiDocument(
        display, "sha256:" + hashlib.sha256(data).hexdigest(), version, title, operations, skipped, notes, prefix,
    )


def _join_surrogates(found: re.Match[str]) -> str:
    high, low = int(found.group(2), 16), int(found.group(3), 16)
    code = 0x10000 + ((high - 0xD800) << 10) + (low - 0xDC00)
    return f"{found.group(1)}\\U{code:08X}"


def _show(where: Where) -> str:
    text = ""
    for part in where:
        if isinstance(part, int):
            text += f"[{part}]"
        elif _IDENTIFIER.fullmatch(part):
            text += f".{part}" if text else part
        else:
            text += f"[{part!r}]"
    return text or "the document"


def _pointer(ref: str) -> Where:
    parts: list[int | str] = []
    for raw in unquote(ref[1:]).split("/")[1:]:
        parts.append(raw.replace("~1", "/").replace("~0", "~"))
    return tuple(parts)


def minimal(alternatives: Iterable[frozenset[str]]) -> tuple[frozenset[str], ...]:
    """The alternatives with duplicates and supersets of another dropped, sorted by size
    then by their sorted keys (an alternative that holds another is never needed)."""
    unique = sorted(set(alternatives), key=lambda a: (len(a), sorted(a)))
    kept: list[frozenset[str]] = []
    for alternative in unique:
        if not any(other <= alternative for other in kept):
            kept.append(alternative)
    return tuple(kept)


class _Reader:
    def __init__(self, document: Any, locate: Locate, lines: list[str]) -> None:
        self.document = document
        self.locate = locate
        self.lines = lines
        self.swagger = False
        self.v30 = False  # an OpenAPI 3.0.x document
        self.problems: list[str] = []

    # -- errors and places ---------------------------------------------------------

    def error(self, where: Where, message: str) -> OpenApiError:
        return OpenApiError(f"{self.locate(where)}: {_show(where)}: {message}")

    def expect(self, value: Any, kind: type | tuple[type, ...], where: Where, what: str) -> Any:
        if not isinstance(value, kind):
            raise self.error(where, what)
        return value

    def key_line(self, where: Where, key: str) -> str:
        # ``locate`` names the line a value starts on; an operation is better named by
        # the line of its key (``get:``), which is that line or the last one before it.
        place = self.locate(where)
        display, _, number = place.rpartition(":")
        if not number.isdigit():
            return place
        start = int(number)
        key_pattern = re.compile(r"\s*[\"']?" + re.escape(key) + r"[\"']?\s*:")
        for line in range(start, max(0, start - 50), -1):
            text = self.lines[line - 1] if line <= len(self.lines) else ""
            if key_pattern.match(text):
                return f"{display}:{line}"
            stripped = text.strip()
            if line != start and stripped and not stripped.startswith("#"):
                break
        return place

    def resolve(self, value: Any, where: Where) -> tuple[Any, Where]:
        """Follow local ``$ref``s; a remote one is an error."""
        seen: set[str] = set()
        while isinstance(value, dict) and "$ref" in value:
            ref = self.expect(value["$ref"], str, (*where, "$ref"), "$ref must be a string")
            if not ref.startswith("#"):
                raise self.error((*where, "$ref"), f"$ref {ref!r} points outside this document; only local "
                                 "references ('#/...') are read")
            if ref in seen:
                raise self.error((*where, "$ref"), f"$ref {ref!r} refers to itself")
            seen.add(ref)
            target: Any = self.document
            pointer = _pointer(ref)
            for i, part in enumerate(pointer):
                if isinstance(target, list) and isinstance(part, str) and part.isdigit() and int(part) < len(target):
                    target = target[int(part)]
                elif isinstance(target, dict) and part in target:
                    target = target[part]
                else:
                    raise self.error((*where, "$ref"), f"$ref {ref!r} does not resolve (no {_show(pointer[:i + 1])})")
            value, where = target, pointer
        return value, where

    # -- the document --------------------------------------------------------------

    def header(self) -> tuple[str, str]:
        document = self.document
        if not isinstance(document, dict):
            raise OpenApiError(f"{self.locate(())}: not an OpenAPI document (expected a mapping with 'openapi' "
                               "or 'swagger')")
        if "swagger" in document and "openapi" in document:
            raise self.error(("openapi",), "a document is either Swagger 2.0 ('swagger') or OpenAPI 3 ('openapi')")
        if "swagger" in document:
            version = document["swagger"]
            if version not in ("2.0", 2.0) or isinstance(version, bool):
                raise self.error(("swagger",), f"Swagger version {version!r} is not supported (only '2.0')")
            self.swagger, text = True, "2.0"
        elif "openapi" in document:
            version = document["openapi"]
            if not isinstance(version, str) or not _OPENAPI_VERSION.fullmatch(version):
                # YAML reads an unquoted 3.1 as a number.
                quoted = " (quote it: openapi: '3.1.0')" if isinstance(version, float) else ""
                raise self.error(("openapi",), f"OpenAPI version {version!r} is not supported (3.0.x, 3.1.x or "
                                 f"3.2.x){quoted}")
            text = version
            self.v30 = version.startswith("3.0")
        else:
            raise OpenApiError(f"{self.locate(())}: not an OpenAPI document (no 'openapi' or 'swagger' field)")
        info = self.expect(document.get("info", {}), dict, ("info",), "info must be a mapping")
        title = self.expect(info.get("title", ""), str, ("info", "title"), "title must be a string")
        return text, title

    def schemes(self) -> dict[str, _Scheme]:
        where: Where = ("securityDefinitions",) if self.swagger else ("components", "securitySchemes")
        if not self.swagger:
            components = self.expect(self.document.get("components", {}), dict, ("components",),
                                     "components must be a mapping")
            declared = components.get("securitySchemes", {})
        else:
            declared = self.document.get("securityDefinitions", {})
        self.expect(declared, dict, where, "security schemes must be a mapping of names to schemes")
        # mutualTLS came with OpenAPI 3.1.
        types = ("basic", "apiKey", "oauth2") if self.swagger else ("apiKey", "http", "oauth2", "openIdConnect",
                                                                      *(() if self.v30 else ("mutualTLS",)))
        out: dict[str, _Scheme] = {}
        for name, raw in declared.items():
            scheme, at = self.resolve(raw, (*where, name))
            self.expect(scheme, dict, at, "a security scheme must be a mapping with a 'type'")
            kind = scheme.get("type")
            if kind not in types:
                raise self.error((*at, "type"), f"security scheme type {kind!r} is not one of {', '.join(types)}")
            authtype = scheme.get("x-amazon-apigateway-authtype")
            authorizer = scheme.get("x-amazon-apigateway-authorizer")
            if isinstance(authtype, str) and authtype.lower().startswith("aws"):
                out[name] = _Scheme(name, False, f"IAM authorization, x-amazon-apigateway-authtype {authtype}",
                                    None)
            elif authorizer is not None:
                self.expect(authorizer, dict, (*at, "x-amazon-apigateway-authorizer"),
                            "x-amazon-apigateway-authorizer must be a mapping")
                label = f"API Gateway authorizer of type {authorizer.get('type', 'token')}"
                out[name] = _Scheme(name, True, label, None)
            elif kind in ("oauth2", "openIdConnect"):
                out[name] = _Scheme(name, True, kind, self.declared_scopes(scheme, at) if kind == "oauth2" else None)
            else:
                out[name] = _Scheme(name, False, self.label(kind, scheme), None,
                                    beside_authorizer=kind in ("apiKey", "mutualTLS"))
        return out

    def declared_scopes(self, scheme: Mapping[str, Any], where: Where) -> frozenset[str] | None:
        maps: list[Any] = []
        if self.swagger:
            maps.append(scheme.get("scopes", {}))
        else:
            flows = self.expect(scheme.get("flows", {}), dict, (*where, "flows"), "flows must be a mapping")
            maps.extend(flow.get("scopes", {}) for flow in flows.values() if isinstance(flow, dict))
        names: set[str] = set()
        for scopes in maps:
            if isinstance(scopes, dict):
                names.update(str(name) for name in scopes)
        return frozenset(names)

    @staticmethod
    def label(kind: str, scheme: Mapping[str, Any]) -> str:
        if kind == "apiKey":
            return f"API key in {scheme.get('in', '?')} {scheme.get('name', '?')}"
        if kind == "http":
            return f"HTTP {str(scheme.get('scheme', '?')).lower()} authentication"
        if kind == "basic":
            return "HTTP basic authentication"
        return "mutual TLS"

    def requirements(self, value: Any, where: Where, schemes: Mapping[str, _Scheme]) -> tuple[Requirements,
                                                                                               tuple[str, ...]]:
        self.expect(value, list, where, "security must be a list of security requirement objects")
        if not value:
            return None, ()
        alternatives: list[frozenset[str]] = []
        notes: list[str] = []
        for i, requirement in enumerate(value):
            at = (*where, i)
            self.expect(requirement, dict, at, "a security requirement must map scheme names to lists of scopes")
            if not requirement:
                alternatives.append(frozenset())
                notes.append(f"alternative {i + 1} is {{}} (anonymous access allowed): mapped as any authenticated "
                             "caller, since API Gateway calls the authorizer for every request of the route")
                continue
            scopes: set[str] = set()
            outside: list[str] = []
            unchecked: list[str] = []
            unusable: list[str] = []
            readers = 0
            for name, listed in requirement.items():
                scheme = schemes.get(name)
                if scheme is None:
                    known = ", ".join(sorted(map(str, schemes))) or "none"
                    raise self.error((*at, name), f"security scheme {name!r} is not declared (declared: {known})")
                self.expect(listed, list, (*at, name), f"the value of {name!r} must be a list of scopes ([] for none)")
                for j, scope in enumerate(listed):
                    self.expect(scope, str, (*at, name, j), "a scope must be a string")
                if not scheme.authorizer:
                    outside.append(f"{name} ({scheme.label})")
                    if not scheme.beside_authorizer:
                        unchecked.append(f"{name} ({scheme.label})")
                    if listed:
                        notes.append(f"alternative {i + 1}: the values listed for {name} ({', '.join(listed)}) are "
                                     "not read by the authorizer")
                    continue
                readers += 1
                for scope in listed:
                    try:
                        _scope_rule(scope)
                    except FieldProblem:
                        unusable.append(scope)
                        continue
                    if scheme.scopes is not None and scope not in scheme.scopes:
                        notes.append(f"scope {scope!r} is not among the scopes {name} declares (kept as written)")
                    scopes.add(grant_key(SCOPE, scope))
            names = ", ".join(map(str, requirement))
            if unusable:
                notes.append(f"alternative {i + 1} ({names}) left out: {', '.join(map(repr, unusable))} is not one "
                             "OAuth scope token (RFC 6749 §3.3), so no token can hold it")
                continue
            if not readers:
                notes.append(f"alternative {i + 1} left out: {', '.join(outside)} is checked by API Gateway or "
                             "nobody, not by the authorizer")
                continue
            if unchecked:
                # Mapped as its OAuth part alone, it would let in callers without the rest.
                notes.append(f"alternative {i + 1} ({names}) left out: it also needs {', '.join(unchecked)}, which "
                             "neither the authorizer nor API Gateway checks on a method with a Lambda authorizer")
                continue
            if outside:
                notes.append(f"alternative {i + 1}: {', '.join(outside)} is checked by API Gateway, not by the "
                             "authorizer; only its OAuth scopes are mapped")
            alternatives.append(frozenset(scopes))
        kept = minimal(alternatives)
        dropped = len(alternatives) - len(kept)
        if dropped:
            notes.append(f"{dropped} alternative(s) dropped: each needs all of another alternative, which is enough")
        return kept, tuple(dict.fromkeys(notes))

    # -- paths ---------------------------------------------------------------------

    def base_path(self, mode: str) -> str:
        if mode == "ignore":
            return ""
        document = self.document
        if self.swagger:
            where: Where = ("basePath",)
            raw = self.expect(document.get("basePath", "/"), str, where, "basePath must be a string")
        else:
            where, raw = self.server_base_path()
        if raw in ("", "/"):
            return ""
        if not raw.startswith("/"):
            raise self.error(where, f"base path {raw!r} must start with '/'")
        raw = raw.rstrip("/")
        problem = _path_problem(raw)
        if problem or "{" in raw:
            raise self.error(where, f"base path {raw!r}: {problem or 'a base path has no parameters'}")
        segments = raw[1:].split("/")
        if mode == "split":
            segments = segments[1:]
        return "".join(f"/{segment}" for segment in segments)

    def server_base_path(self) -> tuple[Where, str]:
        servers = self.expect(self.document.get("servers", []), list, ("servers",), "servers must be a list")
        for i, server in enumerate(servers):
            variables = server.get("variables") if isinstance(server, dict) else None
            if isinstance(variables, dict) and "basePath" in variables:
                at: Where = ("servers", i, "variables", "basePath", "default")
                variable = self.expect(variables["basePath"], dict, at[:-1], "a server variable must be a mapping")
                value = self.expect(variable.get("default"), str, at, "the basePath variable needs a default")
                return at, value if value.startswith("/") else "/" + value
        if not servers:
            return ("servers",), "/"
        server = self.expect(servers[0], dict, ("servers", 0), "a server must be a mapping with a url")
        at = ("servers", 0, "url")
        url = self.expect(server.get("url"), str, at, "a server needs a url")
        variables = server.get("variables") or {}

        def fill(found: re.Match[str]) -> str:
            variable = variables.get(found.group(1)) if isinstance(variables, dict) else None
            default = variable.get("default") if isinstance(variable, dict) else None
            if not isinstance(default, str):
                raise self.error(at, f"server variable {found.group(1)!r} has no default")
            return default

        url = re.sub(r"\{([^{}]*)\}", fill, url)
        return at, urlsplit(url).path if "://" in url or url.startswith("//") else url.split("?")[0]

    def operations(self, mode: str) -> tuple[tuple[Operation, ...], tuple[Skipped, ...], tuple[str, ...], str]:
        document = self.document
        schemes = self.schemes()
        root: tuple[Requirements, tuple[str, ...]] | None = None
        if "security" in document:
            root = self.requirements(document["security"], ("security",), schemes)
        prefix = self.base_path(mode)
        if "paths" not in document and not self.swagger and not document["openapi"].startswith("3.0"):
            paths: Any = {}
        else:
            paths = self.expect(document.get("paths"), dict, ("paths",), "paths must be a mapping of paths to "
                                "path items")
        operations: list[Operation] = []
        skipped: list[Skipped] = []
        inherited = 0
        shapes: dict[tuple[str, str], tuple[str, str]] = {}
        for raw_path, raw_item in paths.items():
            at: Where = ("paths", raw_path)
            if isinstance(raw_path, str) and raw_path.startswith("x-"):
                continue
            self.expect(raw_path, str, at, "a path must be a string")
            item, item_at = self.resolve(raw_item, at)
            self.expect(item, dict, item_at, "a path item must be a mapping")
            fields = [(key, value, item_at) for key, value in item.items()]
            if item is not raw_item:
                own = {key: value for key, value in raw_item.items() if key != "$ref"}
                clash = sorted(set(own) & set(item) & {*_METHODS, _ANY_METHOD, *_OTHER_METHODS})
                if clash:
                    raise self.error((*at, clash[0]), f"{clash[0]} is both here and in the $ref'd path item")
                fields += [(key, value, at) for key, value in own.items()]
            default_route = raw_path == "/$default"
            problem = None if default_route else _path_problem(raw_path)
            if problem:
                raise OpenApiError(f"{self.key_line(at, raw_path)}: {_show(at)}: path {raw_path!r} cannot be an API "
                                   f"Gateway route: {problem}")
            route = raw_path if not prefix or default_route else prefix + ("" if raw_path == "/" else raw_path)
            for key, value, base in fields:
                if isinstance(key, str) and key.startswith("x-") and key != _ANY_METHOD:
                    continue
                if key not in _PATH_ITEM_FIELDS and key != _ANY_METHOD:
                    raise self.error((*base, str(key)), f"unknown path item field {key!r} (methods are lower-case: "
                                     f"{', '.join(_METHODS)})")
                where = (*base, key)
                if key == "additionalOperations":
                    extra = self.expect(value, dict, where, "additionalOperations must be a mapping")
                    for verb in extra:
                        skipped.append(Skipped(str(verb).upper(), route, self.key_line((*where, verb), str(verb)),
                                               f"API Gateway has no {str(verb).upper()} method"))
                    continue
                if key in _OTHER_METHODS:
                    skipped.append(Skipped(_OTHER_METHODS[key], route, self.key_line(where, key),
                                           f"API Gateway has no {_OTHER_METHODS[key]} method"))
                    continue
                if key not in _METHODS and key != _ANY_METHOD:
                    continue
                verb = "ANY" if key == _ANY_METHOD else key.upper()
                operation = self.expect(value, dict, where, "an operation must be a mapping")
                for field_name in operation:
                    meant = _OPERATION_FIELDS_FOLDED.get(str(field_name).lower())
                    if meant is not None and field_name != meant:
                        raise self.error((*where, str(field_name)), f"unknown operation field {field_name!r} (did "
                                         f"you mean {meant!r}? field names are case-sensitive)")
                line = self.key_line(where, key)
                if default_route or operation.get("isDefaultRoute") is True:
                    skipped.append(Skipped(verb, route, line, "the HTTP API $default route (every request no "
                                           "route matches) is not a route a mapping can name"))
                    continue
                # Templates that differ only in their parameters' names route the same requests
                # (OpenAPI's Paths Object: they MUST NOT both exist); with different security,
                # which one decides would hang on the names.
                shape = (verb, _PARAMETER.sub(lambda m: "{" + m.group(2) + "}", route))
                twin = shapes.setdefault(shape, (route, line))
                if twin[0] != route:
                    raise self.error(where, f"{verb} {route} routes the same requests as {verb} {twin[0]} "
                                     f"({twin[1]}): templates that differ only in parameter names must not both exist")
                requirements, why = self.operation_security(operation, where, schemes, root)
                if "security" not in operation and "x-amazon-apigateway-auth" not in operation and root is not None:
                    inherited += 1
                operations.append(Operation(verb, route, line, requirements, why))
        notes = self.check_siblings(operations)
        if inherited:
            notes.append(f"{inherited} operation(s) take the root security; API Gateway's REST import ignores root "
                         "security, so give each operation its own for the gateway to call the authorizer")
        operations.sort(key=lambda op: (op.path, op.verb))
        skipped.sort(key=lambda op: (op.path, op.verb))
        return tuple(operations), tuple(skipped), tuple(notes), prefix

    def operation_security(self, operation: Mapping[str, Any], where: Where, schemes: Mapping[str, _Scheme],
                           root: tuple[Requirements, tuple[str, ...]] | None) -> tuple[Requirements, tuple[str, ...]]:
        auth = operation.get("x-amazon-apigateway-auth")
        if auth is not None:
            at = (*where, "x-amazon-apigateway-auth")
            self.expect(auth, dict, at, "x-amazon-apigateway-auth must be a mapping with a type")
            kind = auth.get("type")
            ignored = "; its security is not what API Gateway applies" if "security" in operation else ""
            if isinstance(kind, str) and kind.upper() == "NONE":
                if operation.get("security") not in (None, []):
                    # Which of the two API Gateway applies is not documented. Granted to no
                    # caller, neither reading lets in more than the document says.
                    return (), ("x-amazon-apigateway-auth NONE contradicts its security, and AWS does not say which "
                                "API Gateway applies: no caller is granted it (give it one or the other)",)
                return None, (f"x-amazon-apigateway-auth NONE: API Gateway calls no authorizer{ignored}",)
            if isinstance(kind, str) and kind.upper() == "AWS_IAM":
                return (), (f"x-amazon-apigateway-auth AWS_IAM: IAM authorization, checked by API Gateway, not the "
                            f"authorizer: no caller is granted it{ignored}",)
            raise self.error((*at, "type"), f"x-amazon-apigateway-auth type {kind!r} is not NONE or AWS_IAM")
        if "security" in operation:
            return self.requirements(operation["security"], (*where, "security"), schemes)
        if root is not None:
            return root
        return (), ("no security declared (neither on the operation nor at the root): no caller is granted it",)

    def check_siblings(self, operations: list[Operation]) -> list[str]:
        # A REST API allows one variable path part among the children of a resource
        # ("A sibling ... already has a variable path part"); two names at one place
        # still route alike, so this is a note, not an error.
        variables: dict[str, tuple[str, str]] = {}
        notes: list[str] = []
        for operation in operations:
            segments = operation.path.split("/")
            for i in range(1, len(segments)):
                segment = segments[i]
                if not segment.startswith("{"):
                    continue
                parent = "/".join(segments[:i]) or "/"
                first = variables.setdefault(parent, (segment, operation.where))
                if first[0] != segment:
                    notes.append(f"{operation.where}: {segment} beside {first[0]} ({first[1]}) under {parent}: a REST "
                                 "API allows one path parameter among a resource's children")
                    variables[parent] = (segment, operation.where)
        return list(dict.fromkeys(notes))


def _path_problem(path: str) -> str | None:
    """Why API Gateway cannot deploy ``path`` as a resource path, or ``None``."""
    if not path.startswith("/"):
        return "a path starts with '/'"
    if path == "/":
        return None
    segments = path[1:].split("/")
    for i, segment in enumerate(segments):
        if not segment:
            return "an empty segment ('//' or a trailing '/')"
        parameter = _PARAMETER.fullmatch(segment)
        if parameter:
            if parameter.group(2) and i != len(segments) - 1:
                return f"the greedy parameter {segment} must be the last segment"
            continue
        if "{" in segment or "}" in segment:
            return (f"segment {segment!r}: a path parameter is a whole segment, '{{name}}' or '{{name+}}', its name "
                    "made of letters, digits, '_', '-', '.'")
        if not _LITERAL.fullmatch(segment):
            return f"segment {segment!r} has characters other than letters, digits, '_', '-', '.', ',', ':'"
    return None
