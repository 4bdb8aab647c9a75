"""``policy-engine bundle``: build the Lambda deployment zip for an architecture and runtime."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from policy_engine.admin.cli._common import add_command, add_format, print_json
from policy_engine.admin.cli._progress import TerminalProgress
from policy_engine.admin.files import input_overwritten
from policy_engine.admin.packaging import ARCHITECTURES, PYTHON_VERSIONS, build_bundle, default_output
from policy_engine.errors import BundleError

DESCRIPTION = """\
Build the zip to deploy as the authorizer Lambda function.

The zip holds the handler (handler.app.lambda_handler) and only the modules it
can import (no CLI, no local tools), the permissions compiled into one snapshot
file, and the runtime dependencies as Linux wheels for the chosen architecture
and Python version (an arm64 zip built on x86_64 carries aarch64 code). Bytecode
is included unless --no-compile, so no cold start compiles a module. With
--mypyc the modules every warm decision runs through also ship as C extensions
compiled by mypyc (needs mypy and setuptools, a C compiler and the Python
headers; builds for this machine's architecture). The same inputs give the same
bytes: the printed sha256 is a build fingerprint.

Exit codes: 0 built; 2 could not run (invalid permissions, no wheel for the
target, no interpreter of the target Python version for the bytecode, mypyc
missing or failing).
"""


def register(subparsers: Any) -> None:
    parser = add_command(
        subparsers, "bundle", summary="build the Lambda deployment zip", description=DESCRIPTION, examples=(
            "policy-engine bundle                                   # x86_64, Python 3.12, ./permissions",
            "policy-engine bundle --arch arm64 --python 3.13 --output dist/authorizer.zip",
            "policy-engine bundle --no-permissions --format json   # the function reads a store",
            "policy-engine bundle --python 3.11 --mypyc            # faster warm decisions, this machine's arch",
        ),
    )
    parser.add_argument("--arch", choices=sorted(ARCHITECTURES), default="x86_64",
                        help="Lambda architecture (default x86_64)")
    parser.add_argument("--python", choices=sorted(PYTHON_VERSIONS), default="3.12",
                        help="Lambda Python runtime version (default 3.12)")
    parser.add_argument("--include-boto3", action="store_true",
                        help="also bundle boto3 (the Lambda runtime already provides one)")
    parser.add_argument("--output", type=Path,
                        help="zip to write (default dist/policy-engine-lambda-ARCH-pyX.Y.zip)")
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--permissions", type=Path, default=Path("permissions"),
                       help="YAML file or folder (or a compiled snapshot), validated and shipped compiled as "
                            "the file 'permissions' "
                            "(default: ./permissions)")
    where.add_argument("--no-permissions", dest="permissions", action="store_const", const=None,
                       help="ship no permissions (the function must read a store)")
    parser.add_argument("--wheel-cache", type=Path, default=Path(".cache/wheels"),
                        help="folder of downloaded wheels, reused offline (default .cache/wheels)")
    parser.add_argument("--compile", action=argparse.BooleanOptionalAction, default=True,
                        help="ship bytecode, so no cold start compiles a module (default; needs a Python of the "
                             "target version: this one, pythonX.Y on PATH, or a pyenv or uv installation); "
                             "--no-compile leaves it out")
    parser.add_argument("--mypyc", action="store_true",
                        help="also ship the modules every warm decision runs through as C extensions compiled by "
                             "mypyc (needs mypy and setuptools for the target's Python, a C compiler and the Python "
                             "headers; only for this machine's architecture; see docs/deployment.md)")
    parser.add_argument("--refresh", action="store_true",
                        help="ask the package index again instead of resolving from the cache")
    add_format(parser)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    output = args.output or default_output(args.arch, args.python)
    overwritten = input_overwritten(output, [args.permissions] if args.permissions is not None else [])
    if overwritten is not None:
        raise BundleError(f"{output}: would replace the permission file {overwritten}; write the zip elsewhere")
    progress = TerminalProgress("bundle", enabled=args.format != "json")
    try:
        bundle = _build(args, output, progress)
    finally:
        progress.close()
    if args.format == "json":
        print_json({
            "command": "bundle", "path": str(bundle.path), "arch": args.arch, "python": args.python,
            "bytecode": args.compile, "mypyc": args.mypyc, "handler": "handler.app.lambda_handler",
            "permissions": None if args.permissions is None else str(args.permissions),
            "size": bundle.size, "unzipped_size": bundle.unzipped_size, "files": bundle.files,
            "sha256": bundle.sha256, "wheels": list(bundle.wheels),
        })
        return 0
    print(f"bundle    {bundle.path}")
    bytecode = ", with bytecode" if args.compile else ", without bytecode"
    native = ", mypyc extensions" if args.mypyc else ""
    print(f"target    python{args.python} {args.arch}{bytecode}{native} (handler: handler.app.lambda_handler)")
    print(f"size      {bundle.size:,} bytes zipped, {bundle.unzipped_size:,} unzipped, {bundle.files} files")
    print(f"sha256    {bundle.sha256}")
    for wheel in bundle.wheels:
        print(f"wheel     {wheel}")
    return 0


def _build(args: argparse.Namespace, output: Path, progress: TerminalProgress) -> Any:
    return build_bundle(
        output,
        arch=args.arch,
        python=args.python,
        include_boto3=args.include_boto3,
        permissions=args.permissions,
        wheel_cache=args.wheel_cache,
        refresh=args.refresh,
        bytecode=args.compile,
        mypyc=args.mypyc,
        phase=progress.phase,
    )
