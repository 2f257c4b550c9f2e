"""Which MatMul weights a quantized build keeps at higher precision (``--keep-int8``, ``--keep-fp32``).

Block-wise 4-bit rounding does not hurt every weight alike: on SmolLM2-135M the LM head (the tied
embedding, 28M of the 135M weights, read once per generated token) and a few layers carry most of
the agreement lost (docs/build-speed.md). A selector names MatMuls by the parameter their weight
comes from, so the same words work for every architecture blueprint builds:

- ``head``: the output projection (``head.weight``, or the tied ``embed.tokens.weight``);
- ``first`` / ``last``: every MatMul of the first / last layer; ``layer:N`` of layer N (N < 0
  counts from the end);
- a projection name (``q_proj``, ``down_proj``, ``c_fc`` ...): that projection in every layer;
- ``worst:F``: calibration-free, by measurement: the fraction F (0 < F <= 1) of the remaining
  MatMul weights whose 4-bit round trip has the largest relative error ``|W - Q(W)| / |W|``
  (Frobenius norms, the same block size and scheme as the build; hqq is ranked as asymmetric RTN).
"""

from __future__ import annotations

import re

import numpy as np

from blueprint.errors import BlueprintError

_LAYER = re.compile(r"^layers\.(\d+)\.")
_WORST = re.compile(r"^worst:(.+)$")
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def param_of(weight_name: str) -> str:
    """The parameter a (possibly folded-transpose) weight initializer comes from."""
    return weight_name.removesuffix(".T")


def layer_of(param: str) -> int | None:
    match = _LAYER.match(param)
    return int(match.group(1)) if match else None


def check_selectors(selectors: tuple[str, ...], flag: str) -> None:
    """Raise a BlueprintError naming the first malformed selector."""
    for s in selectors:
        worst = _WORST.match(s)
        if worst:
            try:
                fraction = float(worst.group(1))
            except ValueError:
                fraction = -1.0
            if not 0.0 < fraction <= 1.0:
                raise BlueprintError(f"{flag} {s}: the fraction after 'worst:' must be in (0, 1]",
                                     hint="e.g. worst:0.1 keeps the 10% of MatMuls with the largest 4-bit error")
            continue
        if s.startswith("layer:"):
            try:
                int(s[len("layer:"):])
            except ValueError:
                raise BlueprintError(f"{flag} {s}: 'layer:' takes a layer index, e.g. layer:0 or layer:-1") from None
            continue
        if not _NAME.match(s):
            raise BlueprintError(f"{flag} '{s}' is not a selector",
                                 hint="use head, first, last, layer:N, a projection name such as down_proj, "
                                      "or worst:F; separate several with commas")


def _matches(selector: str, param: str, num_layers: int) -> bool:
    layer = layer_of(param)
    if selector == "head":
        return layer is None
    if selector in ("first", "last"):
        return layer == (0 if selector == "first" else num_layers - 1)
    if selector.startswith("layer:"):
        index = int(selector[len("layer:"):])
        return layer is not None and layer == index % num_layers
    return f".{selector}." in f".{param}."


def _relative_error(weight: np.ndarray, bits: int, block: int, scheme: str) -> float:
    """|W - Q(W)| / |W| of block-wise round-to-nearest along K (the rows of a [K, N] weight);
    ``scheme`` is the build's: "sym", "asym" (integer zero point) or "minmax" (float offset)."""
    k, n = weight.shape
    pad = (-k) % block
    w = np.pad(weight.astype(np.float32), ((0, pad), (0, 0))).T.reshape(n, -1, block)  # [N, blocks, block]
    levels = 2 ** bits
    if scheme == "sym":
        scale = np.abs(w).max(-1, keepdims=True) / (levels / 2)  # [N, blocks, 1]
        scale[scale == 0] = 1.0
        q = np.clip(np.round(w / scale), -levels / 2, levels / 2 - 1) * scale
    elif scheme == "minmax":
        lo = w.min(-1, keepdims=True)
        scale = (w.max(-1, keepdims=True) - lo) / (levels - 1)
        scale[scale == 0] = 1.0
        q = np.round((w - lo) / scale) * scale + lo
    else:
        lo, hi = np.minimum(w.min(-1, keepdims=True), 0), np.maximum(w.max(-1, keepdims=True), 0)
        scale = (hi - lo) / (levels - 1)
        scale[scale == 0] = 1.0
        zero = np.round(-lo / scale)
        q = (np.clip(np.round(w / scale) + zero, 0, levels - 1) - zero) * scale
    return float(np.linalg.norm(q - w) / max(np.linalg.norm(w), 1e-30))


def precisions(weights: dict[str, np.ndarray], *, kind: str, keep_int8: tuple[str, ...],
               keep_fp32: tuple[str, ...], num_layers: int, block: int, scheme: str) -> dict[str, str]:
    """Node name -> "fp32" | "int8" | ``kind`` for every constant-weight MatMul.

    ``weights`` maps node name -> (weight initializer name, its [K, N] array). fp32 wins over int8
    when both select a MatMul. ``worst:F`` ranks only what the named selectors left at ``kind``.
    """
    result = {}
    for node, (name, _) in weights.items():
        param = param_of(name)
        if any(_matches(s, param, num_layers) for s in keep_fp32 if not s.startswith("worst:")):
            result[node] = "fp32"
        elif any(_matches(s, param, num_layers) for s in keep_int8 if not s.startswith("worst:")):
            result[node] = "int8"
        else:
            result[node] = kind
    for target, selectors in (("fp32", keep_fp32), ("int8", keep_int8)):
        for s in selectors:
            worst = _WORST.match(s)
            if not worst:
                continue
            left = [node for node, p in result.items() if p == kind]
            if not left:
                continue
            errors = {node: _relative_error(weights[node][1], 4 if kind == "int4" else 8, block, scheme)
                      for node in left}
            count = max(1, round(float(worst.group(1)) * len(weights)))
            for node in sorted(left, key=errors.get, reverse=True)[:count]:
                result[node] = target
    return result
