"""The small interfaces the engine needs from the outside world.

Adapters in ``policy_engine/adapters`` implement them; tests use in-memory fakes.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, NotRequired, Protocol, TypedDict

from policy_engine.core.permissions import Locate
from policy_engine.core.tokens import VerificationKey

if TYPE_CHECKING:  # the admin side's types; the runtime never needs them
    from policy_engine.core.publish import Candidate, MappingKey, Plan

__all__ = ["KeySource", "PermissionSource", "Progress", "PublishTarget", "RawPermissions", "TokenIntrospector",
           "VersionEntry"]


class KeySource(Protocol):
    """Gives the verification key an issuer published under ``kid``."""

    def get_key(self, issuer: str, kid: str) -> VerificationKey:
        """Raises ``UnknownKeyError`` (no such key) or ``KeySourceError`` (keys unavailable)."""
        ...


class TokenIntrospector(Protocol):
    """Asks the authorization server about an opaque token (RFC 7662)."""

    def introspect(self, token: str) -> dict[str, Any]:
        """The active answer. Raises ``InactiveTokenError`` or ``IntrospectionError``."""
        ...


@dataclass(frozen=True, slots=True)
class RawPermissions:
    """Unvalidated mapping records as a store holds them.

    ``locate`` turns a path into the records into a place a person can find;
    ``version`` is the store's publish version (``None``: use the content hash);
    ``etag`` is what the source compares on its next ``fetch`` to say "unchanged";
    ``published_at`` is when the store recorded the publish (ISO 8601, UTC; ``None`` for
    files and stores that did not record it): the version-age metric counts from it.
    """

    records: Sequence[Any]
    locate: Locate
    version: str | None
    etag: str
    published_at: str | None = None


class PermissionSource(Protocol):
    """Where mappings come from. Sources only fetch; ``PermissionCache`` owns caching."""

    description: str

    def fetch(self, known_etag: str | None) -> RawPermissions | None:
        """Everything, or ``None`` when the source still matches ``known_etag`` (cheap).

        Raises ``StoreError`` or ``PermissionsError``; never a third-party type.
        """
        ...


#: ``progress(done, total)`` after each written batch of a publish.
Progress = Callable[[int, int], None]


class VersionEntry(TypedDict):
    """One published version, or one candidate, as ``policy-engine rollback --list`` shows it (``None``: unknown).

    A candidate's entry has ``candidate: True`` and its number in ``version``.
    """

    version: int | None
    digest: str | None
    mappings: int | None
    published_at: str | None
    note: str | None
    #: Mappings the version added and removed (DynamoDB records them).
    added: NotRequired[int | None]
    removed: NotRequired[int | None]
    #: Candidates only: the live version it was published against, ``candidate``,
    #: ``replaced``, ``promoted`` or ``discarded``, and the version or candidate that followed it.
    candidate: NotRequired[bool]
    based_on: NotRequired[int | None]
    status: NotRequired[str | None]
    promoted_to: NotRequired[int | None]
    replaced_by: NotRequired[int | None]


class PublishTarget(Protocol):
    """A store that ``policy_engine.admin.publish`` publishes versions to (admin side only).

    ``publish`` drives it: ``published`` (read and check what is live), ``plan`` (pure),
    then ``apply``; ``rollback`` also asks ``view`` for an earlier version's content.
    """

    description: str
    #: The highest candidate number this store has used (after ``candidate``; 0: none yet).
    last_candidate: int

    @property
    def write_requests(self) -> int:
        """Write requests sent so far (retries included)."""
        ...

    def published(self, repair: bool = False) -> tuple[int, frozenset[MappingKey]]:
        """``(version, its mappings)`` as published now (``(0, empty)``: nothing yet).

        Raises ``CorruptStoreError`` when the store holds what no publish wrote (unless
        ``repair``, where supported), ``StoreError`` when it cannot be read.
        """
        ...

    def view(self, version: int) -> frozenset[MappingKey]:
        """The mappings of an earlier ``version``, checked against what was published as it."""
        ...

    def history(self) -> list[VersionEntry]:
        """Published versions, oldest first (after ``published``)."""
        ...

    def apply(self, desired: frozenset[MappingKey], change: Plan, note: str, take_over: bool,
              progress: Progress | None) -> int:
        """Publish ``desired`` (``change`` against the published version) as the next version; its number.

        Raises ``ConflictError`` when another publish got there first; nothing of this
        one is then visible.
        """
        ...

    def complete(self) -> bool:
        """Add what the published version lacks for this release's readers (same content);
        ``True`` if anything was written."""
        ...

    def candidate(self) -> Candidate | None:
        """The candidate as the store names it now (``None``: none); remembered for the calls below.

        Raises ``CorruptStoreError`` when what names it is malformed.
        """
        ...

    def candidate_keys(self, candidate: Candidate) -> frozenset[MappingKey]:
        """The mappings of ``candidate`` (just returned by ``candidate``), checked against its digest.

        Raises ``CorruptStoreError`` when its stored copy is not what was published.
        """
        ...

    def publish_candidate(self, desired: frozenset[MappingKey], based_on: int, note: str,
                          progress: Progress | None) -> int:
        """Publish ``desired`` as the next candidate (replacing the one ``candidate`` read); its number.

        Never touches the live version. Raises ``ConflictError`` when the candidate
        changed since ``candidate`` read it; nothing of this one is then visible.
        """
        ...

    def end_candidate(self, candidate: Candidate, status: str, promoted_to: int | None = None) -> bool:
        """Record ``candidate`` as ``promoted`` or ``discarded``, then remove it; ``False`` when
        another command replaced or removed it first (it is then left alone)."""
        ...

    def candidate_history(self) -> list[VersionEntry]:
        """Every candidate still known, oldest first, with its ``status``."""
        ...
