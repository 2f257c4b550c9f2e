"""The dtype sensitive arithmetic runs in: at least float32, never less than the model's own.

Norm statistics, RoPE angles and ALiBi biases are computed in ``compute_dtype(x.dtype)``: fp16
and bf16 models get float32 there (their accuracy does not drop with the activation dtype), a
float32 model float32, and a float64 copy of the same graph float64 throughout. The build's
verification gate relies on the last: it evaluates the exported graph in float64 as the
reference both onnxruntime and torch float32 are measured against (docs/architecture.md,
"Verification").
"""

from __future__ import annotations

import torch


def compute_dtype(dtype: torch.dtype) -> torch.dtype:
    """float32 for 16-bit (and float32) inputs, float64 for float64 inputs."""
    return torch.promote_types(dtype, torch.float32)
