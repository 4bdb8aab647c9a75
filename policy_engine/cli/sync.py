"""``policy-engine sync TARGET``: publish the YAML permissions to a table or bucket.

Validates the YAML first (as the authorizer would), prints the diff against what is
published, and (unless ``--dry-run``) publishes it as a new version in one atomic
flip. Unchanged YAML writes nothing. Exit 0: published, unchanged or dry run listed;
1: refused (another sync holds the claim or published meanwhile); 2: invalid YAML,
missing or corrupt store, AWS failure.
"""

from __future__ import annotations

import argparse
from typing import Any

from policy_engine.cli._progress import TerminalProgress
from policy_engine.errors import ConflictError

DEFAULT_PERMISSIONS = "permissions"


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("sync", help="publish YAML permissions to DynamoDB or S3 (atomic, versioned)",
                                   description=__doc__)
    parser.add_argument("target", metavar="TARGET", help="dynamodb://TABLE or s3://BUCKET/KEY")
    parser.add_argument("--permissions", default=DEFAULT_PERMISSIONS, metavar="PATH",
                        help="YAML file or folder (default: permissions)")
    parser.add_argument("--dry-run", action="store_true", help="print what would change; write nothing")
    parser.add_argument("--take-over", action="store_true",
                        help="take the claim of another sync that is known to be dead, without waiting for its lease")
    parser.add_argument("--repair", action="store_true",
                        help="publish even if the current version's items fail its digest (DynamoDB)")
    parser.add_argument("--note", default="", help="text recorded with the version (default: the YAML path)")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from policy_engine.publish import sync

    progress = TerminalProgress(f"sync {args.target}")
    try:
        result = sync(args.permissions, args.target, dry_run=args.dry_run, take_over=args.take_over,
                      repair=args.repair, note=args.note, progress=progress)
    except ConflictError as exc:
        progress.close()
        print(f"policy-engine sync: {exc}")
        return 1
    progress.close()
    print_result(result)
    return 0


def print_result(result: Any) -> None:
    for line in result.plan.lines():
        print(line)
    print(result.describe())
