"""Permission mappings from a compiled snapshot file (``policy-engine compile``, the bundle).

The file holds the document the S3 store publishes (``core.snapshot``): one JSON
object, no YAML to parse. Loading checks its format and digest, and the cache then
validates every record against the schema like any other source's (``compile_records``),
so a hand-edited file never loads: an edit that keeps the digest is refused by the
schema, one that breaks it as corrupt.
"""

from __future__ import annotations

from pathlib import Path

from policy_engine.core.snapshot import document_hash, is_snapshot, mappings_locator, published_at_of, read_snapshot
from policy_engine.errors import PermissionsError
from policy_engine.ports import RawPermissions

__all__ = ["SnapshotFilePermissionSource", "is_snapshot_file"]

# Enough of a file to recognise a snapshot by its first member.
_HEAD_BYTES = 256


def is_snapshot_file(location: str | Path) -> bool:
    """Whether ``location`` is a file that holds a snapshot: named ``*.json``, or starting
    like one. A folder or a YAML file is not; nothing raises (a missing file is not)."""
    path = Path(location)
    if path.suffix == ".json":
        return path.is_file() or not path.exists()
    if not path.is_file():  # a folder, a missing file, or a FIFO or device, which may never end
        return False
    try:
        with path.open("rb") as file:
            return is_snapshot(file.read(_HEAD_BYTES))
    except OSError:  # a folder, a missing or unreadable file: the YAML source says what is wrong
        return False


class SnapshotFilePermissionSource:
    """``PermissionSource`` over a snapshot file; the etag is the file's content hash."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.description = str(self.path)

    def fetch(self, known_etag: str | None) -> RawPermissions | None:
        """The snapshot's mappings, or ``None`` when the file's bytes hash to ``known_etag``.

        Raises:
            PermissionsError: the file cannot be read.
            CorruptStoreError: it is not a snapshot, or its mappings do not match its digest.
        """
        try:
            body = self.path.read_bytes()
        except OSError as exc:
            raise PermissionsError(f"{self.path}: cannot read ({exc.strerror or exc})") from None
        etag = "file:" + document_hash(body)
        if etag == known_etag:
            return None
        document, records = read_snapshot(body, self.description)
        # The records as written: compile_records validates each (and refuses a member
        # the schema does not know). The digest is the content hash of these mappings,
        # the version the same mappings have when loaded from YAML.
        return RawPermissions(records, mappings_locator(self.description), document["digest"], etag,
                              published_at_of(document))
