"""The tensors of a GGUF file, dequantized to float32, under Hugging Face names.

llama.cpp stores a tensor's dimensions fastest-first (a [out, in] weight is listed as
[in, out]) and its block-quantized types (Q4_0, Q4_1, Q8_0, Q4_K, Q6_K, ...) as raw blocks;
the ``gguf`` package's ``dequantize`` turns both into a [out, in] float32 array. Two more
things differ from the Hugging Face checkpoint the file was converted from, and both are
undone here exactly:

- names: ``blk.{i}.attn_q.weight`` is ``model.layers.{i}.self_attn.q_proj.weight``, etc., per
  the family module's ``gguf.tensors`` (``blueprint/families/``);
- q and k rows of the architectures in the family's ``gguf.permuted`` (LLaMA, Mistral):
  llama.cpp's converter permutes them from the rotate-half layout to interleaved pairs
  (``reshape(n, 2, hd/2, D).swapaxes(1, 2)``); the inverse is applied.

The mapped tensors then go through the Hugging Face family mapping like a folder's
(``compiler.weights.hf_names``), so GGUF adds no second set of family rules.
"""

from __future__ import annotations

import functools
import re
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

from blueprint.errors import BlueprintError
from blueprint.families.weightmap import fill, template_regex

if TYPE_CHECKING:
    from blueprint.families import GGUFLayout

@functools.lru_cache(maxsize=None)
def _name_map(layout: "GGUFLayout") -> list[tuple[re.Pattern, str]]:
    return [(re.compile(template_regex(g)), hf) for g, hf in layout.tensors]


def hf_name(name: str, layout: "GGUFLayout") -> str | None:
    """The Hugging Face name of GGUF tensor ``name`` in the family ``layout`` (None when it has none)."""
    for rx, hf in _name_map(layout):
        m = rx.fullmatch(name)
        if m:
            return fill(hf, {k: v for k, v in m.groupdict().items() if v is not None})
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
    from blueprint.gguf.metadata import gguf_family

    reader = open_reader(path)
    model = read_model(path, reader)
    config = model.config
    layout = gguf_family(model.architecture, path).gguf
    permuted = model.architecture in layout.permuted
    heads, kv_heads = config["num_attention_heads"], config["num_key_value_heads"]
    tensors: dict[str, torch.Tensor] = {}
    for t in reader.tensors:
        name = hf_name(t.name, layout)
        if name is None:
            raise BlueprintError(f"{path}: GGUF tensor '{t.name}' has no place in a {model.architecture} model",
                                 hint="the file holds parts blueprint does not model; it refuses rather than drop them")
        values = dequantized(t)
        if permuted and t.name.endswith(("attn_q.weight", "attn_q.bias")):
            values = unpermute(values, heads)
        elif permuted and t.name.endswith(("attn_k.weight", "attn_k.bias")):
            values = unpermute(values, kv_heads)
        tensors[name] = torch.from_numpy(np.array(values, dtype=np.float32, order="C"))  # a copy: the file is mapped read-only
    return tensors, config
