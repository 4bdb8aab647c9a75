"""The ``policy-engine`` command: one module per subcommand, each with ``register(subparsers)``.

Exit codes: 0 success, 1 findings or a refused request, 2 could not run (bad
arguments, unreadable input, unreachable store). The reference is docs/cli.md.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import re
import signal
import sys
import threading
from collections.abc import Sequence
from typing import Any, NoReturn

from policy_engine.core.urls import redact_url_secrets
from policy_engine.errors import PolicyEngineError

__all__ = ["COMMANDS", "build_parser", "main", "version"]

#: Subcommand modules, in help order.
COMMANDS = (
    "demo", "serve", "quickstart", "init", "import_", "validate", "compile", "explain", "replay", "invoke",
    "migrate", "sync", "rollback", "promote", "discard", "bundle",
)

DESCRIPTION = """\
Authorize API Gateway requests from permission files: check them, try them
locally, publish them to DynamoDB or S3, and build the Lambda that enforces them.
"""

EPILOG = """\
Typical workflow:
  policy-engine validate permissions/            check the permission files
  policy-engine explain --scopes pets:read       what a caller with this scope gets
  policy-engine migrate dynamodb://TABLE         create the table once
  policy-engine sync dynamodb://TABLE --dry-run  the diff a publish would make
  policy-engine sync dynamodb://TABLE            publish it as a new version
  policy-engine bundle                           build the Lambda zip

Run 'policy-engine COMMAND --help' for a command's options and examples.
Exit codes: 0 success, 1 findings or refused, 2 could not run (bad arguments,
unreadable input, unreachable store). Reference: docs/cli.md.
"""

_DISTRIBUTION = "policy-engine"
_INVALID_CHOICE = re.compile(r"invalid choice: '([^']*)' \(choose from (.*)\)")


def version() -> str:
    """The installed distribution's version; from a source tree not installed, what pyproject.toml says."""
    from importlib.metadata import PackageNotFoundError
    from importlib.metadata import version as installed

    try:
        return installed(_DISTRIBUTION)
    except PackageNotFoundError:
        pass
    from pathlib import Path

    pyproject = Path(__file__).resolve().parents[3] / "pyproject.toml"
    try:
        import tomllib

        declared = tomllib.loads(pyproject.read_text(encoding="utf-8"))["project"]["version"]
        return f"{declared} (source tree, not installed)"
    except (OSError, KeyError, ValueError):
        return "unknown (not installed)"


class CommandParser(argparse.ArgumentParser):
    """An argparse parser whose "invalid choice" error suggests the nearest choice."""

    def error(self, message: str) -> NoReturn:
        found = _INVALID_CHOICE.search(message)
        if found:
            import difflib

            wrong = found.group(1)
            choices = re.findall(r"'([^']*)'", found.group(2)) or [c.strip() for c in found.group(2).split(",")]
            close = difflib.get_close_matches(wrong, choices, n=1, cutoff=0.6)
            if not close:
                # A wrong case or a prefix is as clear a hint as a near spelling.
                close = [c for c in choices if c.lower() == wrong.lower() or c.startswith(wrong)][:1] if wrong else []
            if close:
                message = f"{message[:found.start()]}invalid choice: {wrong!r} (did you mean {close[0]!r}?)"
        super().error(message)


def build_parser() -> CommandParser:
    """The whole command line: every subcommand's parser, as ``main`` uses it."""
    parser = CommandParser(prog="policy-engine", description=DESCRIPTION, epilog=EPILOG,
                           formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"%(prog)s {version()}")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND", title="commands")
    for name in COMMANDS:
        importlib.import_module(f"policy_engine.admin.cli.{name}").register(subparsers)
    _remember_parsers(parser)
    return parser


def _remember_parsers(parser: argparse.ArgumentParser) -> None:
    # Each parser records itself as a default: after parsing, the innermost one that
    # matched is on the namespace, so unknown flags are reported with its usage.
    parser.set_defaults(usage_parser=parser)
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for child in dict.fromkeys(action.choices.values()):
                _remember_parsers(child)


def main(argv: Sequence[str] | None = None) -> int:
    # SIGTERM (how CI systems cancel a job) ends a command as Ctrl-C does: a publish claim
    # is released and nothing half-written stays. Commands that serve set their own.
    previous = None
    if threading.current_thread() is threading.main_thread() and signal.getsignal(signal.SIGTERM) == signal.SIG_DFL:
        previous = signal.signal(signal.SIGTERM, _interrupt)
    try:
        return _main(argv)
    except KeyboardInterrupt:  # also while the commands are imported, before any runs
        return 130
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


def _interrupt(signum: int, frame: object) -> NoReturn:
    raise KeyboardInterrupt


def _main(argv: Sequence[str] | None) -> int:
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    usage_parser: Any = getattr(args, "usage_parser", parser)
    if extra:
        usage_parser.error(f"unrecognized arguments: {' '.join(extra)}")
    from policy_engine.admin.cli._envcheck import warn_near_misses

    warn_near_misses(args)
    try:
        return int(args.run(args) or 0)
    except PolicyEngineError as exc:
        # A message may quote an endpoint or a setting whose URL holds credentials.
        message = redact_url_secrets(str(exc))
        problems = [redact_url_secrets(str(problem)) for problem in getattr(exc, "problems", [])[1:]]
        print(f"policy-engine {args.command}: {message}", file=sys.stderr)
        for problem in problems:
            print(f"  {problem}", file=sys.stderr)
        if getattr(args, "format", None) == "json":
            # A script reading stdout gets a document saying why, not an empty stream.
            print(json.dumps({"error": {"command": args.command, "code": exc.code, "message": message,
                                        "problems": problems}}, indent=2))
        return 2
    except BrokenPipeError:
        # The reader went away (`| head`): no traceback, and no second error when Python
        # flushes stdout at exit (the Python documentation's note on SIGPIPE).
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 2


if __name__ == "__main__":
    sys.exit(main())
