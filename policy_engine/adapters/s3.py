"""Permission mappings as one compiled snapshot object in S3.

Each publish writes a JSON document (format below) to ``s3://BUCKET/KEY`` with a
conditional ``PutObject`` (``If-Match`` the ETag it read, or ``If-None-Match: *`` for
the first publish), so one object is the whole version: readers can never see half
of one, and of two concurrent publishes exactly one lands. ``rollback`` reads byte
copies of published versions at ``KEY.history/<version>.json`` (``S3Store.publish``
says when they are written)::

    {"format": "policy-engine/permissions@1", "version": 7, "digest": "sha256:...",
     "published_at": "...", "note": "...",
     "previous": {"version": 6, "digest": "sha256:...", "sha256": "sha256:<64 hex>"},
     "mappings": [{"arn": ..., "stage": ..., "httpVerb": ..., "resource": ...,
     "scope": ...}, ...]}

``previous`` records what was published as the version before (its mappings digest
and the SHA-256 of its whole document), so each version vouches for the one it
replaced, back from the live object: a history copy that does not hash to its
successor's record is never restored.

A warm container revalidates with ``GetObject(IfNoneMatch=<etag>)``: S3 answers 304
and nothing is downloaded while the object is unchanged.

A reader reads at most ``max_bytes`` (``PERMISSIONS_MAX_BYTES``): a larger object is
refused on its ``Content-Length`` before any of its body is read (and a body without
one is cut after ``max_bytes + 1`` bytes). The refused ETag is remembered and sent as
``If-None-Match`` next time, so the same object is never downloaded twice.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

from policy_engine.adapters.aws import AWS_ERRORS, ClientError, error_code, make_client, store_error
from policy_engine.core.publish import record_of
from policy_engine.core.snapshot import Link, Snapshot, decode_snapshot, encode_snapshot
from policy_engine.errors import (
    ConfigurationError,
    ConflictError,
    CorruptStoreError,
    MissingStoreError,
    StoreError,
    StoreTooLargeError,
)
from policy_engine.ports import RawPermissions

__all__ = ["Link", "S3PermissionSource", "S3Store", "Snapshot", "encode_snapshot", "parse_s3_location"]

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

    def restorable(self, version: int, current: Snapshot) -> Snapshot:
        """The history copy of ``version``, checked to be what was published as ``version``.

        Raises:
            CorruptStoreError: the copy (or one it is checked through) is missing or is
                not the document that was published.
            StoreError: the copy cannot be checked (no record of what was published), or S3 failed.
        """
        for number, snapshot, _, problem in self.history(current):
            if number == version:
                if problem is not None:
                    raise problem
                assert snapshot is not None
                return snapshot
        raise MissingStoreError(f"{self.description}: v{version} is not an earlier version than v{current.version}")

    def history(self, current: Snapshot) -> Iterator[tuple[int, Snapshot | None, Link | None, StoreError | None]]:
        """Versions before ``current``, newest first: ``(version, its history copy, what was
        published as it, None)``, or ``(version, None, record or None, why it cannot be restored)``.

        Each copy is checked against the record in the version after it, starting from the
        live object, so a copy is trusted only if an unbroken chain of records leads to it.

        Raises:
            StoreError: S3 failed (a missing copy is reported, not raised).
        """
        link: Link | None = current.previous
        failed: tuple[int, StoreError] | None = None
        for version in range(current.version - 1, 0, -1):
            where = f"s3://{self.bucket}/{self.history_key(version)}"
            if failed is not None:
                yield version, None, None, type(failed[1])(
                    f"{where}: v{version} can only be checked through v{failed[0]}, which cannot be: {failed[1]}")
                continue
            if link is None:
                # Published before snapshots recorded their predecessor: nothing says what it was.
                failed = (version, StoreError(
                    f"{where}: cannot check v{version} against what was published: v{version + 1} records nothing "
                    "about it (published by an older policy-engine); sync that version's YAML instead"))
                yield version, None, None, failed[1]
                continue
            try:
                snapshot = self._copy(version, link, where)
            except CorruptStoreError as exc:
                failed = (version, exc)
                yield version, None, link, exc
                continue
            yield version, snapshot, link, None
            link = snapshot.previous

    def _copy(self, version: int, link: Link, where: str) -> Snapshot:
        try:
            got = self.get(self.history_key(version))
        except MissingStoreError as exc:
            if "NoSuchKey" not in str(exc):
                raise
            raise CorruptStoreError(f"{where}: no history copy of v{version} (published as {link.digest}); "
                                    "deleted outside policy-engine?") from None
        assert got is not None
        snapshot = decode_snapshot(got[0], where, got[1])
        if snapshot.version != version or snapshot.sha256 != link.sha256:
            raise CorruptStoreError(
                f"{where}: this copy of v{version} ({snapshot.digest}, {len(snapshot.keys)} mappings) is not what "
                f"was published as v{version} ({link.digest}, as recorded in v{version + 1}); refusing to restore "
                "mappings that were never published"
            )
        return snapshot

    def publish(self, body: bytes, version: int, replacing: Snapshot | None) -> str:
        """Publish ``body`` as ``version`` in place of ``replacing`` (``None``: nothing published yet).

        The history may only ever hold bytes that were published, and a version must
        stay restorable once it is replaced, whenever a publisher is killed. Hence:

        1. The copy of ``replacing``: the bytes just read from the live object, so they
           were published. It is written here (if missing or different) because the
           publisher of that version may have died before its step 3.
        2. The live object, conditionally on the ETag read: of publishers that read the
           same version, one lands; the others stop with ``ConflictError`` having
           written nothing but step 1.
        3. The copy of ``version``, only after step 2 won. Killed before it, the copy is
           missing until the next publish (its step 1, which must succeed before the
           live object can move on); ``rollback`` can target only replaced versions.

        No copy of a version is written before that version is live: writing it first
        let a publisher that then lost overwrite the winner's copy with mappings that
        were never published.

        Raises:
            ConflictError: the object changed since ``replacing`` was read.
            StoreError: a write failed (if the object was written, the message says so).
        """
        if replacing is not None:
            self._keep_copy(replacing.version, replacing.body)
        condition = {"IfMatch": replacing.etag} if replacing else {"IfNoneMatch": "*"}
        try:
            etag = self._put(self.key, body, **condition)
        except ClientError as exc:
            raise ConflictError(f"{self.description}: another publish changed the object meanwhile "
                                f"({error_code(exc)}); nothing of this one was published, re-run") from None
        try:
            self._keep_copy(version, body, read_first=False)
        except StoreError as exc:
            raise StoreError(f"{self.description}: v{version} is published, but its history copy was not written "
                             f"({exc}); the next sync or rollback writes it") from None
        return etag

    def _keep_copy(self, version: int, body: bytes, *, read_first: bool = True) -> None:
        """Make the history copy of ``version`` hold ``body``, its published bytes.

        ``read_first=False`` when the copy is most likely missing: the create is tried
        before any read (a role without ``s3:ListBucket`` cannot tell a missing object
        from a forbidden one by reading it).
        """
        key = self.history_key(version)
        got = self._read_copy(key) if read_first else None
        for _ in range(3):
            if got is not None and got[0] == body:
                return
            # Missing, or other bytes (left by an older policy-engine, or edited): the
            # published bytes replace them. Conditional, so a concurrent writer is noticed.
            condition = {"IfMatch": got[1]} if got is not None else {"IfNoneMatch": "*"}
            try:
                self._put(key, body, **condition)
                return
            except ClientError:
                got = self._read_copy(key, strict=True)  # someone else wrote it first: fine if the same bytes
        raise ConflictError(f"s3://{self.bucket}/{key}: being written by someone else with other content; re-run")

    def _read_copy(self, key: str, *, strict: bool = False) -> tuple[bytes, str] | None:
        """``None`` when the copy is missing (or, unless ``strict``, may be: access refused)."""
        # Without s3:ListBucket a missing object answers AccessDenied; the conditional
        # create that follows tells the two apart without overwriting anything.
        maybe_missing = ("NoSuchKey", "404") if strict else ("NoSuchKey", "404", "AccessDenied", "403")
        try:
            return self.get(key)
        except StoreError as exc:
            if error_code(exc.__cause__ or exc) in maybe_missing:
                return None
            raise

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
