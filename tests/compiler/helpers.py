"""Shared test helpers: tiny spec variants, contract inputs, canonical parameters."""

from __future__ import annotations

import copy
from pathlib import Path

import torch

import blueprint
from blueprint.spec.schema import ModelSpec
from compiler.naming import parameter_shapes

REPO = Path(__file__).resolve().parents[2]
SPECS = REPO / "specs"
TINY = sorted(p.stem for p in SPECS.glob("*-tiny.yaml"))
ALL = sorted(p.stem for p in SPECS.glob("*.yaml"))

BASE = {
    "name": "variant", "vocab_size": 64, "max_seq_len": 32, "embed_dim": 32, "num_layers": 2,
    "positional": {"kind": "rope"}, "norm": {"kind": "layernorm"},
    "block": {"attention": {"num_heads": 4}, "ffn": {"kind": "mlp", "hidden_dim": 48}},
    "head": {"kind": "causal_lm"},
}


def merge(base: dict, update: dict) -> dict:
    out = copy.deepcopy(base)
    for k, v in update.items():
        out[k] = merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def variant(**update) -> ModelSpec:
    return ModelSpec.model_validate(merge(BASE, update))


def encoder(**update) -> ModelSpec:
    enc = {"block": {"attention": {"causal": False}}}
    data = merge(merge(BASE, enc), update)
    data["head"] = update.get("head", {"kind": "embeddings", "pooling": "mean"})
    return ModelSpec.model_validate(data)


def load(name: str) -> ModelSpec:
    return blueprint.load_spec(SPECS / f"{name}.yaml")


def without_dropout(spec: ModelSpec) -> ModelSpec:
    return spec.model_copy(update={"dropout": spec.dropout.model_copy(
        update={"embed": 0.0, "attention": 0.0, "residual": 0.0})})


def make_inputs(spec: ModelSpec, b: int = 2, s: int = 7, *, pad: list[int] | None = None,
                seed: int = 0) -> dict[str, torch.Tensor]:
    """Contract-4 inputs (no cache): decoders padded on the left, encoders on the right."""
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(0, spec.vocab_size, (b, s), generator=g)
    mask = torch.ones(b, s, dtype=torch.int64)
    for r, p in enumerate(pad or []):
        if p:
            if spec.is_decoder:
                mask[r, :p] = 0
            else:
                mask[r, s - p:] = 0
    feeds = {"input_ids": ids, "attention_mask": mask}
    if spec.is_decoder and spec.positional.kind != "none":
        feeds["position_ids"] = (mask.cumsum(-1) - 1).clamp(min=0)
    if not spec.is_decoder and spec.type_vocab_size:
        feeds["token_type_ids"] = torch.randint(0, spec.type_vocab_size, (b, s), generator=g)
    return feeds


def canonical_params(gm: torch.nn.Module, spec: ModelSpec) -> dict[str, torch.Tensor]:
    """Detached leaf copies of the model's parameters under canonical names."""
    named = dict(gm.named_parameters(remove_duplicate=False))
    return {n: named[n].detach().clone().requires_grad_(True) for n in parameter_shapes(spec)}


def randomize(gm: torch.nn.Module, seed: int = 1, scale: float = 0.2) -> None:
    """Larger-than-init random weights (norm weights around 1) so every path matters."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in gm.named_parameters():
            noise = torch.randn(p.shape, generator=g) * scale
            p.copy_(1.0 + noise if p.ndim == 1 and "norm" in name and name.endswith("weight") else noise)


def assert_close(ours: torch.Tensor, ref: torch.Tensor, what: str, tol: float = 1e-5) -> None:
    """max |ours - ref| <= tol * max(1, max |ref|): absolute for values of order one,
    relative for larger ones."""
    scale = max(1.0, ref.abs().max().item())
    err = (ours.double() - ref.double()).abs().max().item()
    assert err <= tol * scale, f"{what} differs by {err:.2e} (scale {scale:.2f}, tolerance {tol * scale:.2e})"
