"""Pictures of an inspection (matplotlib, Agg, PNG bytes): per-layer attention maps as a grid of
heads, the head scores as [layer x head] heatmaps, and the logit lens as a table.

Token labels are shown when the sequence is short enough to read them; matplotlib would read a
'$' in a token as mathematics, so labels are escaped.
"""

from __future__ import annotations

import io
import math
import warnings
from typing import Callable, Sequence

import numpy as np

LABEL_LIMIT = 48  # longest sequence whose tokens label the attention axes
LENS_COLUMNS = 24  # positions shown in the logit-lens table (the last ones)
DPI = 80


def _plt():
    try:
        import matplotlib
    except ImportError:
        from blueprint.errors import BlueprintError

        raise BlueprintError("pictures need matplotlib, which is not installed",
                             hint="pip install 'blueprint[inspect]', or pass --no-pictures") from None

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def label(text: str, width: int = 10) -> str:
    """A token as a short, safe axis label: whitespace made visible, '$' escaped, truncated."""
    if text and not text.strip(" "):
        return "␣" * min(len(text), 3)  # a token of spaces only
    text = text.replace("\n", "\\n").replace("\t", "\\t").replace("\r", "\\r")
    if len(text) > width:
        text = text[: width - 1] + "…"
    return text.replace("$", r"\$") or "␣"


def _png(fig) -> bytes:
    plt = _plt()
    buf = io.BytesIO()
    with warnings.catch_warnings():  # glyphs the font lacks (CJK, emoji) render as boxes
        warnings.simplefilter("ignore")
        fig.savefig(buf, format="png", dpi=DPI, bbox_inches="tight")
    plt.close(fig)
    return buf.getvalue()


def attention_png(probs: np.ndarray, tokens: Sequence[str], layer: int, heads: Sequence[int]) -> bytes:
    """probs: [len(heads), s, s] -> one heatmap per head (query rows, key columns)."""
    plt = _plt()
    n, s = probs.shape[0], probs.shape[1]
    cols = min(n, 3 if n == 9 else 4)
    rows = math.ceil(n / cols)
    size = 3.4 if s <= LABEL_LIMIT else 2.8
    fig, axes = plt.subplots(rows, cols, figsize=(size * cols, size * rows + 0.4), squeeze=False,
                             layout="constrained")
    labels = [label(t) for t in tokens] if s <= LABEL_LIMIT else None
    for k, ax in enumerate(axes.flat):
        if k >= n:
            ax.axis("off")
            continue
        ax.imshow(probs[k], vmin=0.0, vmax=1.0, cmap="viridis", interpolation="nearest")
        ax.set_title(f"head {heads[k]}", fontsize=9)
        if labels:
            ax.set_xticks(range(s), labels, rotation=90, fontsize=5)
            ax.set_yticks(range(s), labels, fontsize=5)
        else:
            ax.tick_params(labelsize=6)
    fig.suptitle(f"layer {layer}: attention (rows: query, columns: key)", fontsize=11)
    return _png(fig)


def head_scores_png(scores: dict[str, list[list[float | None]]], entropy: list[list[float | None]],
                    layers: Sequence[int], heads: Sequence[int]) -> bytes:
    """One [layer x head] heatmap per score, plus the attention entropy."""
    plt = _plt()
    panels = [(name.replace("_", "-"), np.array(v, dtype=float), 0.0, 1.0, "magma") for name, v in scores.items()]
    ent = np.array(entropy, dtype=float)
    panels.append(("entropy (nats)", ent, 0.0, float(np.nanmax(ent)) if np.isfinite(ent).any() else 1.0, "cividis"))
    width = max(2.6, 0.42 * len(heads) + 1.2)
    height = max(2.6, 0.26 * len(layers) + 1.2)
    fig, axes = plt.subplots(1, len(panels), figsize=(width * len(panels), height), squeeze=False,
                             layout="constrained")
    annotate = len(layers) * len(heads) <= 120
    for ax, (title, values, lo, hi, cmap) in zip(axes[0], panels):
        im = ax.imshow(np.ma.masked_invalid(values), vmin=lo, vmax=hi or 1.0, cmap=cmap, aspect="auto",
                       interpolation="nearest")
        ax.set_title(title, fontsize=10)
        ax.set_xlabel("head", fontsize=8)
        ax.set_ylabel("layer", fontsize=8)
        ax.set_xticks(range(len(heads)), [str(h) for h in heads], fontsize=7)
        step = max(1, len(layers) // 16)
        ax.set_yticks(range(0, len(layers), step), [str(layers[i]) for i in range(0, len(layers), step)], fontsize=7)
        fig.colorbar(im, ax=ax, shrink=0.8)
        if annotate:
            for (r, c), v in np.ndenumerate(values):
                if np.isfinite(v):
                    ax.text(c, r, f"{v:.2f}", ha="center", va="center", fontsize=6,
                            color="white" if v < (lo + (hi or 1.0)) / 2 else "black")
    return _png(fig)


def logit_lens_png(lens_ids: Sequence[np.ndarray], lens_probs: Sequence[np.ndarray], layers: Sequence[int],
                   tokens: Sequence[str], token_text: Callable[[int], str], *, next_token: bool = True) -> bytes:
    """Rows: layers (last at the top); columns: input positions (the last ``LENS_COLUMNS``); each
    cell the top-1 token after that layer, coloured by its probability."""
    plt = _plt()
    s = len(tokens)
    first = max(0, s - LENS_COLUMNS)
    cols = list(range(first, s))
    top_p = np.array([p[first:, 0] for p in lens_probs])  # [layers, cols]
    fig, ax = plt.subplots(figsize=(0.75 * len(cols) + 1.8, 0.3 * len(layers) + 1.6))
    ax.imshow(top_p, vmin=0.0, vmax=1.0, cmap="Blues", aspect="auto", interpolation="nearest", origin="lower")
    for r, ids in enumerate(lens_ids):
        for c, pos in enumerate(cols):
            ax.text(c, r, label(token_text(int(ids[pos, 0])), 7), ha="center", va="center", fontsize=6,
                    color="white" if top_p[r, c] > 0.6 else "black")
    ax.set_xticks(range(len(cols)), [label(tokens[p], 7) for p in cols], rotation=90, fontsize=7)
    step = max(1, len(layers) // 16)
    ax.set_yticks(range(0, len(layers), step), [str(layers[i]) for i in range(0, len(layers), step)], fontsize=7)
    ax.set_xlabel("input token (the model predicts the next one)" if next_token
                  else "input token (the model predicts this position's token)", fontsize=8)
    ax.set_ylabel("after layer", fontsize=8)
    shown = f", last {len(cols)} of {s} positions" if first else ""
    ax.set_title(f"logit lens: top-1 token after each layer (colour: its probability{shown})", fontsize=10)
    return _png(fig)
