"""Permission mappings as one compiled snapshot object in S3.

Each publish writes a JSON document (format below) to ``s3://BUCKET/KEY`` with a
conditional ``PutObject`` (``If-Match`` the ETag it read, or ``If-None-Match: *`` for
the first publish), so one object is the whole version: readers can never see half
of one, and of two concurrent publishes exactly one lands. A copy goes to
``KEY.history/<version>.json`` first, for ``rollback``::

    {"format": "policy-engine/permissions@1", "version": 7, "digest": "sha256:...",
     "published_at": "...", "note": "...", "mappings": [{"arn": ..., "stage": ...,
     "httpVerb": ..., "resource": ..., "scope": ...}, ...]}

A warm container revalidates with ``GetObject(IfNoneMatch=<etag>)``: S3 answers 304
and nothing is downloaded while the object is unchanged.

A reader reads at most ``max_bytes`` (``PERMISSIONS_MAX_BYTES``): a larger object is
refused on its ``Content-Length`` before any of its body is read (and a body without
one is cut after ``max_bytes + 1`` bytes). The refused ETag is remembered and sent as
``If-None-Match`` next time, so the same object is never downloaded twice.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from policy_engine.adapters.aws import AWS_ERRORS, ClientError, error_code, make_client, store_error
from policy_engine.core.publish import MappingKey, digest, record_of
from policy_engine.errors import (
    ConfigurationError,
    ConflictError,
    CorruptStoreError,
    MissingStoreError,
    StoreTooLargeError,
)
from policy_engine.ports import RawPermissions

__all__ = ["S3PermissionSource", "S3Store", "Snapshot", "parse_s3_location"]

FORMAT = "policy-engine/permissions@1"
_BUCKET = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")


def parse_s3_location(location: str, variable: str = "PERMISSIONS_SOURCE") -> tuple[str, str]:
    """``(bucket, key)`` of ``s3://BUCKET/KEY``.

    Raises:
        ConfigurationError: not of that form.
    """
    rest = location.removeprefix("s3://")
    bucket, _, key = rest.partition("/")
    if not _BUCKET.fullmatch(bucket) or not key or key.endswith("/"):
        raise ConfigurationError(variable, f"{location!r} is not s3://BUCKET/KEY (a bucket name and an object key)")
    return bucket, key


@dataclass(frozen=True, slots=True)
class Snapshot:
    """One published version as stored in S3."""

    version: int
    digest: str
    keys: frozenset[MappingKey]
    published_at: str
    note: str
    etag: str


def encode_snapshot(version: int, keys: frozenset[MappingKey], note: str, published_at: str) -> bytes:
    ordered = sorted(keys)
    document = {
        "format": FORMAT, "version": version, "digest": digest(ordered), "published_at": published_at,
        "note": note, "mappings": [record_of(k) for k in ordered],
    }
    return json.dumps(document, separators=(",", ":")).encode()


def decode_snapshot(body: bytes, where: str, etag: str) -> Snapshot:
    """Parse and check a snapshot.

    Raises:
        CorruptStoreError: not a snapshot policy-engine wrote, or its digest does not match.
    """
    try:
        document = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise CorruptStoreError(f"{where}: not JSON ({exc})") from None
    if not isinstance(document, dict) or document.get("format") != FORMAT:
        raise CorruptStoreError(f"{where}: not a policy-engine snapshot (format must be {FORMAT!r})")
    version, content, mappings = document.get("version"), document.get("digest"), document.get("mappings")
    if not isinstance(version, int) or version < 1 or not isinstance(content, str) or not isinstance(mappings, list):
        raise CorruptStoreError(f"{where}: version, digest or mappings missing or mistyped")
    keys = []
    for index, record in enumerate(mappings):
        if not isinstance(record, dict) or not all(isinstance(record.get(f), str) for f in
                                                   ("arn", "stage", "httpVerb", "resource", "scope")):
            raise CorruptStoreError(f"{where}: mappings[{index}] is not a mapping record")
        keys.append(MappingKey(record["arn"], record["stage"], record["httpVerb"], record["resource"], record["scope"]))
    if digest(keys) != content:
        raise CorruptStoreError(f"{where}: content does not match its digest (edited outside policy-engine sync?)")
    return Snapshot(version, content, frozenset(keys), str(document.get("published_at", "")),
                    str(document.get("note", "")), etag)


class S3Store:
    """Reads and conditionally writes the snapshot object and its history copies.

    Building one never creates a bucket.
    """

    def __init__(self, bucket: str, key: str, *, client: Any = None, admin: bool = False) -> None:
        self.bucket, self.key = bucket, key
        self.description = f"s3://{bucket}/{key}"
        self.client = client if client is not None else make_client("s3", admin=admin)
        #: PutObject requests made.
        self.write_requests = 0

    def history_key(self, version: int) -> str:
        return f"{self.key}.history/{version:010d}.json"

    def get(
        self, key: str | None = None, *, if_none_match: str | None = None, max_bytes: int | None = None
    ) -> tuple[bytes, str] | None:
        """``(body, etag)``, or ``None`` when ``if_none_match`` still matches (304).

        With ``max_bytes``, at most that many bytes of body are read.

        Raises:
            MissingStoreError: the bucket or the object does not exist.
            StoreTooLargeError: the object is larger than ``max_bytes`` (its ETag attached).
            StoreError: any other failure.
        """
        where = f"s3://{self.bucket}/{key or self.key}"
        kwargs: dict[str, Any] = {"Bucket": self.bucket, "Key": key or self.key}
        if if_none_match:
            kwargs["IfNoneMatch"] = if_none_match
        try:
            response = self.client.get_object(**kwargs)
            body, etag = response["Body"], str(response["ETag"])
            if max_bytes is None:
                return body.read(), etag
            size = response.get("ContentLength")
            if isinstance(size, int) and size > max_bytes:
                # Refused on the header: closing drops the connection, the body is never read.
                body.close()
                raise StoreTooLargeError(f"{where} is {size} bytes; PERMISSIONS_MAX_BYTES is {max_bytes}: "
                                         "not loaded (publish fewer mappings or raise the limit)", etag=etag)
            data = body.read(max_bytes + 1)  # a missing or wrong length cannot make us read more
            if len(data) > max_bytes:
                body.close()
                raise StoreTooLargeError(f"{where} holds more than {max_bytes} bytes; PERMISSIONS_MAX_BYTES is "
                                         f"{max_bytes}: not loaded (publish fewer mappings or raise the limit)",
                                         etag=etag)
            return data, etag
        except AWS_ERRORS as exc:
            if error_code(exc) in ("304", "NotModified"):
                return None
            raise store_error(exc, where) from exc

    def current(self) -> Snapshot | None:
        """The published snapshot, ``None`` if nothing was published (the bucket must exist).

        Raises:
            MissingStoreError: the bucket does not exist.
            CorruptStoreError: the object is not a valid snapshot.
        """
        try:
            got = self.get()
        except MissingStoreError as exc:
            if "NoSuchKey" in str(exc):
                return None
            raise
        assert got is not None
        return decode_snapshot(got[0], self.description, got[1])

    def snapshot(self, version: int) -> Snapshot:
        """A published version from the history copies.

        Raises:
            MissingStoreError: no copy of that version.
        """
        got = self.get(self.history_key(version))
        assert got is not None
        return decode_snapshot(got[0], f"s3://{self.bucket}/{self.history_key(version)}", got[1])

    def publish(self, body: bytes, version: int, expected_etag: str | None) -> str:
        """Write the history copy of ``version``, then swap the main object conditionally.

        Raises:
            ConflictError: the object changed since ``expected_etag`` was read.
            StoreError: the write failed.
        """
        self._put(self.history_key(version), body)
        condition = {"IfMatch": expected_etag} if expected_etag else {"IfNoneMatch": "*"}
        try:
            return self._put(self.key, body, **condition)
        except ClientError as exc:
            raise ConflictError(f"{self.description}: another publish changed the object meanwhile "
                                f"({error_code(exc)}); nothing of this one was published, re-run") from None

    def _put(self, key: str, body: bytes, **condition: str) -> str:
        self.write_requests += 1
        try:
            response = self.client.put_object(Bucket=self.bucket, Key=key, Body=body,
                                              ContentType="application/json", **condition)
            return str(response["ETag"])
        except AWS_ERRORS as exc:
            if condition and error_code(exc) in ("PreconditionFailed", "412", "ConditionalRequestConflict", "409"):
                raise
            raise store_error(exc, f"s3://{self.bucket}/{key}") from exc


class S3PermissionSource:
    """``PermissionSource`` over a snapshot object; unchanged or refused objects are never downloaded.

    ``max_bytes`` caps what one load reads (``None``: no cap, for tools).
    """

    def __init__(self, location: str, *, client: Any = None, max_bytes: int | None = None) -> None:
        bucket, key = parse_s3_location(location)
        self._store = S3Store(bucket, key, client=client)
        self.description = self._store.description
        self._max_bytes = max_bytes
        self._refused: StoreTooLargeError | None = None

    def fetch(self, known_etag: str | None) -> RawPermissions | None:
        """The snapshot's mappings, or ``None`` when S3 says the ETag still matches.

        Raises:
            MissingStoreError: no bucket or no object (nothing published).
            CorruptStoreError: the object is not a valid snapshot.
            StoreTooLargeError: the object is larger than ``max_bytes`` (again, without a
                download, while S3 still holds that same object).
            StoreError: S3 cannot be read.
        """
        refused = self._refused
        # While a refused object is what S3 holds, ask about that one: 304, no body.
        try:
            got = self._store.get(if_none_match=refused.etag if refused else known_etag, max_bytes=self._max_bytes)
        except StoreTooLargeError as exc:
            self._refused = exc
            raise
        if got is None:
            if refused is not None:
                raise StoreTooLargeError(str(refused), etag=refused.etag)
            return None
        self._refused = None
        if got[1] == known_etag:
            return None  # replaced by the very object already loaded (a rollback of the refused one)
        snapshot = decode_snapshot(got[0], self.description, got[1])
        ordered = sorted(snapshot.keys)

        def locate(path: tuple[int | str, ...]) -> str:
            if path and isinstance(path[0], int):
                return f"{self.description} mappings[{path[0]}]"
            return self.description

        return RawPermissions([record_of(k) for k in ordered], locate, f"v{snapshot.version}", got[1])
