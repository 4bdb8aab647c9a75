"""A local REST API Gateway (v1) with a Lambda TOKEN or REQUEST authorizer, on 127.0.0.1.

It answers the way API Gateway does (AWS, "Output from an API Gateway Lambda
authorizer": https://docs.aws.amazon.com/apigateway/latest/developerguide/api-gateway-lambda-authorizer-output.html),
in this order:

    unknown stage                         403 {"message":"Forbidden"}
    no route for the verb and path        403 {"message":"Missing Authentication Token"}
    a route without authorization         the backend's answer               authorizer not called
      (OpenAPI ``security: []``)
    token header missing or empty         401 {"message":"Unauthorized"}     authorizer not called
      (REQUEST: any identity source)
    token fails the validation regex      401 {"message":"Unauthorized"}     authorizer not called
    methodArn longer than 1600 bytes      414
    authorizer raises "Unauthorized"      401 {"message":"Unauthorized"}     not cached
    authorizer fails / malformed answer   500 {"message":null} + x-amzn-ErrorType:
                                              AuthorizerConfigurationException, not cached
    a matching Deny                       403 {"Message":"User is not authorized to access this
                                              resource with an explicit deny"}
    no matching Allow                     403 {"Message":"User is not authorized to access this resource"}
    a matching Allow                      the backend's answer

A policy (Allow or Deny) is cached per stage and token value (REQUEST: all identity
source values) for ``cache_ttl`` seconds
and re-evaluated against each later request's methodArn, as API Gateway does; 0
disables the cache. Routes come from the permission files (or an OpenAPI document)
and are fixed at start, like a deployment; permissions change live.

Routes from an OpenAPI document are chosen as API Gateway chooses them
(``core.routes.route_for``: literal before parameter before greedy, per method, an exact
method before ``ANY``), and each keeps its operation's security: an operation that needs
no authorization (``security: []``, ``x-amazon-apigateway-auth: NONE``) is a method
without an authorizer, answered without calling it. Every other operation, including
one secured only by an API key or IAM (which this gateway does not check), goes through
the authorizer: fail closed.
"""

from __future__ import annotations

import json
import re
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from types import ModuleType
from typing import Any, Protocol
from urllib.parse import parse_qs

from policy_engine.admin.local.invoke import InvokeResult, invoke
from policy_engine.admin.local.loopback import LoopbackServer, QuietHandler
from policy_engine.core.arn import MAX_METHOD_ARN
from policy_engine.core.grants import PLACEHOLDER
from policy_engine.core.iam import (
    MalformedResponseError,
    Verdict,
    evaluate_response,
    glob_regex,
)
from policy_engine.core.permissions import PermissionSet
from policy_engine.core.routes import route_for
from policy_engine.errors import ConfigurationError, PermissionsError
from policy_engine.events import parse_identity_source

__all__ = [
    "Answer",
    "AuthorizerCache",
    "BackendRequest",
    "GatewayStats",
    "HandlerAuthorizer",
    "LocalGateway",
    "PetsBackend",
    "ProxyBackend",
    "RouteSpec",
    "RouteTable",
]

#: API Gateway's hard limit for the authorizer cache TTL.
MAX_CACHE_TTL = 3600
#: Local-only paths (not API Gateway features): the gateway's counters, and what runs
#: beside it (for ``demo --url``).
STATS_PATH = "/_local/stats"
INFO_PATH = "/_local/info"

_EXPLICIT_DENY = "User is not authorized to access this resource with an explicit deny"
_IMPLICIT_DENY = "User is not authorized to access this resource"


@dataclass(frozen=True, slots=True)
class Answer:
    """An HTTP answer: status, headers and a body."""

    status: int
    body: bytes
    headers: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def json(cls, status: int, payload: Any, **headers: str) -> Answer:
        return cls(status, json.dumps(payload).encode(), {"Content-Type": "application/json", **headers})


def _gateway_error(status: int, payload: Any, error_type: str) -> Answer:
    return Answer.json(status, payload, **{"x-amzn-ErrorType": error_type})


# ----------------------------------------------------------------------------- routes


@dataclass(frozen=True, slots=True)
class RouteSpec:
    """One deployed method: a verb (``*`` for ANY) and a path pattern on some stages;
    ``authorized`` is False for a method without an authorizer (OpenAPI ``security: []``)."""

    verb: str
    template: str
    pattern: re.Pattern[str]
    stage: str = "*"
    authorized: bool = True

    def matches(self, stage: str, verb: str, path: str) -> bool:
        return (self.stage in ("*", stage) and self.verb in ("*", verb)
                and self.pattern.fullmatch(path) is not None)


def _glob_pattern(resource: str) -> re.Pattern[str]:
    # A permission resource is an IAM glob over the path without its leading slash; a
    # tenant placeholder ({claim:...}) stands for one path segment, whoever the caller is,
    # as a {param} of the deployed route would (the policy decides which value is allowed);
    # a route template's {name} is one segment and {name+} the rest of the path.
    pieces = []
    for segment in resource.split("/"):
        if PLACEHOLDER.fullmatch(segment) or (_ROUTE_PARAMETER.fullmatch(segment) and not segment.endswith("+}")):
            pieces.append("[^/]+")
        elif _ROUTE_PARAMETER.fullmatch(segment):
            pieces.append(".+")
        else:
            pieces.append(glob_regex(segment).pattern)
    return re.compile("/".join(pieces), re.DOTALL)


_ROUTE_PARAMETER = re.compile(r"\{[^{}/]+\}")


def _template_pattern(template: str) -> re.Pattern[str]:
    # OpenAPI/API Gateway templates: {name} is one segment, {name+} the rest of the path.
    parts = []
    for piece in re.split(r"(\{[^}/]+\})", template.lstrip("/")):
        if piece.startswith("{") and piece.endswith("+}"):
            parts.append(".+")
        elif piece.startswith("{"):
            parts.append("[^/]+")
        else:
            parts.append(re.escape(piece))
    return re.compile("".join(parts), re.DOTALL)


class RouteTable:
    """The deployed stages and methods of one API.

    ``ranked``: the routes are API Gateway route templates, and a request goes to the one
    API Gateway would pick (``core.routes.route_for``); otherwise (routes read from
    permission globs, which have no such order) to the first that matches.
    """

    def __init__(self, api_arn: str, routes: Iterable[RouteSpec], stages: Iterable[str] | None = None,
                 *, ranked: bool = False) -> None:
        self.api_arn = api_arn
        self.routes = tuple(routes)
        #: ``None`` means any stage name is deployed (a mapping for stage ``*``).
        self.stages = frozenset(stages) if stages is not None else None
        self.ranked = ranked

    def has_stage(self, stage: str) -> bool:
        return bool(stage) and (self.stages is None or stage in self.stages)

    def match(self, stage: str, verb: str, path: str) -> RouteSpec | None:
        """The route serving ``verb`` on ``path`` (no leading slash) in ``stage``."""
        if not self.ranked:
            return next((route for route in self.routes if route.matches(stage, verb, path)), None)
        deployed = [route for route in self.routes if route.stage in ("*", stage)]
        pairs = [("ANY" if route.verb == "*" else route.verb, route.template) for route in deployed]
        chosen = route_for(verb, "/" + path, pairs)
        return None if chosen is None else deployed[pairs.index(chosen)]

    @classmethod
    def from_permissions(cls, permissions: PermissionSet, api_arn: str | None = None) -> RouteTable:
        """Routes of ``api_arn`` (default: the only, or first, API in the files).

        Raises:
            ConfigurationError: the files name no API, or not ``api_arn``.
        """
        apis = sorted({grant.route.api_arn for grant in permissions.grants})
        if not apis:
            raise ConfigurationError("permissions", "no mapping names an API; nothing to serve")
        chosen = api_arn or apis[0]
        if chosen not in apis:
            raise ConfigurationError("--api", f"{chosen} is not in the permission files (they name {', '.join(apis)})")
        routes: dict[tuple[str, str, str], RouteSpec] = {}
        stages: set[str] = set()
        any_stage = False
        for grant in permissions.grants:
            route = grant.route
            if route.api_arn != chosen:
                continue
            any_stage = any_stage or route.stage == "*"
            stages.add(route.stage)
            key = (route.stage, route.verb, route.resource)
            routes.setdefault(key, RouteSpec(route.verb, f"/{route.resource}", _glob_pattern(route.resource),
                                             route.stage))
        # Literal routes first, so a wildcard does not hide a more specific template in listings.
        ordered = sorted(routes.values(), key=lambda r: (r.template.count("*"), r.template, r.verb))
        return cls(chosen, ordered, None if any_stage else stages)

    @classmethod
    def from_openapi(cls, path: str | Path, api_arn: str, stages: Iterable[str], *,
                     base_path: str = "ignore") -> RouteTable:
        """The operations of an OpenAPI 3.x or Swagger 2.0 document (``admin.openapi``),
        deployed on ``stages``, each with its security: ``security: []`` is a method
        without an authorizer. ``x-amazon-apigateway-any-method`` is ANY.

        Raises:
            ConfigurationError: the document cannot be read (its ``file:line``) or has no
                operation.
        """
        from policy_engine.admin.openapi import read_openapi

        try:
            document = read_openapi(path, base_path=base_path)
        except PermissionsError as exc:
            raise ConfigurationError("--openapi", str(exc)) from exc
        routes = [
            RouteSpec("*" if op.verb == "ANY" else op.verb, op.path, _template_pattern(op.path),
                      authorized=op.requirements is not None)
            for op in document.operations
        ]
        if not routes:
            raise ConfigurationError("--openapi", f"{path}: no operation API Gateway can deploy under 'paths'")
        return cls(api_arn, routes, stages, ranked=True)


# ----------------------------------------------------------------------------- cache


class AuthorizerCache:
    """Authorizer responses by key for ``ttl`` seconds (0: nothing is kept).

    The key is the stage plus the token (TOKEN) or every identity source value (REQUEST).
    """

    _LIMIT = 10_000

    def __init__(self, ttl: float = 300, clock: Callable[[], float] = time.monotonic) -> None:
        if not 0 <= ttl <= MAX_CACHE_TTL:
            raise ConfigurationError("--cache-ttl", f"{ttl:g} must be between 0 and {MAX_CACHE_TTL} seconds")
        self.ttl = ttl
        self.clock = clock
        self._entries: dict[tuple[str, ...], tuple[float, Mapping[str, Any]]] = {}
        self._lock = threading.Lock()

    def get(self, key: tuple[str, ...]) -> Mapping[str, Any] | None:
        with self._lock:
            entry = self._entries.get(key)
            if entry is None:
                return None
            if self.clock() >= entry[0]:
                del self._entries[key]
                return None
            return entry[1]

    def put(self, key: tuple[str, ...], response: Mapping[str, Any]) -> None:
        if self.ttl <= 0:
            return
        with self._lock:
            now = self.clock()
            if len(self._entries) >= self._LIMIT:
                self._entries = {k: v for k, v in self._entries.items() if v[0] > now}
            self._entries[key] = (now + self.ttl, response)

    def clear(self) -> None:
        """Flush every entry (API Gateway's FlushStageAuthorizersCache)."""
        with self._lock:
            self._entries.clear()


# ----------------------------------------------------------------------------- authorizer


class HandlerAuthorizer:
    """The real handler module as a function of the event, one call at a time.

    One Lambda container handles one event at a time; serializing keeps the handler's
    caches as single-threaded as they are in Lambda.
    """

    def __init__(self, module: ModuleType) -> None:
        self.module = module
        self._lock = threading.Lock()

    def __call__(self, event: dict[str, Any]) -> InvokeResult:
        with self._lock:
            return invoke(self.module, event)


# ----------------------------------------------------------------------------- backends


@dataclass(frozen=True, slots=True)
class BackendRequest:
    """What an allowed request brings to the integration."""

    method: str
    stage: str
    path: str  # with its leading slash, without the stage
    query: str
    headers: Mapping[str, str]
    body: bytes
    route: RouteSpec
    authorizer: Mapping[str, str]  # principalId and the context, stringified as REST does


class Backend(Protocol):
    def __call__(self, request: BackendRequest) -> Answer: ...


class PetsBackend:
    """A small pet store that echoes ``requestContext.authorizer`` in every answer."""

    def __init__(self) -> None:
        self._pets: dict[str, dict[str, Any]] = {
            "1": {"id": "1", "type": "dog", "price": 249.99},
            "2": {"id": "2", "type": "cat", "price": 124.99},
            "3": {"id": "3", "type": "fish", "price": 0.99},
        }
        self._orders: dict[str, dict[str, Any]] = {}
        self._lock = threading.Lock()

    def __call__(self, request: BackendRequest) -> Answer:
        segments = [s for s in request.path.split("/") if s]
        with self._lock:
            status, payload = self._route(request.method, segments, request.body)
        return Answer.json(status, {**payload, "authorizer": dict(request.authorizer)})

    def _route(self, method: str, segments: list[str], body: bytes) -> tuple[int, dict[str, Any]]:
        if segments == ["pets"] and method == "GET":
            return 200, {"pets": list(self._pets.values())}
        if segments == ["pets"] and method == "POST":
            fields = _json_object(body)
            pet_id = str(max((int(k) for k in self._pets if k.isdigit()), default=0) + 1)
            self._pets[pet_id] = {"type": "unknown", "price": 0, **fields, "id": pet_id}
            return 201, {"pet": self._pets[pet_id]}
        if len(segments) >= 2 and segments[0] == "pets":
            pet = self._pets.get(segments[1])
            if pet is None:
                return 404, {"message": f"no pet {segments[1]}"}
            if method == "DELETE":
                return 200, {"deleted": self._pets.pop(segments[1])}
            if method in ("PUT", "PATCH"):
                pet.update({**_json_object(body), "id": segments[1]})
            return 200, {"pet": pet}
        if segments == ["store", "inventory"]:
            counts: dict[str, int] = {}
            for pet in self._pets.values():
                counts[str(pet.get("type"))] = counts.get(str(pet.get("type")), 0) + 1
            return 200, {"inventory": counts}
        if segments[:2] == ["store", "orders"]:
            if len(segments) == 2 and method == "POST":
                order_id = str(len(self._orders) + 1)
                self._orders[order_id] = {**_json_object(body), "id": order_id, "status": "placed"}
                return 201, {"order": self._orders[order_id]}
            order = self._orders.get(segments[2]) if len(segments) > 2 else None
            return (200, {"order": order}) if order else (404, {"message": "no such order"})
        return 200, {"method": method, "path": "/" + "/".join(segments)}


def _json_object(body: bytes) -> dict[str, Any]:
    try:
        value = json.loads(body or b"{}")
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


_HOP_BY_HOP = {"connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te", "trailers",
               "transfer-encoding", "upgrade", "host", "content-length"}


class ProxyBackend:
    """An HTTP proxy integration: forwards the request (path without the stage) to ``base_url``.

    The authorizer's answer travels as ``X-Authorizer-Principal-Id`` and
    ``X-Authorizer-Context`` (JSON), which a real API needs request parameter mappings for.
    """

    def __init__(self, base_url: str, timeout: float = 29.0) -> None:
        from urllib.parse import urlsplit

        parts = urlsplit(base_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ConfigurationError("--backend", f"{base_url!r} is not an http(s) URL")
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout  # API Gateway's default integration timeout

    def __call__(self, request: BackendRequest) -> Answer:
        import urllib.error
        import urllib.request

        url = self.base_url + request.path + (f"?{request.query}" if request.query else "")
        headers = {k: v for k, v in request.headers.items() if k.lower() not in _HOP_BY_HOP}
        headers["X-Authorizer-Principal-Id"] = request.authorizer.get("principalId", "")
        headers["X-Authorizer-Context"] = json.dumps(dict(request.authorizer), separators=(",", ":"))
        forwarded = urllib.request.Request(url, data=request.body or None, headers=headers, method=request.method)
        try:
            with urllib.request.urlopen(forwarded, timeout=self.timeout) as reply:
                return Answer(reply.status, reply.read(), _reply_headers(reply.headers.items()))
        except urllib.error.HTTPError as exc:
            return Answer(exc.code, exc.read(), _reply_headers(exc.headers.items()))
        except TimeoutError:
            return _gateway_error(504, {"message": "Endpoint request timed out"}, "IntegrationTimeout")
        except (urllib.error.URLError, OSError):
            return _gateway_error(502, {"message": "Internal server error"}, "InternalServerErrorException")


def _reply_headers(items: Iterable[tuple[str, str]]) -> dict[str, str]:
    return {k: v for k, v in items if k.lower() not in _HOP_BY_HOP}


# ----------------------------------------------------------------------------- gateway


@dataclass
class GatewayStats:
    """Counters a test or the demo reads to see the cache at work."""

    requests: int = 0
    authorizer_calls: int = 0
    cache_hits: int = 0
    statuses: dict[int, int] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {"requests": self.requests, "authorizer_calls": self.authorizer_calls,
                "cache_hits": self.cache_hits, "statuses": {str(k): v for k, v in sorted(self.statuses.items())}}


class LocalGateway:
    """A REST API's stages with one TOKEN or REQUEST authorizer, over real HTTP on loopback.

    Raises (constructor):
        ConfigurationError: a bad cache TTL, token regex or identity source.
        OSError: the port cannot be bound.
    """

    def __init__(
        self,
        authorizer: Callable[[dict[str, Any]], InvokeResult],
        routes: RouteTable,
        *,
        backend: Backend | None = None,
        token_header: str = "Authorization",
        token_regex: str | None = None,
        identity_sources: tuple[str, ...] | None = None,
        cache_ttl: float = 300,
        clock: Callable[[], float] = time.monotonic,
        host: str = "127.0.0.1",
        port: int = 0,
        info: Callable[[], dict[str, Any]] | None = None,
    ) -> None:
        self.authorizer = authorizer
        self.info = info
        self.routes = routes
        self.backend: Backend = backend or PetsBackend()
        self.token_header = token_header
        #: ``None``: a TOKEN authorizer reading ``token_header``. Otherwise a REQUEST
        #: authorizer with these identity sources, written as API Gateway writes them.
        self.identity_sources = _check_identity_sources(identity_sources) if identity_sources else None
        try:
            self.token_regex = re.compile(token_regex) if token_regex else None
        except re.error as exc:
            raise ConfigurationError("--token-regex", f"{token_regex!r} is not a regular expression: {exc}") from exc
        self.cache = AuthorizerCache(cache_ttl, clock)
        self.stats = GatewayStats()
        self._stats_lock = threading.Lock()
        self._server = LoopbackServer(host, port, self._handler_class(), name="local-gateway")

    @property
    def url(self) -> str:
        return self._server.url

    def start(self) -> LocalGateway:
        self._server.start()
        return self

    def stop(self) -> None:
        self._server.stop()

    def handle(self, method: str, target: str, headers: Mapping[str, str] | Sequence[tuple[str, str]],
               body: bytes = b"") -> Answer:
        """Answer one request as API Gateway would (no HTTP involved; the server calls this).

        ``headers`` as a mapping, or as the request's (name, value) pairs, a name repeated
        as often as the client sent it.
        """
        pairs = list(headers.items()) if isinstance(headers, Mapping) else list(headers)
        answer = self._handle(method.upper(), target, pairs, body)
        with self._stats_lock:
            self.stats.requests += 1
            self.stats.statuses[answer.status] = self.stats.statuses.get(answer.status, 0) + 1
        return answer

    def _handle(self, method: str, target: str, pairs: list[tuple[str, str]], body: bytes) -> Answer:
        # API Gateway's `headers` keep the last value of a repeated header, `multiValueHeaders` all.
        headers = dict(pairs)
        raw_path, _, query = target.partition("?")
        stage, _, path = raw_path.lstrip("/").partition("/")
        if not self.routes.has_stage(stage):
            if raw_path == STATS_PATH and method == "GET":
                with self._stats_lock:
                    return Answer.json(200, self.stats.as_dict())
            if raw_path == INFO_PATH and method == "GET" and self.info is not None:
                return Answer.json(200, self.info())
            return _gateway_error(403, {"message": "Forbidden"}, "ForbiddenException")
        route = self.routes.match(stage, method, path)
        if route is None:
            return _gateway_error(403, {"message": "Missing Authentication Token"}, "IncompleteSignatureException")
        if not route.authorized:
            # A method without an authorizer: API Gateway goes straight to the integration.
            return self.backend(BackendRequest(method, stage, "/" + path, query, dict(headers), body, route, {}))
        method_arn = f"{self.routes.api_arn}/{stage}/{method}/{path}"
        if self.identity_sources is None:
            token = _header(pairs, self.token_header)
            if not token or not token.strip():
                return _unauthorized()
            if self.token_regex is not None and self.token_regex.fullmatch(token) is None:
                return _unauthorized()
            key: tuple[str, ...] = (stage, token)
            event: dict[str, Any] = {"type": "TOKEN", "authorizationToken": token, "methodArn": method_arn}
        else:
            context = {"httpMethod": method, "resourcePath": route.template, "resourceId": route.template,
                       "path": f"/{stage}/{path}", "stage": stage}
            values = [_identity_value(source, pairs, query, context) for source in self.identity_sources]
            # Every identity source must be present and non-empty, or API Gateway answers 401 itself.
            if any(not value or not value.strip() for value in values):
                return _unauthorized()
            key = (stage, *(value or "" for value in values))
            event = _request_event(self.routes.api_arn, method_arn, stage, method, path, query, pairs,
                                   route, context)
        if len(method_arn.encode()) > MAX_METHOD_ARN:
            return Answer.json(414, {"message": "Request-URI Too Long"})
        response = self.cache.get(key)
        if response is not None:
            with self._stats_lock:
                self.stats.cache_hits += 1
        else:
            outcome = self._authorize(event, method_arn)
            if isinstance(outcome, Answer):
                return outcome
            response = outcome
            self.cache.put(key, response)
        verdict = evaluate_response(response, method_arn)  # validated when it was obtained
        if verdict is Verdict.EXPLICIT_DENY:
            return _gateway_error(403, {"Message": _EXPLICIT_DENY}, "AccessDeniedException")
        if verdict is Verdict.IMPLICIT_DENY:
            return _gateway_error(403, {"Message": _IMPLICIT_DENY}, "AccessDeniedException")
        request = BackendRequest(method, stage, "/" + path, query, dict(headers), body, route,
                                 _authorizer_view(response))
        return self.backend(request)

    def _authorize(self, event: dict[str, Any], method_arn: str) -> Mapping[str, Any] | Answer:
        with self._stats_lock:
            self.stats.authorizer_calls += 1
        result = self.authorizer(event)
        if result.error == "Unauthorized":
            return _unauthorized()
        if result.response is None:
            return _configuration_error()
        try:
            evaluate_response(result.response, method_arn)
        except MalformedResponseError:
            return _configuration_error()
        return result.response

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        gateway = self

        class Handler(QuietHandler):
            def _serve(self) -> None:
                body = self.read_body()
                try:
                    answer = gateway.handle(self.command, self.path, list(self.headers.items()), body)
                except Exception:  # noqa: BLE001 - a bug here must never turn into an Allow or a hung client
                    answer = Answer.json(500, {"message": "Internal server error"})
                self.send_body(answer.status, answer.body, {**answer.headers, "x-amzn-RequestId": str(uuid.uuid4())})

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = _serve

        return Handler


_CONTEXT_VARIABLES = ("httpMethod", "resourcePath", "resourceId", "path", "stage")


def _check_identity_sources(sources: tuple[str, ...]) -> tuple[tuple[str, str], ...]:
    parse_identity_source(sources, "--identity-source")  # same grammar and errors as the handler's
    parsed = []
    for entry in sources:
        kind, _, name = entry.removeprefix("$").removeprefix("method.").removeprefix("request.").partition(".")
        if kind == "stageVariables" or (kind == "context" and name not in _CONTEXT_VARIABLES):
            raise ConfigurationError("--identity-source", f"{entry!r}: the local gateway supports headers, query "
                                     f"strings and context.{{{','.join(_CONTEXT_VARIABLES)}}}")
        parsed.append((kind, name))
    return tuple(parsed)


def _identity_value(source: tuple[str, str], headers: Sequence[tuple[str, str]], query: str,
                    context: Mapping[str, str]) -> str | None:
    kind, name = source
    if kind == "header":
        return _header(headers, name)
    if kind == "querystring":
        return _query(query).get(name, [None])[0]
    return context.get(name)


def _query(query: str) -> dict[str, list[str]]:
    return parse_qs(query, keep_blank_values=True)


def _request_event(api_arn: str, method_arn: str, stage: str, method: str, path: str, query: str,
                   headers: Sequence[tuple[str, str]], route: RouteSpec, context: Mapping[str, str]) -> dict[str, Any]:
    multi_headers: dict[str, list[str]] = {}
    for name, value in headers:
        multi_headers.setdefault(name, []).append(value)
    multi_query = _query(query)
    api_id = api_arn.rsplit(":", 1)[1]
    return {
        "type": "REQUEST",
        "methodArn": method_arn,
        "resource": route.template,
        "path": f"/{path}",
        "httpMethod": method,
        "headers": {name: values[-1] for name, values in multi_headers.items()},
        "multiValueHeaders": multi_headers,
        "queryStringParameters": {k: v[-1] for k, v in multi_query.items()} or None,
        "multiValueQueryStringParameters": multi_query or None,
        "pathParameters": None,
        "stageVariables": None,
        "requestContext": {
            "path": context["path"], "accountId": api_arn.split(":")[4], "resourceId": route.template,
            "stage": stage, "requestId": str(uuid.uuid4()), "identity": {"sourceIp": "127.0.0.1"},
            "resourcePath": route.template, "httpMethod": method, "apiId": api_id,
        },
    }


def _header(headers: Sequence[tuple[str, str]], name: str) -> str | None:
    """The value of header ``name`` (any case); ``None`` when absent, or when sent more than
    once: AWS does not document which one an identity source takes, so none is taken (401)."""
    wanted = name.lower()
    values = [value for key, value in headers if key.lower() == wanted]
    return values[0] if len(values) == 1 else None


def _unauthorized() -> Answer:
    return _gateway_error(401, {"message": "Unauthorized"}, "UnauthorizedException")


def _configuration_error() -> Answer:
    return _gateway_error(500, {"message": None}, "AuthorizerConfigurationException")


def _authorizer_view(response: Mapping[str, Any]) -> dict[str, str]:
    # REST integrations see every context value as a string: 1 -> "1", True -> "true".
    view = {"principalId": str(response["principalId"])}
    for key, value in (response.get("context") or {}).items():
        view[key] = ("true" if value else "false") if isinstance(value, bool) else str(value)
    return view
