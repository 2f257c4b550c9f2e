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
from torch.overrides import TorchFunctionMode

from blueprint.spec.schema import ModelSpec
from compiler.components.norms import LayerNorm, RMSNorm

RESIDUAL_PROJECTIONS = ("attn.o_proj.weight", "down_proj.weight")  # the FFN's, each expert's, the shared expert's


class SkipDefaultInit(TorchFunctionMode):
    """Inside this mode, ``torch.nn.init``'s functions return their tensor untouched, so modules
    are built with uninitialised parameters (``torch.empty``).

    Why: the constructors' own initialisation (nn.Linear's kaiming uniform, nn.Embedding's
    normal) is always overwritten, by ``init_weights`` or by loaded weights; for GPT-2 small it
    cost 0.7 s of a 1.4 s compile. (Building on the meta device instead runs nn.Embedding's
    init through torch's Python reference kernels, which import torch._dynamo: ~0.6 s.)
    Only parameters may be built here: a buffer keeps its constructor's values, which this
    mode could have skipped (``compile_spec`` lowers again, in full, when one appears).
    """

    def __torch_function__(self, func, types, args=(), kwargs=None):
        if getattr(func, "__module__", None) == "torch.nn.init":
            return args[0] if args else kwargs["tensor"]
        return func(*args, **(kwargs or {}))


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
            if p.dtype == torch.float32 and p.is_contiguous():  # drawn in place: no second copy
                p.normal_(0.0, std, generator=generator)
            else:
                p.copy_(torch.empty(p.shape, dtype=torch.float32).normal_(0.0, std, generator=generator))
    return model
