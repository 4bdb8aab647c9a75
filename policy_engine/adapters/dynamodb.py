"""Permission mappings in a DynamoDB table: the run-time reader, and the layout it reads.

Layout (string keys ``pk``/``sk``; created by ``migrations/0001_create_table.py``)::

    pk             sk                                                           attributes
    -------------  -----------------------------------------------------------  ------------------------------
    META           PUBLISHED                                                    version, digest, mappings,
                                                                                published_at, note, claim_*,
                                                                                snapshot, snapshot_parts,
                                                                                snapshot_sha256, snapshot_bytes
    META           VERSION#0000000007                                           one per publish (history)
    META           CANDIDATE                                                    the candidate's pointer: the
                                                                                same, plus based_on and
                                                                                last_candidate
    META           CANDIDATE#0000000003                                         one per ended candidate
    META           MIGRATION#0001                                               one per applied migration
    MAPPINGS       arn:aws:execute-api:...:a1b2c3d4e5 dev GET /pets pets:read @7  arn, stage, httpVerb,
                                                                                resource, scope (or
                                                                                requirement), added, removed?
    SNAPSHOT#000   0000000007#5f0c2a91                                          data (part 0 of v7's snapshot)
    SNAPSHOT#001   0000000007#5f0c2a91                                          data (part 1), ...
    SNAPSHOT#000   C0000000003#0b7e55d2                                         data (part 0 of candidate 3)

* ``MAPPINGS``: one item per mapping and per stretch of versions it was live (``added``
  published it, ``removed`` dropped it). ``sync`` plans against them and ``rollback``
  restores from them; the console shows them sorted like the YAML.
* ``SNAPSHOT#NNN``: each published version also as one snapshot document (the format
  the S3 store publishes, ``adapters/s3.py``), xz-compressed and cut into parts of at
  most ``PART_BYTES``; part ``i`` sits in partition ``SNAPSHOT#i``, under a sort key
  naming the version and the sync that wrote it. Parts are written before the pointer
  names them and never rewritten after, so a reader of ``V`` cannot see half of ``V+1``.
* ``META/PUBLISHED`` (the pointer) names the published version, its digest and its
  snapshot (sort key, part count, SHA-256 of the compressed bytes, uncompressed size).
  ``sync`` flips it from ``V`` to ``V+1`` in one conditional write
  (``policy_engine/admin/publish/dynamodb.py``).
* ``META/CANDIDATE`` names the candidate (``sync --candidate``) the same way: its
  number ``N`` in ``version`` (label ``cN``), its digest and snapshot, and ``based_on``,
  the live version it was published against. Its parts' sort keys start with ``C``, so
  they never collide with a version's. Once a candidate was published the item stays;
  with no candidate it holds only ``last_candidate`` (numbers are never reused).

This module is what the Lambda imports: ``DynamoDbPermissionSource`` reads the pointer
(one eventually consistent ``GetItem``: the whole "changed?" check of a warm container)
and, when the version moved, the parts (one ``BatchGetItem``). A 10,000-mapping
version is a few parts of at most 16 KB, where paging the ``MAPPINGS`` partition read
1.5 MB: cold loads cost a few read units instead of about 290 (docs/stores.md, "The table").
It signs its requests itself (``adapters/aws_http.py``): no boto3 at cold start.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from policy_engine.adapters.aws_http import (
    RUNTIME_ATTEMPTS,
    RUNTIME_LOAD_DEADLINE,
    SignedClient,
    error_for,
    error_of,
    find_region,
    parse_json,
    service_origin,
)
from policy_engine.adapters.http import BodyTooLargeError
from policy_engine.core.permissions import needs_of
from policy_engine.core.snapshot import read_snapshot
from policy_engine.errors import (
    ConfigurationError,
    CorruptStoreError,
    MissingStoreError,
    StoreError,
    StoreTooLargeError,
)
from policy_engine.ports import RawPermissions

__all__ = [
    "CANDIDATE_SK",
    "DynamoDbPermissionSource",
    "SnapshotRef",
    "candidate_label",
    "check_table_name",
    "number_of",
    "part_key",
    "read_snapshot_ref",
    "text_of",
    "unpack",
    "version_label",
]

META = "META"
POINTER_SK = "PUBLISHED"
CANDIDATE_SK = "CANDIDATE"
#: Sort keys of ended candidates' records (``CANDIDATE#0000000003``).
CANDIDATE_PREFIX = "CANDIDATE#"
#: What a candidate's snapshot sort key starts with: a version's starts with a digit.
CANDIDATE_PARTS = "C"
MAPPINGS = "MAPPINGS"
VERSION_PREFIX = "VERSION#"
MIGRATION_PREFIX = "MIGRATION#"
SNAPSHOT_PREFIX = "SNAPSHOT#"
#: Largest part of a compressed snapshot, in bytes. Read units are counted per 4 KB of
#: item, so a 16 KB item costs 2 eventually consistent units, and one partition (3,000
#: units a second) serves 1,500 loads a second of any one part; the margin leaves room
#: for the item's keys and attribute names inside the 16 KB.
PART_BYTES = 16 * 1024 - 256
#: BatchGetItem's limit of keys per request.
BATCH_GET_KEYS = 100
#: Memory the xz decoder may use: a snapshot is compressed with preset 6 (8 MiB window);
#: a hostile header asking for more is refused instead of being granted.
UNPACK_MEMORY = 64 * 1024 * 1024

_TABLE_NAME = re.compile(r"[A-Za-z0-9_.-]{3,255}")
#: Bytes of answer per part: base64 (4/3) plus the item's keys and JSON punctuation.
_ANSWER_BYTES_PER_PART = PART_BYTES * 4 // 3 + 1024
_POINTER_ANSWER_BYTES = 512 * 1024  # one item: DynamoDB caps items at 400 KB


def check_table_name(name: str, variable: str = "PERMISSIONS_SOURCE") -> str:
    """``name`` if DynamoDB accepts it as a table name.

    Raises:
        ConfigurationError: it does not.
    """
    if not _TABLE_NAME.fullmatch(name):
        raise ConfigurationError(variable, f"{name!r} is not a DynamoDB table name (3-255 of A-Z a-z 0-9 _ . -)")
    return name


def version_label(version: int) -> str:
    return f"v{version}"


def candidate_label(number: int) -> str:
    return f"c{number}"


def part_key(index: int, snapshot: str) -> dict[str, Any]:
    """The key of part ``index`` of the snapshot whose sort key is ``snapshot``."""
    return {"pk": {"S": f"{SNAPSHOT_PREFIX}{index:03d}"}, "sk": {"S": snapshot}}


@dataclass(frozen=True, slots=True)
class SnapshotRef:
    """What the pointer says about its version's snapshot."""

    sort_key: str
    parts: int
    sha256: str
    size: int


def text_of(item: Mapping[str, Any], name: str) -> str | None:
    """The string attribute ``name`` of a DynamoDB JSON item, ``None`` if absent or another type."""
    value = item.get(name)
    found = value.get("S") if isinstance(value, dict) else None
    return found if isinstance(found, str) else None


def number_of(item: Mapping[str, Any], name: str) -> int | None:
    """The integer attribute ``name`` of a DynamoDB JSON item, ``None`` if absent or not an integer."""
    value = item.get(name)
    raw = value.get("N") if isinstance(value, dict) else None
    if not isinstance(raw, str):
        return None
    try:
        return int(raw)
    except ValueError:
        return None


def read_snapshot_ref(item: Mapping[str, Any], where: str, sk: str = POINTER_SK) -> SnapshotRef | None:
    """The pointer's snapshot, ``None`` when it names none (published before snapshots).

    Raises:
        CorruptStoreError: the snapshot attributes are there but malformed.
    """
    if "snapshot" not in item:
        return None
    sort_key, parts = text_of(item, "snapshot"), number_of(item, "snapshot_parts")
    sha256, size = text_of(item, "snapshot_sha256"), number_of(item, "snapshot_bytes")
    if sort_key is None or parts is None or sha256 is None or size is None or not 1 <= parts <= 10_000 or size < 0:
        raise CorruptStoreError(f"{where} item (pk=META, sk={sk}): snapshot attributes missing or mistyped")
    return SnapshotRef(sort_key, parts, sha256, size)


def unpack(data: bytes, limit: int | None, where: str, etag: str) -> bytes:
    """The snapshot document compressed in ``data``, at most ``limit`` bytes of it.

    Raises:
        StoreTooLargeError: it holds more than ``limit`` bytes (decoding stops there).
        CorruptStoreError: not one whole xz stream.
    """
    import lzma

    decoder = lzma.LZMADecompressor(format=lzma.FORMAT_XZ, memlimit=UNPACK_MEMORY)
    try:
        document = decoder.decompress(data, max_length=-1 if limit is None else limit + 1)
    except lzma.LZMAError as exc:
        raise CorruptStoreError(f"{where}: the snapshot does not decompress ({exc})") from None
    if limit is not None and len(document) > limit:
        raise StoreTooLargeError(f"{where} holds more than {limit} bytes of mappings; PERMISSIONS_MAX_BYTES is "
                                 f"{limit}: not loaded (publish fewer mappings or raise the limit)", etag=etag)
    if not decoder.eof or decoder.unused_data:
        raise CorruptStoreError(f"{where}: the snapshot is not one whole compressed stream")
    return document


class DynamoDbPermissionSource:
    """``PermissionSource`` over a table published by ``policy-engine sync``.

    ``fetch(known_etag)`` costs one eventually consistent ``GetItem`` of the pointer
    when nothing was published since; otherwise one ``BatchGetItem`` of the snapshot's
    parts as well. The parts must hash to the pointer's SHA-256 and the document inside
    to the pointer's version and digest; a miss is retried once with strongly consistent
    reads (an eventually consistent read may trail the flip) and then refused.
    ``max_bytes`` caps the uncompressed snapshot (``None``: no cap, for tools). The
    whole ``fetch``, every request of it, ends within ``RUNTIME_LOAD_DEADLINE`` seconds.
    ``read_units`` is what the last ``fetch`` cost, as DynamoDB reports it.

    With ``candidate``, the same checks read the candidate (``META/CANDIDATE`` and its
    parts) instead of the published version; its version label is ``c<N>``.
    """

    def __init__(self, table: str, *, max_bytes: int | None = None, environ: Mapping[str, str] | None = None,
                 candidate: bool = False) -> None:
        self.table = check_table_name(table)
        self.description = f"dynamodb://{table}" + (" candidate" if candidate else "")
        self._sk = CANDIDATE_SK if candidate else POINTER_SK
        self._label = candidate_label if candidate else version_label
        env = os.environ if environ is None else environ
        region = find_region("dynamodb", env)
        origin, _ = service_origin("dynamodb", region, env)
        self._client = SignedClient("dynamodb", origin, region, environ=env)
        self._max_bytes = max_bytes
        self._refused: StoreTooLargeError | None = None
        self._deadline: float | None = None  # of the load in progress
        self.read_units = 0.0

    def fetch(self, known_etag: str | None) -> RawPermissions | None:
        """The published mappings (or the candidate's), or ``None`` when the version still equals ``known_etag``.

        Raises:
            MissingStoreError: no table, or nothing published yet (no candidate).
            CorruptStoreError: the snapshot is missing, damaged or not what the pointer names.
            StoreTooLargeError: the version holds more than ``max_bytes`` (again, after one
                ``GetItem``, while that version stays published).
            StoreError: the table cannot be read (throttled, unreachable, access denied,
                slower than ``RUNTIME_LOAD_DEADLINE`` for the whole load), or its version
                was published by a policy-engine without snapshots.
        """
        self.read_units = 0.0
        self._deadline = time.monotonic() + RUNTIME_LOAD_DEADLINE
        for consistent in (False, True):
            pointer = self._pointer(consistent)
            version, content = number_of(pointer, "version"), text_of(pointer, "digest")
            if version is None and "version" in pointer:
                # A version of another type was written by hand: damaged, not "nothing published".
                raise CorruptStoreError(f"{self.description} item (pk=META, sk={self._sk}): version is not a number")
            if version is None:
                if self._sk == CANDIDATE_SK:
                    raise MissingStoreError(f"{self.description}: no candidate published")
                raise MissingStoreError(f"{self.description}: nothing published yet (run policy-engine sync)")
            if content is None:
                raise CorruptStoreError(f"{self.description} item (pk=META, sk={self._sk}): digest missing")
            etag = f"{self._label(version)}:{content}"
            if etag == known_etag:
                return None
            refused = self._refused
            if refused is not None and refused.etag == etag:
                raise StoreTooLargeError(str(refused), etag=etag)
            where = f"{self.description} {self._label(version)}"
            ref = read_snapshot_ref(pointer, self.description, self._sk)
            if ref is None:
                raise StoreError(f"{where} was published by a policy-engine that stored no snapshot; "
                                 "run `policy-engine migrate` (or sync) with this release to add it")
            try:
                data = self._parts(ref, consistent, where, etag)
            except StoreTooLargeError as exc:
                self._refused = exc
                raise
            if data is not None and "sha256:" + hashlib.sha256(data).hexdigest() == ref.sha256:
                break
            if consistent:
                # Strongly consistent reads trail no write: the parts are gone or were changed.
                raise CorruptStoreError(
                    f"{where}: its snapshot ({ref.parts} items in partitions {SNAPSHOT_PREFIX}000...) is missing or "
                    "does not match the SHA-256 the pointer publishes; an item was changed outside policy-engine "
                    "sync (an unchanged `policy-engine sync` writes it again)")
        assert data is not None and ref is not None and version is not None  # the loop breaks with all, or raises
        try:
            document = unpack(data, self._max_bytes, where, etag)
        except StoreTooLargeError as exc:
            self._refused = exc
            raise
        # Format and digest checked here; the cache validates every record against the
        # schema (compile_records), as for the snapshot file: no keys rebuilt, no sort.
        snapshot, records = read_snapshot(document, where)
        candidate = self._sk == CANDIDATE_SK
        if candidate != ("based_on" in snapshot) or candidate != ref.sort_key.startswith(CANDIDATE_PARTS):
            # Each reader refuses the other kind, as the S3 reader does: a candidate's
            # snapshot named by the live pointer would decide unreviewed.
            raise CorruptStoreError(f"{where}: its snapshot is a " + ("version's, not a candidate's" if candidate
                                                                      else "candidate's, not a published version's")
                                    + "; written outside policy-engine sync?")
        if snapshot["version"] != version or snapshot["digest"] != content:
            raise CorruptStoreError(f"{where}: the snapshot holds {self._label(snapshot['version'])} "
                                    f"({snapshot['digest']}), not what the pointer publishes; written outside "
                                    "policy-engine sync?")
        if len(document) != ref.size:
            raise CorruptStoreError(f"{where}: the snapshot is {len(document)} bytes, not the {ref.size} the pointer "
                                    "records; written outside policy-engine sync? (an unchanged `policy-engine sync` "
                                    "writes it again)")
        description, label = self.description, self._label(version)

        def locate(path: tuple[int | str, ...]) -> str:
            if path and isinstance(path[0], int) and path[0] < len(records):
                r = records[path[0]]
                spelled = f"{r['arn']} {r['stage']} {r['httpVerb']} {r['resource']} {needs_of(r)}"
                return f"{description} {label} mapping {spelled!r}"
            return description

        return RawPermissions(records, locate, label, etag, text_of(pointer, "published_at") or None)

    # -- requests -----------------------------------------------------------------------

    def _call(self, operation: str, payload: dict[str, Any], max_bytes: int) -> dict[str, Any]:
        what = f"{self.description} {operation}"
        payload["ReturnConsumedCapacity"] = "TOTAL"
        try:
            answer = self._client.send(
                "POST", "/", what=what, max_bytes=max_bytes, body=json.dumps(payload).encode(),
                headers={"Content-Type": "application/x-amz-json-1.0",
                         "X-Amz-Target": f"DynamoDB_20120810.{operation}"}, deadline=self._deadline)
        except BodyTooLargeError as exc:
            raise StoreError(f"{what}: {exc}") from None
        if answer.status != 200:
            code, message = error_of(answer)
            raise error_for(code, message, self.description)
        document = parse_json(answer, what)
        consumed = document.get("ConsumedCapacity")
        for entry in consumed if isinstance(consumed, list) else [consumed]:
            if isinstance(entry, dict) and isinstance(entry.get("CapacityUnits"), (int, float)):
                self.read_units += float(entry["CapacityUnits"])
        return document

    def _pointer(self, consistent: bool) -> dict[str, Any]:
        answer = self._call("GetItem", {"TableName": self.table, "ConsistentRead": consistent,
                                        "Key": {"pk": {"S": META}, "sk": {"S": self._sk}}}, _POINTER_ANSWER_BYTES)
        item = answer.get("Item")
        return item if isinstance(item, dict) else {}

    def _parts(self, ref: SnapshotRef, consistent: bool, where: str, etag: str) -> bytes | None:
        """The snapshot's compressed bytes, ``None`` if a part is missing.

        Raises:
            StoreTooLargeError: the parts hold more than the cap allows.
        """
        limit = self._max_bytes
        if limit is not None and (ref.size > limit or (ref.parts - 1) * PART_BYTES > limit):
            raise StoreTooLargeError(f"{where} holds {ref.size} bytes of mappings; PERMISSIONS_MAX_BYTES is {limit}: "
                                     "not loaded (publish fewer mappings or raise the limit)", etag=etag)
        found: dict[str, bytes] = {}
        wanted = [part_key(i, ref.sort_key) for i in range(ref.parts)]
        for start in range(0, len(wanted), BATCH_GET_KEYS):
            pending = wanted[start:start + BATCH_GET_KEYS]
            for _ in range(RUNTIME_ATTEMPTS + 1):
                answer = self._call("BatchGetItem", {"RequestItems": {self.table: {
                    "Keys": pending, "ConsistentRead": consistent, "ProjectionExpression": "pk, sk, #d",
                    "ExpressionAttributeNames": {"#d": "data"}}}}, len(pending) * _ANSWER_BYTES_PER_PART + 64 * 1024)
                for item in (answer.get("Responses") or {}).get(self.table) or []:
                    pk, sk, data = text_of(item, "pk"), text_of(item, "sk"), item.get("data")
                    raw = data.get("B") if isinstance(data, dict) else None
                    if pk is None or sk != ref.sort_key or not isinstance(raw, str):
                        return None
                    try:
                        found[pk] = base64.b64decode(raw, validate=True)
                    except ValueError:
                        return None
                # Throttled keys come back unprocessed; they are asked for again at once
                # (the cache backs off across loads, so this stays a couple of requests).
                pending = ((answer.get("UnprocessedKeys") or {}).get(self.table) or {}).get("Keys") or []
                if not pending:
                    break
            else:
                raise StoreError(f"{self.description}: throttled after retries (BatchGetItem left keys unprocessed)")
        parts = [found.get(f"{SNAPSHOT_PREFIX}{i:03d}") for i in range(ref.parts)]
        if any(part is None or len(part) > PART_BYTES for part in parts):
            return None
        return b"".join(part for part in parts if part is not None)

