"""Finding the tensors behind a weights path: one file, a sharded folder, a Hugging Face folder
or a GGUF file (``compiler.weights.gguf_tensors``).

``read_source`` returns the raw tensors (names as stored) together with the Hugging Face
``config.json`` when there is one, so the caller can decide whether names need mapping. Shard
file names come from the index and are confined to the index's folder.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from blueprint.errors import BlueprintError
from blueprint.gguf import is_gguf
from blueprint.hf.folder import read_json
from compiler.weights.safetensors_io import PICKLE_SUFFIXES, read_header, read_tensors

INDEX_NAME = "model.safetensors.index.json"
SINGLE_NAMES = ("model.safetensors", "weights.safetensors")


@dataclass
class Source:
    """Tensors as stored, where they came from, and the HF config if the folder has one."""

    tensors: dict[str, torch.Tensor]
    description: str
    config: dict[str, Any] | None = None


def read_sharded(index_path: Path) -> dict[str, torch.Tensor]:
    """Every tensor of a sharded checkpoint, checked against its index."""
    index = read_json(index_path)
    weight_map = index.get("weight_map") if isinstance(index, dict) else None
    if not isinstance(weight_map, dict) or not weight_map:
        raise BlueprintError(f"{index_path}: no 'weight_map' object in the index")
    folder = index_path.parent.resolve()
    shards: dict[str, list[str]] = {}
    for name, shard in weight_map.items():
        if not isinstance(shard, str):
            raise BlueprintError(f"{index_path}: weight_map['{name}'] is not a file name")
        shards.setdefault(shard, []).append(name)
    headers: dict[str, dict] = {}
    for shard in shards:
        shard_path = (folder / shard).resolve()
        if shard_path.parent != folder:
            raise BlueprintError(f"{index_path}: shard '{shard}' is outside the checkpoint folder")
        if not shard_path.is_file():
            raise BlueprintError(f"{index_path}: shard '{shard}' does not exist")
        headers[shard] = read_header(shard_path)
    owner: dict[str, str] = {}
    for shard, header in headers.items():  # every shard first: a name held twice is named as such
        for name in header:
            if name in owner:
                raise BlueprintError(
                    f"tensor '{name}' is stored twice, in '{owner[name]}' and '{shard}'",
                    hint="re-save the checkpoint so every tensor is stored once",
                )
            owner[name] = shard
    tensors: dict[str, torch.Tensor] = {}
    for shard, names in shards.items():
        stray = [n for n in headers[shard] if weight_map.get(n) != shard]
        if stray:
            raise BlueprintError(f"{folder / shard}: tensor '{stray[0]}' is not listed for this shard in {INDEX_NAME}")
        absent = [n for n in names if n not in headers[shard]]
        if absent:
            raise BlueprintError(
                f"{index_path}: lists '{absent[0]}' in shard '{shard}', which does not contain it"
            )
        tensors.update(read_tensors(folder / shard))
    return tensors


def _folder_tensors(folder: Path) -> tuple[dict[str, torch.Tensor], str]:
    if (folder / INDEX_NAME).is_file():
        return read_sharded(folder / INDEX_NAME), f"{folder} (sharded)"
    for name in SINGLE_NAMES:
        if (folder / name).is_file():
            return read_tensors(folder / name), str(folder / name)
    pickles = sorted(p.name for p in folder.iterdir() if p.suffix.lower() in PICKLE_SUFFIXES)
    if pickles:
        raise BlueprintError(
            f"{folder}: only pickle checkpoints found ({', '.join(pickles)}); "
            "refusing to unpickle them",
            hint="convert to safetensors in a trusted environment "
            "(transformers: `model.save_pretrained(out, safe_serialization=True)`)",
        )
    from blueprint.buildinfo import no_checkpoint

    quantized = no_checkpoint(folder)
    if quantized is not None:
        raise quantized
    raise BlueprintError(
        f"{folder}: no weights found",
        hint=f"expected {INDEX_NAME}, model.safetensors or weights.safetensors in the folder",
    )


def read_source(path: str | Path) -> Source:
    """Read the tensors behind ``path`` (file, sharded folder, HF folder or build folder)."""
    path = Path(path)
    if not path.exists():
        raise BlueprintError(f"weights path '{path}' does not exist")
    folder = path if path.is_dir() else path.parent
    config_path = folder / "config.json"
    config = read_json(config_path) if config_path.is_file() else None
    if config is not None and not (isinstance(config, dict) and "model_type" in config):
        config = None  # not a Hugging Face config (a blueprint build has no config.json)
    if path.is_file() and is_gguf(path):  # llama.cpp / ollama: HF names and config from the file itself
        from compiler.weights.gguf_tensors import read_gguf

        tensors, config = read_gguf(path)
        return Source(tensors=tensors, description=str(path), config=config)
    if path.is_dir():
        tensors, description = _folder_tensors(path)
    elif path.name.endswith(".index.json"):
        tensors, description = read_sharded(path), f"{path} (sharded)"
    else:
        tensors, description = read_tensors(path), str(path)
    return Source(tensors=tensors, description=description, config=config)
