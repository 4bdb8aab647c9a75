"""Progress for long phases: a live line on a terminal, nothing in CI, pipes or JSON mode."""

from __future__ import annotations

import sys
import time
from typing import TextIO

__all__ = ["TerminalProgress"]


class TerminalProgress:
    """One stderr line that says which phase runs (``phase``) and, for writes, how far
    it got (``progress(done, total)``, redrawn at most 10 times a second).

    Draws only when ``stream`` (default stderr) is a terminal and ``enabled`` is not
    False: a pipe, a CI log or a JSON run gets nothing. ``close`` ends the line.
    """

    def __init__(self, label: str, stream: TextIO | None = None, *, enabled: bool = True) -> None:
        self.stream = stream or sys.stderr
        self.enabled = enabled and bool(getattr(self.stream, "isatty", lambda: False)())
        self.label = label
        self._last = 0.0
        self._drawn = False
        self._phase = ""
        self._width = 0

    def _draw(self, text: str) -> None:
        line = f"{self.label}: {text}"
        # Pad over what the previous, longer line left on the terminal.
        self.stream.write("\r" + line.ljust(self._width))
        self.stream.flush()
        self._width = len(line)
        self._drawn = True

    def phase(self, name: str) -> None:
        """Say that the phase ``name`` (``parse``, ``plan``, ``write``, ``bundle``...) started."""
        self._phase = name
        if self.enabled:
            self._last = time.monotonic()
            self._draw(f"{name}...")

    def __call__(self, done: int, total: int) -> None:
        if not self.enabled:
            return
        now = time.monotonic()
        if done < total and now - self._last < 0.1:
            return
        self._last = now
        self._draw(f"{self._phase or 'write'}: {done:,}/{total:,} items written")

    def close(self) -> None:
        """End the progress line (clearing it), so what follows starts on a clean line."""
        if self._drawn:
            self.stream.write("\r" + " " * self._width + "\r")
            self.stream.flush()
            self._drawn = False
            self._width = 0
