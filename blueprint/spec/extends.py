"""``extends:``: start from a named preset or another spec file, then override.

``extends: llama`` names a preset shipped in ``blueprint/presets/``; anything containing a
``/`` or ending in ``.yaml``/``.yml`` is a spec file path relative to the extending file. The
extending file's keys are deep-merged over the base (``blueprint.spec.resolve.deep_merge``:
mappings merge, other values replace, and a mapping that changes ``kind`` replaces the base
mapping whole). Bases may extend further bases; a cycle is an error naming the chain.

Positions survive the merge, so an error in an inherited value is reported in the file (preset
or base spec) where that value is written.
"""

from __future__ import annotations

import os
from importlib import resources
from pathlib import Path as FsPath
from typing import Any

from blueprint.errors import SpecError, SpecIssue
from blueprint.spec.diagnose import did_you_mean
from blueprint.spec.resolve import deep_merge
from blueprint.spec.source import Positions
from blueprint.spec.yamlload import MAX_BYTES, load_yaml

MAX_CHAIN = 4  # real chains are 1-2 deep; each file may cost up to ~0.5 s to parse


def preset_names() -> list[str]:
    """The presets shipped with blueprint (``extends: <name>``)."""
    folder = resources.files("blueprint") / "presets"
    return sorted(p.name[:-5] for p in folder.iterdir() if p.name.endswith(".yaml"))


def preset_path(name: str) -> FsPath:
    return FsPath(str(resources.files("blueprint") / "presets" / f"{name}.yaml"))


def _error(message: str, positions: Positions, path: tuple, hint: str | None = None) -> SpecError:
    loc = positions.locate(path)
    return SpecError(issues=[SpecIssue(message, ".".join(map(str, path)), loc.file, loc.line,
                                       loc.column, hint)])


def read_spec_file(path: FsPath, shown: str | None = None) -> tuple[Any, Positions]:
    """Read and parse one spec file (no ``extends`` resolution).

    Raises:
        SpecError: unreadable file, too large, or invalid YAML.
    """
    shown = shown or str(path)
    try:
        with open(path, "rb") as fh:
            raw = fh.read(MAX_BYTES + 1)
    except FileNotFoundError:
        raise SpecError(issues=[SpecIssue("does not exist", "", shown, hint="check the path")]) from None
    except IsADirectoryError:
        raise SpecError(issues=[SpecIssue("is a directory, not a spec file", "", shown)]) from None
    except OSError as err:
        raise SpecError(issues=[SpecIssue(f"cannot read: {err.strerror}", "", shown)]) from None
    return load_yaml(raw, shown)


def _target(ref: str, base_dir: FsPath) -> tuple[FsPath, str] | None:
    """(file, shown name) for an ``extends`` value, or None if it names no preset or file."""
    if "/" not in ref and "\\" not in ref and not ref.endswith((".yaml", ".yml")):
        if ref in preset_names():
            return preset_path(ref), f"<preset {ref}>"
        return None
    path = FsPath(os.path.realpath(base_dir / ref))  # never raises (a symlink loop stays a path)
    return (path, str(base_dir / ref)) if path.is_file() else None


def resolve_extends(data: Any, positions: Positions, base_dir: FsPath,
                    chain: tuple[str, ...]) -> tuple[Any, Positions]:
    """Return ``data`` with its ``extends`` chain merged in (``data`` itself wins).

    ``chain`` holds the resolved files already on the way here, for cycle detection.
    """
    if not isinstance(data, dict) or "extends" not in data:
        return data, positions
    ref = data["extends"]
    if not isinstance(ref, str) or not ref:
        raise _error("extends must be a preset name or a relative spec file path",
                     positions, ("extends",), f"presets: {', '.join(preset_names())}")
    target = _target(ref, base_dir)
    if target is None:
        if "/" in ref or "\\" in ref or ref.endswith((".yaml", ".yml")):
            raise _error(f"no spec file {ref!r}", positions, ("extends",),
                         f"a path is relative to the extending file's folder ({base_dir})")
        raise _error(f"no preset named {ref!r}", positions, ("extends",),
                     did_you_mean(ref, preset_names(), "presets"))
    file, shown = target
    key = os.path.realpath(file)
    if key in chain:
        names = " -> ".join(FsPath(c).name for c in chain + (key,))
        raise _error(f"extends cycle: {names}", positions, ("extends",),
                     "remove the extends that points back")
    if len(chain) >= MAX_CHAIN:
        raise _error(f"extends chain longer than {MAX_CHAIN} files", positions, ("extends",))
    base, base_positions = read_spec_file(file, shown)
    if not isinstance(base, dict):
        raise SpecError(issues=[SpecIssue("a spec must be a mapping of keys to values", "",
                                          shown, 1, 1)])
    base, base_positions = resolve_extends(base, base_positions, file.parent, chain + (key,))
    child = {k: v for k, v in data.items() if k != "extends"}
    merged = deep_merge(base, child)
    return merged, Positions.merged(base_positions, positions, merged)
