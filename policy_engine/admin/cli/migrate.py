"""``policy-engine migrate dynamodb://TABLE``: create or update the permission table."""

from __future__ import annotations

import argparse
from typing import Any

from policy_engine.adapters.dynamodb import check_table_name
from policy_engine.admin.cli._common import add_command, add_format, print_json
from policy_engine.errors import ConfigurationError

__all__ = ["register", "run"]

DESCRIPTION = """\
Create the DynamoDB permission table, or bring an existing one up to date.

Applies the layout steps the table has not had yet, in order, and records each
in the table, so running it again is harmless. --dry-run only lists them. An S3
store needs no migration.

Exit codes: 0 done (or listed); 2 could not run: the table exists with keys or
index key types policy-engine cannot use (nothing changed), or AWS refused a step.
"""


def register(subparsers: Any) -> None:
    parser = add_command(
        subparsers, "migrate", summary="create the DynamoDB table / apply pending layout migrations",
        description=DESCRIPTION, examples=(
            "policy-engine migrate dynamodb://permissions --dry-run",
            "AWS_ENDPOINT_URL=http://127.0.0.1:8000 policy-engine migrate dynamodb://permissions",
        ),
    )
    parser.add_argument("target", metavar="TARGET", help="dynamodb://TABLE")
    parser.add_argument("--dry-run", action="store_true", help="list pending migrations; change nothing")
    add_format(parser)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from policy_engine.admin.migrate import migrate

    if not args.target.startswith("dynamodb://"):
        raise ConfigurationError("TARGET", f"{args.target!r}: migrate works on dynamodb://TABLE (S3 needs none)")
    table = check_table_name(args.target.removeprefix("dynamodb://"), "TARGET")
    as_json = args.format == "json"
    result = migrate(table, dry_run=args.dry_run, say=(lambda message: None) if as_json else
                     (lambda message: print(f"  {message}", flush=True)))
    if as_json:
        print_json({
            "command": "migrate", "target": args.target, "table": table, "dry_run": args.dry_run,
            "already_applied": list(result.already_applied), "pending": list(result.pending),
            "applied": list(result.applied), "up_to_date": not result.pending or len(result.applied) == len(
                result.pending),
        })
        return 0
    for label in result.already_applied:
        print(f"applied   {label}")
    for label in result.pending:
        print(f"{'applied ' if label in result.applied else 'pending '}  {label}"
              + ("  (just now)" if label in result.applied else ""))
    if not result.pending:
        print(f"{args.target}: up to date")
    elif args.dry_run:
        print(f"{args.target}: {len(result.pending)} pending (dry run, nothing changed)")
    return 0
