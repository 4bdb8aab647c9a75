"""AWS's DynamoDB Local on 127.0.0.1, for tests and benchmarks.

The jar ships inside the npm package ``amplify-dynamodb-simulator``; it is fetched
once with ``npm pack`` into a cache folder (never committed: proprietary licence)
and run with the machine's Java. Missing ``npm`` or ``java`` is an error, not a skip.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import tarfile
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from types import TracebackType

__all__ = ["DEFAULT_CACHE", "PACKAGE", "DynamoDbLocal", "ensure_jar"]

PACKAGE = "amplify-dynamodb-simulator@2.9.30"
#: Relative to the current folder, as the bundle's wheel cache (``.cache/wheels``).
DEFAULT_CACHE = Path(".cache") / "dynamodb-local"


def ensure_jar(cache: Path = DEFAULT_CACHE) -> Path:
    """The folder holding ``DynamoDBLocal.jar``, fetched with ``npm pack`` if needed.

    Raises:
        RuntimeError: npm is missing or the download failed.
    """
    emulator = cache / "package" / "emulator"
    if (emulator / "DynamoDBLocal.jar").is_file():
        return emulator
    npm = shutil.which("npm")
    if npm is None:
        raise RuntimeError("npm is needed to fetch DynamoDB Local (npm pack amplify-dynamodb-simulator)")
    cache.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=cache) as scratch:
        done = subprocess.run([npm, "pack", PACKAGE, "--silent", "--pack-destination", scratch],
                              capture_output=True, text=True, timeout=600, check=False)
        tarballs = list(Path(scratch).glob("*.tgz"))
        if done.returncode != 0 or not tarballs:
            raise RuntimeError(f"npm pack {PACKAGE} failed: {done.stderr.strip()[-500:]}")
        unpacked = Path(scratch) / "unpacked"
        with tarfile.open(tarballs[0]) as archive:
            archive.extractall(unpacked, filter="data")
        target = cache / "package"
        if not target.exists():
            (unpacked / "package").rename(target)
    if not (emulator / "DynamoDBLocal.jar").is_file():
        raise RuntimeError(f"{PACKAGE} holds no emulator/DynamoDBLocal.jar")
    return emulator


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class DynamoDbLocal:
    """A DynamoDB Local process (``-inMemory -sharedDb -disableTelemetry``), stopped on exit.

    This jar has no option to choose the listening address; clients use 127.0.0.1.
    """

    def __init__(self, cache: Path = DEFAULT_CACHE, *, port: int | None = None, startup_timeout: float = 60.0) -> None:
        self.cache = cache
        self.port = port or _free_port()
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self._timeout = startup_timeout
        self._process: subprocess.Popen[bytes] | None = None

    def start(self) -> DynamoDbLocal:
        """Start and wait until it answers HTTP.

        Raises:
            RuntimeError: Java or npm is missing, or the server did not come up.
        """
        java = shutil.which("java")
        if java is None:
            raise RuntimeError("java is needed to run DynamoDB Local")
        # Absolute: Java runs in the emulator's folder, where a relative cache path is wrong.
        emulator = ensure_jar(self.cache).resolve()
        self._process = subprocess.Popen(
            [java, f"-Djava.library.path={emulator / 'DynamoDBLocal_lib'}", "-jar", str(emulator / "DynamoDBLocal.jar"),
             "-inMemory", "-sharedDb", "-disableTelemetry", "-port", str(self.port)],
            cwd=emulator, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        )
        deadline = time.monotonic() + self._timeout
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                err = self._process.stderr.read().decode(errors="replace") if self._process.stderr else ""
                raise RuntimeError(f"DynamoDB Local exited with {self._process.returncode}: {err[-500:]}")
            try:
                urllib.request.urlopen(self.endpoint, timeout=1)
                return self
            except urllib.error.HTTPError:
                return self  # any HTTP answer means it is serving
            except OSError:
                time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"DynamoDB Local did not answer on {self.endpoint} within {self._timeout:.0f}s")

    def stop(self) -> None:
        process, self._process = self._process, None
        if process is not None and process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        if process is not None and process.stderr is not None:
            process.stderr.close()

    def __enter__(self) -> DynamoDbLocal:
        return self.start()

    def __exit__(self, *exc: type[BaseException] | BaseException | TracebackType | None) -> None:
        self.stop()


def main(argv: list[str] | None = None) -> int:
    """``python -m policy_engine.admin.local.dynamodb_local [--port 8000]``: run until Ctrl-C."""
    import argparse

    parser = argparse.ArgumentParser(prog="python -m policy_engine.admin.local.dynamodb_local",
                                     description=main.__doc__)
    parser.add_argument("--port", type=int, default=8000)
    args = parser.parse_args(argv)
    import signal

    def stop(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    # A background job ignores SIGINT; make `kill PID` stop Java too instead of orphaning it.
    signal.signal(signal.SIGTERM, stop)
    with DynamoDbLocal(port=args.port) as server:
        print(f"DynamoDB Local (in memory) at {server.endpoint}; Ctrl-C stops it", flush=True)
        try:
            while server._process is not None and server._process.poll() is None:
                time.sleep(0.5)
        except KeyboardInterrupt:
            pass
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
