"""Output files of the admin commands, written whole or not at all."""

from __future__ import annotations

import contextlib
from pathlib import Path

from policy_engine.errors import PolicyEngineError, StoreError

__all__ = ["write_output"]


def write_output(output: Path, data: bytes, shown: str, error: type[PolicyEngineError] = StoreError) -> None:
    """Write ``data`` to ``output`` whole or not at all: into ``<output>.partial``, then
    renamed over it (missing folders are made). ``shown`` names it as the user wrote it.

    Raises:
        PolicyEngineError: ``error``, when it cannot be written (a folder, a parent that is
            a file, a read-only or pseudo file system); nothing is left behind.
    """
    if output.is_dir():
        raise error(f"{shown}: names a folder; give a file name")
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
