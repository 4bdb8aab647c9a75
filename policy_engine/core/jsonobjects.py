"""JSON objects read with unique member names.

RFC 8259 §4 leaves the meaning of a name given twice undefined: Python's json keeps the
last, another reader of the same text may keep the first (``{"active": false, "active":
true}``). Trust material and settings that use one have no meaning to rely on, so their
readers refuse it. (Token JSON has its own hook in ``core.tokens.jws``, raising a token
error on the hot path.)
"""

from __future__ import annotations

from collections import Counter
from typing import Any

__all__ = ["DuplicateMemberError", "unique_members"]


class DuplicateMemberError(ValueError):
    """A JSON object names a member more than once; the message says which."""


def unique_members(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """``object_pairs_hook`` for ``json.loads``: the object, unless a name repeats.

    Raises:
        DuplicateMemberError: a name is given twice.
    """
    members = dict(pairs)
    if len(members) != len(pairs):
        twice = sorted(name for name, count in Counter(name for name, _ in pairs).items() if count > 1)
        raise DuplicateMemberError(f"an object names {', '.join(map(repr, twice))} more than once")
    return members
