"""The tensors of a GGUF file, dequantized to float32, under Hugging Face names.

llama.cpp stores a tensor's dimensions fastest-first (a [out, in] weight is listed as
[in, out]) and its block-quantized types (Q4_0, Q4_1, Q8_0, Q4_K, Q6_K, ...) as raw blocks;
the ``gguf`` package's ``dequantize`` turns both into a [out, in] float32 array. Two more
things differ from the Hugging Face checkpoint the file was converted from, and both are
undone here exactly:

- names: ``blk.{i}.attn_q.weight`` is ``model.layers.{i}.self_attn.q_proj.weight``, etc.;
- LLaMA/Mistral q and k rows: llama.cpp's converter permutes them from the rotate-half layout
  to interleaved pairs (``reshape(n, 2, hd/2, D).swapaxes(1, 2)``); the inverse is applied.

The mapped tensors then go through the Hugging Face family mapping like a folder's
(``compiler.weights.hf_names``), so GGUF adds no second set of family rules.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import torch

from blueprint.errors import BlueprintError

_GLOBAL = {
    "token_embd.weight": "model.embed_tokens.weight",
    "output_norm.weight": "model.norm.weight",
    "output.weight": "lm_head.weight",
}
_LAYER = {
    "attn_norm.weight": "input_layernorm.weight",
    "ffn_norm.weight": "post_attention_layernorm.weight",
    "attn_q.weight": "self_attn.q_proj.weight",
    "attn_k.weight": "self_attn.k_proj.weight",
    "attn_v.weight": "self_attn.v_proj.weight",
    "attn_output.weight": "self_attn.o_proj.weight",
    "attn_q.bias": "self_attn.q_proj.bias",
    "attn_k.bias": "self_attn.k_proj.bias",
    "attn_v.bias": "self_attn.v_proj.bias",
    "attn_output.bias": "self_attn.o_proj.bias",
    "attn_q_norm.weight": "self_attn.q_norm.weight",
    "attn_k_norm.weight": "self_attn.k_norm.weight",
    "ffn_gate.weight": "mlp.gate_proj.weight",
    "ffn_up.weight": "mlp.up_proj.weight",
    "ffn_down.weight": "mlp.down_proj.weight",
}
_BLOCK = re.compile(r"blk\.(\d+)\.(.+)")
_PERMUTED = ("llama", "mistral")  # architectures whose q/k rows llama.cpp permutes


def hf_name(name: str) -> str | None:
    """The Hugging Face name of GGUF tensor ``name`` (None when it has none)."""
    if name in _GLOBAL:
        return _GLOBAL[name]
    match = _BLOCK.fullmatch(name)
    if match and match.group(2) in _LAYER:
        return f"model.layers.{match.group(1)}.{_LAYER[match.group(2)]}"
    return None


def unpermute(w: np.ndarray, heads: int) -> np.ndarray:
    """Undo llama.cpp's q/k row permutation for ``heads`` heads: [heads * hd, ...] rows go from
    interleaved pairs back to the rotate-half layout."""
    hd = w.shape[0] // heads
    return w.reshape(heads, hd // 2, 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def dequantized(tensor) -> np.ndarray:
    """A GGUF reader tensor as float32 in [out, in] (numpy) order."""
    from gguf import GGMLQuantizationType
    from gguf.quants import dequantize

    kind = GGMLQuantizationType(tensor.tensor_type)
    try:
        values = dequantize(tensor.data, kind)
    except (NotImplementedError, ValueError, KeyError) as err:
        raise BlueprintError(f"GGUF tensor '{tensor.name}' is stored as {kind.name}, which blueprint cannot "
                             f"dequantize ({type(err).__name__}: {err})",
                             hint="re-quantize the model to Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q2_K..Q6_K, F16 or F32") from None
    shape = tuple(int(d) for d in reversed(tensor.shape))
    return np.asarray(values, dtype=np.float32).reshape(shape)


def read_gguf(path: Path) -> tuple[dict[str, torch.Tensor], dict]:
    """(Hugging Face name -> float32 tensor, the model's Hugging Face config) for ``path``.

    Raises:
        BlueprintError: not a GGUF file, an unsupported architecture or quantization type
            (naming the tensor), or a tensor with no Hugging Face counterpart (named).
    """
    from blueprint.gguf import open_reader, read_model

    reader = open_reader(path)
    model = read_model(path, reader)
    config = model.config
    heads, kv_heads = config["num_attention_heads"], config["num_key_value_heads"]
    tensors: dict[str, torch.Tensor] = {}
    for t in reader.tensors:
        name = hf_name(t.name)
        if name is None:
            raise BlueprintError(f"{path}: GGUF tensor '{t.name}' has no place in a {model.architecture} model",
                                 hint="the file holds parts blueprint does not model; it refuses rather than drop them")
        values = dequantized(t)
        if model.architecture in _PERMUTED and t.name.endswith(("attn_q.weight", "attn_q.bias")):
            values = unpermute(values, heads)
        elif model.architecture in _PERMUTED and t.name.endswith(("attn_k.weight", "attn_k.bias")):
            values = unpermute(values, kv_heads)
        tensors[name] = torch.from_numpy(np.array(values, dtype=np.float32, order="C"))  # a copy: the file is mapped read-only
    return tensors, config
