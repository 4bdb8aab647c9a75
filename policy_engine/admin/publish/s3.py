"""Publishing to S3: conditional writes of the snapshot object and its history copies (admin only, boto3).

The object's format and what readers check are in ``policy_engine/adapters/s3.py``.

Candidates live in ``KEY.candidate`` and never touch ``KEY`` or its history. Every
change of that object is a conditional ``PutObject`` on the ETag read (or
``If-None-Match: *``), so of two concurrent candidate commands one lands. The record
of a candidate that ends (replaced, promoted, discarded) is written to
``KEY.candidate.history/<number>.json`` just before the object changes; the object
stays the truth about the candidate it holds.
"""

from __future__ import annotations

import datetime
import json
from collections.abc import Iterator
from typing import Any

from policy_engine.adapters.s3 import (
    CANDIDATE_SUFFIX,
    Link,
    Snapshot,
    decode_snapshot,
    encode_no_candidate,
    encode_snapshot,
    no_candidate_last,
    parse_s3_location,
)
from policy_engine.admin.aws import (
    AWS_ERRORS,
    ClientError,
    error_code,
    make_client,
    store_error,
)
from policy_engine.core.permissions import compile_records
from policy_engine.core.publish import Candidate, MappingKey, Plan
from policy_engine.core.snapshot import mappings_locator, read_snapshot
from policy_engine.errors import (
    ConflictError,
    CorruptStoreError,
    MissingStoreError,
    PolicyEngineError,
    StoreError,
)
from policy_engine.ports import Progress, VersionEntry

__all__ = ["S3Store", "S3Target"]

#: The ``format`` of a candidate's record.
RECORD_FORMAT = "policy-engine/candidate-record@1"


class S3Store:
    """Reads and conditionally writes the snapshot object and its history copies.

    Building one never creates a bucket.
    """

    def __init__(self, bucket: str, key: str, *, client: Any = None) -> None:
        self.bucket, self.key = bucket, key
        self.description = f"s3://{bucket}/{key}"
        self.client = client if client is not None else make_client("s3")
        #: PutObject requests made.
        self.write_requests = 0

    def history_key(self, version: int) -> str:
        return f"{self.key}.history/{version:010d}.json"

    @property
    def candidate_key(self) -> str:
        return self.key + CANDIDATE_SUFFIX

    def candidate_record_key(self, number: int) -> str:
        return f"{self.candidate_key}.history/{number:010d}.json"

    def get(self, key: str | None = None) -> tuple[bytes, str]:
        """``(body, etag)`` of the snapshot object (or of ``key``).

        Raises:
            MissingStoreError: the bucket or the object does not exist.
            StoreError: any other failure.
        """
        where = f"s3://{self.bucket}/{key or self.key}"
        try:
            response = self.client.get_object(Bucket=self.bucket, Key=key or self.key)
            return response["Body"].read(), str(response["ETag"])
        except AWS_ERRORS as exc:
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
        return decode_snapshot(got[0], self.description, got[1])

    def check_loadable(self, snapshot: Snapshot) -> None:
        """Check the live object as the authorizers check it when they load it.

        Raises:
            CorruptStoreError, PermissionsError: they refuse it (an edit that kept the
                digest, a candidate's document).
        """
        if snapshot.based_on is not None:
            raise CorruptStoreError(f"{self.description}: holds a candidate, not a published version (based_on)")
        _, records = read_snapshot(snapshot.body, self.description)
        compile_records(records, mappings_locator(self.description), version=f"v{snapshot.version}")

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


class S3Target:
    """``PublishTarget`` for ``s3://BUCKET/KEY``."""

    def __init__(self, location: str, *, client: Any = None) -> None:
        bucket, key = parse_s3_location(location, "TARGET")
        self.store = S3Store(bucket, key, client=client)
        self.description = self.store.description
        self.snapshot: Snapshot | None = None
        self.last_candidate = 0
        self._candidate: Snapshot | None = None
        #: The candidate object's ETag (``None``: there is no object yet).
        self._candidate_etag: str | None = None

    @property
    def write_requests(self) -> int:
        return self.store.write_requests

    def published(self, repair: bool = False) -> tuple[int, frozenset[MappingKey]]:
        self.snapshot = self.store.current()
        if self.snapshot is None:
            return 0, frozenset()
        if not repair:
            # An object the authorizers refuse is never built on as "unchanged"; --repair
            # puts it right (``complete``) or publishes the YAML over it, and listing
            # history reads past it.
            try:
                self.store.check_loadable(self.snapshot)
            except PolicyEngineError as exc:
                raise CorruptStoreError(f"{self.store.description}: the authorizers refuse the live object ({exc}); "
                                        "nothing was written; `sync --repair` puts back what was published as "
                                        f"v{self.snapshot.version} (or publishes the YAML over it)") from None
        return self.snapshot.version, self.snapshot.keys

    def view(self, version: int) -> frozenset[MappingKey]:
        assert self.snapshot is not None
        return self.store.restorable(version, self.snapshot).keys

    def history(self) -> list[VersionEntry]:
        if self.snapshot is None:
            return []
        entries = [_entry(self.snapshot)]
        for version, snapshot, link, problem in self.store.history(self.snapshot):
            if snapshot is not None:
                entries.append(_entry(snapshot))
            else:
                # Listed with what was published (when known), never with the copy's content.
                entries.append({"version": version, "digest": link.digest if link else None, "mappings": None,
                                "published_at": None, "note": f"not restorable: {problem}"})
        return entries[::-1]

    def apply(self, desired: frozenset[MappingKey], change: Plan, note: str, take_over: bool,
              progress: Progress | None) -> int:
        import datetime

        version = (self.snapshot.version if self.snapshot else 0) + 1
        published_at = datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")
        body = encode_snapshot(version, desired, note, published_at, previous=self.snapshot)
        self.store.publish(body, version, self.snapshot)
        if progress is not None:
            progress(1, 1)
        return version

    def complete(self) -> bool:
        """Put back what was published as the live version when the authorizers refuse the
        object (an edit that kept its digest): its history copy, checked to be that version
        and to load. Otherwise the object is the whole version: nothing to do.

        Raises:
            CorruptStoreError: the history copy is missing or is not that version.
            ConflictError: the object changed meanwhile.
        """
        snapshot = self.snapshot
        if snapshot is None:
            return False
        try:
            self.store.check_loadable(snapshot)
            return False
        except PolicyEngineError:
            pass
        key = self.store.history_key(snapshot.version)
        where = f"s3://{self.store.bucket}/{key}"
        got = self.store._read_copy(key, strict=True)
        if got is None:
            raise CorruptStoreError(f"{where}: missing, so v{snapshot.version} cannot be put back; publish a change")
        copy = decode_snapshot(got[0], where, got[1])
        if copy.version != snapshot.version or copy.digest != snapshot.digest:
            raise CorruptStoreError(f"{where}: holds v{copy.version} ({copy.digest}), not v{snapshot.version} as "
                                    "published; publish a change")
        self.store.check_loadable(copy)
        try:
            self.store._put(self.store.key, got[0], IfMatch=snapshot.etag)
        except ClientError:
            raise ConflictError(f"{self.store.description}: changed meanwhile; nothing was written, re-run") from None
        return True

    # -- candidates -------------------------------------------------------------------

    def candidate(self) -> Candidate | None:
        where = f"s3://{self.store.bucket}/{self.store.candidate_key}"
        # Missing, or AccessDenied (a role without s3:ListBucket asking about a missing
        # object): a candidate publish then creates it with If-None-Match, which tells the two apart.
        got = self.store._read_copy(self.store.candidate_key)
        if got is None:
            self.last_candidate, self._candidate, self._candidate_etag = 0, None, None
            return None
        body, etag = got
        self._candidate_etag, self._candidate = etag, None
        last = no_candidate_last(body, where)
        if last is not None:
            self.last_candidate = last
            return None
        snapshot = decode_snapshot(body, where, etag)
        if snapshot.based_on is None:
            raise CorruptStoreError(f"{where}: holds a published version, not a candidate (no based_on)")
        self.last_candidate, self._candidate = snapshot.version, snapshot
        return _candidate_of(snapshot)

    def candidate_keys(self, candidate: Candidate) -> frozenset[MappingKey]:
        assert self._candidate is not None and self._candidate.version == candidate.number
        return self._candidate.keys

    def publish_candidate(self, desired: frozenset[MappingKey], based_on: int, note: str,
                          progress: Progress | None) -> int:
        number = self.last_candidate + 1
        published_at = datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")
        body = encode_snapshot(number, desired, note, published_at, based_on=based_on)
        if self._candidate is not None:
            self._record(_candidate_of(self._candidate), "replaced", replaced_by=number)
        self._replace_candidate(body, f"c{number} was not published")
        if progress is not None:
            progress(1, 1)
        return number

    def end_candidate(self, candidate: Candidate, status: str, promoted_to: int | None = None) -> bool:
        if not self._record(candidate, status, promoted_to=promoted_to):
            return False
        try:
            self._replace_candidate(encode_no_candidate(max(self.last_candidate, candidate.number)), "")
        except ConflictError:
            return False
        return True

    def candidate_history(self) -> list[VersionEntry]:
        current = self.candidate()
        entries: list[VersionEntry] = []
        for number in range(1, self.last_candidate + 1):
            if current is not None and number == current.number:
                entries.append(_candidate_entry(current, "candidate"))
                continue
            got = self.store._read_copy(self.store.candidate_record_key(number))
            if got is None:
                continue  # never published, or its record was not written
            entries.append(_record_entry(got[0], f"s3://{self.store.bucket}/"
                                                  f"{self.store.candidate_record_key(number)}"))
        return entries

    def _record(self, candidate: Candidate, status: str, *, promoted_to: int | None = None,
                replaced_by: int | None = None) -> bool:
        """Write how ``candidate`` ended; ``False`` when it was already recorded as ending another
        way (a promote and a discard racing: the loser neither ends it nor rewrites its
        record). S3 has no condition on another object's content, so this is read, then
        written: it narrows the race to that moment, where DynamoDB closes it."""
        key = self.store.candidate_record_key(candidate.number)
        got = self.store._read_copy(key)
        if got is not None:
            try:
                ended = json.loads(got[0]).get("status")
            except (ValueError, AttributeError):
                ended = None
            if ended is not None and ended != status:
                return False
        record = {"format": RECORD_FORMAT, **_candidate_entry(candidate, status), "promoted_to": promoted_to,
                  "replaced_by": replaced_by,
                  "ended_at": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")}
        self.store._put(key, json.dumps(record).encode())
        return True

    def _replace_candidate(self, body: bytes, lost: str) -> None:
        etag = self._candidate_etag
        condition = {"IfMatch": etag} if etag else {"IfNoneMatch": "*"}
        try:
            self._candidate_etag = self.store._put(self.store.candidate_key, body, **condition)
        except ClientError as exc:
            raise ConflictError(f"{self.description}: the candidate changed meanwhile (another sync --candidate, "
                                f"promote or discard: {error_code(exc)}); {lost or 'nothing changed'}, "
                                "re-run") from None


def _entry(snapshot: Snapshot) -> VersionEntry:
    return {"version": snapshot.version, "digest": snapshot.digest, "mappings": len(snapshot.keys),
            "published_at": snapshot.published_at, "note": snapshot.note}


def _candidate_of(snapshot: Snapshot) -> Candidate:
    assert snapshot.based_on is not None
    return Candidate(snapshot.version, snapshot.digest, len(snapshot.keys), snapshot.published_at, snapshot.note,
                     snapshot.based_on)


def _candidate_entry(candidate: Candidate, status: str) -> VersionEntry:
    return {"version": candidate.number, "digest": candidate.digest, "mappings": candidate.mappings,
            "published_at": candidate.published_at, "note": candidate.note, "candidate": True,
            "based_on": candidate.based_on, "status": status, "promoted_to": None, "replaced_by": None}


def _record_entry(body: bytes, where: str) -> VersionEntry:
    try:
        record = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        record = None
    if not isinstance(record, dict) or record.get("format") != RECORD_FORMAT:
        return {"version": None, "digest": None, "mappings": None, "published_at": None,
                "note": f"{where}: not a candidate record", "candidate": True, "status": None}

    def number(name: str) -> int | None:
        value = record.get(name)
        return value if type(value) is int else None

    def text(name: str) -> str | None:
        value = record.get(name)
        return value if isinstance(value, str) else None

    return {"version": number("version"), "digest": text("digest"), "mappings": number("mappings"),
            "published_at": text("published_at"), "note": text("note"), "candidate": True,
            "based_on": number("based_on"), "status": text("status"), "promoted_to": number("promoted_to"),
            "replaced_by": number("replaced_by")}
