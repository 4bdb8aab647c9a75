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

A *candidate* (``sync(..., candidate=True)``) is published beside the live version
and never changes it: authorizers evaluate it in the shadow of the live one.
``promote`` publishes its mappings as the next live version through the same steps
(same claim, same flip), then removes it; ``discard`` removes it. Steps 1-3 are the
same for a candidate (the plan is against the live version, the diff a reviewer
reads), then the store writes the candidate and flips its own pointer.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from policy_engine.core.permissions import compile_records
from policy_engine.core.publish import Candidate, MappingKey, Plan, keys_of, plan
from policy_engine.errors import ConfigurationError, ConflictError, MissingStoreError, PermissionsError, StoreError
from policy_engine.ports import Progress, PublishTarget, VersionEntry

__all__ = [
    "COMPILED_NOTE", "DiscardResult", "OnPlan", "Phase", "Progress", "PublishResult", "compile_snapshot", "discard",
    "history", "load_desired", "open_target", "promote", "rollback", "sync",
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
    #: A candidate publish: the candidate's number (published, or that a dry run would publish).
    candidate: int | None = None
    #: A candidate publish: the candidate it replaced (or would).
    replaced: int | None = None
    #: A candidate publish: the mappings are those of the candidate already there (nothing written).
    same_candidate: bool = False
    #: A promote: the candidate promoted.
    promoted: int | None = None
    #: A promote: the candidate was removed (``False`` for a dry run, or when someone replaced it first).
    candidate_removed: bool = False

    @property
    def status(self) -> str:
        """``published``, ``completed``, ``unchanged`` or ``dry_run`` (``--format json``'s ``status``).

        ``completed``: nothing new published, but the store finished something: the
        missing snapshot written (sync), or an already-live candidate removed (promote).
        """
        if self.published:
            return "published"
        if self.same_candidate:
            return "unchanged"
        if self.completed or self.candidate_removed:
            return "completed"
        if self.plan.empty and self.candidate is None and self.promoted is None:
            return "unchanged"
        return "dry_run"

    def describe(self) -> str:
        before = f"v{self.version_before}" if self.version_before else "nothing published"
        if self.candidate is not None:
            return self._describe_candidate(before)
        if self.promoted is not None:
            return self._describe_promote(before)
        if self.published:
            return f"{self.target}: published v{self.version_after} ({self.plan.summary()}; was {before})"
        if self.completed:
            return (f"{self.target}: unchanged at {before} ({self.plan.unchanged} mappings); "
                    "wrote its missing or damaged snapshot")
        if self.plan.empty:
            return f"{self.target}: unchanged at {before} ({self.plan.unchanged} mappings); nothing written"
        return f"{self.target}: dry run, would publish v{self.version_before + 1} ({self.plan.summary()})"

    def _describe_candidate(self, live: str) -> str:
        label = f"c{self.candidate}"
        against = f"{self.plan.summary()} against {live}"
        if self.same_candidate:
            return f"{self.target}: candidate {label} unchanged ({against}); nothing written"
        replacing = f"replaced c{self.replaced}" if self.replaced is not None else "no candidate before"
        if self.published:
            return f"{self.target}: published candidate {label} ({against}; {replacing}); {live} still decides"
        replacing = f"would replace c{self.replaced}" if self.replaced is not None else "no candidate now"
        return f"{self.target}: dry run, would publish candidate {label} ({against}; {replacing})"

    def _describe_promote(self, before: str) -> str:
        label = f"c{self.promoted}"
        if self.published:
            removed = "candidate removed" if self.candidate_removed else "the candidate had been replaced meanwhile"
            return (f"{self.target}: promoted {label} as v{self.version_after} ({self.plan.summary()}; was {before}); "
                    f"{removed}")
        if self.plan.empty:
            if self.candidate_removed:
                return f"{self.target}: {label} is already live as {before}; candidate removed"
            return f"{self.target}: dry run, {label} is already live as {before}; would remove the candidate"
        return f"{self.target}: dry run, would promote {label} as v{self.version_before + 1} ({self.plan.summary()})"


@dataclass(frozen=True, slots=True)
class DiscardResult:
    """What ``discard`` did."""

    target: str
    candidate: Candidate
    #: The live version now (the candidate never changed it).
    live_version: int
    write_requests: int
    seconds: float

    def describe(self) -> str:
        live = f"v{self.live_version}" if self.live_version else "nothing published"
        return (f"{self.target}: discarded candidate {self.candidate.label} ({self.candidate.mappings} mappings, "
                f"published against v{self.candidate.based_on}); {live} stays")


def load_desired(permissions: str | Path) -> frozenset[MappingKey]:
    """Read and validate a YAML file or folder, or a compiled snapshot file, exactly as
    the authorizer would.

    Raises:
        PermissionsError: unreadable or invalid YAML, or a snapshot's records the schema
            refuses: every problem with its file and line (or record).
        CorruptStoreError: a snapshot file that is damaged or was edited by hand.
    """
    from policy_engine.adapters import snapshot_file
    from policy_engine.adapters.yaml_files import YamlPermissionSource

    location = str(permissions)
    source = (snapshot_file.SnapshotFilePermissionSource(location) if snapshot_file.is_snapshot_file(location)
              else YamlPermissionSource(permissions))
    raw = source.fetch(None)
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
    try:
        if target.startswith("dynamodb://"):
            from policy_engine.admin.publish.dynamodb import DynamoDbTarget

            return DynamoDbTarget(target.removeprefix("dynamodb://"), client=client, sleep=sleep)
        if target.startswith("s3://"):
            from policy_engine.admin.publish.s3 import S3Target

            return S3Target(target, client=client)
    except ConfigurationError as exc:
        # The stores check names as PERMISSIONS_SOURCE does; here the command line named it.
        raise ConfigurationError("TARGET", exc.problem) from None
    raise ConfigurationError("TARGET", f"{target!r} is not dynamodb://TABLE or s3://BUCKET/KEY")


#: Told the name of each phase as it starts: ``parse``, ``plan``, ``write``.
Phase = Callable[[str], None]
#: Given the plan before anything is written (a dry run: instead of writing).
OnPlan = Callable[[Plan], None]


def _publish(store: PublishTarget, desired: frozenset[MappingKey], *, note: str, dry_run: bool, take_over: bool,
             progress: Progress | None, started: float, repair: bool = False, phase: Phase | None = None,
             on_plan: OnPlan | None = None,
             check: Callable[[int, frozenset[MappingKey]], None] | None = None) -> PublishResult:
    if phase is not None:
        phase("plan")
    current, published = store.published(repair)
    if check is not None:
        check(current, published)
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
    candidate: bool = False,
) -> PublishResult:
    """Publish the mappings of a YAML file or folder to ``target`` as a new version.

    With ``candidate``, publish them as the store's next candidate instead (replacing
    the one there, if any), without touching the live version: the plan, diff and
    result are against the live version, ``result.candidate`` is the new candidate's
    number and ``result.replaced`` the one it replaced. Mappings equal to the
    candidate already there (published against the same live version) write nothing.

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
            this one is visible; re-run). A candidate: another candidate command
            changed the candidate meanwhile.
        StoreError: the store failed (nothing of this publish is visible; re-run).
    """
    started = time.perf_counter()
    if phase is not None:
        phase("parse")
    store = open_target(target, client=client, sleep=sleep)  # first: a bad TARGET is named before the files are read
    desired = load_desired(permissions)
    if candidate:
        if repair or take_over:
            raise ConfigurationError("--repair" if repair else "--take-over",
                                     "is for the live version's publish; a candidate publish takes no claim")
        return _publish_candidate(store, desired, note=note or f"sync {permissions}", dry_run=dry_run,
                                  progress=progress, started=started, phase=phase, on_plan=on_plan)
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
        if current == 0:
            held = "nothing is published yet"
        elif current == 1:
            held = "only v1 is published, which is live"
        else:
            held = f"versions v1..v{current - 1} precede the live v{current}"
        what = "the version before the live one" if to is None else f"v{wanted}"
        raise StoreError(f"{store.description}: cannot roll back to {what}: {held}")
    desired = store.view(wanted)
    return _publish(store, desired, note=f"rollback to v{wanted}", dry_run=dry_run, take_over=take_over,
                    progress=progress, started=started, phase=phase, on_plan=on_plan)


def _publish_candidate(store: PublishTarget, desired: frozenset[MappingKey], *, note: str, dry_run: bool,
                       progress: Progress | None, started: float, phase: Phase | None,
                       on_plan: OnPlan | None) -> PublishResult:
    from policy_engine.core.publish import digest

    if phase is not None:
        phase("plan")
    live, published = store.published()
    change = plan(published, desired)
    if on_plan is not None:
        on_plan(change)
    there = store.candidate()
    replaced = None if there is None else there.number
    if there is not None and there.digest == digest(desired) and there.based_on == live:
        return PublishResult(store.description, change, live, live, False, store.write_requests,
                             time.perf_counter() - started, candidate=there.number, same_candidate=True)
    if dry_run:
        number = store.last_candidate + 1
    else:
        if phase is not None:
            phase("write")
        number = store.publish_candidate(desired, live, note, progress)
    return PublishResult(store.description, change, live, live, not dry_run, store.write_requests,
                         time.perf_counter() - started, candidate=number, replaced=replaced)


def _no_candidate(store: PublishTarget, command: str) -> MissingStoreError:
    return MissingStoreError(f"{store.description}: no candidate to {command} (publish one with "
                             "`policy-engine sync TARGET --candidate`)")


def promote(
    target: str,
    *,
    dry_run: bool = False,
    take_over: bool = False,
    force: bool = False,
    progress: Progress | None = None,
    client: Any = None,
    sleep: Callable[[float], None] = time.sleep,
    phase: Phase | None = None,
    on_plan: OnPlan | None = None,
) -> PublishResult:
    """Publish the candidate's mappings as the next live version, then remove the candidate.

    The publish is a sync's (same claim, same atomic flip, same conflicts), noted
    ``promote c<N>: <the candidate's note>``; ``result.replaced`` is the candidate's
    number. When the candidate's mappings are already live (a promote that stopped
    between its flip and removing the candidate, run again), nothing is published and
    the candidate is only removed. ``take_over`` as for ``sync``.

    Raises:
        MissingStoreError: there is no candidate.
        ConflictError: the live version moved since the candidate was published (its
            ``based_on``) and ``force`` is not given: review it against the new live
            version first (nothing written); or as for ``sync``.
        CorruptStoreError: the candidate's stored copy is not what was published.
        StoreError: as for ``sync``.
    """
    started = time.perf_counter()
    if phase is not None:
        phase("parse")
    store = open_target(target, client=client, sleep=sleep)
    candidate = store.candidate()
    if candidate is None:
        raise _no_candidate(store, "promote")
    desired = store.candidate_keys(candidate)

    def check(current: int, published: frozenset[MappingKey]) -> None:
        from policy_engine.core.publish import digest

        if current != candidate.based_on and not force and digest(published) != candidate.digest:
            raise ConflictError(
                f"{store.description}: the live version moved from v{candidate.based_on} to v{current} since "
                f"{candidate.label} was published; its shadow differences were measured against "
                f"v{candidate.based_on}. Publish it again with `sync --candidate` (and watch it), or promote "
                "with --force. Nothing was written.")

    result = _publish(store, desired, note=f"promote {candidate.label}: {candidate.note}", dry_run=dry_run,
                      take_over=take_over, progress=progress, started=started, phase=phase, on_plan=on_plan,
                      check=check)
    removed = False
    if not dry_run:
        removed = store.end_candidate(candidate, "promoted", result.version_after)
    return replace(result, promoted=candidate.number, candidate_removed=removed,
                   write_requests=store.write_requests, seconds=time.perf_counter() - started)


def discard(target: str, *, client: Any = None) -> DiscardResult:
    """Remove the candidate of ``target`` (recorded as ``discarded``); the live version is untouched.

    Raises:
        MissingStoreError: there is no candidate.
        ConflictError: another command replaced or removed the candidate meanwhile
            (the new candidate, if any, stays).
        StoreError: the store cannot be read or written.
    """
    started = time.perf_counter()
    store = open_target(target, client=client)
    live, _ = store.published()
    candidate = store.candidate()
    if candidate is None:
        raise _no_candidate(store, "discard")
    if not store.end_candidate(candidate, "discarded"):
        raise ConflictError(f"{store.description}: the candidate changed meanwhile ({candidate.label} was replaced, "
                            "promoted or discarded by another command); nothing discarded, look again")
    return DiscardResult(store.description, candidate, live, store.write_requests, time.perf_counter() - started)


def history(target: str, *, client: Any = None) -> list[VersionEntry]:
    """Published versions of ``target``, oldest first (version, digest, mappings, published_at, note),
    then its candidates, oldest first (``candidate: True``, ``version`` the candidate number,
    ``based_on``, ``status``: ``candidate``, ``replaced``, ``promoted`` with ``promoted_to``,
    or ``discarded``).

    For S3, a version whose history copy is not what was published (or cannot be
    checked) is listed with the digest that was published, if known, ``mappings``
    ``None`` and a note starting "not restorable:" saying why.

    Raises:
        StoreError: the store cannot be read.
    """
    store = open_target(target, client=client)
    # As --repair reads it: the list is what one needs when the live version is damaged.
    store.published(repair=True)
    return list(store.history()) + list(store.candidate_history())
