"""``policy-engine sync TARGET``: publish the YAML permissions to a table or bucket."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from typing import Any

from policy_engine.admin.cli._arguments import number_in
from policy_engine.admin.cli._common import add_command, add_format, print_json
from policy_engine.admin.cli._progress import TerminalProgress
from policy_engine.core.publish import MappingKey, Plan
from policy_engine.errors import ConflictError

__all__ = ["json_result", "print_diff", "publish_and_print", "register", "run"]

DEFAULT_PERMISSIONS = "permissions"

DESCRIPTION = """\
Publish permission files to a DynamoDB table or an S3 object, as a new version.

The files are validated first, exactly as the authorizer reads them. Then the
change against what is published is printed (- removed, + added) BEFORE anything
is written, and the new version is published in one atomic switch that running
authorizers pick up on their next check. Unchanged files write nothing.
--dry-run prints the same change and writes nothing.

--candidate publishes the files as a candidate instead: the live version does
not change, and authorizers evaluate the candidate beside it, logging where
they would decide differently (shadow_diff). The change printed is candidate
against live. A candidate already there is replaced (the output says so);
`promote` makes the candidate live, `discard` removes it.

Exit codes: 0 published, unchanged, or dry run shown; 1 refused (another sync
holds the claim or published meanwhile: run it again); 2 could not run (invalid
files, missing or damaged store, AWS error).
"""


def register(subparsers: Any) -> None:
    parser = add_command(
        subparsers, "sync", summary="publish permission files to DynamoDB or S3 (atomic, versioned)",
        description=DESCRIPTION, examples=(
            "policy-engine sync dynamodb://permissions --dry-run     # the change, nothing written",
            "policy-engine sync dynamodb://permissions --permissions perms/ --note 'PR 42'",
            "policy-engine sync s3://my-bucket/permissions.json --format json",
            "policy-engine sync dynamodb://permissions --candidate --note 'PR 43'   # shadow it first",
        ),
    )
    parser.add_argument("target", metavar="TARGET", help="dynamodb://TABLE or s3://BUCKET/KEY")
    parser.add_argument("--permissions", default=DEFAULT_PERMISSIONS, metavar="PATH",
                        help="YAML file or folder, or a compiled snapshot (default: permissions)")
    parser.add_argument("--dry-run", action="store_true", help="print what would change; write nothing")
    parser.add_argument("--take-over", action="store_true",
                        help="take the claim of another sync that is known to be dead, without waiting for its lease")
    parser.add_argument("--max-lines", type=number_in(int, 0), default=1000, metavar="N",
                        help="print at most N diff lines (default 1000; 0: all); JSON lists every change")
    parser.add_argument("--repair", action="store_true",
                        help="publish even if the current version's items fail its digest (DynamoDB), or the "
                             "authorizers refuse the live object (S3: an unchanged sync puts back its published copy)")
    parser.add_argument("--note", default="", help="text recorded with the version (default: the YAML path)")
    parser.add_argument("--candidate", action="store_true",
                        help="publish as the candidate, beside the live version (which does not change)")
    add_format(parser)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from policy_engine.admin.publish import sync

    return publish_and_print(
        "sync", args.target,
        lambda progress, on_plan: sync(args.permissions, args.target, dry_run=args.dry_run, take_over=args.take_over,
                                       repair=args.repair, note=args.note, progress=progress, phase=progress.phase,
                                       on_plan=on_plan, candidate=args.candidate),
        args.max_lines, args.format, args.dry_run,
    )


def publish_and_print(command: str, target: str, publish: Callable[[TerminalProgress, Callable[[Plan], None]], Any],
                      max_lines: int, output: str = "text", dry_run: bool = False) -> int:
    """Run a publish with progress, print its diff before it writes and its summary after.

    A lost race (``ConflictError``) is exit 1, not a crash; in JSON mode the document then
    has ``status: refused`` and the reason.
    """
    as_json = output == "json"
    progress = TerminalProgress(f"{command} {target}", enabled=not as_json)
    shown: list[Plan] = []

    def on_plan(plan: Plan) -> None:
        shown.append(plan)
        if not as_json:
            progress.close()
            print_diff(plan, max_lines)
            sys.stdout.flush()

    try:
        result = publish(progress, on_plan)
    except ConflictError as exc:
        progress.close()
        if as_json:
            plan = _plan_fields(shown[0]) if shown else dict.fromkeys(("added", "removed", "unchanged", "digest"))
            print_json({"command": command, "target": target, "dry_run": dry_run, "status": "refused",
                        "version_before": None, "version_after": None, **plan, "write_requests": None,
                        "seconds": None, "summary": f"{target}: refused", "error": str(exc), "candidate": None,
                        **({"candidate_removed": False} if command == "promote" else {"replaced": None})})
        print(f"policy-engine {command}: {exc}", file=sys.stderr)
        return 1
    finally:
        progress.close()
    if as_json:
        print_json(json_result(command, result, dry_run))
    else:
        print(result.describe())
    return 0


def print_diff(plan: Plan, max_lines: int = 0) -> None:
    """The diff (``-`` removed, ``+`` added), at most ``max_lines`` lines (0: all)."""
    lines = plan.lines()
    shown = lines if max_lines <= 0 else lines[:max_lines]
    for line in shown:
        print(line)
    if len(shown) < len(lines):
        print(f"... and {len(lines) - len(shown)} more lines (--max-lines 0 prints all)")


def _mapping(key: MappingKey) -> dict[str, str]:
    return {"api": key.arn, "stage": key.stage, "verb": key.verb, "resource": key.resource, "needs": key.needs}


def _plan_fields(plan: Plan) -> dict[str, Any]:
    return {"added": [_mapping(k) for k in plan.added], "removed": [_mapping(k) for k in plan.removed],
            "unchanged": plan.unchanged, "digest": plan.digest}


def json_result(command: str, result: Any, dry_run: bool) -> dict[str, Any]:
    """The ``--format json`` document of a finished sync, rollback or promote (fields: docs/cli.md)."""
    document = {
        "command": command, "target": result.target, "dry_run": dry_run, "status": result.status,
        "version_before": result.version_before, "version_after": result.version_after,
        **_plan_fields(result.plan),
        "write_requests": result.write_requests, "seconds": round(result.seconds, 3),
        "summary": result.describe(), "error": None,
    }
    if command == "promote":
        document.update(candidate=result.promoted, candidate_removed=result.candidate_removed)
    else:
        document.update(candidate=result.candidate, replaced=result.replaced)
    return document
