"""Measure the bytes a forward pass saves for backward, with saved_tensors_hooks.

Every tensor autograd packs is seen by the hook (non-reentrant checkpointing included: the
inputs a checkpointed layer keeps show up, its recomputed internals do not). Tensors are
deduplicated by storage (views and tensors saved by several ops count once) and parameters
are excluded: what remains is activation memory.
"""

from __future__ import annotations

import torch


def saved_bytes(module: torch.nn.Module, inputs: tuple) -> tuple[int, dict]:
    """(bytes saved for backward by ``module(*inputs)``, its outputs)."""
    params = {p.untyped_storage().data_ptr() for p in module.parameters()}
    storages: dict[int, int] = {}

    def pack(t: torch.Tensor) -> torch.Tensor:
        st = t.untyped_storage()
        if st.data_ptr() not in params:
            storages[st.data_ptr()] = st.nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        out = module(*inputs)
    return sum(storages.values()), out
