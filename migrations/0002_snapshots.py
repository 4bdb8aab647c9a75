"""Store the published version as a compressed snapshot, which authorizers of this release load.

Tables published before snapshots existed hold the version only as ``MAPPINGS`` items,
which a reader had to page through (about 290 read units for 10,000 mappings). This
step writes the published version's snapshot parts and attaches them to the pointer;
the version, its digest and its mappings stay as they are. No key changes.

Idempotent: a version that already has an intact snapshot is left alone, and a table
with nothing published has nothing to do. Every later ``sync`` writes snapshots itself,
but a ``sync`` of an older release does not: so every later ``migrate`` checks again
(``recheck``), and writes the snapshot of a version published without one.
"""

from __future__ import annotations

from typing import Any

DESCRIPTION = "store the published version as a compressed snapshot (what authorizers load)"


def apply(ctx: Any) -> None:
    from policy_engine.admin.publish.dynamodb import DynamoDbTarget

    target = DynamoDbTarget(ctx.table, client=ctx.client)
    version, _ = target.published()
    if version == 0:
        ctx.say("nothing published yet; sync writes snapshots")
    elif target.complete():
        ctx.say(f"wrote the snapshot of v{version}")
    else:
        ctx.say(f"v{version} already has its snapshot")


def recheck(ctx: Any) -> None:
    from policy_engine.admin.publish.dynamodb import DynamoDbTarget

    target = DynamoDbTarget(ctx.table, client=ctx.client)
    version, _ = target.published()
    if version and target.complete():
        ctx.say(f"wrote the snapshot of v{version} (published without one, by an older release)")
