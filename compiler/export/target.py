"""Checks on a build's output directory, made before any compile or export work starts.

A build can take minutes; finding out at the end that ``-o`` lies under a file, on a
read-only mount or has a name the filesystem refuses wastes all of it and used to end in a
traceback. ``check_target`` refuses those up front, and refuses to replace anything that is not
a previous build (``blueprint.buildinfo.previous_build_problem``), so ``-o`` never deletes a
folder blueprint did not write.
"""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

from blueprint.buildinfo import previous_build_problem
from blueprint.errors import BlueprintError

# The temporary sibling is ".{name}.tmp-{pid}-{8 random}" or ".{name}.old-{pid}": room for both.
_TMP_SUFFIX = 32


def check_target(target: Path) -> None:
    """Raise a BlueprintError unless ``target`` can be (re)written as a build directory.

    Raises:
        BlueprintError: the path is too long, lies under a file, its nearest existing folder is
            not writable (read-only mount, permissions), or it exists and is not a previous
            build (or an empty folder).
    """
    _check_names(target)
    if target.exists() or target.is_symlink():
        if target.is_symlink() or not target.is_dir():
            raise BlueprintError(f"{target} exists and is not a build directory; refusing to replace it",
                                 hint="choose another -o DIR")
        if any(target.iterdir()):
            problem = previous_build_problem(target)
            if problem:
                raise BlueprintError(f"{target} exists and is not a previous build ({problem}); "
                                     "refusing to replace it", hint="choose another -o DIR, or remove it first")
    parent = _existing_ancestor(target.parent)
    if not os.access(parent, os.W_OK | os.X_OK):
        why = "is on a read-only filesystem" if _read_only(parent) else "is not writable"
        raise BlueprintError(f"cannot write {target}: {parent} {why}", hint="choose another -o DIR")


def _check_names(target: Path) -> None:
    absolute = Path(os.path.abspath(target))
    try:
        path_max = os.pathconf("/", "PC_PATH_MAX")
    except (OSError, ValueError):
        path_max = 4096
    if len(os.fsencode(absolute)) + _TMP_SUFFIX >= path_max:
        raise BlueprintError(f"-o path is too long ({len(os.fsencode(absolute))} bytes; the limit is "
                             f"{path_max - _TMP_SUFFIX - 1})", hint="choose a shorter -o DIR")
    for part in absolute.parts[1:]:
        try:
            name_max = os.pathconf(_existing_ancestor(absolute), "PC_NAME_MAX")
        except (OSError, ValueError):
            name_max = 255
        limit = name_max - _TMP_SUFFIX if part == absolute.name else name_max
        if len(os.fsencode(part)) > limit:
            raise BlueprintError(f"-o name '{part[:40]}...' is too long ({len(os.fsencode(part))} bytes; "
                                 f"at most {limit} here)", hint="choose a shorter -o DIR")
    for ancestor in absolute.parents:
        if ancestor.exists() and not ancestor.is_dir():
            raise BlueprintError(f"cannot write {target}: {ancestor} is a file, not a folder",
                                 hint="choose another -o DIR")


def _existing_ancestor(path: Path) -> Path:
    path = Path(os.path.abspath(path))
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def _read_only(path: Path) -> bool:
    try:
        return bool(os.statvfs(path).f_flag & os.ST_RDONLY)
    except OSError:
        return False


def normal_permissions(directory: Path) -> None:
    """mkdtemp makes a private (0700) directory; a build is an ordinary one (umask applies)."""
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(directory, 0o777 & ~umask)
    for path in directory.iterdir():
        os.chmod(path, 0o666 & ~umask)


def sweep_leftovers(target: Path) -> None:
    """Delete the temporary and set-aside directories of earlier builds of ``target`` whose
    process is gone: SIGKILL (the OOM killer, on a big model) gives no chance to clean up, and
    each leftover can hold gigabytes. Directories of running builds are left alone."""
    pattern = re.compile(re.escape(f".{target.name}.") + r"(?:tmp-(\d+)-\w+|old-(\d+))")
    for path in target.parent.iterdir():
        match = pattern.fullmatch(path.name)
        if match and path.is_dir() and not path.is_symlink() and not _alive(int(match.group(1) or match.group(2))):
            shutil.rmtree(path, ignore_errors=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


def replace(tmp: Path, target: Path) -> None:
    """Move ``tmp`` to ``target``; a previous build is set aside first and deleted after."""
    old = None
    if target.exists():
        old = target.parent / f".{target.name}.old-{os.getpid()}"
        os.replace(target, old)
    try:
        os.replace(tmp, target)
    except BaseException:
        if old is not None:
            os.replace(old, target)
        raise
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
