"""What a publish changes: pure set arithmetic over mapping identities.

A published version is a *set* of mappings. A mapping is identified by all of its
fields ``(arn, stage, httpVerb, resource, needs)`` (``needs``: the scope, or the
canonical JSON of what the mapping needs, ``core.permissions.requirement_text``):
there is nothing else to a mapping, so an edited line is one mapping removed and another added. ``plan`` turns
"what the store holds" and "what the YAML says" into the smallest change; stores
write only that. ``digest`` is the content hash readers use to prove they loaded
exactly the set that was published (it equals ``PermissionSet.version`` of the same
mappings loaded from YAML).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, NamedTuple

from policy_engine.core.permissions import PermissionSet, content_digest, is_member_json

__all__ = ["Candidate", "MappingKey", "Plan", "digest", "keys_of", "plan", "record_of"]


class MappingKey(NamedTuple):
    """One mapping in canonical form: verb upper-case or ``*``, resource with a leading ``/``,
    ``needs`` the scope or the canonical JSON of the requirement."""

    arn: str
    stage: str
    verb: str
    resource: str
    needs: str

    def __str__(self) -> str:
        api = self.arn.rsplit(":", 1)[-1]
        return f"{api} {self.stage} {self.verb} {self.resource} -> {self.needs}"


def keys_of(permissions: PermissionSet) -> frozenset[MappingKey]:
    """The canonical keys of every grant in ``permissions``."""
    return frozenset(
        MappingKey(g.route.api_arn, g.route.stage, g.route.verb, "/" + g.route.resource, g.needs)
        for g in permissions.grants
    )


def record_of(key: MappingKey) -> dict[str, Any]:
    """The raw record ``compile_records`` accepts for ``key``: its canonical record, with
    ``scope`` for one scope, else the member its needs text holds (``allOf``,
    ``authenticated``)."""
    record: dict[str, Any] = {"arn": key.arn, "stage": key.stage, "httpVerb": key.verb, "resource": key.resource}
    if is_member_json(key.needs):
        record.update(json.loads(key.needs))
    else:
        record["scope"] = key.needs
    return record


def digest(keys: Iterable[MappingKey]) -> str:
    """Order-independent content hash of the keys: ``content_digest`` of their rows."""
    return content_digest((k.arn, k.stage, k.verb, k.resource.removeprefix("/"), k.needs) for k in keys)


@dataclass(frozen=True, slots=True)
class Plan:
    """The change from ``current`` to ``desired``: what to add, what to remove."""

    added: tuple[MappingKey, ...]
    removed: tuple[MappingKey, ...]
    unchanged: int
    digest: str

    @property
    def empty(self) -> bool:
        return not self.added and not self.removed

    def lines(self) -> list[str]:
        """A diff a reviewer reads: ``-`` then ``+`` per API and stage, sorted."""
        marked = [(k, 0) for k in self.removed] + [(k, 1) for k in self.added]
        marked.sort(key=lambda item: (item[0].arn, item[0].stage, item[0].resource, item[0].verb, item[1],
                                      item[0].needs))
        return [f"{'-+'[sign]} {key}" for key, sign in marked]

    def summary(self) -> str:
        return f"{len(self.added)} added, {len(self.removed)} removed, {self.unchanged} unchanged"


def plan(current: Iterable[MappingKey], desired: Iterable[MappingKey]) -> Plan:
    """The smallest change turning ``current`` into ``desired``."""
    have, want = frozenset(current), frozenset(desired)
    return Plan(
        added=tuple(sorted(want - have)),
        removed=tuple(sorted(have - want)),
        unchanged=len(have & want),
        digest=digest(want),
    )


@dataclass(frozen=True, slots=True)
class Candidate:
    """A candidate as its store names it (``sync --candidate``); its mappings are read apart."""

    #: The candidate number (label ``c<number>``); numbers are never reused in a store.
    number: int
    digest: str
    mappings: int
    published_at: str
    note: str
    #: The live version when it was published (0: none).
    based_on: int

    @property
    def label(self) -> str:
        return f"c{self.number}"
