"""Weight initialisation as the spec's ``init`` section says, seeded so a compile is reproducible.

- Linear and embedding weights: normal(0, std); with ``scaled_residual`` the projections that
  write into the residual stream (attention ``o_proj`` and FFN ``down_proj``) use
  std / sqrt(2 * num_layers) (GPT-2), so the residual's variance does not grow with depth.
- Biases: zeros. Norm weights: 1 - weight_offset, so every norm starts as a scale of 1
  (Gemma's ``(1 + w)`` weights start at zero); norm biases zeros.
Parameters are drawn in canonical order from a private generator seeded with ``init.seed``,
so the result does not depend on (or disturb) the global RNG.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from blueprint.spec.schema import ModelSpec
from compiler.components.norms import LayerNorm, RMSNorm

RESIDUAL_PROJECTIONS = ("attn.o_proj.weight", "down_proj.weight")  # the FFN's, each expert's, the shared expert's


@torch.no_grad()
def init_weights(model: nn.Module, spec: ModelSpec) -> nn.Module:
    """Initialise ``model`` in place (a no-op for meta tensors) and return it."""
    init = spec.init
    generator = torch.Generator().manual_seed(init.seed)
    norm_weights = {id(m.weight): 1.0 - m.weight_offset for m in model.modules()
                    if isinstance(m, (LayerNorm, RMSNorm)) and m.weight is not None}
    residual_std = init.std / math.sqrt(2 * spec.num_layers)
    for name, p in model.named_parameters():  # shared (tied) parameters are visited once
        if p.is_meta:
            continue
        if name.endswith(".bias"):
            p.zero_()
        elif id(p) in norm_weights:
            p.fill_(norm_weights[id(p)])
        else:
            scaled = init.scaled_residual and name.endswith(RESIDUAL_PROJECTIONS)
            std = residual_std if scaled else init.std
            sample = torch.empty(p.shape, dtype=torch.float32).normal_(0.0, std, generator=generator)
            p.copy_(sample)
    return model
