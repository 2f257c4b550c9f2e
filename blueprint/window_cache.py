"""The window-bounded KV cache of sliding-window layers (``blueprint build --window-cache``).

A fused build's GroupQueryAttention with ``sliding_window_cache = 1`` takes and returns a cache
of a fixed capacity C >= W (the layer's window) instead of the whole past, and evicts inside
the op. After a call that leaves T positions in the sequence (the attention mask's width), rows
[0, L) of ``present.{i}.*`` hold the L most recent positions in order (row r is position
T - L + r), rows [L, C) are unspecified, and L depends on T alone:

    G = C - W + 1;  L(T) = T if T <= C, else T - G * ceil((T - C) / G)

(onnxruntime's GroupQueryAttention schema, "Windowed KV Cache"). Eviction reclaims G rows at
once, so slack above W amortises the op's compaction over G steps. The next call takes that
buffer back as ``past_key_values.{i}.*``; the attention mask and position ids stay absolute.

One definition (numpy only, no torch) for the build (which layers, what capacity), the
verification gate (which rows to compare), the runtime (what to allocate) and tests.
docs/architecture.md ("Window cache") has the I/O contract; docs/build-speed.md the measurements
behind ``default_capacity``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

MANIFEST_KEY = "window_cache"


@dataclass(frozen=True)
class WindowLayer:
    """One layer's bounded cache: its window W and the capacity C (rows) of its buffers."""

    window: int
    capacity: int


def default_capacity(window: int) -> int:
    """C for a window W: W plus a slack of about sqrt(2W) rows, rounded up to 16 (at least 16).

    Why: with slack s the op compacts the window (moves ~W rows) once every s + 1 steps, and
    attention reads s / 2 extra resident rows on average; W / (s + 1) + s / 2 rows a step is
    least at s + 1 = sqrt(2W). Measured (docs/build-speed.md, "Window cache"): at W = 1024,
    C = W is ~30% slower a decode step than W + 16..64, and 1.5W or 2W are slower again.
    """
    slack = max(16, math.ceil(math.sqrt(2 * window)))
    return window + -(-slack // 16) * 16


def plan(spec) -> dict[int, WindowLayer]:
    """Layer index -> its bounded cache, for every decoder layer whose window is smaller than
    the capacity a full cache would need (``max_seq_len``); other layers keep the full cache."""
    if not spec.is_decoder:
        return {}
    out = {}
    for i in range(spec.num_layers):
        window = spec.layer(i).attention.window
        if window is not None and default_capacity(window) < spec.max_seq_len:
            out[i] = WindowLayer(window, default_capacity(window))
    return out


def resident(total: int, layer: WindowLayer) -> int:
    """L(T): how many of the T positions are resident in rows [0, L) after a call."""
    c, w = layer.capacity, layer.window
    if total <= c:
        return total
    g = c - w + 1
    return total - g * -(-(total - c) // g)


def resident_rows(present: np.ndarray, total: int, layer: WindowLayer) -> np.ndarray:
    """The valid rows [b, KV, L, hd] of a bounded ``present`` [b, KV, C, hd] after T positions."""
    return present[:, :, :resident(total, layer)]


def last_rows(full: np.ndarray, total: int, layer: WindowLayer) -> np.ndarray:
    """The rows of a full cache [b, KV, T, hd] that a bounded cache keeps: its last L(T)."""
    return full[:, :, total - resident(total, layer):total]


def from_full(full: np.ndarray, layer: WindowLayer) -> np.ndarray:
    """A bounded cache [b, KV, C, hd] holding what a full cache [b, KV, P, hd] of P positions
    would leave resident (its last L(P) rows at rows [0, L)); zeros elsewhere."""
    b, kv, p, hd = full.shape
    out = np.zeros((b, kv, layer.capacity, hd), dtype=full.dtype)
    rows = last_rows(full, p, layer)
    out[:, :, :rows.shape[2]] = rows
    return out


def bounded_feeds(feeds: dict[str, np.ndarray], layers: dict[int, WindowLayer]) -> dict[str, np.ndarray]:
    """``feeds`` with every windowed layer's full-layout past (P rows, any P, 0 for a prefill)
    turned into its bounded layout; a past already of capacity C is taken as bounded."""
    out = dict(feeds)
    for i, layer in layers.items():
        for part in ("key", "value"):
            name = f"past_key_values.{i}.{part}"
            if name in out and out[name].shape[2] != layer.capacity:
                out[name] = from_full(out[name], layer)
    return out


def to_manifest(layers: dict[int, WindowLayer]) -> dict:
    """The manifest's record: {"layers": {"<i>": {"window": W, "capacity": C}}}."""
    return {"layers": {str(i): {"window": l.window, "capacity": l.capacity} for i, l in sorted(layers.items())}}


def from_manifest(manifest: dict) -> dict[int, WindowLayer]:
    """The bounded layers a build recorded (none for a build without ``--window-cache``)."""
    entry = manifest.get(MANIFEST_KEY) or {}
    return {int(i): WindowLayer(int(v["window"]), int(v["capacity"])) for i, v in entry.get("layers", {}).items()}
