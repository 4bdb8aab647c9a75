"""Run the real Lambda handler in-process with a given environment, as Lambda would.

The handler module reads its configuration at import, so each call loads a fresh
copy of ``handler/app.py`` under the given environment (and restores the process
environment afterwards).
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import uuid
from collections.abc import Iterator, Mapping
from pathlib import Path
from types import ModuleType
from typing import Any

__all__ = ["HANDLER_PATH", "InvokeResult", "invoke", "load_handler", "patched_environ"]

#: Lambda's entry point, installed beside ``policy_engine`` (the wheel ships both packages). Found
#: by location, not by import: another ``handler`` package on ``sys.path`` must not be taken for it.
HANDLER_PATH = Path(__file__).resolve().parents[3] / "handler" / "app.py"


@contextlib.contextmanager
def patched_environ(values: Mapping[str, str]) -> Iterator[None]:
    saved = dict(os.environ)
    os.environ.update(values)
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


def load_handler(environ: Mapping[str, str], path: Path = HANDLER_PATH) -> ModuleType:
    """Import a fresh copy of the handler module with ``environ`` applied during import."""
    spec = importlib.util.spec_from_file_location(f"_handler_{uuid.uuid4().hex}", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    with patched_environ(environ):
        spec.loader.exec_module(module)
    return module


class InvokeResult:
    """What API Gateway got back: a response, or the error message of a failure."""

    def __init__(self, response: dict[str, Any] | None, error: str | None) -> None:
        self.response = response
        self.error = error

    @property
    def unauthorized(self) -> bool:
        return self.error == "Unauthorized"


def invoke(module: ModuleType, event: Any) -> InvokeResult:
    """Call ``lambda_handler`` the way the Lambda runtime reports the outcome."""
    try:
        return InvokeResult(module.lambda_handler(event, None), None)
    except Exception as exc:  # noqa: BLE001 - the runtime reports any exception as errorMessage
        return InvokeResult(None, str(exc))
