"""Authorizer events of every kind, built from the sample events in ``events/``.

Each builder copies a sample and puts in the token, method, path and stage, keeping the
rest of the sample as API Gateway sends it, so the samples stay exercised.
"""

from __future__ import annotations

import copy
import json
from functools import cache
from typing import Any

from tests.conftest import API, ROOT

KINDS = ("TOKEN", "REQUEST", "HTTP_V1", "HTTP_V2")


@cache
def sample(name: str) -> dict[str, Any]:
    return json.loads((ROOT / "events" / name).read_text())


def _bearer(token: str | None) -> str | None:
    if token is None:
        return None
    return token if token.lower().startswith("bearer ") else f"Bearer {token}"


def _arn(verb: str, path: str, stage: str) -> str:
    return f"{API}/{stage}/{verb}/{path.lstrip('/')}"


def token_kind_event(token: str | None, verb: str = "GET", path: str = "/pets", stage: str = "dev") -> dict[str, Any]:
    event = copy.deepcopy(sample("token-get-pet.json"))
    event["authorizationToken"] = _bearer(token) or ""
    event["methodArn"] = _arn(verb, path, stage)
    return event


def rest_request_event(
    token: str | None, verb: str = "GET", path: str = "/pets", stage: str = "dev", *, resource: str | None = None
) -> dict[str, Any]:
    event = copy.deepcopy(sample("request-get-pet.json"))
    for name in ("headers", "multiValueHeaders"):
        event[name].pop("Authorization")
    if token is not None:
        event["headers"]["Authorization"] = _bearer(token)
        event["multiValueHeaders"]["Authorization"] = [_bearer(token)]
    event["methodArn"] = _arn(verb, path, stage)
    event["httpMethod"] = event["requestContext"]["httpMethod"] = verb
    event["path"] = path
    event["resource"] = event["requestContext"]["resourcePath"] = resource or path
    event["requestContext"]["path"] = f"/{stage}{path}"
    event["requestContext"]["stage"] = stage
    return event


def http_v1_event(token: str | None, verb: str = "GET", path: str = "/pets", stage: str = "dev") -> dict[str, Any]:
    event = copy.deepcopy(sample("http-v1-get-pet.json"))
    event["headers"].pop("authorization")
    if token is not None:
        event["headers"]["authorization"] = _bearer(token)
    event["identitySource"] = event["authorizationToken"] = _bearer(token) or ""
    event["methodArn"] = _arn(verb, path, stage)
    event["httpMethod"] = event["requestContext"]["httpMethod"] = verb
    event["path"] = event["resource"] = event["requestContext"]["resourcePath"] = path
    event["requestContext"]["path"] = f"/{stage}{path}"
    event["requestContext"]["stage"] = stage
    return event


def http_v2_event(
    token: str | None, verb: str = "GET", path: str = "/pets", stage: str = "dev", *, route_key: str | None = None
) -> dict[str, Any]:
    event = copy.deepcopy(sample("http-v2-get-pet.json"))
    event["headers"].pop("authorization")
    if token is not None:
        event["headers"]["authorization"] = _bearer(token)
    route_key = route_key or f"{verb} {path}"
    event["identitySource"] = [_bearer(token) or "", route_key]
    event["routeArn"] = _arn(verb, path, stage)
    event["routeKey"] = event["requestContext"]["routeKey"] = route_key
    event["rawPath"] = event["requestContext"]["http"]["path"] = f"/{stage}{path}"
    event["requestContext"]["http"]["method"] = verb
    event["requestContext"]["stage"] = stage
    return event


BUILDERS = {
    "TOKEN": token_kind_event, "REQUEST": rest_request_event, "HTTP_V1": http_v1_event, "HTTP_V2": http_v2_event,
}


def event_of(
    kind: str, token: str | None, verb: str = "GET", path: str = "/pets", stage: str = "dev"
) -> dict[str, Any]:
    """An event of ``kind`` for ``verb path`` carrying ``token`` in the Authorization header."""
    return BUILDERS[kind](token, verb, path, stage)
