"""Publishing to a DynamoDB table: sync, rollback and history (admin only, boto3).

The layout is the reader's (``policy_engine/adapters/dynamodb.py`` draws it); this
module writes it. A sync for ``V+1``:

1. claims ``V+1`` on the pointer (conditional on the pointer still being ``V`` and
   nobody else holding a live claim), so of two concurrent syncs exactly one publishes;
2. writes, in 25-item batches on a few threads, the ``MAPPINGS`` changes (new items
   with ``added = V+1``, ``removed = V+1`` on dropped ones: neither changes what ``V``
   or any earlier version reads), the version record, and ``V+1``'s snapshot parts
   under a sort key of its own; it also deletes snapshot parts no reader needs any
   more (all but ``V``'s: a reader that still holds an older pointer retries on the
   current one);
3. reads everything back and checks it against the plan (the ``MAPPINGS`` digest and
   the parts' SHA-256), so a version whose writes do not add up is never published;
4. flips the pointer from ``V`` to ``V+1`` (and to ``V+1``'s snapshot) in one
   conditional write, conditional on still holding the claim.

A sync that dies before step 4 leaves ``V`` whole; the next one reuses or deletes
its leftovers.

Candidates (``sync --candidate``, ``promote``, ``discard``) touch only ``META/CANDIDATE``,
their records ``META/CANDIDATE#N`` and their own snapshot parts (sort keys ``C...``),
never what the live version reads. A candidate publish writes its parts, reads them
back, writes the record of the candidate it replaces, then flips ``META/CANDIDATE``
in one conditional write (conditional on the candidate and the last number it read).
Ending a candidate writes its record first, then removes it from ``META/CANDIDATE``
(conditional on its number), then deletes its parts; a crash between two steps leaves
the pointer the truth, and the command can be run again.
"""

from __future__ import annotations

import contextlib
import hashlib
import lzma
import random
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from typing import Any

from policy_engine.adapters.dynamodb import (
    BATCH_GET_KEYS,
    CANDIDATE_PARTS,
    CANDIDATE_PREFIX,
    CANDIDATE_SK,
    MAPPINGS,
    META,
    PART_BYTES,
    POINTER_SK,
    VERSION_PREFIX,
    SnapshotRef,
    candidate_label,
    check_table_name,
    number_of,
    part_key,
    read_snapshot_ref,
    text_of,
    unpack,
    version_label,
)
from policy_engine.admin.aws import (
    AWS_ERRORS,
    THROTTLED,
    ClientError,
    error_code,
    make_client,
    store_error,
)
from policy_engine.core.permissions import compile_records, is_member_json
from policy_engine.core.publish import Candidate, MappingKey, Plan, digest
from policy_engine.core.snapshot import Snapshot, encode_snapshot, mappings_locator, read_snapshot
from policy_engine.errors import (
    ConflictError,
    CorruptStoreError,
    PermissionsError,
    PolicyEngineError,
    StoreError,
)
from policy_engine.ports import Progress, VersionEntry

__all__ = [
    "DynamoDbStore",
    "DynamoDbTarget",
    "Pointer",
    "StoredMapping",
    "delete_request",
    "live_keys",
    "new_mapping_item",
    "pack",
    "put_request",
    "read_snapshot_parts",
    "sort_key",
]

#: Seconds a claim stays valid without a heartbeat; a dead sync's claim lapses after it.
LEASE_SECONDS = 120.0
BATCH_ITEMS = 25                 # BatchWriteItem's hard limit
BATCH_BYTES = 15 * 1024 * 1024   # under the 16 MB request limit, with room for the envelope
MAX_SORT_KEY_BYTES = 1024
MAX_ATTEMPTS = 10
#: Threads writing batches during a sync.
WRITE_WORKERS = 8
#: xz preset of the snapshot: on mapping documents it compresses 10-180x (a third better
#: than zlib's best), decodes 1.5 MB in a few milliseconds, and needs 9 MiB to decode.
PACK_PRESET = 6

_FIELDS = ("arn", "stage", "httpVerb", "resource")
#: Where an item keeps what its mapping needs: a scope in ``scope`` (as always), any
#: other requirement as its canonical JSON in ``requirement`` (an item has one of them).
_SCOPE, _REQUIREMENT = "scope", "requirement"


def sort_key(key: MappingKey, added: int) -> str:
    """The readable sort key of ``key`` published at version ``added``.

    The first four fields cannot hold a space (the schema forbids it) and the version
    is last, so the key splits back exactly even when the needs text holds spaces (a
    group called ``Pet Readers``).
    """
    return f"{key.arn} {key.stage} {key.verb} {key.resource} {key.needs} @{added}"


def parse_sort_key(sk: str, table: str) -> tuple[MappingKey, int]:
    """``(key, added)`` of a mapping sort key.

    Raises:
        CorruptStoreError: ``sk`` is not one a sync writes.
    """
    head, _, added = sk.rpartition(" @")
    parts = head.split(" ", 4)
    if len(parts) == 5 and added.isdigit() and all(parts) and " " not in "".join(parts[:4]):
        return MappingKey(*parts), int(added)
    raise CorruptStoreError(f"dynamodb://{table} item (pk=MAPPINGS, sk={sk!r}): not written by policy-engine sync")


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
    #: The version's snapshot; ``None`` if published before snapshots (``complete`` adds it).
    snapshot: SnapshotRef | None = None


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
        _REQUIREMENT if is_member_json(key.needs) else _SCOPE: {"S": key.needs},
        "added": {"N": str(added)},
    }
    if removed is not None:
        item["removed"] = {"N": str(removed)}
    return item


def parse_mapping(item: dict[str, Any], table: str) -> StoredMapping:
    """A ``MAPPINGS`` item, checked to be exactly what a sync writes.

    Raises:
        CorruptStoreError: a field is missing or mistyped, or the fields disagree with
            the sort key (the item was written or edited by something else).
    """
    sk = text_of(item, "sk") or repr(item.get("sk"))
    where = f"dynamodb://{table} item (pk=MAPPINGS, sk={sk!r})"
    values = {name: text_of(item, name) for name in _FIELDS}
    scope, requirement = text_of(item, _SCOPE), text_of(item, _REQUIREMENT)
    needs = scope if requirement is None else requirement if scope is None else None
    if needs is not None and is_member_json(needs) != (requirement is not None):
        needs = None  # a scope is never a member's JSON; a requirement always is
    added, removed = number_of(item, "added"), number_of(item, "removed")
    missing = [name for name, value in values.items() if value is None]
    if needs is None:
        missing.append("one of scope, requirement")
    if "added" not in item or added is None:
        missing.append("added")
    if "removed" in item and removed is None:
        missing.append("removed (a number)")
    if missing:
        raise CorruptStoreError(
            f"{where}: not written by policy-engine sync (missing or mistyped: {', '.join(missing)})"
        )
    arn, stage, verb, resource = (str(values[name]) for name in _FIELDS)
    key = MappingKey(arn, stage, verb, resource, str(needs))
    assert added is not None
    if sort_key(key, added) != sk:
        raise CorruptStoreError(
            f"{where}: its attributes do not match its sort key (edited outside policy-engine sync?)"
        )
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
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.table = check_table_name(table)
        self.description = f"dynamodb://{table}"
        self.client = client if client is not None else make_client("dynamodb")
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
        if operation not in ("batch_write_item", "batch_get_item"):
            kwargs["TableName"] = self.table
        try:
            return getattr(self.client, operation)(**kwargs)
        except AWS_ERRORS as exc:
            if error_code(exc) == "ConditionalCheckFailedException":
                raise
            raise store_error(exc, self.description) from exc

    def query(self, pk: str, *, consistent: bool, keys_only: bool = False) -> Iterator[dict[str, Any]]:
        """Every item of partition ``pk`` (with ``keys_only``, only its ``pk`` and ``sk``)."""
        kwargs: dict[str, Any] = {
            "KeyConditionExpression": "#pk = :pk",
            "ExpressionAttributeNames": {"#pk": "pk"},
            "ExpressionAttributeValues": {":pk": {"S": pk}},
            "ConsistentRead": consistent,
        }
        if self.page_size:
            kwargs["Limit"] = self.page_size
        if keys_only:
            kwargs["ProjectionExpression"] = "#pk, #sk"
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
                owner=text_of(item, "claim_owner") or "?",
                version=number_of(item, "claim_version") or 0,
                expires=float(item.get("claim_expires", {}).get("N", "0")),
                started=float(item.get("claim_started", {}).get("N", "0")),
            )
        if "version" not in item:
            return Pointer(0, digest(()), 0, "", "", claim)
        version, content = number_of(item, "version"), text_of(item, "digest")
        if version is None or content is None:
            raise CorruptStoreError(f"{self.description} item (pk=META, sk=PUBLISHED): version or digest missing")
        return Pointer(version, content, number_of(item, "mappings") or 0, text_of(item, "published_at") or "",
                       text_of(item, "note") or "", claim, read_snapshot_ref(item, self.description))

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

    def history(self) -> list[VersionEntry]:
        """The version log, oldest first: one entry per publish."""
        entries: list[VersionEntry] = []
        for item in self.query(META, consistent=True):
            sk = text_of(item, "sk") or ""
            if sk.startswith(VERSION_PREFIX):
                entries.append({
                    "version": number_of(item, "version"),
                    "digest": text_of(item, "digest"),
                    "mappings": number_of(item, "mappings"),
                    "added": number_of(item, "added"),
                    "removed": number_of(item, "removed"),
                    "published_at": text_of(item, "published_at"),
                    "note": text_of(item, "note"),
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
        # Lost or unreachable: the lease lapses on its own.
        with contextlib.suppress(ClientError, StoreError):
            self.call("update_item", Key=_key(META, POINTER_SK),
                      UpdateExpression="REMOVE #co, #cv, #ce, #cs", ConditionExpression="#co = :owner",
                      ExpressionAttributeNames={"#co": "claim_owner", "#cv": "claim_version",
                                                "#ce": "claim_expires", "#cs": "claim_started"},
                      ExpressionAttributeValues={":owner": {"S": claim.owner}})

    def flip(self, claim: Claim, content: str, mappings: int, note: str, published_at: str,
             snapshot: SnapshotRef) -> None:
        """Publish ``claim.version`` and its snapshot: one conditional write of the pointer.

        Raises:
            ConflictError: the claim was lost (taken over) or the pointer moved.
        """
        current = claim.version - 1
        names = {"#v": "version", "#d": "digest", "#m": "mappings", "#p": "published_at", "#n": "note",
                 "#co": "claim_owner", "#cv": "claim_version", "#ce": "claim_expires", "#cs": "claim_started",
                 **_SNAPSHOT_NAMES}
        values: dict[str, Any] = {
            ":next": {"N": str(claim.version)}, ":d": {"S": content}, ":m": {"N": str(mappings)},
            ":p": {"S": published_at}, ":n": {"S": note}, ":owner": {"S": claim.owner}, **_snapshot_values(snapshot),
        }
        condition = "#co = :owner AND " + ("attribute_not_exists(#v)" if current == 0 else "#v = :cur")
        if current:
            values[":cur"] = {"N": str(current)}
        try:
            self.call("update_item", Key=_key(META, POINTER_SK),
                      UpdateExpression=f"SET #v = :next, #d = :d, #m = :m, #p = :p, #n = :n, {_SET_SNAPSHOT} "
                                       "REMOVE #co, #cv, #ce, #cs",
                      ConditionExpression=condition, ExpressionAttributeNames=names, ExpressionAttributeValues=values)
        except ClientError:
            raise ConflictError(f"{self.description}: the claim on {version_label(claim.version)} was taken over "
                                "before this sync could publish; nothing of it was published") from None

    def attach_snapshot(self, version: int, content: str, snapshot: SnapshotRef) -> None:
        """Make the pointer name ``snapshot`` for ``version``, if it still publishes that version.

        Only the snapshot changes, never what the version holds (the condition pins its digest).

        Raises:
            ConflictError: the pointer moved on meanwhile.
        """
        values = {":v": {"N": str(version)}, ":d": {"S": content}, **_snapshot_values(snapshot)}
        try:
            self.call("update_item", Key=_key(META, POINTER_SK), UpdateExpression=f"SET {_SET_SNAPSHOT}",
                      ConditionExpression="#v = :v AND #d = :d",
                      ExpressionAttributeNames={"#v": "version", "#d": "digest", **_SNAPSHOT_NAMES},
                      ExpressionAttributeValues=values)
        except ClientError:
            raise ConflictError(f"{self.description}: {version_label(version)} was replaced meanwhile; "
                                "its snapshot was not attached (re-run)") from None

    def snapshot_items(self) -> list[tuple[str, str]]:
        """``(pk, sk)`` of every snapshot part in the table (strongly consistent).

        Part ``i`` of any snapshot sits in partition ``SNAPSHOT#i``, so the partitions in
        use are always ``000`` up to some number: reading stops at the first empty one.
        """
        found: list[tuple[str, str]] = []
        for index in range(10_000):
            pk = part_key(index, "")["pk"]["S"]
            items = [(pk, text_of(item, "sk") or "") for item in self.query(pk, consistent=True, keys_only=True)]
            if not items:
                break
            found += items
        return found

    # -- candidates -------------------------------------------------------------------

    def read_candidate(self) -> tuple[int, Candidate | None, SnapshotRef | None]:
        """``(last number used, the candidate or None, its snapshot)`` (strongly consistent).

        Raises:
            CorruptStoreError: ``META/CANDIDATE`` is malformed.
            StoreError: the table cannot be read.
        """
        item = self.call("get_item", Key=_key(META, CANDIDATE_SK), ConsistentRead=True).get("Item") or {}
        last = number_of(item, "last_candidate") or 0
        if "version" not in item:
            return last, None, None
        where = f"{self.description} item (pk=META, sk={CANDIDATE_SK})"
        number, content, based_on = number_of(item, "version"), text_of(item, "digest"), number_of(item, "based_on")
        ref = read_snapshot_ref(item, self.description, CANDIDATE_SK)
        if number is None or content is None or based_on is None or ref is None:
            raise CorruptStoreError(f"{where}: version, digest, based_on or snapshot missing or mistyped")
        candidate = Candidate(number, content, number_of(item, "mappings") or 0, text_of(item, "published_at") or "",
                              text_of(item, "note") or "", based_on)
        return max(last, number), candidate, ref

    def flip_candidate(self, last: int, replacing: Candidate | None, candidate: Candidate,
                       snapshot: SnapshotRef) -> None:
        """Make ``candidate`` the candidate, if the pointer is still ``replacing`` with ``last`` used.

        Raises:
            ConflictError: another candidate publish, promote or discard got there first.
        """
        names = {"#v": "version", "#d": "digest", "#m": "mappings", "#p": "published_at", "#n": "note",
                 "#b": "based_on", "#lc": "last_candidate", **_SNAPSHOT_NAMES}
        values: dict[str, Any] = {
            ":v": {"N": str(candidate.number)}, ":d": {"S": candidate.digest}, ":m": {"N": str(candidate.mappings)},
            ":p": {"S": candidate.published_at}, ":n": {"S": candidate.note}, ":b": {"N": str(candidate.based_on)},
            **_snapshot_values(snapshot),
        }
        condition = "attribute_not_exists(#lc)" if last == 0 else "#lc = :last"
        if last:
            values[":last"] = {"N": str(last)}
        if replacing is None:
            condition += " AND attribute_not_exists(#v)"
        else:
            condition += " AND #v = :cur"
            values[":cur"] = {"N": str(replacing.number)}
        try:
            self.call("update_item", Key=_key(META, CANDIDATE_SK),
                      UpdateExpression=f"SET #v = :v, #d = :d, #m = :m, #p = :p, #n = :n, #b = :b, #lc = :v, "
                                       f"{_SET_SNAPSHOT}",
                      ConditionExpression=condition, ExpressionAttributeNames=names, ExpressionAttributeValues=values)
        except ClientError:
            raise ConflictError(f"{self.description}: the candidate changed meanwhile (another sync --candidate, "
                                f"promote or discard); {candidate.label} was not published, re-run") from None

    def remove_candidate(self, candidate: Candidate) -> bool:
        """Take ``candidate`` off ``META/CANDIDATE`` (the last number stays); ``False`` if it is no longer there."""
        try:
            self.call("update_item", Key=_key(META, CANDIDATE_SK),
                      UpdateExpression="REMOVE #v, #d, #m, #p, #n, #b, #sn, #sp, #sh, #sb",
                      ConditionExpression="#v = :v",
                      ExpressionAttributeNames={"#v": "version", "#d": "digest", "#m": "mappings", "#p": "published_at",
                                                "#n": "note", "#b": "based_on", **_SNAPSHOT_NAMES},
                      ExpressionAttributeValues={":v": {"N": str(candidate.number)}})
        except ClientError:
            return False
        return True

    def put_candidate_record(self, candidate: Candidate, status: str, *, promoted_to: int | None = None,
                             replaced_by: int | None = None) -> bool:
        """Record how ``candidate`` ended (``replaced``, ``promoted``, ``discarded``), before it does;
        ``False`` when it was already recorded as ending another way. A candidate ends once:
        of a promote and a discard racing, the loser neither ends it nor rewrites its record.
        The same record again (a promote run again after it stopped) is written."""
        item: dict[str, Any] = {
            "pk": {"S": META}, "sk": {"S": f"{CANDIDATE_PREFIX}{candidate.number:010d}"},
            "version": {"N": str(candidate.number)}, "digest": {"S": candidate.digest},
            "mappings": {"N": str(candidate.mappings)}, "published_at": {"S": candidate.published_at},
            "note": {"S": candidate.note}, "based_on": {"N": str(candidate.based_on)}, "status": {"S": status},
            "ended_at": {"S": _now()},
        }
        if promoted_to is not None:
            item["promoted_to"] = {"N": str(promoted_to)}
        if replaced_by is not None:
            item["replaced_by"] = {"N": str(replaced_by)}
        try:
            self.call("put_item", Item=item, ConditionExpression="attribute_not_exists(sk) OR #s = :s",
                      ExpressionAttributeNames={"#s": "status"}, ExpressionAttributeValues={":s": {"S": status}})
        except ClientError:
            return False
        return True

    def candidate_records(self) -> list[VersionEntry]:
        """The records of ended candidates, oldest first."""
        entries: list[VersionEntry] = []
        for item in self.query(META, consistent=True):
            if (text_of(item, "sk") or "").startswith(CANDIDATE_PREFIX):
                entries.append({
                    "version": number_of(item, "version"), "digest": text_of(item, "digest"),
                    "mappings": number_of(item, "mappings"), "published_at": text_of(item, "published_at"),
                    "note": text_of(item, "note"), "candidate": True, "based_on": number_of(item, "based_on"),
                    "status": text_of(item, "status"), "promoted_to": number_of(item, "promoted_to"),
                    "replaced_by": number_of(item, "replaced_by"),
                })
        return entries

    def read_parts(self, snapshot: SnapshotRef) -> bytes | None:
        """The compressed bytes of ``snapshot`` (strongly consistent), ``None`` if a part is missing."""
        keys = [part_key(i, snapshot.sort_key) for i in range(snapshot.parts)]
        found: dict[str, bytes] = {}
        for start in range(0, len(keys), BATCH_GET_KEYS):
            pending: list[dict[str, Any]] = keys[start:start + BATCH_GET_KEYS]
            attempt = 0
            while pending:
                response = self.call("batch_get_item", RequestItems={self.table: {"Keys": pending,
                                                                                  "ConsistentRead": True}})
                for item in response.get("Responses", {}).get(self.table, []):
                    data = item.get("data", {}).get("B")
                    if text_of(item, "sk") == snapshot.sort_key and isinstance(data, bytes):
                        found[text_of(item, "pk") or ""] = data
                pending = response.get("UnprocessedKeys", {}).get(self.table, {}).get("Keys", [])
                attempt += 1
                if pending and attempt >= MAX_ATTEMPTS:
                    raise StoreError(f"{self.description}: snapshot parts still unprocessed after {attempt} attempts "
                                     "(throttled); re-run")
                if pending:
                    self._sleep(backoff(attempt))
        parts = [found.get(key["pk"]["S"]) for key in keys]
        if any(part is None for part in parts):
            return None
        return b"".join(part for part in parts if part is not None)

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


def live_keys(mappings: Iterable[StoredMapping], version: int) -> set[MappingKey]:
    """The content of ``version``."""
    return {m.key for m in mappings if m.live_at(version)}


# -- snapshots ------------------------------------------------------------------------

_SNAPSHOT_NAMES = {"#sn": "snapshot", "#sp": "snapshot_parts", "#sh": "snapshot_sha256", "#sb": "snapshot_bytes"}
_SET_SNAPSHOT = "#sn = :sn, #sp = :sp, #sh = :sh, #sb = :sb"


def _snapshot_values(snapshot: SnapshotRef) -> dict[str, Any]:
    return {":sn": {"S": snapshot.sort_key}, ":sp": {"N": str(snapshot.parts)}, ":sh": {"S": snapshot.sha256},
            ":sb": {"N": str(snapshot.size)}}


def pack(document: bytes) -> bytes:
    """``document`` compressed as the reader's ``unpack`` expects (one xz stream)."""
    return lzma.compress(document, format=lzma.FORMAT_XZ, preset=PACK_PRESET)


def snapshot_writes(version: int, keys: frozenset[MappingKey], note: str, published_at: str, *,
                    based_on: int | None = None) -> tuple[SnapshotRef, list[dict[str, Any]]]:
    """``version``'s snapshot and the puts that store its parts under a sort key of their own.

    The sort key carries a random part, so a sync taken over while it still writes can
    only ever write parts that no pointer names. With ``based_on``, the snapshot of
    candidate ``version``: its sort key starts with ``C``, never a version's.
    """
    document = encode_snapshot(version, keys, note, published_at, based_on=based_on)
    data = pack(document)
    prefix = "" if based_on is None else CANDIDATE_PARTS
    sort_key = f"{prefix}{version:010d}#{uuid.uuid4().hex[:8]}"
    chunks = [data[i:i + PART_BYTES] for i in range(0, len(data), PART_BYTES)] or [b""]
    ref = SnapshotRef(sort_key, len(chunks), "sha256:" + hashlib.sha256(data).hexdigest(), len(document))
    puts = [put_request({**part_key(i, sort_key), "data": {"B": chunk}, "version": {"N": str(version)}})
            for i, chunk in enumerate(chunks)]
    return ref, puts


def check_snapshot(store: DynamoDbStore, ref: SnapshotRef, version: int, content: str) -> str | None:
    """Why the parts of ``ref`` are not ``version`` as published (``None``: they are)."""
    return read_snapshot_parts(store, ref, version, content)[1]


def read_snapshot_parts(store: DynamoDbStore, ref: SnapshotRef, version: int,
                        content: str) -> tuple[Snapshot | None, str | None]:
    """``(the snapshot, None)`` when the parts of ``ref`` are ``version`` as published, else ``(None, why not)``."""
    data = store.read_parts(ref)
    if data is None:
        return None, "a part is missing"
    if "sha256:" + hashlib.sha256(data).hexdigest() != ref.sha256:
        return None, "the parts do not hash to the published SHA-256"
    from policy_engine.core.snapshot import decode_snapshot

    try:
        document = unpack(data, None, store.description, "")
        snapshot = decode_snapshot(document, store.description, "")
    except StoreError as exc:
        return None, str(exc)
    if snapshot.version != version or snapshot.digest != content:
        return None, f"it holds number {snapshot.version} ({snapshot.digest})"
    # What the runtime reader checks as well (adapters.dynamodb): the size the pointer
    # records, and a candidate's snapshot only under a candidate's sort key.
    if len(document) != ref.size:
        return None, f"it is {len(document)} bytes, not the {ref.size} recorded"
    if (snapshot.based_on is not None) != ref.sort_key.startswith(CANDIDATE_PARTS):
        return None, "it is a candidate's snapshot under a version's key, or the reverse"
    # And every mapping against the schema, as the authorizers check it when they load it:
    # an edit that kept the digest (an unknown member) must not pass for "as published".
    _, records = read_snapshot(document, store.description)
    try:
        compile_records(records, mappings_locator(store.description), version=f"v{version}")
    except PolicyEngineError as exc:
        return None, f"the authorizers refuse it ({exc})"
    return snapshot, None


# -- the publish target -----------------------------------------------------------------


def _now() -> str:
    import datetime

    return datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")


class DynamoDbTarget:
    """``PublishTarget`` for ``dynamodb://TABLE``."""

    def __init__(self, table: str, *, client: Any = None, sleep: Callable[[float], None] = time.sleep) -> None:
        self.store = DynamoDbStore(table, client=client, sleep=sleep)
        self.description = self.store.description
        self.pointer = Pointer(0, digest(()), 0, "", "", None)
        self.mappings: list[StoredMapping] = []
        self.last_candidate = 0
        self._candidate: Candidate | None = None
        self._candidate_ref: SnapshotRef | None = None

    @property
    def write_requests(self) -> int:
        return self.store.write_requests

    def published(self, repair: bool = False) -> tuple[int, frozenset[MappingKey]]:
        self.pointer = self.store.read_pointer(consistent=True)
        self.mappings = self.store.read_mappings()
        live = live_keys(self.mappings, self.pointer.version)
        # With repair, the plan is made against the items as they are, so the new
        # version is exactly the YAML whatever happened to the old one.
        if digest(live) != self.pointer.digest and not repair:
            raise CorruptStoreError(
                f"{self.description}: the items of v{self.pointer.version} ({len(live)}) do not match its digest "
                f"({self.pointer.mappings} mappings published); an item was deleted or added outside policy-engine "
                f"sync{self._differences(frozenset(live))}. Nothing was written; delete an added item by its sort "
                "key, or `sync --repair` publishes the YAML over it (then versions the added item claims to belong "
                "to no longer match their digests, and `rollback` refuses them)."
            )
        return self.pointer.version, frozenset(live)

    def _differences(self, live: frozenset[MappingKey]) -> str:
        # Which items differ from what was published, by the snapshot of the live version
        # (when it is intact): the sort keys a person can look up and delete.
        ref = self.pointer.snapshot
        snapshot = None if ref is None else read_snapshot_parts(self.store, ref, self.pointer.version,
                                                                self.pointer.digest)[0]
        if snapshot is None:
            return ""
        added = sorted(m.sk for m in self.mappings if m.live_at(self.pointer.version) and m.key not in snapshot.keys)
        missing = sorted(sort_key(key, 0).rpartition(" @")[0] for key in snapshot.keys - live)
        parts = []
        if added:
            parts.append("added: " + ", ".join(repr(sk) for sk in added[:3]) + (" ..." if len(added) > 3 else ""))
        if missing:
            parts.append("missing: " + ", ".join(repr(text) for text in missing[:3])
                         + (" ..." if len(missing) > 3 else ""))
        return f" ({'; '.join(parts)})" if parts else ""

    def view(self, version: int) -> frozenset[MappingKey]:
        keys = frozenset(live_keys(self.mappings, version))
        recorded = {entry["version"]: entry["digest"] for entry in self.store.history()}
        expected = recorded.get(version)
        if not isinstance(expected, str):
            # Without its record, what the items say v{version} held cannot be checked: an
            # item edited by hand would be restored as if it had been published.
            raise CorruptStoreError(f"{self.description}: v{version} has no readable version record "
                                    f"(META {VERSION_PREFIX}{version:010d}), so its items cannot be checked against "
                                    "what was published; it is not restored")
        if expected != digest(keys):
            raise CorruptStoreError(f"{self.description}: the items of v{version} no longer match its recorded digest")
        return keys

    def history(self) -> list[VersionEntry]:
        pointer = self.store.read_pointer(consistent=True)
        return [e for e in self.store.history() if (e["version"] or 0) <= pointer.version]

    def apply(self, desired: frozenset[MappingKey], change: Plan, note: str, take_over: bool,
              progress: Progress | None) -> int:
        current = self.pointer.version
        claim = self.store.claim(current, new_owner(), take_over=take_over)
        try:
            # Read again under the claim: a sync that died (or just gave up its claim)
            # may have left writes for this version that must be undone or reused.
            requests = _mapping_requests(self.store.read_mappings(), desired, current)
            published_at = _now()
            requests.append(put_request(version_item(
                claim.version, change.digest, len(desired), len(change.added), len(change.removed), note,
                published_at, claim.owner)))
            snapshot, puts = snapshot_writes(claim.version, desired, note, published_at)
            requests += puts + self._stale_parts(keep=current)
            held, renewed_at = claim, time.monotonic()

            def after_batch(done: int) -> None:
                nonlocal held, renewed_at
                if progress is not None:
                    progress(done, len(requests))
                if time.monotonic() - renewed_at > LEASE_SECONDS / 4:
                    held, renewed_at = self.store.renew(held), time.monotonic()

            self.store.batch_write(requests, after_batch=after_batch)
            # Check before flipping: a version that does not hash to its digest is never
            # published (a bug here, or a taken-over sync still writing).
            staged = live_keys(self.store.read_mappings(), claim.version)
            if digest(staged) != change.digest:
                raise CorruptStoreError(
                    f"{self.description}: v{claim.version} as written ({len(staged)} mappings) does not match the "
                    f"plan ({len(desired)}); not published, v{current} stays. Re-run the sync."
                )
            problem = check_snapshot(self.store, snapshot, claim.version, change.digest)
            if problem is not None:
                raise CorruptStoreError(f"{self.description}: the snapshot of v{claim.version} as written is not the "
                                        f"plan ({problem}); not published, v{current} stays. Re-run the sync.")
            self.store.flip(held, change.digest, len(desired), note, published_at, snapshot)
        except BaseException:
            self.store.release(claim)
            raise
        return claim.version

    def complete(self) -> bool:
        """Write the published version's snapshot if it is missing or damaged (the version stays).

        A table published by a policy-engine without snapshots gets one here (migration
        0002 calls this), and so does a version whose parts were edited or deleted.
        """
        pointer = self.pointer
        if pointer.version == 0:
            return False
        if pointer.snapshot is not None and check_snapshot(self.store, pointer.snapshot, pointer.version,
                                                           pointer.digest) is None:
            return False
        keys = frozenset(live_keys(self.mappings, pointer.version))
        if digest(keys) != pointer.digest:
            raise CorruptStoreError(f"{self.description}: v{pointer.version}'s items do not match its digest; its "
                                    "snapshot cannot be rebuilt from them (`sync --repair` publishes the YAML)")
        snapshot, puts = snapshot_writes(pointer.version, keys, pointer.note, pointer.published_at)
        # Nothing is deleted here: a sync may be writing the next version meanwhile.
        self.store.batch_write(puts)
        problem = check_snapshot(self.store, snapshot, pointer.version, pointer.digest)
        if problem is not None:
            raise CorruptStoreError(f"{self.description}: the snapshot of v{pointer.version} as written is not "
                                    f"what it publishes ({problem}); re-run")
        self.store.attach_snapshot(pointer.version, pointer.digest, snapshot)
        return True

    # -- candidates -------------------------------------------------------------------

    def candidate(self) -> Candidate | None:
        self.last_candidate, self._candidate, self._candidate_ref = self.store.read_candidate()
        return self._candidate

    def candidate_keys(self, candidate: Candidate) -> frozenset[MappingKey]:
        assert candidate == self._candidate and self._candidate_ref is not None
        snapshot, problem = read_snapshot_parts(self.store, self._candidate_ref, candidate.number, candidate.digest)
        if snapshot is None:
            raise CorruptStoreError(f"{self.description} candidate {candidate.label}: its snapshot is not what "
                                    f"META/CANDIDATE names ({problem}); publish it again (sync --candidate) or "
                                    "discard it")
        return snapshot.keys

    def publish_candidate(self, desired: frozenset[MappingKey], based_on: int, note: str,
                          progress: Progress | None) -> int:
        last, replacing = self.last_candidate, self._candidate
        number = last + 1
        published_at = _now()
        content = digest(desired)
        snapshot, puts = snapshot_writes(number, desired, note, published_at, based_on=based_on)
        self.store.batch_write(puts, after_batch=None if progress is None else lambda done: progress(done, len(puts)))
        problem = check_snapshot(self.store, snapshot, number, content)
        if problem is not None:
            raise CorruptStoreError(f"{self.description}: the snapshot of {candidate_label(number)} as written is not "
                                    f"the plan ({problem}); not published. Re-run.")
        candidate = Candidate(number, content, len(desired), published_at, note, based_on)
        if replacing is not None:
            self.store.put_candidate_record(replacing, "replaced", replaced_by=number)
        try:
            self.store.flip_candidate(last, replacing, candidate, snapshot)
        except ConflictError:
            with contextlib.suppress(StoreError):
                self.store.batch_write([delete_request(snapshot.sort_key, part_key(i, "")["pk"]["S"])
                                        for i in range(snapshot.parts)])
            raise
        self._delete_candidate_parts(keep=snapshot.sort_key, upto=number)
        return number

    def end_candidate(self, candidate: Candidate, status: str, promoted_to: int | None = None) -> bool:
        if not self.store.put_candidate_record(candidate, status, promoted_to=promoted_to):
            return False
        if not self.store.remove_candidate(candidate):
            return False
        self._delete_candidate_parts(keep=None, upto=max(self.last_candidate, candidate.number))
        return True

    def candidate_history(self) -> list[VersionEntry]:
        current = self.candidate()
        entries = {entry["version"]: entry for entry in self.store.candidate_records()}
        if current is not None:  # the pointer is the truth about the candidate it names
            entries[current.number] = {
                "version": current.number, "digest": current.digest, "mappings": current.mappings,
                "published_at": current.published_at, "note": current.note, "candidate": True,
                "based_on": current.based_on, "status": "candidate", "promoted_to": None, "replaced_by": None}
        return [entries[number] for number in sorted(n for n in entries if n is not None)]

    def _delete_candidate_parts(self, *, keep: str | None, upto: int) -> None:
        """Delete candidate parts numbered ``upto`` or lower, but ``keep``'s.

        A candidate publish still writing has a higher number, so its parts stay.
        """
        deletes = []
        for pk, sk in self.store.snapshot_items():
            number = sk.removeprefix(CANDIDATE_PARTS).partition("#")[0]
            if sk.startswith(CANDIDATE_PARTS) and number.isdigit() and int(number) <= upto and sk != keep:
                deletes.append(delete_request(sk, pk))
        self.store.batch_write(deletes)

    def _stale_parts(self, keep: int) -> list[dict[str, Any]]:
        """Deletes of the snapshot parts of every version but ``keep``, the published one.

        Only run under a claim: parts of an older version are read by no pointer, and
        parts of a later one were left by a sync that died. All of ``keep``'s stay, not
        just the pointer's, since ``complete`` may be attaching a new one meanwhile.
        """
        deletes = []
        for pk, sk in self.store.snapshot_items():
            version = sk.partition("#")[0]
            if version.isdigit() and int(version) != keep:  # anything else is not ours to delete
                deletes.append(delete_request(sk, pk))
        return deletes


def _mapping_requests(mappings: list[StoredMapping], desired: frozenset[MappingKey],
                      current: int) -> list[dict[str, Any]]:
    nxt = current + 1
    requests: list[dict[str, Any]] = []
    live = {m.key for m in mappings if m.live_at(current)}
    ready: set[MappingKey] = set()
    for m in mappings:
        if m.added > current:  # left by an unpublished sync
            if m.added == nxt and m.key in desired and m.key not in live:
                ready.add(m.key)  # reuse it; its sort key is the one this sync would write
                if m.removed is not None:
                    requests.append(put_request(m.item(None)))
            else:
                requests.append(delete_request(m.sk))
        elif m.live_at(current):
            wanted = None if m.key in desired else nxt
            if m.removed != wanted:
                requests.append(put_request(m.item(wanted)))
    for key in sorted(desired - live - ready):
        requests.append(put_request(new_mapping_item(key, nxt)))
    return requests
