"""Shared machinery for parity against transformers: compiled model with imported weights,
padded inputs, and reference outputs/gradients mapped to canonical names."""

from __future__ import annotations

import torch

from compiler.weights import load_weights
from compiler.weights.hf_names import hf_to_canonical


def compile_with_weights(ref, *, kv_cache: bool = False) -> torch.fx.GraphModule:
    """The compiled GraphModule for ``ref.spec`` carrying the reference's weights (eval mode)."""
    from compiler import compile_spec

    gm = compile_spec(ref.spec, kv_cache=kv_cache)
    weights = load_weights(ref.folder, ref.spec)
    missing, unexpected = gm.load_state_dict(weights, strict=False)
    params = dict(gm.named_parameters(remove_duplicate=False))
    tied = {k for k in missing if params.get(k) is params.get("embed.tokens.weight")}
    assert not unexpected and set(missing) == tied, (missing, unexpected)
    return gm.eval()


def padded_batch(seq: int, *, pad_right: int = 0, pad_left: int = 0, vocab: int = 96, seed: int = 0):
    """Two rows: row 0 full, row 1 padded on the right or left. Returns ids, mask, position ids."""
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(3, vocab, (2, seq), generator=g)
    mask = torch.ones(2, seq, dtype=torch.int64)
    if pad_right:
        mask[1, seq - pad_right :] = 0
    if pad_left:
        mask[1, :pad_left] = 0
    ids = ids.masked_fill(mask == 0, 0)
    positions = (mask.cumsum(-1) - 1).clamp(min=0)
    return ids, mask, positions


def max_abs_on(mask: torch.Tensor, a: torch.Tensor, b: torch.Tensor) -> float:
    """Max |a - b| over the real (mask == 1) positions of [b, s, ...] tensors."""
    keep = mask.bool()
    return float((a.detach()[keep] - b.detach()[keep]).abs().max())


def canonical_grads(ref, model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """The reference model's parameter gradients under blueprint's canonical names."""
    import json

    config = json.loads((ref.folder / "config.json").read_text())
    from transformers.core_model_loading import revert_weight_conversion

    grads = {n: p.grad for n, p in model.named_parameters() if p.grad is not None}
    # in the checkpoint's layout, as save_pretrained writes it (transformers 5 fuses a mixture's
    # experts into [E, ...] tensors in memory and splits them again on saving)
    grads = revert_weight_conversion(model, grads)
    return hf_to_canonical(grads, config, ref.spec, note=lambda m: None)


def our_grads(ref, gm: torch.nn.Module) -> dict[str, torch.Tensor]:
    """The GraphModule's parameter gradients. A family whose weight rules use ``shared_norm``
    (Phi: one input norm per layer) has two equal norms in the spec's parallel block; the
    gradient of the shared tensor is the sum of theirs, so both names carry that sum (the
    reference side maps the one gradient to both names)."""
    import re

    from blueprint import families
    from blueprint.families.weightmap import TRANSFORM_PARTS, fill, template_regex

    ours = {n: p.grad for n, p in gm.named_parameters() if p.grad is not None}
    for rule in families.get(ref.family).weights.rules:
        if rule.transform != "shared_norm":
            continue
        first, second = TRANSFORM_PARTS["shared_norm"]
        rx = re.compile(template_regex(rule.ours, (first,)))
        for name in [n for n in ours if rx.fullmatch(n)]:
            b = {k: v for k, v in rx.fullmatch(name).groupdict().items() if k != "n"}
            twin = fill(rule.ours, {**b, "n": second})
            ours[name] = ours[twin] = ours[name] + ours[twin]
    return ours


def compare_grads(ref_grads: dict[str, torch.Tensor], ours: dict[str, torch.Tensor], tol: float) -> float:
    """Assert every gradient is within ``tol * max(1, max |reference|)``: ``tol`` absolute for
    gradients of order one, ``tol`` relative for larger ones (tests/compiler/test_parity.py's
    rule). Sandwich-normed Gemma 3 gives gradients of ~200 on these inputs, where transformers'
    own fp32 gradients are 5.6e-4 from a float64 run: an absolute 1e-4 is below fp32 there.
    Returns the largest scaled difference."""
    assert set(ours) == set(ref_grads), sorted(set(ours) ^ set(ref_grads))
    worst = max(((float((ours[n] - ref_grads[n]).abs().max()) / max(1.0, float(ref_grads[n].abs().max())), n)
                 for n in ours))
    assert worst[0] < tol, f"gradient of {worst[1]} differs by {worst[0]:.2e} (relative to max(1, its size))"
    return worst[0]
