"""``policy-engine sync TARGET``: publish the YAML permissions to a table or bucket.

Validates the YAML first (as the authorizer would), prints the diff against what is
published, and (unless ``--dry-run``) publishes it as a new version in one atomic
flip. Unchanged YAML writes nothing. Exit 0: published, unchanged or dry run listed;
1: refused (another sync holds the claim or published meanwhile); 2: invalid YAML,
missing or corrupt store, AWS failure.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from typing import Any

from policy_engine.admin.cli._progress import TerminalProgress
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
    parser.add_argument("--max-lines", type=int, default=1000, metavar="N",
                        help="print at most N diff lines (default 1000; 0: all)")
    parser.add_argument("--repair", action="store_true",
                        help="publish even if the current version's items fail its digest (DynamoDB)")
    parser.add_argument("--note", default="", help="text recorded with the version (default: the YAML path)")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from policy_engine.admin.publish import sync

    return publish_and_print(
        f"sync {args.target}",
        lambda progress: sync(args.permissions, args.target, dry_run=args.dry_run, take_over=args.take_over,
                              repair=args.repair, note=args.note, progress=progress),
        args.max_lines,
    )


def publish_and_print(title: str, publish: Callable[[TerminalProgress], Any], max_lines: int) -> int:
    """Run a publish with a progress line, print its diff; a lost race is exit 1, not a crash."""
    progress = TerminalProgress(title)
    try:
        result = publish(progress)
    except ConflictError as exc:
        print(f"policy-engine {title.split()[0]}: {exc}", file=sys.stderr)
        return 1
    finally:
        progress.close()
    print_result(result, max_lines)
    return 0


def print_result(result: Any, max_lines: int = 0) -> None:
    """The diff (``-`` removed, ``+`` added), then one summary line."""
    lines = result.plan.lines()
    shown = lines if max_lines <= 0 else lines[:max_lines]
    for line in shown:
        print(line)
    if len(shown) < len(lines):
        print(f"... and {len(lines) - len(shown)} more lines (--max-lines 0 prints all)")
    print(result.describe())
