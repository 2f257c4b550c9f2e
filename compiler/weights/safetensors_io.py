"""Reading and writing safetensors files defensively.

safetensors itself rejects malformed headers, overlapping ranges and truncation, but it accepts
a header that names the same tensor twice (the last entry wins), which can silently change a
shape. So the header is parsed here first (8-byte little-endian length, then JSON) with a hook
that refuses duplicate keys, before any tensor is read. Pickle checkpoints (``*.bin``, ``*.pt``,
a zip or pickle magic number) are refused without being opened by a pickle reader: unpickling
runs arbitrary code.
"""

from __future__ import annotations

import json
import os
import struct
import tempfile
from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open
from safetensors.torch import save_file

from blueprint.errors import BlueprintError

PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt", ".pkl", ".pickle")
MAX_HEADER_BYTES = 100_000_000  # the limit safetensors itself enforces


_PICKLE_HINT = (
    "convert it to safetensors in a trusted environment, e.g. "
    "`safetensors.torch.save_file(torch.load(path, weights_only=True), 'model.safetensors')`"
)


def refuse_pickle(path: Path) -> None:
    """Raise if ``path`` looks like a pickle/zip checkpoint (by name or by magic number)."""
    if path.suffix.lower() in PICKLE_SUFFIXES:
        raise BlueprintError(
            f"{path}: refusing to read a pickle checkpoint ({path.suffix}); "
            "unpickling can run arbitrary code",
            hint=_PICKLE_HINT,
        )
    with open(path, "rb") as fh:
        head = fh.read(9)
    looks_safetensors = len(head) == 9 and head[8:9] == b"{"
    if not looks_safetensors and (head[:4] == b"PK\x03\x04" or head[:1] == b"\x80"):
        raise BlueprintError(
            f"{path}: this is a pickle/zip (torch.save) checkpoint, not safetensors; "
            "refusing to unpickle it",
            hint=_PICKLE_HINT,
        )


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise _DuplicateKey(key)
        out[key] = value
    return out


class _DuplicateKey(Exception):
    pass


def read_header(path: Path) -> dict[str, dict[str, Any]]:
    """The tensor entries of a safetensors header (``__metadata__`` removed), duplicates refused."""
    refuse_pickle(path)
    size = path.stat().st_size
    with open(path, "rb") as fh:
        raw_len = fh.read(8)
        if len(raw_len) < 8:
            raise BlueprintError(f"{path}: too short to be a safetensors file ({size} bytes)")
        (n,) = struct.unpack("<Q", raw_len)
        if n > MAX_HEADER_BYTES or n > size - 8:
            raise BlueprintError(
                f"{path}: not a safetensors file (header length {n} exceeds the file size {size})",
                hint="pass a .safetensors file, a folder with model.safetensors.index.json, "
                "or a Hugging Face model folder",
            )
        text = fh.read(n)
    try:
        header = json.loads(text, object_pairs_hook=_no_duplicates)
    except _DuplicateKey as dup:
        raise BlueprintError(
            f"{path}: tensor '{dup.args[0]}' appears twice in the safetensors header; "
            "which copy is meant is ambiguous",
            hint="re-save the checkpoint so every tensor name appears once",
        ) from None
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise BlueprintError(f"{path}: the safetensors header is not valid JSON ({err})") from None
    if not isinstance(header, dict):
        raise BlueprintError(f"{path}: the safetensors header is not a JSON object")
    header.pop("__metadata__", None)
    for name, entry in header.items():
        if not isinstance(entry, dict) or "dtype" not in entry or "shape" not in entry:
            raise BlueprintError(f"{path}: header entry for tensor '{name}' is malformed")
    return header


def read_tensors(path: Path) -> dict[str, torch.Tensor]:
    """Every tensor of one safetensors file, after the header checks.

    Integer tensors are read too (checkpoints carry buffers such as BERT's position_ids); whether
    a tensor can be a parameter is decided after name mapping, in ``validate_state_dict``.
    """
    header = read_header(path)
    tensors: dict[str, torch.Tensor] = {}
    try:
        with safe_open(str(path), framework="pt") as fh:
            for name in header:
                tensors[name] = fh.get_tensor(name)
    except BlueprintError:
        raise
    except Exception as err:  # safetensors raises its own error types for corrupt files
        raise BlueprintError(f"{path}: cannot read safetensors data ({err})") from None
    return tensors


def write_tensors(tensors: dict[str, torch.Tensor], path: Path, metadata: dict[str, str]) -> None:
    """Write atomically (temp file in the same folder, then rename) so a crash leaves no half file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    ordered = {name: tensors[name].detach().contiguous().cpu() for name in sorted(tensors)}
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=".safetensors", dir=path.parent)
    os.close(fd)
    try:
        try:
            save_file(ordered, tmp, metadata=metadata)
        except Exception as err:  # safetensors' Rust writer reports the OS's refusal as its own type
            text = str(err)
            if "os error" not in text:
                raise
            code = int(text.rsplit("os error", 1)[1].strip(" )") or 0)  # "... (os error 28)"
            raise OSError(code, os.strerror(code) if code else text, str(path)) from err
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
