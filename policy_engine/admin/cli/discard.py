"""``policy-engine discard TARGET``: remove the candidate; the live version stays."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from policy_engine.admin.cli._common import add_command, add_format, print_json
from policy_engine.errors import ConflictError

__all__ = ["register", "run"]

DESCRIPTION = """\
Remove the candidate that `sync --candidate` published; the live version does
not change. Authorizers stop evaluating it at their next store check.
rollback --list keeps a record of it (discarded).

Exit codes: 0 discarded; 1 refused (another command replaced or removed the
candidate meanwhile); 2 could not run (no candidate, AWS error).
"""


def register(subparsers: Any) -> None:
    parser = add_command(
        subparsers, "discard", summary="remove the candidate (the live version stays)",
        description=DESCRIPTION, examples=(
            "policy-engine discard dynamodb://permissions",
            "policy-engine discard s3://my-bucket/permissions.json --format json",
        ),
    )
    parser.add_argument("target", metavar="TARGET", help="dynamodb://TABLE or s3://BUCKET/KEY")
    add_format(parser)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from policy_engine.admin.publish import discard

    as_json = args.format == "json"
    try:
        result = discard(args.target)
    except ConflictError as exc:
        if as_json:
            print_json({"command": "discard", "target": args.target, "status": "refused", "candidate": None,
                        "digest": None, "mappings": None, "based_on": None, "version": None,
                        "write_requests": None, "seconds": None, "summary": f"{args.target}: refused",
                        "error": str(exc)})
        print(f"policy-engine discard: {exc}", file=sys.stderr)
        return 1
    if as_json:
        candidate = result.candidate
        print_json({"command": "discard", "target": result.target, "status": "discarded",
                    "candidate": candidate.number, "digest": candidate.digest, "mappings": candidate.mappings,
                    "based_on": candidate.based_on, "version": result.live_version,
                    "write_requests": result.write_requests, "seconds": round(result.seconds, 3),
                    "summary": result.describe(), "error": None})
    else:
        print(result.describe())
    return 0
