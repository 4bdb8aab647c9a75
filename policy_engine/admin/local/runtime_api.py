"""Run a Lambda bundle the way Lambda does, without Docker or AWS.

``RuntimeApi`` serves the part of the Lambda Runtime API a runtime client talks to
(``/2018-06-01/runtime/...``) on 127.0.0.1; ``start_runtime`` starts AWS's own Runtime
Interface Client (``awslambdaric`` from PyPI) in a fresh interpreter that sees only
the unpacked bundle and the client. ``RuntimeApi.invoke`` queues an event and waits for
what the function returned or raised, exactly as the runtime client reported it.

No package ships AWS's Runtime Interface Emulator, so this stand-in covers what the
tests and benchmarks need: one function, one invocation at a time, init errors.
"""

from __future__ import annotations

import json
import queue
import shutil
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

__all__ = [
    "FunctionResult",
    "RuntimeApi",
    "ensure_runtime_client",
    "isolated_command",
    "isolated_python",
    "start_runtime",
]

_PREFIX = "/2018-06-01/runtime"
FUNCTION_NAME = "policy-engine-authorizer"
FUNCTION_ARN = f"arn:aws:lambda:us-east-1:123456789012:function:{FUNCTION_NAME}"


@dataclass(frozen=True, slots=True)
class FunctionResult:
    """The function's return value, or the error document the runtime client posted."""

    payload: Any
    error: dict[str, Any] | None

    @property
    def error_message(self) -> str | None:
        return None if self.error is None else str(self.error.get("errorMessage"))


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A runtime client killed mid long poll resets its connection; that is not news.
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


class _Invocation:
    def __init__(self, event: Any) -> None:
        self.request_id = str(uuid.uuid4())
        self.body = json.dumps(event).encode()
        self.done = threading.Event()
        self.result: FunctionResult | None = None


class RuntimeApi:
    """A Lambda Runtime API endpoint for one function on 127.0.0.1."""

    def __init__(self, timeout_ms: int = 30_000) -> None:
        self.timeout_ms = timeout_ms
        self.init_errors: list[dict[str, Any]] = []
        #: The runtime process serving this endpoint, watched by ``invoke`` (set by ``start_runtime``).
        self.process: subprocess.Popen[bytes] | None = None
        self._pending: queue.Queue[_Invocation] = queue.Queue()
        self._running: dict[str, _Invocation] = {}
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._server = _Server(("127.0.0.1", 0), self._handler_class())

    @property
    def address(self) -> str:
        """The value for ``AWS_LAMBDA_RUNTIME_API``."""
        host, port = self._server.socket.getsockname()[:2]  # typeshed allows a bytes host; the kernel gives str
        return f"{host}:{port}"

    def start(self) -> RuntimeApi:
        threading.Thread(target=self._server.serve_forever, name="runtime-api", daemon=True).start()
        return self

    def stop(self) -> None:
        self._stopping.set()
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> RuntimeApi:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def invoke(self, event: Any, timeout: float = 30.0) -> FunctionResult:
        """Hand ``event`` to the runtime client and wait for its answer.

        Raises:
            RuntimeError: the function failed to initialise (the runtime client posted an
                init error), its process exited, or it did not answer within ``timeout`` seconds.
        """
        self._raise_if_init_failed()
        invocation = _Invocation(event)
        with self._lock:
            self._running[invocation.request_id] = invocation
        self._pending.put(invocation)
        deadline = time.monotonic() + timeout
        while not invocation.done.wait(0.05):
            self._raise_if_init_failed()
            if time.monotonic() > deadline:
                raise RuntimeError(f"the function did not answer within {timeout:g} s")
        assert invocation.result is not None
        return invocation.result

    def _raise_if_init_failed(self) -> None:
        if self.init_errors:
            raise RuntimeError(f"function init failed: {self.init_errors[0].get('errorMessage')}")
        if self.process is not None and self.process.poll() is not None:
            raise RuntimeError(f"the runtime process exited with code {self.process.returncode}")

    def _next(self) -> _Invocation | None:
        # Long poll, as the real endpoint does, but wake up to notice shutdown.
        while not self._stopping.is_set():
            try:
                return self._pending.get(timeout=0.2)
            except queue.Empty:
                continue
        return None

    def _finish(self, request_id: str, result: FunctionResult) -> bool:
        with self._lock:
            invocation = self._running.pop(request_id, None)
        if invocation is None:
            return False
        invocation.result = result
        invocation.done.set()
        return True

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        api = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True  # with Nagle on, each invoke waits ~40-90 ms for ACKs

            def log_message(self, *args: Any) -> None:
                pass

            def _reply(self, status: int, body: bytes = b"", headers: Mapping[str, str] | None = None) -> None:
                self.send_response(status)
                for name, value in (headers or {}).items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self) -> None:
                if self.path != f"{_PREFIX}/invocation/next":
                    return self._reply(404)
                invocation = api._next()
                if invocation is None:
                    return self._reply(503)
                headers = {
                    "Content-Type": "application/json",
                    "Lambda-Runtime-Aws-Request-Id": invocation.request_id,
                    "Lambda-Runtime-Deadline-Ms": str(int(time.time() * 1000) + api.timeout_ms),
                    "Lambda-Runtime-Invoked-Function-Arn": FUNCTION_ARN,
                    "Lambda-Runtime-Trace-Id": "Root=1-00000000-000000000000000000000000;Sampled=0",
                }
                try:
                    self._reply(200, invocation.body, headers)
                except OSError:
                    # The client went away mid long poll: give the event to the next one.
                    api._pending.put(invocation)

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                parts = self.path.split("/")
                if self.path == f"{_PREFIX}/init/error":
                    api.init_errors.append(_document(body))
                    return self._reply(202, b'{"status":"OK"}')
                if (len(parts) == 6 and self.path.startswith(f"{_PREFIX}/invocation/")
                        and parts[5] in ("response", "error")):
                    if parts[5] == "response":
                        result = FunctionResult(json.loads(body) if body else None, None)
                    else:
                        result = FunctionResult(None, _document(body))
                    if api._finish(parts[4], result):
                        return self._reply(202, b'{"status":"OK"}')
                    return self._reply(400, b'{"errorType":"InvalidRequestID"}')
                self._reply(404)

        return Handler


def _document(body: bytes) -> dict[str, Any]:
    try:
        parsed = json.loads(body)
    except ValueError:
        return {"errorMessage": body.decode(errors="replace"), "errorType": "Unparsable"}
    return parsed if isinstance(parsed, dict) else {"errorMessage": str(parsed), "errorType": "Unparsable"}


def isolated_python() -> str:
    """The base interpreter behind this one (outside any virtual environment)."""
    return getattr(sys, "_base_executable", None) or sys.executable


def isolated_command(paths: list[Path], code: str) -> list[str]:
    """Run ``code`` with only the standard library and ``paths`` importable.

    ``-I`` drops PYTHON* variables, the user site and the script folder; ``-S`` drops
    site-packages (so neither the venv's nor the base interpreter's packages leak in);
    ``-B`` writes no bytecode, as Lambda's read-only ``/var/task`` cannot hold any.
    """
    prologue = f"import sys; sys.path[0:0] = {[str(p.resolve()) for p in paths]!r}; "
    return [isolated_python(), "-I", "-S", "-B", "-c", prologue + code]


def ensure_runtime_client(cache: Path) -> Path:
    """A folder holding ``awslambdaric`` for this interpreter, installed from PyPI once.

    Raises:
        RuntimeError: pip could not install it.
    """
    target = cache / f"awslambdaric-py{sys.version_info.major}.{sys.version_info.minor}"
    if (target / ".complete").exists():
        return target
    partial = target.with_name(target.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    done = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--disable-pip-version-check", "--quiet", "--no-compile",
         "--only-binary=:all:", "--target", str(partial), "awslambdaric"],
        capture_output=True, text=True, check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"pip install awslambdaric failed: {done.stderr[-500:]}")
    (partial / ".complete").touch()
    shutil.rmtree(target, ignore_errors=True)
    partial.rename(target)
    return target


def start_runtime(
    task_root: Path,
    runtime_client: Path,
    handler: str,
    api: RuntimeApi,
    environ: Mapping[str, str],
    log_path: Path,
) -> subprocess.Popen[bytes]:
    """Start ``awslambdaric`` on ``handler`` with ``task_root`` as Lambda's ``/var/task``.

    The child gets a fresh environment: Lambda's own variables plus ``environ``. Its
    stdout and stderr (the function's logs) go to ``log_path``; a file, not a pipe, so a
    chatty function can never block on a full pipe.
    """
    env = {
        "PATH": "/usr/bin:/bin",
        "LANG": "C.UTF-8",
        "TZ": ":UTC",
        "AWS_LAMBDA_RUNTIME_API": api.address,
        "LAMBDA_TASK_ROOT": str(task_root),
        "AWS_LAMBDA_FUNCTION_NAME": FUNCTION_NAME,
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "256",
        "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
        "AWS_REGION": "us-east-1",
        "_HANDLER": handler,
        **environ,
    }
    code = f"from awslambdaric.__main__ import main; main(['awslambdaric', {handler!r}])"
    with log_path.open("ab") as log:
        process = subprocess.Popen(
            isolated_command([task_root, runtime_client], code),
            cwd=task_root, env=env, stdout=log, stderr=subprocess.STDOUT,
        )
    api.process = process
    return process
