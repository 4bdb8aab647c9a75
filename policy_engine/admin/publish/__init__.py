"""Publishing: ``sync`` YAML into a store, ``rollback`` to an earlier version, ``history``.

These are the Python entry points behind ``policy-engine sync`` and ``rollback``
(other tools call them directly). Admin only: the Lambda bundle leaves this package
out (``policy_engine/admin/packaging.py``), and the stores' run-time readers never import it.
Each store is a ``PublishTarget`` (``policy_engine/ports.py``): ``publish/dynamodb.py``
and ``publish/s3.py``. Every publish follows the same steps:

1. Validate the YAML with the runtime's own loader and schema (``YamlPermissionSource``
   and ``compile_records``). Invalid input stops here; nothing is written.
2. Read what the store publishes now and check it (foreign items, digest). A corrupt
   store stops here; nothing is written.
3. ``plan`` the smallest change (pure, ``core.publish``). A dry run, or no change,
   stops here; nothing is written.
4. Write the change as a new version that readers cannot see yet, then flip to it in
   one conditional write (DynamoDB: the pointer item; S3: the object itself).

An unchanged publish still lets the store ``complete`` the published version (DynamoDB:
write its snapshot when it is missing or damaged), without a new version.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from policy_engine.core.permissions import compile_records
from policy_engine.core.publish import MappingKey, Plan, keys_of, plan
from policy_engine.errors import ConfigurationError, PermissionsError, StoreError
from policy_engine.ports import Progress, PublishTarget, VersionEntry

__all__ = [
    "COMPILED_NOTE", "OnPlan", "Phase", "Progress", "PublishResult", "compile_snapshot", "history", "load_desired",
    "open_target", "rollback", "sync",
]


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
    #: The store completed the published version (``PublishTarget.complete``) without a new one.
    completed: bool = False

    def describe(self) -> str:
        before = f"v{self.version_before}" if self.version_before else "nothing published"
        if self.published:
            return f"{self.target}: published v{self.version_after} ({self.plan.summary()}; was {before})"
        if self.completed:
            return (f"{self.target}: unchanged at {before} ({self.plan.unchanged} mappings); "
                    "wrote its missing or damaged snapshot")
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


def open_target(target: str, *, client: Any = None, sleep: Callable[[float], None] = time.sleep) -> PublishTarget:
    """The store named by ``dynamodb://TABLE`` or ``s3://BUCKET/KEY``.

    ``client`` is a boto3 client (or a stand-in with its methods) for that service.

    Raises:
        ConfigurationError: any other form.
    """
    if target.startswith("dynamodb://"):
        from policy_engine.admin.publish.dynamodb import DynamoDbTarget

        return DynamoDbTarget(target.removeprefix("dynamodb://"), client=client, sleep=sleep)
    if target.startswith("s3://"):
        from policy_engine.admin.publish.s3 import S3Target

        return S3Target(target, client=client)
    raise ConfigurationError("TARGET", f"{target!r} is not dynamodb://TABLE or s3://BUCKET/KEY")


#: Told the name of each phase as it starts: ``parse``, ``plan``, ``write``.
Phase = Callable[[str], None]
#: Given the plan before anything is written (a dry run: instead of writing).
OnPlan = Callable[[Plan], None]


def _publish(store: PublishTarget, desired: frozenset[MappingKey], *, note: str, dry_run: bool, take_over: bool,
             progress: Progress | None, started: float, repair: bool = False, phase: Phase | None = None,
             on_plan: OnPlan | None = None) -> PublishResult:
    if phase is not None:
        phase("plan")
    current, published = store.published(repair)
    change = plan(published, desired)
    if on_plan is not None:
        on_plan(change)
    version = current
    completed = False
    if not dry_run:
        if phase is not None:
            phase("write")
        if not change.empty:
            version = store.apply(desired, change, note, take_over, progress)
        else:
            completed = store.complete()
    return PublishResult(store.description, change, current, version, version != current,
                         store.write_requests, time.perf_counter() - started, completed)


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
    phase: Phase | None = None,
    on_plan: OnPlan | None = None,
) -> PublishResult:
    """Publish the mappings of a YAML file or folder to ``target`` as a new version.

    Unchanged mappings write nothing; a change writes only the items it touches.
    ``on_plan`` sees the change before anything is written (the CLI prints the diff
    there); ``phase`` is told ``parse``, ``plan`` and ``write`` as each starts. With
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
    if phase is not None:
        phase("parse")
    desired = load_desired(permissions)
    store = open_target(target, client=client, sleep=sleep)
    return _publish(store, desired, note=note or f"sync {permissions}", dry_run=dry_run, take_over=take_over,
                    progress=progress, started=started, repair=repair, phase=phase, on_plan=on_plan)


def rollback(
    target: str,
    *,
    to: int | None = None,
    dry_run: bool = False,
    take_over: bool = False,
    progress: Progress | None = None,
    client: Any = None,
    sleep: Callable[[float], None] = time.sleep,
    phase: Phase | None = None,
    on_plan: OnPlan | None = None,
) -> PublishResult:
    """Publish, as a new version, the content of version ``to`` (default: the one before).

    History is never rewritten: rolling back from v7 to v5 publishes v8 equal to v5.
    ``phase`` and ``on_plan`` as for ``sync`` (the ``parse`` phase reads version ``to``).

    Raises:
        StoreError: ``to`` is not an earlier published version, or as for ``sync``.
    """
    started = time.perf_counter()
    if phase is not None:
        phase("parse")
    store = open_target(target, client=client, sleep=sleep)
    current, _ = store.published()
    wanted = current - 1 if to is None else to
    if not 1 <= wanted < current:
        raise StoreError(f"{store.description}: cannot roll back to v{wanted}; published versions are v1..v{current}")
    desired = store.view(wanted)
    return _publish(store, desired, note=f"rollback to v{wanted}", dry_run=dry_run, take_over=take_over,
                    progress=progress, started=started, phase=phase, on_plan=on_plan)


def history(target: str, *, client: Any = None) -> list[VersionEntry]:
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
