"""``policy-engine bundle``: build the Lambda deployment zip for an architecture and runtime.

The zip holds ``handler/``, the package (without the CLI and the local tools), the
permissions compiled into one snapshot file (as ``policy-engine compile`` writes it),
the runtime dependencies as manylinux wheels resolved for the target (so an arm64 zip
built on x86_64 carries aarch64 native code), and bytecode for every module, written by
an interpreter of the target's Python version (``--no-compile`` leaves it out). Same
inputs, same bytes: the printed sha256 is a build fingerprint.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from policy_engine.admin.packaging import ARCHITECTURES, PYTHON_VERSIONS, build_bundle, default_output


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("bundle", help="build the Lambda deployment zip", description=__doc__)
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
                       help="YAML file or folder, validated and shipped compiled as the file 'permissions' "
                            "(default: ./permissions)")
    where.add_argument("--no-permissions", dest="permissions", action="store_const", const=None,
                       help="ship no permissions (the function must read a store)")
    parser.add_argument("--wheel-cache", type=Path, default=Path(".cache/wheels"),
                        help="folder of downloaded wheels, reused offline (default .cache/wheels)")
    parser.add_argument("--compile", action=argparse.BooleanOptionalAction, default=True,
                        help="ship bytecode, so no cold start compiles a module (default; needs a Python of the "
                             "target version: this one, pythonX.Y on PATH, or a pyenv or uv installation); "
                             "--no-compile leaves it out")
    parser.add_argument("--refresh", action="store_true",
                        help="ask the package index again instead of resolving from the cache")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    output = args.output or default_output(args.arch, args.python)
    bundle = build_bundle(
        output,
        arch=args.arch,
        python=args.python,
        include_boto3=args.include_boto3,
        permissions=args.permissions,
        wheel_cache=args.wheel_cache,
        refresh=args.refresh,
        bytecode=args.compile,
    )
    print(f"bundle    {bundle.path}")
    bytecode = ", with bytecode" if args.compile else ", without bytecode"
    print(f"target    python{args.python} {args.arch}{bytecode} (handler: handler.app.lambda_handler)")
    print(f"size      {bundle.size:,} bytes zipped, {bundle.unzipped_size:,} unzipped, {bundle.files} files")
    print(f"sha256    {bundle.sha256}")
    for wheel in bundle.wheels:
        print(f"wheel     {wheel}")
    return 0
