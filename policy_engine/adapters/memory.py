"""In-memory ``PermissionSource``: for tests, benchmarks and embedding the engine."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from policy_engine.ports import RawPermissions

__all__ = ["MemoryPermissionSource"]


class MemoryPermissionSource:
    """Serves the records it holds; ``replace()`` publishes a new version."""

    def __init__(self, records: Sequence[Any], version: str | None = None) -> None:
        self.description = "memory"
        self._serial = 0
        self.replace(records, version)

    def replace(self, records: Sequence[Any], version: str | None = None) -> None:
        self._serial += 1
        self._records = list(records)
        self._version = version
        self._etag = f"memory:{self._serial}"

    def fetch(self, known_etag: str | None) -> RawPermissions | None:
        if known_etag == self._etag:
            return None
        return RawPermissions(self._records, lambda path: f"memory record {path}", self._version, self._etag)
