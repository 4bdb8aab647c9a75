"""API Gateway's evaluation of an authorizer response, as a pure function.

Used by the tests (decisions are checked by evaluating policies, never by comparing
JSON), by ``explain`` and by the local gateway. The rules (see
https://docs.aws.amazon.com/apigateway/latest/developerguide/api-gateway-lambda-authorizer-output.html
and the IAM policy evaluation logic): an explicit ``Deny`` that matches wins,
else a matching ``Allow``, else an implicit deny. Resource patterns are IAM globs:
``*`` is any run of characters including ``/``, ``?`` is one character, the whole ARN
must match, case-sensitively. A malformed response is what API Gateway answers 500 to.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Iterable, Mapping
from functools import lru_cache
from typing import Any

__all__ = [
    "MalformedResponseError",
    "ResourceMatcher",
    "Verdict",
    "evaluate_response",
    "glob_matches",
    "glob_regex",
    "request_allowed",
]


class Verdict(enum.Enum):
    ALLOW = "Allow"
    EXPLICIT_DENY = "ExplicitDeny"
    IMPLICIT_DENY = "ImplicitDeny"

    @property
    def status(self) -> int:
        """The status API Gateway answers with."""
        return 200 if self is Verdict.ALLOW else 403


class MalformedResponseError(ValueError):
    """API Gateway would reject this response (500 AuthorizerConfigurationException)."""


_INVOKE_ACTIONS = {"execute-api:invoke", "execute-api:*", "*"}


@lru_cache(maxsize=8192)
def glob_regex(pattern: str) -> re.Pattern[str]:
    """The regex of an IAM resource glob, for ``fullmatch``: ``*`` any run (``/`` too), ``?`` one character."""
    parts = []
    for char in pattern:
        if char == "*":
            parts.append(".*")
        elif char == "?":
            parts.append(".")
        else:
            parts.append(re.escape(char))
    return re.compile("".join(parts), re.DOTALL)


def glob_matches(pattern: str, value: str) -> bool:
    """IAM resource matching: ``*`` crosses ``/``, ``?`` is one character, full match."""
    return glob_regex(pattern).fullmatch(value) is not None


class ResourceMatcher:
    """Whether any of a list of Resources matches an ARN: ``any(glob_matches(r, arn) for r
    in resources)``, built once per list and then answered in a few dictionary lookups.

    A guard beside ``glob_matches`` for lists that are asked about again and again (a
    memoised policy, on every request that logs its outcome): Resources without a
    wildcard go in a set; the others are grouped by their literal text up to the last
    ``/`` before their first wildcard, and each group is one compiled alternation. An ARN
    is then looked up in the set and matched only against the groups whose literal text
    it starts with, at each ``/`` of its own. ``tests/unit/test_guards.py`` holds it equal
    to the rule.
    """

    __slots__ = ("_exact", "_groups")

    def __init__(self, resources: Iterable[str]) -> None:
        exact: set[str] = set()
        grouped: dict[str, list[str]] = {}
        for resource in resources:
            star, mark = resource.find("*"), resource.find("?")
            first = min(i for i in (star, mark) if i >= 0) if star >= 0 or mark >= 0 else -1
            if first < 0:
                exact.add(resource)
                continue
            head = resource[: resource.rfind("/", 0, first) + 1]
            grouped.setdefault(head, []).append(resource)
        self._exact = frozenset(exact)
        self._groups = {
            head: re.compile("|".join(f"(?:{glob_regex(glob).pattern})" for glob in sorted(globs)), re.DOTALL)
            for head, globs in grouped.items()
        }

    def matches(self, arn: str) -> bool:
        """Some Resource of the list matches ``arn`` (IAM globs, whole ARN, case-sensitive)."""
        if arn in self._exact:
            return True
        groups = self._groups
        if not groups:
            return False
        pattern = groups.get("")
        if pattern is not None and pattern.fullmatch(arn):
            return True
        cut = arn.find("/")
        while cut >= 0:
            pattern = groups.get(arn[: cut + 1])
            if pattern is not None and pattern.fullmatch(arn):
                return True
            cut = arn.find("/", cut + 1)
        return False


def request_allowed(allow: ResourceMatcher, deny: ResourceMatcher, arn: str) -> bool:
    """What API Gateway does with the request ``arn`` under a policy of Allow Resources
    ``allow`` and Deny Resources ``deny``: allowed when an Allow matches and no Deny does
    (an explicit Deny wins)."""
    return allow.matches(arn) and not deny.matches(arn)


def _as_list(value: Any, what: str) -> list[Any]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, list) and value:
        return value
    raise MalformedResponseError(f"{what} must be a string or a non-empty list")


def _check_context(context: Any) -> None:
    if context is None:
        return
    if not isinstance(context, Mapping):
        raise MalformedResponseError("context must be an object")
    for key, value in context.items():
        if not isinstance(key, str):
            raise MalformedResponseError("context keys must be strings")
        if isinstance(value, (bool, str, int, float)):
            continue
        raise MalformedResponseError(f"context[{key!r}] must be a string, number or boolean")


def evaluate_response(response: Any, method_arn: str) -> Verdict:
    """Decide ``method_arn`` with the policy in an authorizer ``response``.

    Raises:
        MalformedResponseError: the response is not one API Gateway accepts.
    """
    if not isinstance(response, Mapping):
        raise MalformedResponseError("response must be an object")
    principal = response.get("principalId")
    if not isinstance(principal, str) or not principal:
        raise MalformedResponseError("principalId must be a non-empty string")
    _check_context(response.get("context"))
    document = response.get("policyDocument")
    if not isinstance(document, Mapping):
        raise MalformedResponseError("policyDocument must be an object")
    if document.get("Version") not in ("2012-10-17", "2008-10-17"):
        raise MalformedResponseError("policyDocument.Version must be 2012-10-17")
    statements = _as_list(document.get("Statement"), "Statement")
    allowed = False
    for statement in statements:
        if not isinstance(statement, Mapping):
            raise MalformedResponseError("each Statement must be an object")
        effect = statement.get("Effect")
        if effect not in ("Allow", "Deny"):
            raise MalformedResponseError("Effect must be exactly 'Allow' or 'Deny'")
        actions = _as_list(statement.get("Action"), "Action")
        resources = _as_list(statement.get("Resource"), "Resource")
        for resource in resources:
            if not isinstance(resource, str) or len(resource) > 512:
                raise MalformedResponseError("each Resource must be a string of at most 512 characters")
        if not any(isinstance(a, str) and a.lower() in _INVOKE_ACTIONS for a in actions):
            continue
        if any(glob_matches(resource, method_arn) for resource in resources):
            if effect == "Deny":
                return Verdict.EXPLICIT_DENY
            allowed = True
    return Verdict.ALLOW if allowed else Verdict.IMPLICIT_DENY
