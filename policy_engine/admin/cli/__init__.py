"""The ``policy-engine`` command. Each subcommand lives in its own module here and
exposes ``register(subparsers)``; this file only dispatches.

Exit codes: 0 success, 1 findings or a refused request, 2 could not run (bad
arguments, unreadable input, unreachable store).
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from policy_engine.errors import PolicyEngineError

__all__ = ["main"]

#: Subcommand modules, in help order.
COMMANDS = (
    "demo", "serve", "quickstart", "init", "import_", "validate", "compile", "explain", "invoke", "migrate", "sync",
    "rollback", "bundle",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="policy-engine", description=__doc__.split("\n\n")[0])
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMANDS:
        importlib.import_module(f"policy_engine.admin.cli.{name}").register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.run(args) or 0)
    except PolicyEngineError as exc:
        print(f"policy-engine {args.command}: {exc}", file=sys.stderr)
        for problem in getattr(exc, "problems", [])[1:]:
            print(f"  {problem}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
