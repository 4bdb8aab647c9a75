"""Output files of the admin commands, written whole or not at all."""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from pathlib import Path

from policy_engine.errors import PolicyEngineError, StoreError

__all__ = ["input_overwritten", "write_output"]


def write_output(output: Path, data: bytes, shown: str, error: type[PolicyEngineError] = StoreError) -> None:
    """Write ``data`` to ``output`` whole or not at all: into ``<output>.partial``, then
    renamed over it (missing folders are made). ``shown`` names it as the user wrote it.

    Raises:
        PolicyEngineError: ``error``, when it cannot be written (a folder, a parent that is
            a file, a read-only or pseudo file system); nothing is left behind.
    """
    if output.is_dir():
        raise error(f"{shown}: names a folder; give a file name")
    # A link is written through (the file it names is replaced, the link kept); a FIFO or
    # a device is no place for a whole file, and renaming over it would remove the node.
    output = output.resolve() if output.is_symlink() else output
    if output.exists() and not output.is_file():
        raise error(f"{shown}: not a regular file; give a file name")
    partial = output.with_name(output.name + ".partial")
    try:
        output.parent.mkdir(parents=True, exist_ok=True)
        partial.write_bytes(data)
        partial.replace(output)
    except OSError as exc:
        # The write failed on the way in: there may be no file, or no right to remove it.
        with contextlib.suppress(OSError):
            partial.unlink(missing_ok=True)
        raise error(f"{shown}: cannot write ({exc.strerror or exc})") from None


def input_overwritten(output: Path, inputs: Sequence[str | Path]) -> str | None:
    """The permission file ``output`` would replace: one of ``inputs``, or a YAML file
    inside a folder among them (where the next run would read it as YAML); else ``None``."""
    target = output.resolve()
    for given in inputs:
        path = Path(given).resolve()
        if target == path:
            return str(given)
        if path.is_dir() and target.is_relative_to(path) and target.suffix.lower() in (".yaml", ".yml"):
            return str(output)
    return None
