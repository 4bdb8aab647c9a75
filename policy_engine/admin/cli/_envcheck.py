"""Warn about environment variables that look like typos of policy-engine's own."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import TextIO

from policy_engine.settings import near_misses

__all__ = ["near_miss_warnings", "warn_near_misses"]


def near_miss_warnings(names: Iterable[str], origin: str) -> list[str]:
    """One warning line per name that is a near miss of a declared variable (never its value)."""
    return [f"policy-engine: warning: {origin}{name} is not a policy-engine variable and is ignored; "
            f"did you mean {known}?" for name, known in near_misses(names)]


def _assigned_names(items: Iterable[str]) -> list[str]:
    names = []
    for item in items:
        key, sep, _ = item.strip().removeprefix("export ").partition("=")
        if sep and key.strip() and not key.lstrip().startswith("#"):
            names.append(key.strip())
    return names


def warn_near_misses(args: argparse.Namespace, stream: TextIO | None = None) -> None:
    """Warn on ``stream`` (stderr) about near misses in the process environment and in
    the ``--env`` / ``--env-file`` assignments of ``args``; never fails."""
    lines = near_miss_warnings(os.environ, "the environment variable ")
    lines += near_miss_warnings(_assigned_names(getattr(args, "env", None) or ()), "--env ")
    env_file = getattr(args, "env_file", None)
    if env_file:
        try:
            text = Path(env_file).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError):
            text = ""  # the command itself reports an unreadable file
        lines += near_miss_warnings(_assigned_names(text.splitlines()), f"--env-file {env_file}: ")
    out = stream or sys.stderr
    for line in lines:
        print(line, file=out)
