"""Memos of pure rules' answers, bounded by one rule.

A memo remembers what a pure rule answered for an exact input (a JOSE header segment,
an API ARN, a scope string, a scope set, a policy) so that the next request with the
same input skips the rule. Every memo of the engine is a ``Memo`` and keeps these rules:

* It belongs to one owner: an ``Authorizer``, or an object it owns (its ``JwtVerifier``,
  the ``PermissionSet`` its cache holds). Only the module whose rule it shortens reads
  it, right beside that rule; no other module reads it, and nothing treats an entry as
  a trust decision about anything but the exact input the rule answered for.
* It holds only answers the rule gave (never a refusal), under the exact input, so a
  hit returns what the rule would return again. Entries are never mutated.
* It holds at most ``MEMO_ENTRIES`` entries: when full, it is emptied before the next
  entry is added. Nothing is tracked on a hit, and an input that fills it only costs
  the rule's work again.
"""

from __future__ import annotations

from typing import TypeVar

__all__ = ["MEMO_ENTRIES", "Memo"]

#: The most entries any memo holds. A warm container sees a handful of issuers' headers,
#: APIs and client profiles; hostile or rare inputs past this only cost the rule again.
MEMO_ENTRIES = 256

K = TypeVar("K")
V = TypeVar("V")


class Memo(dict[K, V]):
    """A dict whose ``remember`` empties it when it holds ``MEMO_ENTRIES`` entries.

    Read with ``get`` (a plain dict lookup: this sits on every request's path).
    """

    __slots__ = ()

    def remember(self, key: K, value: V) -> V:
        """Store ``value`` under ``key`` (emptying the memo first when it is full); return ``value``."""
        if len(self) >= MEMO_ENTRIES:
            self.clear()
        self[key] = value
        return value
