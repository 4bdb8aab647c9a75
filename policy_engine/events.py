"""Typed views of the API Gateway events the authorizer receives.

Four kinds, told apart by the event itself (AWS, "Input to an API Gateway Lambda authorizer":
https://docs.aws.amazon.com/apigateway/latest/developerguide/api-gateway-lambda-authorizer-input.html):

    kind       event                                  route ARN    credential
    ---------  -------------------------------------  -----------  ------------------------------
    TOKEN      REST TOKEN authorizer                  methodArn    ``authorizationToken``
    REQUEST    REST REQUEST authorizer                methodArn    the configured identity source
    HTTP_V1    HTTP API, payload format 1.0           methodArn    the configured identity source
    HTTP_V2    HTTP API, payload format 2.0           routeArn     the configured identity source

For REQUEST-style events the credential is read from the request itself (headers or
query string), named by ``IDENTITY_SOURCE`` written as API Gateway writes it. Exactly one
credential is accepted (RFC 6750 §2): duplicate headers, several values, or a token in
both the header and the query string are refused.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from policy_engine.errors import ConfigurationError, EventError, MalformedTokenError, MissingTokenError

__all__ = ["AuthorizerRequest", "IdentitySource", "parse_identity_source", "read_event", "request_trace"]

TOKEN, REQUEST, HTTP_V1, HTTP_V2 = "TOKEN", "REQUEST", "HTTP_V1", "HTTP_V2"

# RFC 6750's two other places for a bearer token; a credential there as well as in the
# configured place means the request carries two.
_STANDARD_HEADER = "authorization"
_STANDARD_QUERY = "access_token"


@dataclass(slots=True)
class AuthorizerRequest:
    """What a decision needs from any event kind.

    ``authorization`` is the credential as sent: an ``Authorization``-style header value
    (``Bearer <token>``) when ``in_query`` is false, the bare token when it came from the
    query string. (A slotted dataclass, not a NamedTuple: it is built on every request
    and costs half as much.)
    """

    kind: str
    authorization: Any
    method_arn: Any
    in_query: bool = False
    route_key: str | None = None


@dataclass(frozen=True, slots=True)
class IdentitySource:
    """Where the credential is and what API Gateway caches on.

    ``location`` is ``header`` or ``querystring``; header names compare
    case-insensitively, query parameter names exactly. ``cache_scope`` says what one
    cached answer serves, from the other identity sources:

    * ``identity``: every route (the credential alone is the cache key);
    * ``route``: one route template (``context.resourcePath`` with ``context.httpMethod``,
      or ``$context.routeKey``), so ``GET /pets/1`` and ``GET /pets/2`` share an entry;
    * ``request``: one method and concrete path (``context.httpMethod`` with ``context.path``).
    """

    location: str = "header"
    name: str = "Authorization"
    cache_scope: str = "identity"
    entries: tuple[str, ...] = ("method.request.header.Authorization",)

    @property
    def per_route(self) -> bool:
        return self.cache_scope != "identity"


def request_trace(event: Any) -> tuple[str | None, str | None]:
    """API Gateway's id of the request and its route, for every log line written while
    it is handled: ``(requestContext.requestId, route)``, each ``None`` when the event
    does not carry it (a TOKEN event has no ``requestContext``). Never raises: it is read
    before the event is judged, so that a refusal's line names the request too.

    The route is HTTP API's ``routeKey`` (``GET /pets/{petId}``, ``$default``), else
    ``requestContext.httpMethod`` and ``requestContext.resourcePath`` (REST REQUEST
    events and HTTP API payload 1.0: ``GET /pets/{petId}``).
    """
    if event.__class__ is not dict and not isinstance(event, Mapping):
        return None, None
    context = event.get("requestContext")
    if context is None or (context.__class__ is not dict and not isinstance(context, Mapping)):
        route = event.get("routeKey")
        return None, (route if route.__class__ is str else None)
    request_id = context.get("requestId")
    route = event.get("routeKey")
    if route.__class__ is not str:
        method, path = context.get("httpMethod"), context.get("resourcePath")
        route = f"{method} {path}" if method.__class__ is str and path.__class__ is str else None
    return (request_id if request_id.__class__ is str else None), route


_CONTEXT_PREFIXES = ("method.request.", "$request.", "context.", "$context.", "stageVariables.", "$stageVariables.")


def parse_identity_source(entries: tuple[str, ...], variable: str = "IDENTITY_SOURCE") -> IdentitySource:
    """Read identity sources written as API Gateway writes them, REST or HTTP API style.

    ``method.request.header.Authorization, context.httpMethod, context.resourcePath`` and
    ``$request.header.Authorization, $context.routeKey`` both work. The first header or
    query string entry is the credential; the others only shape the cache key.

    Raises:
        ConfigurationError: an entry is not an identity source, or none names a credential.
    """
    credential: tuple[str, str] | None = None
    context: set[str] = set()
    for entry in entries:
        if not entry.startswith(_CONTEXT_PREFIXES):
            raise ConfigurationError(variable, f"{entry!r} is not an API Gateway identity source")
        bare = entry.removeprefix("$").removeprefix("method.").removeprefix("request.")
        kind, _, name = bare.partition(".")
        if not name:
            raise ConfigurationError(variable, f"{entry!r} names no header, parameter or variable")
        if kind in ("header", "querystring"):
            if credential is None:
                credential = (kind, name)
        elif kind == "context":
            context.add(name)
        elif kind != "stageVariables":
            raise ConfigurationError(variable, f"{entry!r} is not a header, querystring, context or stage variable")
    if credential is None:
        raise ConfigurationError(variable, "names no header or query string parameter to read the token from")
    if "httpMethod" in context and "path" in context:
        scope = "request"
    elif "routeKey" in context or ("httpMethod" in context and context & {"resourcePath", "resourceId"}):
        scope = "route"
    else:
        scope = "identity"
    return IdentitySource(credential[0], credential[1], scope, tuple(entries))


DEFAULT_IDENTITY_SOURCE = IdentitySource()


def read_event(event: Any, source: IdentitySource = DEFAULT_IDENTITY_SOURCE) -> AuthorizerRequest:
    """Tell the event kind and pull out its credential and route ARN.

    Raises:
        EventError: the event is not one API Gateway sends to an authorizer.
        MissingTokenError: the identity source is absent or empty.
        MalformedTokenError: the request carries more than one credential.
    """
    if not isinstance(event, dict) and not isinstance(event, Mapping):  # dict first: ABC checks are slow
        raise EventError("event is not an object")
    version = event.get("version")
    if version is None:  # REST events carry no version
        kind = event.get("type")
        if kind == "TOKEN":
            return AuthorizerRequest(TOKEN, event.get("authorizationToken"), event.get("methodArn"))
        if kind == "REQUEST":
            value, in_query = _credential(event, source)
            return AuthorizerRequest(REQUEST, value, event.get("methodArn"), in_query)
    elif version == "2.0":
        if event.get("type") != "REQUEST" or "routeArn" not in event:
            raise EventError("payload 2.0 event without type REQUEST and routeArn")
        value, in_query = _credential(event, source)
        route_key = event.get("routeKey")
        return AuthorizerRequest(HTTP_V2, value, event.get("routeArn"), in_query,
                                 route_key if isinstance(route_key, str) else None)
    elif version == "1.0":
        value, in_query = _credential(event, source)
        return AuthorizerRequest(HTTP_V1, value, event.get("methodArn"), in_query)
    else:
        raise EventError("event version is neither 1.0 nor 2.0")
    raise EventError("event type is not supported (expected TOKEN, REQUEST or an HTTP API payload)")


def _map(event: Mapping[str, Any], key: str) -> Mapping[str, Any]:
    value = event.get(key)
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise EventError(f"{key} is not an object")
    return value


def _values(mapping: Mapping[str, Any], name: str, *, fold: bool) -> list[Any]:
    if fold:
        wanted = name.lower()
        return [value for key, value in mapping.items() if isinstance(key, str) and key.lower() == wanted]
    return [mapping[name]] if name in mapping else []


def _present(values: list[Any]) -> list[Any]:
    return [v for v in values if v is not None and v != "" and v != []]


def _lookup(event: Mapping[str, Any], location: str, name: str) -> list[Any]:
    """Every value the request carries for one header or query parameter."""
    single, multi = ("headers", "multiValueHeaders") if location == "header" else (
        "queryStringParameters", "multiValueQueryStringParameters")
    fold = location == "header"
    # Header names differing only in case are two headers; each value counts.
    found = _present(_values(_map(event, single), name, fold=fold))
    for listed in _present(_values(_map(event, multi), name, fold=fold)):
        if not isinstance(listed, list):
            raise EventError(f"{multi} values are not lists")
        if len(_present(listed)) > 1:
            raise MalformedTokenError("request carries several credentials")
    # Payload 2.0 joins repeated headers and parameters with commas; a comma is never
    # part of a bearer token, so one means several values, whatever the event kind.
    for value in found:
        if isinstance(value, str) and "," in value:
            raise MalformedTokenError("request carries several credentials")
    return found


def _other_scheme(value: Any) -> bool:
    # An Authorization value naming a scheme other than Bearer (RFC 9110 §11.4: the scheme,
    # case-insensitive, then a space). Anything else, odd types included, may be a token.
    if not isinstance(value, str):
        return False
    scheme, space, _ = value.partition(" ")
    return bool(space) and scheme.lower() != "bearer"


def _credential(event: Mapping[str, Any], source: IdentitySource) -> tuple[Any, bool]:
    found = _lookup(event, source.location, source.name)
    if len(found) > 1:
        raise MalformedTokenError("request carries several credentials")
    # RFC 6750 §2: one method per request; a second bearer token elsewhere is refused
    # rather than ignored, so the two can never be judged differently.
    other: list[Any] = []
    if source.location != "querystring" or source.name != _STANDARD_QUERY:
        other += _lookup(event, "querystring", _STANDARD_QUERY)
    if source.location != "header" or source.name.lower() != _STANDARD_HEADER:
        # An Authorization header that is not our source counts only when it may carry a
        # bearer token: Basic credentials meant for something upstream are no second token.
        other += [value for value in _lookup(event, "header", _STANDARD_HEADER) if not _other_scheme(value)]
    if found and other:
        raise MalformedTokenError("request carries credentials in more than one place")
    if not found:
        raise MissingTokenError(f"no {source.location} {source.name!r} in the request")
    return found[0], source.location == "querystring"
