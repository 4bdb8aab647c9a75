"""``policy-engine migrate dynamodb://TABLE``: create or update the permission table.

Applies the pending steps of ``migrations/`` in order and records each in the table;
``--dry-run`` only lists them. Re-running is harmless. Exit 0: done (or listed);
2: the table exists with keys or index key types policy-engine cannot use (nothing
changed), or AWS refused a step.
"""

from __future__ import annotations

import argparse
from typing import Any

from policy_engine.errors import ConfigurationError


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("migrate", help="create the DynamoDB table / apply pending layout migrations",
                                   description=__doc__)
    parser.add_argument("target", metavar="TARGET", help="dynamodb://TABLE")
    parser.add_argument("--dry-run", action="store_true", help="list pending migrations; change nothing")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from policy_engine.admin.migrate import migrate

    if not args.target.startswith("dynamodb://"):
        raise ConfigurationError("TARGET", f"{args.target!r}: migrate works on dynamodb://TABLE (S3 needs none)")
    table = args.target.removeprefix("dynamodb://")
    result = migrate(table, dry_run=args.dry_run, say=lambda message: print(f"  {message}"))
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
