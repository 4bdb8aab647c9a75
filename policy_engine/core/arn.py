"""execute-api ARNs: the API ARN of a mapping and the methodArn of a request."""

from __future__ import annotations

import re
from dataclasses import dataclass

from policy_engine.core.memo import Memo
from policy_engine.errors import EventError

__all__ = ["API_ARN_PATTERN", "HTTP_VERBS", "MAX_METHOD_ARN", "MAX_STAGE_NAME", "STAGE_NAME_PATTERN", "MethodArn",
           "parse_method_arn"]

# arn:<partition>:execute-api:<region>:<account>:<api-id>; no wildcards: a mapping names one API.
API_ARN_PATTERN = re.compile(r"arn:(aws|aws-cn|aws-us-gov|aws-iso[a-z-]*):execute-api:[a-z0-9-]+:\d{12}:[A-Za-z0-9]+")

#: The longest methodArn API Gateway sends: it answers 414 to a longer request line
#: before calling the authorizer.
MAX_METHOD_ARN = 1600

#: The methods API Gateway routes (the verbs of a methodArn and of a mapping; ``ANY``
#: stands for all of them).
HTTP_VERBS = ("GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS")

#: The longest stage name API Gateway allows (CreateStage: "Maximum length is 128
#: characters"). A stage-``*`` mapping is written with the request's stage, so its
#: longest policy Resource is counted with a stage this long.
MAX_STAGE_NAME = 128
#: A stage name as API Gateway allows it (letters, digits, ``_`` and ``-``; HTTP APIs'
#: ``$default``): what a mapping may name, and what a methodArn must carry.
STAGE_NAME_PATTERN = re.compile(rf"\$default|[A-Za-z0-9_-]{{1,{MAX_STAGE_NAME}}}")


@dataclass(slots=True)
class MethodArn:
    """A parsed methodArn/routeArn: ``<api_arn>/<stage>/<verb>/<path>`` (slotted, not a
    NamedTuple: it is built on every request and costs half as much)."""

    api_arn: str
    stage: str
    verb: str
    path: str

    def __str__(self) -> str:
        return f"{self.api_arn}/{self.stage}/{self.verb}/{self.path}"


def parse_method_arn(value: object, known: Memo[str, bool] | None = None) -> MethodArn:
    """Split a methodArn into API ARN, stage, verb and path (without leading slash).

    Parsed from the left with bounded splits because the path may hold ``:`` and ``/``.
    ``known`` is the caller's memo of ``API-ARN/stage`` pairs this function has found
    valid (see ``core.memo``): a container serves a handful of APIs and stages, so the
    patterns run once per pair. It holds only valid ones; every other check runs on
    every call.

    Raises:
        EventError: not a string, too long, not an execute-api method ARN, or a stage
            API Gateway would not name (``STAGE_NAME_PATTERN``).
    """
    if not isinstance(value, str) or not value:
        raise EventError("methodArn is missing or not a string")
    if len(value) > MAX_METHOD_ARN:
        raise EventError("methodArn is longer than API Gateway allows")
    # An API ARN holds no '/', so the first one ends it; the path keeps every later '/' and ':'.
    parts = value.split("/", 3)
    if len(parts) == 4:
        api_arn, stage, verb, path = parts
    elif len(parts) == 3:
        (api_arn, stage, verb), path = parts, ""
    else:
        raise EventError("methodArn is not an execute-api method ARN")
    # Guard: an API ARN and stage the patterns have matched before match again.
    if known is None or known.get(api_arn + "/" + stage) is None:
        if API_ARN_PATTERN.fullmatch(api_arn) is None:
            raise EventError("methodArn is not an execute-api method ARN")
        # A stage API Gateway would never name (too long, or holding '*' or '?', which
        # are wildcards in every policy Resource written with it) is refused.
        if STAGE_NAME_PATTERN.fullmatch(stage) is None:
            raise EventError("methodArn has no usable stage and verb")
        if known is not None:
            known.remember(api_arn + "/" + stage, True)
    if not verb:
        raise EventError("methodArn has no usable stage and verb")
    return MethodArn(api_arn, stage, verb, path)
