"""``policy-engine promote TARGET``: make the candidate the live version, then remove it."""

from __future__ import annotations

import argparse
from typing import Any

from policy_engine.admin.cli._arguments import number_in
from policy_engine.admin.cli._common import add_command, add_format
from policy_engine.admin.cli.sync import publish_and_print

__all__ = ["register", "run"]

DESCRIPTION = """\
Publish the candidate's mappings as the next live version, then remove the candidate.

The candidate is what `sync --candidate` published and authorizers have been
evaluating in the shadow of the live version. Promoting it is a publish like
any sync: the change against the live version is printed first, the same
claim is taken, and one atomic switch makes it live. The version's note is
"promote c<N>: <the candidate's note>"; rollback and history record it.

A candidate is judged against the live version it was published on. When the
live version moved since (another sync or a rollback), promote refuses (exit
1): publish the candidate again to watch it against the new live version, or
pass --force. A candidate whose mappings are already live is only removed and
recorded as promoted to that version, whatever published them: a promote run
again after an interruption finishes the job this way, and so does one after a
sync or rollback that published the same mappings (nothing is left to judge).

Exit codes: as for sync (0 promoted, or dry run shown; 1 refused: the live
version moved, or another sync holds the claim; 2 could not run, no candidate).
"""


def register(subparsers: Any) -> None:
    parser = add_command(
        subparsers, "promote", summary="make the candidate the live version (as a new version)",
        description=DESCRIPTION, examples=(
            "policy-engine promote dynamodb://permissions --dry-run   # the change it would make",
            "policy-engine promote dynamodb://permissions",
            "policy-engine promote s3://my-bucket/permissions.json --force --format json",
        ),
    )
    parser.add_argument("target", metavar="TARGET", help="dynamodb://TABLE or s3://BUCKET/KEY")
    parser.add_argument("--dry-run", action="store_true", help="print what would change; write nothing")
    parser.add_argument("--take-over", action="store_true",
                        help="take the claim of another publish that is known to be dead (as for sync)")
    parser.add_argument("--force", action="store_true",
                        help="promote even though the live version moved since the candidate was published")
    parser.add_argument("--max-lines", type=number_in(int, 0), default=1000, metavar="N",
                        help="print at most N diff lines (default 1000; 0: all); JSON lists every change")
    add_format(parser)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from policy_engine.admin.publish import promote

    return publish_and_print(
        "promote", args.target,
        lambda progress, on_plan: promote(args.target, dry_run=args.dry_run, take_over=args.take_over,
                                          force=args.force, progress=progress, phase=progress.phase, on_plan=on_plan),
        args.max_lines, args.format, args.dry_run,
    )
