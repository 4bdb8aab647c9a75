"""execute-api ARNs: the API ARN of a mapping and the methodArn of a request."""

from __future__ import annotations

import re
from typing import NamedTuple

from policy_engine.errors import EventError

__all__ = ["API_ARN_PATTERN", "MethodArn", "parse_method_arn", "route_template_arn"]

# arn:<partition>:execute-api:<region>:<account>:<api-id>; no wildcards: a mapping names one API.
API_ARN_PATTERN = re.compile(r"arn:(aws|aws-cn|aws-us-gov|aws-iso[a-z-]*):execute-api:[a-z0-9-]+:\d{12}:[A-Za-z0-9]+")

# API Gateway rejects longer methodArns with 414 before calling us.
_MAX_METHOD_ARN = 1600


class MethodArn(NamedTuple):
    """A parsed methodArn/routeArn: ``<api_arn>/<stage>/<verb>/<path>``."""

    api_arn: str
    stage: str
    verb: str
    path: str

    def __str__(self) -> str:
        return f"{self.api_arn}/{self.stage}/{self.verb}/{self.path}"


def parse_method_arn(value: object) -> MethodArn:
    """Split a methodArn into API ARN, stage, verb and path (without leading slash).

    Parsed from the left with bounded splits because the path may hold ``:`` and ``/``.

    Raises:
        EventError: not a string, too long, or not an execute-api method ARN.
    """
    if not isinstance(value, str) or not value:
        raise EventError("methodArn is missing or not a string")
    if len(value) > _MAX_METHOD_ARN:
        raise EventError("methodArn is longer than API Gateway allows")
    fields = value.split(":", 5)
    if len(fields) != 6 or fields[0] != "arn" or fields[2] != "execute-api":
        raise EventError("methodArn is not an execute-api ARN")
    parts = fields[5].split("/", 3)
    if len(parts) < 3:
        raise EventError("methodArn has no stage and verb")
    api_id, stage, verb = parts[0], parts[1], parts[2]
    path = parts[3] if len(parts) == 4 else ""
    api_arn = ":".join(fields[:5]) + ":" + api_id
    if not API_ARN_PATTERN.fullmatch(api_arn) or not stage or not verb or "*" in stage:
        raise EventError("methodArn is not an execute-api ARN")
    return MethodArn(api_arn, stage, verb, path)


_PARAMETER = re.compile(r"\{[^{}/]*\}")


def route_template_arn(route_key: str, method_arn: MethodArn) -> str:
    """The route ARN of an HTTP API route key, with ``*`` for what the route leaves open.

    ``GET /pets/{id}`` becomes ``<api>/<stage>/GET/pets/*``, ``ANY /pets`` becomes
    ``<api>/<stage>/*/pets`` and ``$default`` becomes ``<api>/<stage>/*/*``. A granted
    pattern that matches this string literally covers every request of the route,
    because mapping paths never contain ``*`` as a literal character.

    Raises:
        EventError: the route key is neither ``$default`` nor ``VERB /path``.
    """
    base = f"{method_arn.api_arn}/{method_arn.stage}"
    if route_key == "$default":
        return f"{base}/*/*"
    verb, _, path = route_key.partition(" ")
    if not verb or not path.startswith("/"):
        raise EventError("routeKey is not 'VERB /path' or '$default'")
    verb = "*" if verb == "ANY" else verb
    return f"{base}/{verb}/{_PARAMETER.sub('*', path[1:])}"
