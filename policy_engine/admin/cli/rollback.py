"""``policy-engine rollback TARGET``: publish an earlier version's mappings as a new version.

``--to N`` picks the version (default: the one before the current); ``--list`` shows
the published versions. History is never rewritten: rolling back v7 to v5 publishes
v8 equal to v5, so warm authorizers pick it up like any other publish. Exit codes as
for ``sync``.
"""

from __future__ import annotations

import argparse
from typing import Any

from policy_engine.admin.cli.sync import publish_and_print


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("rollback", help="restore a previous published version (as a new version)",
                                   description=__doc__)
    parser.add_argument("target", metavar="TARGET", help="dynamodb://TABLE or s3://BUCKET/KEY")
    parser.add_argument("--to", type=int, metavar="N", help="version to restore (default: the previous one)")
    parser.add_argument("--list", action="store_true", help="list published versions and exit")
    parser.add_argument("--dry-run", action="store_true", help="print what would change; write nothing")
    parser.add_argument("--take-over", action="store_true", help="as for sync")
    parser.add_argument("--max-lines", type=int, default=1000, metavar="N", help="as for sync")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from policy_engine.admin.publish import history, rollback

    if args.list:
        for entry in history(args.target):
            mappings = "?" if entry["mappings"] is None else entry["mappings"]
            print(f"v{entry['version']:<5} {entry['published_at'] or '?':<25}  {mappings:>6} mappings  "
                  f"{entry['digest'] or '?'}  {entry['note']}")
        return 0
    return publish_and_print(
        f"rollback {args.target}",
        lambda progress: rollback(args.target, to=args.to, dry_run=args.dry_run, take_over=args.take_over,
                                  progress=progress),
        args.max_lines,
    )
