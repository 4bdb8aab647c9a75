"""``policy-engine compile PATHS -o SNAPSHOT``: permission files to the compiled snapshot."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from policy_engine.admin.cli._common import add_command
from policy_engine.admin.cli._progress import TerminalProgress
from policy_engine.admin.files import input_overwritten, write_output
from policy_engine.admin.publish import compile_snapshot
from policy_engine.core.publish import digest
from policy_engine.errors import PermissionsError, StoreError

DESCRIPTION = """\
Validate permission files and write them as one compiled snapshot, the form the
authorizer loads fastest.

The snapshot is the JSON document the S3 store publishes (the mappings in
canonical form and their content digest): PERMISSIONS_SOURCE may name it, bundle
ships one, and it can be uploaded as the first version of an S3 store. The same
mappings give the same bytes. Every problem is reported with file:line and
nothing is written unless all files are valid. validate checks more (conflicts,
catalogs, policy sizes): run it too.

Exit codes: 0 written; 1 invalid permissions (nothing written); 2 could not run.
"""


def register(subparsers: Any) -> None:
    parser = add_command(
        subparsers, "compile", summary="validate permission files and write the compiled snapshot",
        description=DESCRIPTION, examples=(
            "policy-engine compile permissions/ -o build/permissions.json",
        ),
    )
    parser.add_argument("paths", nargs="+", metavar="PATH",
                        help="YAML files or folders (or compiled snapshots, checked and merged)")
    parser.add_argument("-o", "--output", type=Path, required=True, metavar="SNAPSHOT",
                        help="file to write (a .json name keeps it recognisable)")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    missing = [path for path in args.paths if not Path(path).exists()]
    if missing:
        raise StoreError(f"{missing[0]}: no such file or folder")
    overwritten = input_overwritten(args.output, args.paths)
    if overwritten is not None:
        raise StoreError(f"{args.output}: would replace the permission file {overwritten}; write the snapshot "
                         "elsewhere (a .json name outside the permission folders)")
    progress = TerminalProgress("compile")
    try:
        progress.phase("parse")
        body, keys = compile_snapshot(args.paths)
    except PermissionsError as exc:
        progress.close()
        for problem in exc.problems:
            print(problem, file=sys.stderr)
        print(f"policy-engine compile: {len(exc.problems)} problem(s); {args.output} not written", file=sys.stderr)
        return 1
    progress.phase("write")
    output: Path = args.output
    try:
        write_output(output, body, str(args.output))
    finally:
        progress.close()
    print(f"compiled  {len(keys)} mappings from {', '.join(args.paths)}")
    print(f"snapshot  {output} ({len(body):,} bytes, {digest(keys)})")
    return 0
