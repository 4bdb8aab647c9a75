"""Helpers the admin subcommands share: reading permission locations, colour, env files."""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar, TextIO

from policy_engine.bootstrap import permission_source
from policy_engine.core.permissions import Locate, PermissionSet, compile_records
from policy_engine.errors import ConfigurationError, StoreError

__all__ = [
    "Palette", "add_color", "add_command", "add_format", "authorization_value", "default_location",
    "load_permission_set", "print_json", "read_locations", "visible",
]


def add_command(subparsers: Any, name: str, *, summary: str, description: str,
                examples: Sequence[str] = ()) -> argparse.ArgumentParser:
    """A subcommand's parser: ``summary`` in the command list, ``description`` and
    ``examples`` (one command line each, ``# what it does`` allowed) in its ``--help``."""
    epilog = "examples:\n" + "\n".join(f"  {example}" for example in examples) if examples else None
    parser: argparse.ArgumentParser = subparsers.add_parser(
        name, help=summary, description=description, epilog=epilog,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    return parser


def add_format(parser: argparse.ArgumentParser) -> None:
    """``--format text|json``: json prints one JSON document on stdout (fields: docs/cli.md) and no progress."""
    parser.add_argument("--format", choices=("text", "json"), default="text",
                        help="text for people (default), or json: one JSON document on stdout, fields as "
                             "docs/cli.md lists them")


def add_color(parser: argparse.ArgumentParser) -> None:
    """``--color auto|always|never``: how ``Palette`` colours the text output."""
    parser.add_argument("--color", choices=("auto", "always", "never"), default="auto",
                        help="colour the text output: auto (default: on a terminal, unless NO_COLOR is set), "
                             "always, or never")


def print_json(document: Any) -> None:
    """``document`` on stdout as indented JSON, the form every ``--format json`` writes."""
    print(json.dumps(document, indent=2, default=str))


def default_location() -> str:
    """``PERMISSIONS_SOURCE`` if set (what the Lambda would read), else ``./permissions``."""
    return os.environ.get("PERMISSIONS_SOURCE", "").strip() or "permissions"


def authorization_value(token: str) -> str:
    """The ``Authorization`` value for a token typed with or without its ``Bearer`` scheme.

    Only the scheme is looked at (case-insensitive, RFC 9110 §11.1); the value itself is
    judged where the authorizer judges it, by ``core.tokens.extract_bearer``.
    """
    token = token.strip()
    return token if token[:7].lower() == "bearer " else f"Bearer {token}"


def read_locations(locations: Sequence[str]) -> tuple[list[Any], Locate]:
    """Raw records of every location, concatenated, with one ``locate`` over all of them.

    Raises:
        StoreError: a local path does not exist (the command could not run).
        PermissionsError: a location holds invalid documents (those are findings).
        ConfigurationError: a location names an unsupported store.
    """
    records: list[Any] = []
    parts: list[tuple[int, Locate]] = []
    for location in locations:
        if "://" not in location and not Path(location).exists():
            raise StoreError(f"{location}: no such file or folder")
        raw = permission_source(location).fetch(None)
        if raw is None:  # a source answers None only when given an etag
            raise StoreError(f"{location}: the source returned nothing")
        parts.append((len(records), raw.locate))
        records.extend(raw.records)

    def locate(path: tuple[int | str, ...]) -> str:
        if not parts:
            return "<nothing>"
        index = path[0] if path and isinstance(path[0], int) else 0
        for start, inner in reversed(parts):
            if index >= start:
                return inner((index - start, *path[1:]))
        return parts[0][1](())

    return records, locate


def load_permission_set(location: str) -> PermissionSet:
    """Fetch and compile one location, as the runtime would.

    Raises:
        StoreError, PermissionsError, ConfigurationError: as ``read_locations``.
    """
    records, locate = read_locations([location])
    return compile_records(records, locate)


class Palette:
    """ANSI colours when writing to a terminal (and ``NO_COLOR`` is unset), else plain text."""

    _CODES: ClassVar[dict[str, str]] = {
        "red": "31", "yellow": "33", "green": "32", "bold": "1", "dim": "2", "cyan": "36",
    }

    def __init__(self, stream: TextIO | None = None, mode: str = "auto") -> None:
        stream = stream or sys.stdout
        if mode == "always":
            self.enabled = True
        elif mode == "never":
            self.enabled = False
        else:
            self.enabled = bool(getattr(stream, "isatty", lambda: False)()) and "NO_COLOR" not in os.environ

    def __call__(self, text: str, colour: str) -> str:
        if not self.enabled:
            return text
        return f"\033[{self._CODES[colour]}m{text}\033[0m"


def parse_env_assignments(items: Sequence[str], origin: str) -> dict[str, str]:
    """``KEY=VALUE`` strings into a dict; blank lines and ``#`` comments are skipped.

    Raises:
        ConfigurationError: an item has no ``=`` or an empty key.
    """
    out: dict[str, str] = {}
    for number, item in enumerate(items, 1):
        text = item.strip()
        if not text or text.startswith("#"):
            continue
        key, sep, value = text.removeprefix("export ").partition("=")
        if not sep or not key.strip():
            raise ConfigurationError(origin, f"item {number} ({text[:40]!r}) is not KEY=VALUE")
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
            value = value[1:-1]
        out[key.strip()] = value
    return out


def visible(value: object) -> str:
    """``value`` as one line of visible text: a value read from a store or a log line (a
    note, a principal, a path) may hold control characters that would break a table or
    drive the terminal; they are shown escaped."""
    text = str(value)
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else f"\\u{ord(c):04x}" if ord(c) > 0xFF else f"\\x{ord(c):02x}"
                   for c in text)
