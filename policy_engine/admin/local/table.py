"""The permission table of ``serve``: an embedded DynamoDB-compatible endpoint (moto's
server mode on 127.0.0.1), or whatever ``AWS_ENDPOINT_URL`` names, migrated and synced
through the real ``migrate`` and ``sync`` code.

The endpoint reaches boto3 the way it does in a deployment, through environment
variables; ``start()`` sets them in this process and ``stop()`` restores them.
"""

from __future__ import annotations

import logging
import os
import socket
from pathlib import Path
from typing import Any

from policy_engine.errors import ConfigurationError

__all__ = ["LocalTable"]

_LOCAL_CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_REGION": "us-east-1",
}


def _free_port(host: str) -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


class LocalTable:
    """A migrated permission table on a local (or user-given) DynamoDB endpoint."""

    def __init__(self, table: str, *, host: str = "127.0.0.1", port: int = 0) -> None:
        self.table = table
        self.host = host
        self.port = port
        self.endpoint = os.environ.get("AWS_ENDPOINT_URL_DYNAMODB") or os.environ.get("AWS_ENDPOINT_URL") or ""
        #: True when this object runs moto itself (no endpoint was given).
        self.embedded = not self.endpoint
        self.environ: dict[str, str] = {}
        self._server: Any = None
        self._saved: dict[str, str | None] = {}

    @property
    def source(self) -> str:
        """The handler's ``PERMISSIONS_SOURCE``."""
        return f"dynamodb://{self.table}"

    def start(self) -> LocalTable:
        """Start moto (unless an endpoint was given), then run the migrations.

        Raises:
            ConfigurationError: moto is not installed (and no endpoint was given).
            StoreError: the endpoint refused the migration.
        """
        if self.embedded:
            try:
                from moto.server import ThreadedMotoServer
            except ImportError as exc:
                raise ConfigurationError(
                    "--store", "moto's server is not installed (pip install 'policy-engine[local]'), "
                    "or set AWS_ENDPOINT_URL to a DynamoDB-compatible endpoint") from exc
            # werkzeug logs one line per request otherwise.
            logging.getLogger("werkzeug").setLevel(logging.ERROR)
            port = self.port or _free_port(self.host)
            self._server = ThreadedMotoServer(ip_address=self.host, port=port, verbose=False)
            self._server.start()
            self.endpoint = f"http://{self.host}:{port}"
            self.environ = {**_LOCAL_CREDENTIALS, "AWS_ENDPOINT_URL": self.endpoint}
        else:
            self.environ = {"AWS_DEFAULT_REGION": os.environ.get("AWS_DEFAULT_REGION")
                            or os.environ.get("AWS_REGION") or "us-east-1"}
        for name, value in self.environ.items():
            self._saved.setdefault(name, os.environ.get(name))
            os.environ[name] = value
        try:
            from policy_engine.admin.migrate import migrate

            migrate(self.table)
        except BaseException:
            self.stop()
            raise
        return self

    def publish(self, permissions: str | Path) -> Any:
        """Sync the permission files at ``permissions`` into the table as a new version.

        Raises:
            PermissionsError: the files are invalid (nothing written).
            StoreError: the table refused the publish.
        """
        from policy_engine.admin.publish import sync

        return sync(permissions, self.source, note="policy-engine serve")

    def stop(self) -> None:
        """Stop moto and restore the environment. Safe to call twice."""
        if self._server is not None:
            self._server.stop()
            self._server = None
        for name, value in self._saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        self._saved = {}
