"""The small interfaces the engine needs from the outside world.

Adapters in ``policy_engine/adapters`` implement them; tests use in-memory fakes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from policy_engine.core.permissions import Locate
from policy_engine.core.tokens import VerificationKey

__all__ = ["KeySource", "PermissionSource", "RawPermissions", "TokenIntrospector"]


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
    ``etag`` is what the source compares on its next ``fetch`` to say "unchanged".
    """

    records: Sequence[Any]
    locate: Locate
    version: str | None
    etag: str


class PermissionSource(Protocol):
    """Where mappings come from. Sources only fetch; ``PermissionCache`` owns caching."""

    description: str

    def fetch(self, known_etag: str | None) -> RawPermissions | None:
        """Everything, or ``None`` when the source still matches ``known_etag`` (cheap).

        Raises ``StoreError`` or ``PermissionsError``; never a third-party type.
        """
        ...
