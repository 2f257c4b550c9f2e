"""Source positions for spec values.

The loader records, for every mapping key and sequence item, where its key and its value
start in the file. Paths are tuples of mapping keys (str) and sequence indexes (int), the same
shape as a pydantic error's ``loc`` once union tags are removed. Errors found at any later stage
(schema, cross-field rules, ``extends`` merging) are pointed back to a file, line and column
through ``Positions.locate``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterator

Path = tuple[str | int, ...]


@dataclass(frozen=True)
class Loc:
    """A 1-based position in one file."""

    file: str
    line: int
    column: int


@dataclass(frozen=True)
class Entry:
    """Where a key (or sequence item) and its value start. ``key`` is None for sequence items."""

    key: Loc | None
    value: Loc


class Positions:
    """Path -> Entry for one loaded (and possibly merged) spec mapping."""

    def __init__(self, root: Loc, entries: dict[Path, Entry] | None = None):
        self.root = root
        self.entries: dict[Path, Entry] = dict(entries or {})

    def add(self, path: Path, key: Loc | None, value: Loc) -> None:
        self.entries[path] = Entry(key, value)

    def get(self, path: Path) -> Entry | None:
        return self.entries.get(tuple(path))

    def locate(self, path: Path, *, on_key: bool = False) -> Loc:
        """The position of ``path``, or of its nearest recorded ancestor.

        ``on_key`` points at the key itself (for "unknown key" errors) instead of its value.
        An ancestor is always located on its key: "missing key in attention" is reported at the
        ``attention:`` line, which is where the user will add it.
        """
        path = tuple(path)
        entry = self.entries.get(path)
        if entry is not None:
            return (entry.key or entry.value) if on_key else entry.value
        while path:
            path = path[:-1]
            entry = self.entries.get(path)
            if entry is not None:
                return entry.key or entry.value
        return self.root

    @staticmethod
    def merged(base: "Positions", patch: "Positions", data: Any) -> "Positions":
        """Positions for ``data`` = deep_merge(base data, patch data).

        A path present in ``data`` came from the patch if the patch has it, else from the base
        (deep_merge either keeps a base value, or replaces/merges with a patch value found at
        the same path).
        """
        out = Positions(patch.root)
        for path in iter_paths(data):
            entry = patch.entries.get(path) or base.entries.get(path)
            if entry is not None:
                out.entries[path] = entry
        return out


def iter_paths(data: Any, prefix: Path = ()) -> Iterator[Path]:
    """Every key/index path inside ``data`` (mappings and lists), parents before children."""
    if isinstance(data, dict):
        for key, value in data.items():
            yield prefix + (key,)
            yield from iter_paths(value, prefix + (key,))
    elif isinstance(data, list):
        for i, value in enumerate(data):
            yield prefix + (i,)
            yield from iter_paths(value, prefix + (i,))


def dotted(path: Path) -> str:
    """``('layers', 0, 'set')`` -> ``layers.0.set`` (the path users see in messages)."""
    return ".".join(str(p) for p in path)
