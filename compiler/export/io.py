"""The ONNX I/O contract of a build: names, dtypes, dynamic axes and input construction.

Names come from ``compiler.signature`` (docs/architecture.md, Contracts 8; re-exported here) so the exporter, the verifier and the
runtime agree on one list. ``make_inputs`` builds contract-shaped numpy inputs (optionally
padded) that feed both the torch graph and onnxruntime, so verification compares like with like.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from blueprint.position_ids import position_ids_for  # noqa: F401  (re-exported)
from compiler.signature import input_names, output_names  # noqa: F401  (re-exported: one list)

# Symbolic names written into the ONNX file and the manifest for the dynamic dimensions.
BATCH, SEQ, PAST, TOTAL = "batch", "seq", "past_seq", "total_seq"
WINDOW = "window_cache"  # the capacity of a window-sized cache (blueprint/window_cache.py)


def symbolic_dims(name: str, bounded: frozenset[int] = frozenset()) -> dict[int, str]:
    """Which axes of input ``name`` are dynamic, and what they are called; the past of a layer
    in ``bounded`` (a window-sized cache) has the capacity as its length."""
    if name == "attention_mask":
        return {0: BATCH, 1: TOTAL}
    if name.startswith("past_key_values."):
        return {0: BATCH, 2: WINDOW if int(name.split(".")[1]) in bounded else PAST}
    return {0: BATCH, 1: SEQ}


def kv_shape(spec, i: int) -> tuple[int, int]:
    """(num_kv_heads, head_dim) of layer ``i``'s cache."""
    attn = spec.layer(i).attention
    return attn.kv_heads, attn.head_dim


def max_window(spec) -> int:
    """The widest sliding window of any layer (0 when every layer is global)."""
    windows = [blk.attention.window or 0 for blk in spec.resolved_layers()]
    return max(windows)


@dataclass(frozen=True)
class Shape:
    batch: int
    seq: int
    past: int = 0


def np_float(dtype: str):
    return np.float16 if dtype == "fp16" else np.float32


def make_inputs(
    spec,
    shape: Shape,
    *,
    kv_cache: bool,
    rng: np.random.Generator,
    pad: list[int] | None = None,
    dtype: str = "fp32",
    past_values: dict[str, np.ndarray] | None = None,
) -> dict[str, np.ndarray]:
    """Random contract inputs. ``pad[r]`` padding positions for row r: decoders pad on the left
    (generation appends on the right), encoders on the right. Decoder position ids count real
    tokens only (0 for padding), as Hugging Face computes them from the mask."""
    b, s, past = shape.batch, shape.seq, shape.past
    total = past + s if spec.is_decoder else s
    pad = pad or [0] * b
    feeds: dict[str, np.ndarray] = {"input_ids": rng.integers(0, spec.token_limit, (b, s), dtype=np.int64)}
    mask = np.ones((b, total), dtype=np.int64)
    for r, p in enumerate(pad):
        if p:
            if spec.is_decoder:
                mask[r, :p] = 0  # [b, total]: left padding
            else:
                mask[r, total - p:] = 0  # right padding
    feeds["attention_mask"] = mask
    names = input_names(spec, kv_cache)
    if "position_ids" in names:
        feeds["position_ids"] = position_ids_for(mask, s)
    if "token_type_ids" in names:
        feeds["token_type_ids"] = rng.integers(0, spec.type_vocab_size, (b, s), dtype=np.int64)
    if kv_cache:
        for i in range(spec.num_layers):
            kv, hd = kv_shape(spec, i)
            for part in ("key", "value"):
                name = f"past_key_values.{i}.{part}"
                if past_values is not None:
                    feeds[name] = past_values[name]
                else:
                    feeds[name] = rng.standard_normal((b, kv, past, hd)).astype(np_float(dtype))
    return {n: feeds[n] for n in names}
