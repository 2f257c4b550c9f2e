"""Errors as values: every problem carries a location, a message and a hint.

``SpecIssue`` is one problem; ``SpecError`` carries all the problems found in one pass so the
user sees every error at once. ``BlueprintError`` is any other user-facing failure (a bad
weights file, a build that failed verification): the CLI prints it and exits non-zero,
never with a traceback.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field


@dataclass(frozen=True)
class SpecIssue:
    """One problem in a spec. ``line``/``column`` are 1-based; ``path`` is dotted (``block.attention.num_heads``)."""

    message: str
    path: str = ""
    file: str = "<spec>"
    line: int | None = None
    column: int | None = None
    hint: str | None = None
    severity: str = "error"  # "error" or "warning"

    def format(self) -> str:
        where = self.file
        if self.line is not None:
            where += f":{self.line}:{self.column or 1}"
        head = f"{where}: {self.path}: " if self.path else f"{where}: "
        text = f"{head}{self.severity}: {self.message}" if self.severity == "warning" else head + self.message
        if self.hint:
            text += f"\n    hint: {self.hint}"
        return text


class BlueprintError(Exception):
    """A user-facing failure with a plain message; the CLI prints it without a traceback."""

    def __init__(self, message: str, hint: str | None = None):
        super().__init__(message)
        self.message = message
        self.hint = hint

    def format(self) -> str:
        return self.message + (f"\n    hint: {self.hint}" if self.hint else "")


@dataclass
class SpecError(BlueprintError):
    """Every error found in a spec. ``warnings`` holds the warnings found in the same pass (not
    part of ``format()``), so a caller can show them beside the errors."""

    issues: list[SpecIssue] = field(default_factory=list)
    warnings: list[SpecIssue] = field(default_factory=list)

    def __post_init__(self) -> None:
        Exception.__init__(self, self.format())
        self.message = self.format()
        self.hint = None

    def format(self) -> str:
        return "\n".join(issue.format() for issue in self.issues)


_ANSI = re.compile(r"\x1b\[[0-9;]*m")


def first_line(err: BaseException) -> str:
    """The first line of an exception's text (colour codes removed), or its type name: what a
    one-line user-facing error quotes from a library failure."""
    text = _ANSI.sub("", str(err)).strip().splitlines()
    return text[0] if text else type(err).__name__
