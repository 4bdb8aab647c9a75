"""Fault injection around a real boto3 client: AWS failures no local server produces.

``FaultyClient(real, batch_write_item=hook)`` calls ``hook(n, kwargs, real)`` on the
n-th call of that operation; the hook may raise, return a response, or return ``None``
to let the real call through.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

from botocore.exceptions import ClientError

Hook = Callable[[int, dict[str, Any], Callable[..., Any]], Any]


class FaultyClient:
    def __init__(self, client: Any, **hooks: Hook) -> None:
        self._client = client
        self.hooks = hooks
        self.calls: Counter[str] = Counter()

    def __getattr__(self, name: str) -> Any:
        real = getattr(self._client, name)
        if not callable(real):
            return real

        def call(**kwargs: Any) -> Any:
            self.calls[name] += 1
            hook = self.hooks.get(name)
            if hook is not None:
                result = hook(self.calls[name], kwargs, real)
                if result is not None:
                    return result
            return real(**kwargs)

        return call


def aws_error(code: str, operation: str, message: str = "injected", status: int = 400) -> ClientError:
    return ClientError({"Error": {"Code": code, "Message": message},
                        "ResponseMetadata": {"HTTPStatusCode": status}}, operation)


class Crash(Exception):
    """Stands for the process dying (or the network going away) mid-sync."""


def write_permissions(path: Path, routes: list[tuple[str, str, str]], *, stage: str = "dev",
                      api: str = "arn:aws:execute-api:us-east-1:123456789012:a1b2c3d4e5") -> Path:
    """A flat-form permission file with one mapping per ``(verb, path, scope)``."""
    lines = ["permissions:"]
    for verb, resource, scope in routes:
        lines += [f"  - arn: {api}", f"    stage: {stage}", f"    httpVerb: {verb}",
                  f"    resource: {resource}", f"    scope: {scope}"]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n")
    return path


def many_routes(count: int, scope: str = "bulk:read") -> list[tuple[str, str, str]]:
    return [("GET", f"/items/{i}", scope) for i in range(count)]
