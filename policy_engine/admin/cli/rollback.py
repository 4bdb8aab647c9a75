"""``policy-engine rollback TARGET``: publish an earlier version's mappings as a new version."""

from __future__ import annotations

import argparse
from typing import Any

from policy_engine.admin.cli._arguments import number_in
from policy_engine.admin.cli._common import add_command, add_format, print_json, visible
from policy_engine.admin.cli.sync import publish_and_print
from policy_engine.ports import VersionEntry

__all__ = ["register", "run"]

DESCRIPTION = """\
Restore the permissions of an earlier published version, as a new version.

History is never rewritten: rolling back v7 to v5 publishes v8 equal to v5, so
running authorizers pick it up like any other publish. The change is printed
before it is written, as for sync. --list shows the published versions, then
the candidates (`sync --candidate`): each with the live version it was
published against and what became of it (candidate, replaced, promoted as vN,
discarded). A rollback leaves a candidate alone; it is then evaluated beside
the new live version.

Exit codes: as for sync (0 done or listed, 1 refused, 2 could not run).
"""


def register(subparsers: Any) -> None:
    parser = add_command(
        subparsers, "rollback", summary="restore a previous published version (as a new version)",
        description=DESCRIPTION, examples=(
            "policy-engine rollback dynamodb://permissions --list",
            "policy-engine rollback dynamodb://permissions            # back to the version before",
            "policy-engine rollback s3://my-bucket/permissions.json --to 5 --dry-run",
        ),
    )
    parser.add_argument("target", metavar="TARGET", help="dynamodb://TABLE or s3://BUCKET/KEY")
    parser.add_argument("--to", type=number_in(int, 1), metavar="N",
                        help="version to restore (default: the previous one)")
    parser.add_argument("--list", action="store_true", help="list published versions and candidates, and exit")
    parser.add_argument("--dry-run", action="store_true", help="print what would change; write nothing")
    parser.add_argument("--take-over", action="store_true",
                        help="take the claim of another publish that is known to be dead (as for sync)")
    parser.add_argument("--max-lines", type=number_in(int, 0), default=1000, metavar="N",
                        help="print at most N diff lines (default 1000; 0: all)")
    add_format(parser)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from policy_engine.admin.publish import history, rollback

    if args.list:
        entries = history(args.target)
        versions = [entry for entry in entries if not entry.get("candidate")]
        candidates = [entry for entry in entries if entry.get("candidate")]
        if args.format == "json":
            fields = ("version", "digest", "mappings", "published_at", "note", "added", "removed")
            kept = ("version", "digest", "mappings", "published_at", "note", "based_on", "status", "promoted_to",
                    "replaced_by")
            print_json({"command": "rollback", "target": args.target,
                        "versions": [{name: entry.get(name) for name in fields} for entry in versions],
                        "candidates": [{("candidate" if name == "version" else name): entry.get(name)
                                        for name in kept} for entry in candidates]})
            return 0
        # A record edited by hand may lack any member: shown as '?', never a traceback.
        for entry in versions:
            print(f"v{_shown(entry['version']):<5} {_shown(entry['published_at']):<25}  "
                  f"{_shown(entry['mappings']):>6} mappings  {_shown(entry['digest'])}  {_shown(entry['note'])}")
        for entry in candidates:
            print(f"c{_shown(entry['version']):<5} {_shown(entry['published_at']):<25}  "
                  f"{_shown(entry['mappings']):>6} mappings  {_shown(entry['digest'])}  {_shown(entry['note'])}  "
                  f"[{_fate(entry)}]")
        return 0
    return publish_and_print(
        "rollback", args.target,
        lambda progress, on_plan: rollback(args.target, to=args.to, dry_run=args.dry_run, take_over=args.take_over,
                                           progress=progress, phase=progress.phase, on_plan=on_plan),
        args.max_lines, args.format, args.dry_run,
    )


def _fate(entry: VersionEntry) -> str:
    """What became of a candidate, for ``--list``."""
    status, based_on = entry.get("status"), entry.get("based_on")
    against = f"on v{based_on}" if based_on is not None else "on ?"
    if status == "promoted":
        return f"promoted as v{entry.get('promoted_to')}, was {against}"
    if status == "replaced":
        return f"replaced by c{entry.get('replaced_by')}, was {against}"
    if status == "candidate":
        return f"candidate {against}"
    return f"{status or 'unknown'}, was {against}"


def _shown(value: object) -> str:
    return "?" if value is None else visible(value)  # a note may hold control characters
