"""Permission mappings in a DynamoDB table: versioned items, one pointer, atomic flips.

Layout (string keys ``pk``/``sk``; created by ``migrations/0001_create_table.py``)::

    pk        sk                                                              attributes
    --------  --------------------------------------------------------------  ------------------------------
    META      PUBLISHED                                                       version, digest, mappings,
                                                                              published_at, note, claim_*
    META      VERSION#0000000007                                              one per publish (history)
    META      MIGRATION#0001                                                  one per applied migration
    MAPPINGS  arn:aws:execute-api:...:a1b2c3d4e5 dev GET /pets pets:read @7   arn, stage, httpVerb,
                                                                              resource, scope, added, removed?

* One item per mapping and per stretch of versions it was live: ``added`` is the
  version that published it, ``removed`` (absent while live) the version that dropped
  it. The sort key reads like the mapping, so the console doubles as a viewer.
* Version ``V`` is the items with ``added <= V`` and no ``removed`` or ``removed > V``.
  A sync for ``V+1`` only adds items with ``added = V+1`` and sets ``removed = V+1``
  on items it drops: neither changes what version ``V`` (or any earlier one) reads,
  so every published version is immutable and readers of ``V`` never see a half
  written ``V+1``. The pointer then flips from ``V`` to ``V+1`` in one conditional write.
* Before writing, a sync *claims* ``V+1`` on the pointer (conditional on the pointer
  still being ``V`` and nobody else holding a live claim). The flip is conditional on
  holding that claim, so of two concurrent syncs exactly one publishes.
* The pointer carries the digest of its version's content; a reader recomputes it over
  what it loaded and refuses a mismatch (an item edited or deleted by hand).

Readers: a warm container checks "changed?" with one ``GetItem`` of the pointer; a load
is one ``Query`` of the ``MAPPINGS`` partition (1 MB pages). The pointer is one item
(DynamoDB caps items at 400 KB); what a load may accumulate is capped by ``max_bytes``
(``PERMISSIONS_MAX_BYTES``, counted as the sort keys' bytes, which spell every mapping).
A version refused for its size is remembered, so asking again costs only the ``GetItem``.
"""

from __future__ import annotations

import random
import re
import socket
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor, as_completed
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from policy_engine.adapters.aws import AWS_ERRORS, THROTTLED, ClientError, error_code, make_client, store_error
from policy_engine.core.publish import MappingKey, digest, record_of
from policy_engine.errors import (
    ConfigurationError,
    ConflictError,
    CorruptStoreError,
    MissingStoreError,
    PermissionsError,
    StoreError,
    StoreTooLargeError,
)
from policy_engine.ports import RawPermissions

__all__ = [
    "DynamoDbPermissionSource",
    "DynamoDbStore",
    "Pointer",
    "StoredMapping",
    "sort_key",
]

META = "META"
POINTER_SK = "PUBLISHED"
MAPPINGS = "MAPPINGS"
VERSION_PREFIX = "VERSION#"
MIGRATION_PREFIX = "MIGRATION#"

#: Seconds a claim stays valid without a heartbeat; a dead sync's claim lapses after it.
LEASE_SECONDS = 120.0
BATCH_ITEMS = 25                 # BatchWriteItem's hard limit
BATCH_BYTES = 15 * 1024 * 1024   # under the 16 MB request limit, with room for the envelope
MAX_SORT_KEY_BYTES = 1024
MAX_ATTEMPTS = 10
#: Threads writing batches during a sync.
WRITE_WORKERS = 8

_TABLE_NAME = re.compile(r"[A-Za-z0-9_.-]{3,255}")
_FIELDS = ("arn", "stage", "httpVerb", "resource", "scope")


def check_table_name(name: str, variable: str = "PERMISSIONS_SOURCE") -> str:
    """``name`` if DynamoDB accepts it as a table name.

    Raises:
        ConfigurationError: it does not.
    """
    if not _TABLE_NAME.fullmatch(name):
        raise ConfigurationError(variable, f"{name!r} is not a DynamoDB table name (3-255 of A-Z a-z 0-9 _ . -)")
    return name


def sort_key(key: MappingKey, added: int) -> str:
    """The readable sort key of ``key`` published at version ``added``.

    No field can hold a space (the schema forbids it), so the key splits back exactly.
    """
    return f"{key.arn} {key.stage} {key.verb} {key.resource} {key.scope} @{added}"


def parse_sort_key(sk: str, table: str) -> tuple[MappingKey, int]:
    """``(key, added)`` of a mapping sort key.

    Raises:
        CorruptStoreError: ``sk`` is not one a sync writes.
    """
    parts = sk.split(" ")
    if len(parts) == 6 and parts[5].startswith("@") and parts[5][1:].isdigit() and all(parts[:5]):
        return MappingKey(*parts[:5]), int(parts[5][1:])
    raise CorruptStoreError(f"dynamodb://{table} item (pk=MAPPINGS, sk={sk!r}): not written by policy-engine sync")


def version_label(version: int) -> str:
    return f"v{version}"


@dataclass(frozen=True, slots=True)
class Claim:
    owner: str
    version: int
    expires: float
    started: float


@dataclass(frozen=True, slots=True)
class Pointer:
    """The published-version item. ``version`` 0 means nothing was published yet."""

    version: int
    digest: str
    mappings: int
    published_at: str
    note: str
    claim: Claim | None


@dataclass(frozen=True, slots=True)
class StoredMapping:
    """A mapping item as read back from the table."""

    key: MappingKey
    added: int
    removed: int | None
    sk: str

    def live_at(self, version: int) -> bool:
        return self.added <= version and (self.removed is None or self.removed > version)

    def item(self, removed: int | None) -> dict[str, Any]:
        return _mapping_item(self.key, self.added, removed)


def _mapping_item(key: MappingKey, added: int, removed: int | None) -> dict[str, Any]:
    item: dict[str, Any] = {
        "pk": {"S": MAPPINGS},
        "sk": {"S": sort_key(key, added)},
        "arn": {"S": key.arn},
        "stage": {"S": key.stage},
        "httpVerb": {"S": key.verb},
        "resource": {"S": key.resource},
        "scope": {"S": key.scope},
        "added": {"N": str(added)},
    }
    if removed is not None:
        item["removed"] = {"N": str(removed)}
    return item


def _s(item: dict[str, Any], name: str) -> str | None:
    value = item.get(name)
    return value.get("S") if isinstance(value, dict) else None


def _n(item: dict[str, Any], name: str) -> int | None:
    value = item.get(name)
    raw = value.get("N") if isinstance(value, dict) else None
    if raw is None:
        return None
    try:
        return int(raw)
    except ValueError:
        return None


def parse_mapping(item: dict[str, Any], table: str) -> StoredMapping:
    """A ``MAPPINGS`` item, checked to be exactly what a sync writes.

    Raises:
        CorruptStoreError: a field is missing or mistyped, or the fields disagree with
            the sort key (the item was written or edited by something else).
    """
    sk = _s(item, "sk") or repr(item.get("sk"))
    where = f"dynamodb://{table} item (pk=MAPPINGS, sk={sk!r})"
    values = {name: _s(item, name) for name in _FIELDS}
    added, removed = _n(item, "added"), _n(item, "removed")
    missing = [name for name, value in values.items() if value is None]
    if "added" not in item or added is None:
        missing.append("added")
    if "removed" in item and removed is None:
        missing.append("removed (a number)")
    if missing:
        raise CorruptStoreError(f"{where}: not written by policy-engine sync (missing or mistyped: {', '.join(missing)})")
    key = MappingKey(*(str(values[name]) for name in _FIELDS))
    assert added is not None
    if sort_key(key, added) != sk:
        raise CorruptStoreError(f"{where}: its attributes do not match its sort key (edited outside policy-engine sync?)")
    return StoredMapping(key, added, removed, sk)


class DynamoDbStore:
    """Low-level access to one permission table: paging, batching, conditional writes.

    Building one never creates or alters the table (``policy-engine migrate`` does).
    ``client`` is any object with the boto3 DynamoDB client's methods (tests inject
    fault-raising wrappers); ``sleep`` is used for back-off.
    """

    def __init__(
        self,
        table: str,
        *,
        client: Any = None,
        admin: bool = False,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.table = check_table_name(table)
        self.description = f"dynamodb://{table}"
        self.client = client if client is not None else make_client("dynamodb", admin=admin)
        self._sleep = sleep
        self._clock = clock
        #: DynamoDB requests made that write (BatchWriteItem, UpdateItem, PutItem), retries included.
        self.write_requests = 0
        self._count_lock = threading.Lock()
        #: ``Limit`` of each Query page (``None``: DynamoDB's 1 MB pages).
        self.page_size: int | None = None

    # -- plumbing ---------------------------------------------------------------------

    def call(self, operation: str, **kwargs: Any) -> Any:
        """One client call; botocore failures come out as ``StoreError``.

        Raises:
            StoreError: any failure (``MissingStoreError`` for a missing table).
        """
        if operation in ("batch_write_item", "update_item", "put_item", "delete_item"):
            with self._count_lock:
                self.write_requests += 1
        if operation != "batch_write_item":
            kwargs["TableName"] = self.table
        try:
            return getattr(self.client, operation)(**kwargs)
        except AWS_ERRORS as exc:
            if error_code(exc) == "ConditionalCheckFailedException":
                raise
            raise store_error(exc, self.description) from exc

    def query(
        self, pk: str, *, consistent: bool, filter_version: int | None = None, only_sort_key: bool = False
    ) -> Iterator[dict[str, Any]]:
        """Every item of partition ``pk`` (optionally only those live at ``filter_version``,
        optionally only their ``sk``)."""
        kwargs: dict[str, Any] = {
            "KeyConditionExpression": "#pk = :pk",
            "ExpressionAttributeNames": {"#pk": "pk"},
            "ExpressionAttributeValues": {":pk": {"S": pk}},
            "ConsistentRead": consistent,
        }
        if self.page_size:
            kwargs["Limit"] = self.page_size
        if filter_version is not None:
            # Filtering server-side still costs the read, but keeps removed history off the wire.
            kwargs["FilterExpression"] = "#a <= :v AND (attribute_not_exists(#r) OR #r > :v)"
            kwargs["ExpressionAttributeNames"].update({"#a": "added", "#r": "removed"})
            kwargs["ExpressionAttributeValues"][":v"] = {"N": str(filter_version)}
        if only_sort_key:
            # The sort key spells the whole mapping; one attribute instead of nine cuts the
            # bytes and, above all, botocore's parsing time of a cold load.
            kwargs["ProjectionExpression"] = "#sk"
            kwargs["ExpressionAttributeNames"]["#sk"] = "sk"
        while True:
            page = self.call("query", **kwargs)
            yield from page.get("Items", ())
            # AWS and DynamoDB Local may end with an empty page that still has a key; moto never does.
            last = page.get("LastEvaluatedKey")
            if not last:
                return
            kwargs["ExclusiveStartKey"] = last

    def batch_write(
        self,
        requests: Sequence[dict[str, Any]],
        *,
        after_batch: Callable[[int], None] | None = None,
        workers: int = WRITE_WORKERS,
    ) -> None:
        """Put/Delete ``requests`` in BatchWriteItem calls of at most 25 items and 15 MB.

        Chunks go out on ``workers`` threads (a sync is bound by round trips, and the
        order of writes does not matter: nothing is visible before the flip).
        Unprocessed items and throttling are retried with capped, jittered exponential
        back-off. ``after_batch(done)`` runs on the calling thread after each chunk
        (progress, claim heartbeats); if it raises, the remaining chunks are dropped.

        Raises:
            StoreError: a chunk could not be written after ``MAX_ATTEMPTS`` tries.
        """
        chunks = list(_chunks(requests))
        done = 0
        with ThreadPoolExecutor(max_workers=max(1, min(workers, len(chunks) or 1))) as pool:
            futures = [pool.submit(self._write_chunk, chunk) for chunk in chunks]
            try:
                for future in as_completed(futures):
                    done += future.result()
                    if after_batch is not None:
                        after_batch(done)
            except BaseException:
                for future in futures:
                    future.cancel()
                raise

    def _write_chunk(self, chunk: list[dict[str, Any]]) -> int:
        pending = chunk
        attempt = 0
        while pending:
            try:
                response = self.call("batch_write_item", RequestItems={self.table: pending})
                pending = response.get("UnprocessedItems", {}).get(self.table, [])
            except StoreError as exc:
                if error_code(exc.__cause__) not in THROTTLED:
                    raise
            if pending:
                attempt += 1
                if attempt >= MAX_ATTEMPTS:
                    raise StoreError(
                        f"{self.description}: {len(pending)} writes still unprocessed after {attempt} attempts "
                        "(throttled); nothing was published, re-run the sync"
                    )
                self._sleep(backoff(attempt))
        return len(chunk)

    # -- reading ----------------------------------------------------------------------

    def read_pointer(self, *, consistent: bool) -> Pointer:
        """The published-version item (version 0 when nothing was published).

        Raises:
            MissingStoreError: the table does not exist.
            CorruptStoreError: the pointer item is malformed.
            StoreError: the table cannot be read.
        """
        response = self.call("get_item", Key=_key(META, POINTER_SK), ConsistentRead=consistent)
        item = response.get("Item")
        if not item:
            return Pointer(0, digest(()), 0, "", "", None)
        claim = None
        if "claim_owner" in item:
            claim = Claim(
                owner=_s(item, "claim_owner") or "?",
                version=_n(item, "claim_version") or 0,
                expires=float(item.get("claim_expires", {}).get("N", "0")),
                started=float(item.get("claim_started", {}).get("N", "0")),
            )
        if "version" not in item:
            return Pointer(0, digest(()), 0, "", "", claim)
        version, content = _n(item, "version"), _s(item, "digest")
        if version is None or content is None:
            raise CorruptStoreError(f"{self.description} item (pk=META, sk=PUBLISHED): version or digest missing")
        return Pointer(version, content, _n(item, "mappings") or 0, _s(item, "published_at") or "",
                       _s(item, "note") or "", claim)

    def read_mappings(self) -> list[StoredMapping]:
        """Every mapping item, all versions (strongly consistent).

        Raises:
            CorruptStoreError: items that no sync wrote (each one named).
            StoreError: the table cannot be read.
        """
        found: list[StoredMapping] = []
        problems: list[str] = []
        for item in self.query(MAPPINGS, consistent=True):
            try:
                found.append(parse_mapping(item, self.table))
            except CorruptStoreError as exc:
                problems.extend(exc.problems)
        if problems:
            raise CorruptStoreError(problems)
        return found

    def history(self) -> list[dict[str, Any]]:
        """The version log, oldest first: one dict per publish."""
        entries = []
        for item in self.query(META, consistent=True):
            sk = _s(item, "sk") or ""
            if sk.startswith(VERSION_PREFIX):
                entries.append({
                    "version": _n(item, "version"),
                    "digest": _s(item, "digest"),
                    "mappings": _n(item, "mappings"),
                    "added": _n(item, "added"),
                    "removed": _n(item, "removed"),
                    "published_at": _s(item, "published_at"),
                    "note": _s(item, "note"),
                })
        return entries

    # -- publishing -------------------------------------------------------------------

    def claim(self, current: int, owner: str, *, take_over: bool = False) -> Claim:
        """Reserve version ``current + 1`` for ``owner``.

        Raises:
            ConflictError: the pointer moved past ``current`` or another live sync holds a claim.
        """
        now = self._clock()
        names = {"#co": "claim_owner", "#cv": "claim_version", "#ce": "claim_expires", "#cs": "claim_started",
                 "#v": "version"}
        values: dict[str, Any] = {
            ":owner": {"S": owner}, ":next": {"N": str(current + 1)},
            ":expires": {"N": repr(now + LEASE_SECONDS)}, ":now": {"N": repr(now)},
        }
        condition = "attribute_not_exists(#v)" if current == 0 else "#v = :cur"
        if current:
            values[":cur"] = {"N": str(current)}
        if not take_over:
            condition += " AND (attribute_not_exists(#co) OR #ce < :now)"
        try:
            self.call("update_item", Key=_key(META, POINTER_SK),
                      UpdateExpression="SET #co = :owner, #cv = :next, #ce = :expires, #cs = :now",
                      ConditionExpression=condition, ExpressionAttributeNames=names, ExpressionAttributeValues=values)
        except ClientError:
            raise self._conflict(current) from None
        return Claim(owner, current + 1, now + LEASE_SECONDS, now)

    def renew(self, claim: Claim) -> Claim:
        """Extend ``claim``'s lease.

        Raises:
            ConflictError: another sync took the claim over.
        """
        now = self._clock()
        try:
            self.call("update_item", Key=_key(META, POINTER_SK), UpdateExpression="SET #ce = :expires",
                      ConditionExpression="#co = :owner",
                      ExpressionAttributeNames={"#ce": "claim_expires", "#co": "claim_owner"},
                      ExpressionAttributeValues={":expires": {"N": repr(now + LEASE_SECONDS)},
                                                 ":owner": {"S": claim.owner}})
        except ClientError:
            raise ConflictError(f"{self.description}: another sync took over the claim on "
                                f"{version_label(claim.version)}; nothing of this sync was published") from None
        return Claim(claim.owner, claim.version, now + LEASE_SECONDS, claim.started)

    def release(self, claim: Claim) -> None:
        """Drop ``claim`` if still ours (after a failed sync), so a re-run need not wait."""
        try:
            self.call("update_item", Key=_key(META, POINTER_SK),
                      UpdateExpression="REMOVE #co, #cv, #ce, #cs", ConditionExpression="#co = :owner",
                      ExpressionAttributeNames={"#co": "claim_owner", "#cv": "claim_version",
                                                "#ce": "claim_expires", "#cs": "claim_started"},
                      ExpressionAttributeValues={":owner": {"S": claim.owner}})
        except (ClientError, StoreError):
            pass  # lost or unreachable: the lease lapses on its own

    def flip(self, claim: Claim, content: str, mappings: int, note: str, published_at: str) -> None:
        """Publish ``claim.version``: one conditional write of the pointer.

        Raises:
            ConflictError: the claim was lost (taken over) or the pointer moved.
        """
        current = claim.version - 1
        names = {"#v": "version", "#d": "digest", "#m": "mappings", "#p": "published_at", "#n": "note",
                 "#co": "claim_owner", "#cv": "claim_version", "#ce": "claim_expires", "#cs": "claim_started"}
        values: dict[str, Any] = {
            ":next": {"N": str(claim.version)}, ":d": {"S": content}, ":m": {"N": str(mappings)},
            ":p": {"S": published_at}, ":n": {"S": note}, ":owner": {"S": claim.owner},
        }
        condition = "#co = :owner AND " + ("attribute_not_exists(#v)" if current == 0 else "#v = :cur")
        if current:
            values[":cur"] = {"N": str(current)}
        try:
            self.call("update_item", Key=_key(META, POINTER_SK),
                      UpdateExpression="SET #v = :next, #d = :d, #m = :m, #p = :p, #n = :n REMOVE #co, #cv, #ce, #cs",
                      ConditionExpression=condition, ExpressionAttributeNames=names, ExpressionAttributeValues=values)
        except ClientError:
            raise ConflictError(f"{self.description}: the claim on {version_label(claim.version)} was taken over "
                                "before this sync could publish; nothing of it was published") from None

    def _conflict(self, current: int) -> ConflictError:
        pointer = self.read_pointer(consistent=True)
        if pointer.version != current:
            return ConflictError(f"{self.description}: the published version moved from {version_label(current)} "
                                 f"to {version_label(pointer.version)} meanwhile; re-run to sync against it")
        claim = pointer.claim
        if claim is None:
            return ConflictError(f"{self.description}: the pointer changed meanwhile; re-run")
        left = max(0.0, claim.expires - self._clock())
        return ConflictError(
            f"{self.description}: sync {claim.owner} is publishing {version_label(claim.version)} "
            f"(its claim lapses in {left:.0f}s); wait and re-run, or re-run with --take-over if that sync is dead"
        )


def new_owner() -> str:
    """An id for one sync run: host, process and a random part."""
    return f"{socket.gethostname()}:{uuid.uuid4().hex[:8]}"


def backoff(attempt: int, *, base: float = 0.05, cap: float = 5.0) -> float:
    """Full-jitter exponential back-off (AWS Architecture Blog's recommendation)."""
    return random.uniform(0, min(cap, base * 2 ** attempt))


def _key(pk: str, sk: str) -> dict[str, Any]:
    return {"pk": {"S": pk}, "sk": {"S": sk}}


def _request_size(request: dict[str, Any]) -> int:
    item = request.get("PutRequest", {}).get("Item") or request.get("DeleteRequest", {}).get("Key") or {}
    return sum(len(name) + len(next(iter(value.values()))) for name, value in item.items()) + 64


def _chunks(requests: Sequence[dict[str, Any]]) -> Iterator[list[dict[str, Any]]]:
    chunk: list[dict[str, Any]] = []
    size = 0
    for request in requests:
        request_size = _request_size(request)
        if chunk and (len(chunk) == BATCH_ITEMS or size + request_size > BATCH_BYTES):
            yield chunk
            chunk, size = [], 0
        chunk.append(request)
        size += request_size
    if chunk:
        yield chunk


def put_request(item: dict[str, Any]) -> dict[str, Any]:
    return {"PutRequest": {"Item": item}}


def delete_request(sk: str, pk: str = MAPPINGS) -> dict[str, Any]:
    return {"DeleteRequest": {"Key": _key(pk, sk)}}


def new_mapping_item(key: MappingKey, added: int) -> dict[str, Any]:
    """The item a sync writes for ``key`` published at ``added``.

    Raises:
        PermissionsError: the mapping is too long for a DynamoDB sort key.
    """
    sk = sort_key(key, added)
    if len(sk.encode()) > MAX_SORT_KEY_BYTES:
        raise PermissionsError(f"mapping {key} is too long to store in DynamoDB "
                               f"({len(sk.encode())} bytes of key, at most {MAX_SORT_KEY_BYTES})")
    return _mapping_item(key, added, None)


def version_item(version: int, content: str, mappings: int, added: int, removed: int, note: str,
                 published_at: str, owner: str) -> dict[str, Any]:
    return {
        "pk": {"S": META}, "sk": {"S": f"{VERSION_PREFIX}{version:010d}"},
        "version": {"N": str(version)}, "digest": {"S": content}, "mappings": {"N": str(mappings)},
        "added": {"N": str(added)}, "removed": {"N": str(removed)}, "note": {"S": note},
        "published_at": {"S": published_at}, "owner": {"S": owner},
    }


class DynamoDbPermissionSource:
    """``PermissionSource`` over a table published by ``policy-engine sync``.

    ``fetch(known_etag)`` costs one eventually consistent ``GetItem`` when nothing was
    published since; otherwise one paginated ``Query``. The loaded set must hash to the
    pointer's digest; a mismatch is retried once with strongly consistent reads (an
    eventually consistent page may trail the flip) and then refused.
    ``max_bytes`` caps the sort-key bytes one load reads (``None``: no cap, for tools).
    """

    def __init__(self, table: str, *, client: Any = None, max_bytes: int | None = None) -> None:
        self._store = DynamoDbStore(table, client=client)
        self.description = self._store.description
        self._max_bytes = max_bytes
        self._refused: StoreTooLargeError | None = None

    def fetch(self, known_etag: str | None) -> RawPermissions | None:
        """The published mappings, or ``None`` when the version still equals ``known_etag``.

        Raises:
            MissingStoreError: no table, or nothing published yet.
            CorruptStoreError: items no sync wrote, or content not matching the digest.
            StoreTooLargeError: the version holds more than ``max_bytes`` (again, after one
                ``GetItem``, while that version stays published).
            StoreError: the table cannot be read (throttled, unreachable, access denied).
        """
        store = self._store
        pointer = store.read_pointer(consistent=False)
        if pointer.version == 0:
            raise MissingStoreError(f"{self.description}: nothing published yet (run policy-engine sync)")
        etag = f"{version_label(pointer.version)}:{pointer.digest}"
        if etag == known_etag:
            return None
        refused = self._refused
        if refused is not None and refused.etag == etag:
            raise StoreTooLargeError(str(refused), etag=etag)
        for consistent in (False, True):
            try:
                keys = self._load(pointer.version, consistent, etag)
            except StoreTooLargeError as exc:
                self._refused = exc
                raise
            if digest(keys) == pointer.digest:
                break
        else:
            raise CorruptStoreError(
                f"{self.description}: {version_label(pointer.version)} holds {len(keys)} mappings that do not match "
                f"its published digest ({pointer.mappings} mappings); an item was changed outside policy-engine sync"
            )
        ordered = sorted(keys)
        records = [record_of(k) for k in ordered]

        def locate(path: tuple[int | str, ...]) -> str:
            if path and isinstance(path[0], int) and path[0] < len(ordered):
                sk = sort_key(ordered[path[0]], 0).rsplit(" @", 1)[0]
                return f"{self.description} item {sk!r}"
            return self.description

        return RawPermissions(records, locate, version_label(pointer.version), etag)

    def _load(self, version: int, consistent: bool, etag: str) -> list[MappingKey]:
        keys = []
        problems = []
        table = self._store.table
        limit, read = self._max_bytes, 0
        for item in self._store.query(MAPPINGS, consistent=consistent, filter_version=version, only_sort_key=True):
            sk = _s(item, "sk") or ""
            read += len(sk.encode())
            if limit is not None and read > limit:
                raise StoreTooLargeError(
                    f"{self.description} {version_label(version)} holds more than {limit} bytes of mappings; "
                    f"PERMISSIONS_MAX_BYTES is {limit}: not loaded (publish fewer mappings or raise the limit)",
                    etag=etag)
            try:
                keys.append(parse_sort_key(sk, table)[0])
            except CorruptStoreError as exc:
                problems.extend(exc.problems)
        if problems:
            raise CorruptStoreError(problems)
        return keys


def live_keys(mappings: Iterable[StoredMapping], version: int) -> set[MappingKey]:
    """The content of ``version``."""
    return {m.key for m in mappings if m.live_at(version)}
