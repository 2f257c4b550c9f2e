"""Weights in and out: safetensors with blueprint's canonical names, and Hugging Face layouts.

Public API (docs/architecture.md, "Importing" and "Adding a family")::

    save_weights(module_or_state_dict, path)        # canonical names, tied weights once
    load_weights(path, spec) -> dict[str, Tensor]   # validated, in the spec's dtype

``load_weights`` accepts a blueprint safetensors file, a sharded safetensors folder (with
``model.safetensors.index.json``), a build folder (``weights.safetensors``) or a Hugging Face
model folder (``config.json`` + safetensors) or a GGUF file (dequantized, llama.cpp's names and
q/k permutation undone), whose names are mapped by the
family module's weight rules (``blueprint/families/``, applied by ``compiler.weights.hf_names``).
Pickle checkpoints are refused and never unpickled.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Callable

import torch

from blueprint.errors import BlueprintError
from compiler.weights.safetensors_io import write_tensors
from compiler.weights.sources import read_source
from compiler.weights.validate import validate_state_dict

if TYPE_CHECKING:
    from blueprint.spec.schema import ModelSpec

__all__ = ["save_weights", "load_weights"]

# Wrappers that activation checkpointing or compilation may insert into module paths.
_WRAPPER_SEGMENTS = ("_checkpoint_wrapped_module.", "_orig_mod.")


def _canonical(name: str) -> str:
    for seg in _WRAPPER_SEGMENTS:
        name = name.replace(seg, "")
    return name


def _dedupe_tied(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Store the tied embedding once, under ``embed.tokens.weight`` (the names that share it,
    the tied output projection, are not in the spec's parameter table). Other names that share
    storage are all parameters of their own: each is kept, as a copy (safetensors refuses
    shared storage)."""
    groups: dict[tuple, list[str]] = {}
    for name, t in state.items():
        key = (t.untyped_storage().data_ptr(), t.storage_offset(), tuple(t.shape), tuple(t.stride()))
        groups.setdefault(key, []).append(name)
    keep: dict[str, torch.Tensor] = {}
    for names in groups.values():
        if "embed.tokens.weight" in names:
            keep["embed.tokens.weight"] = state["embed.tokens.weight"]
            continue
        for i, name in enumerate(names):
            keep[name] = state[name] if i == 0 else state[name].clone()
    return {n: keep[n] for n in state if n in keep}


def save_weights(module_or_state_dict: torch.nn.Module | dict[str, torch.Tensor], path: str | Path) -> Path:
    """Write parameters to ``path`` as safetensors under canonical names, tied weights once.

    The file is deterministic (sorted names, fixed metadata) and written atomically.

    Args:
        module_or_state_dict: a compiled model / any module, or a state dict with canonical names.
        path: destination file.
    Returns:
        The path written.
    """
    if isinstance(module_or_state_dict, torch.nn.Module):
        state = module_or_state_dict.state_dict()
    else:
        state = dict(module_or_state_dict)
    state = {_canonical(k): v.detach() for k, v in state.items()}
    for name, t in state.items():
        if not isinstance(t, torch.Tensor):
            raise BlueprintError(f"cannot save '{name}': not a tensor ({type(t).__name__})")
    state = _dedupe_tied(state)
    path = Path(path)
    # One metadata key only: safetensors stores metadata in a hash map, so several keys would
    # be written in an arbitrary order and break byte-for-byte determinism.
    write_tensors(state, path, metadata={"format": "pt"})
    return path


def _default_note(message: str) -> None:
    print(f"note: {message}", file=sys.stderr)


def load_weights(
    path: str | Path,
    spec: "ModelSpec",
    *,
    on_note: Callable[[str], None] | None = None,
) -> dict[str, torch.Tensor]:
    """Load, map and validate the weights at ``path`` for ``spec``.

    Args:
        path: a safetensors file, a sharded folder / its index, a build folder or an HF folder.
        spec: the validated spec the weights must fit.
        on_note: receives messages about deliberately unused checkpoint parts (e.g. BERT's
            pooler when the spec pools by mean); by default they are printed to stderr.
    Returns:
        Canonical name -> tensor in the spec's dtype, exactly ``parameter_shapes(spec)``'s names.
    Raises:
        BlueprintError: naming every tensor that is missing, unexpected, duplicated,
            mis-shaped, non-finite or of an unusable dtype; or a refused pickle file.
    """
    note = on_note or _default_note
    source = read_source(path)
    tensors = source.tensors
    origins: dict[str, str] = {}
    if source.config is not None and not _all_canonical(tensors, spec):
        from compiler.weights.hf_names import hf_to_canonical

        tensors = hf_to_canonical(tensors, source.config, spec, note=note, origins=origins)
    return validate_state_dict(tensors, spec, source=source.description, origins=origins)


def _all_canonical(tensors: dict[str, torch.Tensor], spec: "ModelSpec") -> bool:
    from compiler.naming import parameter_shapes

    expected = parameter_shapes(spec)
    return all(name in expected for name in tensors)
