"""Publishing: ``sync`` YAML into a store, ``rollback`` to an earlier version, ``history``.

These are the Python entry points behind ``policy-engine sync`` and ``rollback``
(other tools call them directly). Every publish follows the same steps:

1. Validate the YAML with the runtime's own loader and schema (``YamlPermissionSource``
   and ``compile_records``). Invalid input stops here; nothing is written.
2. Read what the store publishes now and check it (foreign items, digest). A corrupt
   store stops here; nothing is written.
3. ``plan`` the smallest change (pure, ``core.publish``). A dry run, or no change,
   stops here; nothing is written.
4. Write the change as a new version that readers cannot see yet, then flip to it in
   one conditional write (DynamoDB: the pointer item; S3: the object itself).
"""

from __future__ import annotations

import datetime
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from policy_engine.core.permissions import compile_records
from policy_engine.core.publish import MappingKey, Plan, digest, keys_of, plan
from policy_engine.errors import (
    ConfigurationError,
    CorruptStoreError,
    PermissionsError,
    StoreError,
)

__all__ = ["COMPILED_NOTE", "PublishResult", "compile_snapshot", "history", "load_desired", "rollback", "sync"]

#: ``progress(done, total)`` after each written batch.
Progress = Callable[[int, int], None]


@dataclass(frozen=True, slots=True)
class PublishResult:
    """What a sync or rollback did (or, for a dry run, would do)."""

    target: str
    plan: Plan
    version_before: int
    version_after: int
    published: bool
    write_requests: int
    seconds: float

    def describe(self) -> str:
        before = f"v{self.version_before}" if self.version_before else "nothing published"
        if self.published:
            return f"{self.target}: published v{self.version_after} ({self.plan.summary()}; was {before})"
        if self.plan.empty:
            return f"{self.target}: unchanged at {before} ({self.plan.unchanged} mappings); nothing written"
        return f"{self.target}: dry run, would publish v{self.version_before + 1} ({self.plan.summary()})"


def load_desired(permissions: str | Path) -> frozenset[MappingKey]:
    """Read and validate a YAML file or folder exactly as the authorizer would.

    Raises:
        PermissionsError: unreadable or invalid YAML, every problem with its file and line.
    """
    from policy_engine.adapters.yaml_files import YamlPermissionSource

    raw = YamlPermissionSource(permissions).fetch(None)
    assert raw is not None
    return keys_of(compile_records(raw.records, raw.locate))


#: The ``note`` of a compiled snapshot: no time or path in it, so the same mappings give the same bytes.
COMPILED_NOTE = "policy-engine compile"


def compile_snapshot(paths: Sequence[str | Path]) -> tuple[bytes, frozenset[MappingKey]]:
    """The snapshot (``core.snapshot``'s format, as S3 publishes it) of the YAML at ``paths``.

    Every file is read and validated as ``load_desired`` does; the mappings of all paths
    go into one document, version 1, with no publish time.

    Raises:
        PermissionsError: every problem of every path, each with its file and line;
            nothing is compiled unless all are valid.
    """
    from policy_engine.core.snapshot import encode_snapshot

    problems: list[str] = []
    keys: set[MappingKey] = set()
    for path in paths:
        try:
            keys.update(load_desired(path))
        except PermissionsError as exc:
            problems.extend(exc.problems)
    if problems:
        raise PermissionsError(problems)
    return encode_snapshot(1, frozenset(keys), COMPILED_NOTE, ""), frozenset(keys)


def _now() -> str:
    return datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")


class _DynamoTarget:
    def __init__(self, table: str, client: Any, sleep: Callable[[float], None]) -> None:
        from policy_engine.adapters.dynamodb import DynamoDbStore

        self.store = DynamoDbStore(table, client=client, admin=True, sleep=sleep)
        self.description = self.store.description

    def published(self, repair: bool = False) -> tuple[int, frozenset[MappingKey]]:
        from policy_engine.adapters.dynamodb import live_keys

        self.pointer = self.store.read_pointer(consistent=True)
        self.mappings = self.store.read_mappings()
        live = live_keys(self.mappings, self.pointer.version)
        # With repair, the plan is made against the items as they are, so the new
        # version is exactly the YAML whatever happened to the old one.
        if digest(live) != self.pointer.digest and not repair:
            raise CorruptStoreError(
                f"{self.description}: the items of v{self.pointer.version} ({len(live)}) do not match its digest "
                f"({self.pointer.mappings} mappings published); an item was deleted or added outside policy-engine "
                "sync. Nothing was written; `sync --repair` publishes the YAML over it."
            )
        return self.pointer.version, frozenset(live)

    def view(self, version: int) -> frozenset[MappingKey]:
        from policy_engine.adapters.dynamodb import live_keys

        keys = frozenset(live_keys(self.mappings, version))
        recorded = {entry["version"]: entry["digest"] for entry in self.store.history()}
        if version in recorded and recorded[version] != digest(keys):
            raise CorruptStoreError(f"{self.description}: the items of v{version} no longer match its recorded digest")
        return keys

    def history(self) -> list[dict[str, Any]]:
        pointer = self.store.read_pointer(consistent=True)
        return [e for e in self.store.history() if (e["version"] or 0) <= pointer.version]

    def apply(self, desired: frozenset[MappingKey], change: Plan, note: str, take_over: bool,
              progress: Progress | None) -> int:
        from policy_engine.adapters import dynamodb as ddb
        from policy_engine.adapters.dynamodb import live_keys

        current = self.pointer.version
        claim = self.store.claim(current, ddb.new_owner(), take_over=take_over)
        try:
            # Read again under the claim: a sync that died (or just gave up its claim)
            # may have left writes for this version that must be undone or reused.
            requests = _dynamo_requests(self.store.read_mappings(), desired, current)
            published_at = _now()
            requests.append(ddb.put_request(ddb.version_item(
                claim.version, change.digest, len(desired), len(change.added), len(change.removed), note,
                published_at, claim.owner)))
            renewed = [claim, time.monotonic()]

            def after_batch(done: int) -> None:
                if progress is not None:
                    progress(done, len(requests))
                if time.monotonic() - renewed[1] > ddb.LEASE_SECONDS / 4:
                    renewed[:] = [self.store.renew(renewed[0]), time.monotonic()]

            self.store.batch_write(requests, after_batch=after_batch)
            # Check before flipping: a version that does not hash to its digest is never
            # published (a bug here, or a taken-over sync still writing).
            staged = live_keys(self.store.read_mappings(), claim.version)
            if digest(staged) != change.digest:
                raise CorruptStoreError(
                    f"{self.description}: v{claim.version} as written ({len(staged)} mappings) does not match the "
                    f"plan ({len(desired)}); not published, v{current} stays. Re-run the sync."
                )
            self.store.flip(renewed[0], change.digest, len(desired), note, published_at)
        except BaseException:
            self.store.release(claim)
            raise
        return claim.version


def _dynamo_requests(mappings: list[Any], desired: frozenset[MappingKey], current: int) -> list[dict[str, Any]]:
    from policy_engine.adapters import dynamodb as ddb

    nxt = current + 1
    requests: list[dict[str, Any]] = []
    live = {m.key for m in mappings if m.live_at(current)}
    ready: set[MappingKey] = set()
    for m in mappings:
        if m.added > current:  # left by an unpublished sync
            if m.added == nxt and m.key in desired and m.key not in live:
                ready.add(m.key)  # reuse it; its sort key is the one this sync would write
                if m.removed is not None:
                    requests.append(ddb.put_request(m.item(None)))
            else:
                requests.append(ddb.delete_request(m.sk))
        elif m.live_at(current):
            wanted = None if m.key in desired else nxt
            if m.removed != wanted:
                requests.append(ddb.put_request(m.item(wanted)))
    for key in sorted(desired - live - ready):
        requests.append(ddb.put_request(ddb.new_mapping_item(key, nxt)))
    return requests


class _S3Target:
    def __init__(self, location: str, client: Any) -> None:
        from policy_engine.adapters.s3 import S3Store, parse_s3_location

        bucket, key = parse_s3_location(location, "TARGET")
        self.store = S3Store(bucket, key, client=client, admin=True)
        self.description = self.store.description

    def published(self, repair: bool = False) -> tuple[int, frozenset[MappingKey]]:
        self.snapshot = self.store.current()
        if self.snapshot is None:
            return 0, frozenset()
        return self.snapshot.version, self.snapshot.keys

    def view(self, version: int) -> frozenset[MappingKey]:
        assert self.snapshot is not None
        return self.store.restorable(version, self.snapshot).keys

    def history(self) -> list[dict[str, Any]]:
        if self.snapshot is None:
            return []
        entries = [_s3_entry(self.snapshot)]
        for version, snapshot, link, problem in self.store.history(self.snapshot):
            if snapshot is not None:
                entries.append(_s3_entry(snapshot))
            else:
                # Listed with what was published (when known), never with the copy's content.
                entries.append({"version": version, "digest": link.digest if link else None, "mappings": None,
                                "published_at": "", "note": f"not restorable: {problem}"})
        return entries[::-1]

    def apply(self, desired: frozenset[MappingKey], change: Plan, note: str, take_over: bool,
              progress: Progress | None) -> int:
        from policy_engine.adapters.s3 import encode_snapshot

        version = (self.snapshot.version if self.snapshot else 0) + 1
        body = encode_snapshot(version, desired, note, _now(), previous=self.snapshot)
        self.store.publish(body, version, self.snapshot)
        if progress is not None:
            progress(1, 1)
        return version


def _s3_entry(snapshot: Any) -> dict[str, Any]:
    return {"version": snapshot.version, "digest": snapshot.digest, "mappings": len(snapshot.keys),
            "published_at": snapshot.published_at, "note": snapshot.note}


def open_target(target: str, *, client: Any = None, sleep: Callable[[float], None] = time.sleep) -> Any:
    """The store named by ``dynamodb://TABLE`` or ``s3://BUCKET/KEY``.

    Raises:
        ConfigurationError: any other form.
    """
    if target.startswith("dynamodb://"):
        return _DynamoTarget(target.removeprefix("dynamodb://"), client, sleep)
    if target.startswith("s3://"):
        return _S3Target(target, client)
    raise ConfigurationError("TARGET", f"{target!r} is not dynamodb://TABLE or s3://BUCKET/KEY")


def _publish(store: Any, desired: frozenset[MappingKey], *, note: str, dry_run: bool, take_over: bool,
             progress: Progress | None, started: float, repair: bool = False) -> PublishResult:
    current, published = store.published(repair)
    change = plan(published, desired)
    version = current
    if not dry_run and not change.empty:
        version = store.apply(desired, change, note, take_over, progress)
    return PublishResult(store.description, change, current, version, version != current,
                         store.store.write_requests, time.perf_counter() - started)


def sync(
    permissions: str | Path,
    target: str,
    *,
    dry_run: bool = False,
    take_over: bool = False,
    repair: bool = False,
    note: str = "",
    progress: Progress | None = None,
    client: Any = None,
    sleep: Callable[[float], None] = time.sleep,
) -> PublishResult:
    """Publish the mappings of a YAML file or folder to ``target`` as a new version.

    Unchanged mappings write nothing; a change writes only the items it touches. With
    ``take_over``, a claim left by another sync is taken even before its lease lapses
    (only when that sync is known to be dead). With ``repair`` (DynamoDB), a published
    version whose items fail its digest (hand edits, a taken-over sync that kept
    writing) does not stop the sync: the new version is the YAML, planned against the
    items as they are.

    Raises:
        PermissionsError: the YAML is unreadable or invalid (nothing written).
        ConfigurationError: ``target`` is malformed.
        MissingStoreError: the table or bucket does not exist (run ``migrate``).
        CorruptStoreError: the store holds items no sync wrote (nothing written).
        ConflictError: another sync is publishing, or published meanwhile (nothing of
            this one is visible; re-run).
        StoreError: the store failed (nothing of this publish is visible; re-run).
    """
    started = time.perf_counter()
    desired = load_desired(permissions)
    store = open_target(target, client=client, sleep=sleep)
    return _publish(store, desired, note=note or f"sync {permissions}", dry_run=dry_run, take_over=take_over,
                    progress=progress, started=started, repair=repair)


def rollback(
    target: str,
    *,
    to: int | None = None,
    dry_run: bool = False,
    take_over: bool = False,
    progress: Progress | None = None,
    client: Any = None,
    sleep: Callable[[float], None] = time.sleep,
) -> PublishResult:
    """Publish, as a new version, the content of version ``to`` (default: the one before).

    History is never rewritten: rolling back from v7 to v5 publishes v8 equal to v5.

    Raises:
        StoreError: ``to`` is not an earlier published version, or as for ``sync``.
    """
    started = time.perf_counter()
    store = open_target(target, client=client, sleep=sleep)
    current, _ = store.published()
    wanted = current - 1 if to is None else to
    if not 1 <= wanted < current:
        raise StoreError(f"{store.description}: cannot roll back to v{wanted}; published versions are v1..v{current}")
    desired = store.view(wanted)
    return _publish(store, desired, note=f"rollback to v{wanted}", dry_run=dry_run, take_over=take_over,
                    progress=progress, started=started)


def history(target: str, *, client: Any = None) -> list[dict[str, Any]]:
    """Published versions of ``target``, oldest first (version, digest, mappings, published_at, note).

    For S3, a version whose history copy is not what was published (or cannot be
    checked) is listed with the digest that was published, if known, ``mappings``
    ``None`` and a note starting "not restorable:" saying why.

    Raises:
        StoreError: the store cannot be read.
    """
    store = open_target(target, client=client)
    store.published()
    return list(store.history())
