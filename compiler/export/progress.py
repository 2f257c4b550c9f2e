"""The build's stage lines on stderr (``blueprint build`` without ``-q``)."""

from __future__ import annotations

import sys
import time

STAGES = ("validate", "compile", "export", "verify", "write")


class Progress:
    """Prints one line per stage on ``stream`` (stderr): ``[2/5] compile ... done (1.2s)``."""

    def __init__(self, stream=None, enabled: bool = True):
        self.stream = stream if stream is not None else sys.stderr
        self.enabled = enabled
        self._start = 0.0

    def begin(self, stage: str, detail: str = "") -> None:
        self._start = time.perf_counter()
        if self.enabled:
            n = STAGES.index(stage) + 1
            print(f"[{n}/{len(STAGES)}] {stage:8} {detail}".rstrip() + " ...", end="", file=self.stream, flush=True)

    def fail(self) -> None:
        """End an unfinished stage line so the error message starts on its own line."""
        if self.enabled and self._start:
            print(" failed", file=self.stream, flush=True)
        self._start = 0.0

    def end(self, note: str = "done") -> None:
        if self.enabled:
            print(f" {note} ({time.perf_counter() - self._start:.1f}s)", file=self.stream, flush=True)
        self._start = 0.0

    def info(self, text: str) -> None:
        if self.enabled:
            print(text, file=self.stream, flush=True)
