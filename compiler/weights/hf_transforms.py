"""The named layout transforms a family's weight rules use (``blueprint.families.weightmap``),
each implemented once, both ways: ``split`` (checkpoint tensor -> canonical tensors, import) and
``join`` (canonical tensors -> checkpoint tensor, export).

- ``rename``: the tensor as is.
- ``transpose``: GPT-2's Conv1D stores [in, out]; nn.Linear is [out, in].
- ``qkv``: rows [q; k; v] (ModernBERT ``Wqkv``); ``qkv_conv1d``: the same in a Conv1D weight
  (GPT-2 ``c_attn``, [D, 3D]).
- ``qkv_per_head``: rows [H, 3, hd], per head interleaved (GPT-NeoX ``query_key_value``).
- ``qkv_grouped``: rows [KV, H/KV + 2, hd]: each key/value group's queries, key and value
  (Falcon ``query_key_value``, GPT-BigCode ``c_attn``; KV = 1 is [q; k; v], KV = H is ``qkv_per_head``).
- ``gate_up``: rows [activated half; multiplied half] (ModernBERT ``Wi``) -> gate_proj, up_proj.
- ``shared_norm``: one norm feeding both sublayers of a pre-norm parallel block (Phi) -> the
  block's two norms; export requires them equal.

Sizes come from the spec's layer (``bindings["i"]``); a size mismatch names the checkpoint tensor.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Callable

import torch

from blueprint.errors import BlueprintError

if TYPE_CHECKING:
    from blueprint.spec.schema import ModelSpec

Tensors = list[torch.Tensor]
Split = Callable[[torch.Tensor, "ModelSpec", dict[str, str], str], Tensors]
Join = Callable[[Tensors, "ModelSpec", dict[str, str], list[str]], torch.Tensor]


def _qkv_sizes(spec: "ModelSpec", layer: int) -> list[int]:
    a = spec.layer(layer).attention
    return [a.num_heads * a.head_dim, a.kv_heads * a.head_dim, a.kv_heads * a.head_dim]


def _rows(t: torch.Tensor, sizes: list[int], name: str) -> Tensors:
    if t.shape[0] != sum(sizes):
        raise BlueprintError(
            f"checkpoint tensor '{name}' has {t.shape[0]} rows, the spec's sizes need "
            f"{' + '.join(map(str, sizes))} = {sum(sizes)}",
            hint="check num_heads, num_kv_heads, head_dim and hidden_dim against the checkpoint",
        )
    return [x.contiguous() for x in torch.split(t, sizes, dim=0)]


def _conv1d(t: torch.Tensor) -> torch.Tensor:
    """Conv1D [in, out] <-> Linear [out, in] for a weight; a bias (1-d) is unchanged."""
    return t.t().contiguous() if t.dim() == 2 else t


def _per_head_split(t: torch.Tensor, spec: "ModelSpec", b: dict[str, str], name: str) -> Tensors:
    a = spec.layer(int(b["i"])).attention
    h, hd = a.num_heads, a.head_dim
    _rows(t, [3 * h * hd], name)  # size check with a readable error
    per_head = t.reshape(h, 3, hd, *t.shape[1:])  # [H, 3, hd, (D)]
    return [per_head[:, j].reshape(h * hd, *t.shape[1:]).contiguous() for j in range(3)]


def _per_head_join(ts: Tensors, spec: "ModelSpec", b: dict[str, str], names: list[str]) -> torch.Tensor:
    a = spec.layer(int(b["i"])).attention
    h, hd = a.num_heads, a.head_dim
    # q, k, v [H*hd, (D)] -> [H, 3, hd, (D)] -> [3*H*hd, (D)]
    return torch.stack([t.reshape(h, hd, *t.shape[1:]) for t in ts], dim=1).reshape(3 * h * hd, *ts[0].shape[1:])


def _gate_up_split(t: torch.Tensor, spec: "ModelSpec", b: dict[str, str], name: str) -> Tensors:
    hidden = spec.layer(int(b["i"])).ffn.hidden_dim
    return _rows(t, [hidden, hidden], name)


def _shared_norm_split(t: torch.Tensor, spec: "ModelSpec", b: dict[str, str], name: str) -> Tensors:
    """Identical function for a pre-norm parallel layer; refused for any other layer, where the
    second norm would see another input."""
    i = int(b["i"])
    layer = spec.layer(i)
    if layer.residual != "parallel" or layer.norm_placement != "pre" or not layer.attn_norm:
        raise BlueprintError(
            f"checkpoint tensor '{name}' is one norm shared by attention and FFN; it fits "
            f"only a pre-norm parallel layer, and the spec's layer {i} is {layer.norm_placement}-norm "
            f"{layer.residual}",
            hint="set block.residual: parallel (as `blueprint import-hf` writes for this family)",
        )
    return [t, t.clone()]  # two parameters


def _shared_norm_join(ts: Tensors, spec: "ModelSpec", b: dict[str, str], names: list[str]) -> torch.Tensor:
    if not torch.equal(ts[0], ts[1]):
        raise BlueprintError(
            f"export-hf: this family has one input norm per layer, but '{names[0]}' and "
            f"'{names[1]}' differ (trained separately?)",
            hint="a parallel block with two different norms needs a family layout with two norms",
        )
    return ts[0]


def _qkv_split(t: torch.Tensor, spec: "ModelSpec", b: dict[str, str], name: str) -> Tensors:
    return _rows(t, _qkv_sizes(spec, int(b["i"])), name)


def _cat(ts: Tensors, spec: "ModelSpec", b: dict[str, str], names: list[str]) -> torch.Tensor:
    return torch.cat(ts, dim=0)


def _grouped_split(t: torch.Tensor, spec: "ModelSpec", b: dict[str, str], name: str) -> Tensors:
    """Falcon's fused rows [KV, H/KV + 2, hd]: each key/value group's queries, then its key and
    value (KV = 1 is [q; k; v], KV = H is GPT-NeoX's per-head [H, 3, hd])."""
    a = spec.layer(int(b["i"])).attention
    kv, g, hd = a.kv_heads, a.num_heads // a.kv_heads, a.head_dim
    _rows(t, _qkv_sizes(spec, int(b["i"])), name)  # size check with a readable error
    grouped = t.reshape(kv, g + 2, hd, *t.shape[1:])  # [KV, G + 2, hd, (D)]
    q = grouped[:, :g].reshape(kv * g * hd, *t.shape[1:])  # query head j of group k is head k * G + j
    k = grouped[:, g].reshape(kv * hd, *t.shape[1:])
    v = grouped[:, g + 1].reshape(kv * hd, *t.shape[1:])
    return [q.contiguous(), k.contiguous(), v.contiguous()]


def _grouped_join(ts: Tensors, spec: "ModelSpec", b: dict[str, str], names: list[str]) -> torch.Tensor:
    a = spec.layer(int(b["i"])).attention
    kv, g, hd = a.kv_heads, a.num_heads // a.kv_heads, a.head_dim
    rest = ts[0].shape[1:]
    q = ts[0].reshape(kv, g, hd, *rest)  # [KV, G, hd, (D)]
    k, v = (t.reshape(kv, 1, hd, *rest) for t in ts[1:])
    return torch.cat([q, k, v], dim=1).reshape(kv * (g + 2) * hd, *rest)


TRANSFORMS: dict[str, tuple[Split, Join]] = {
    "rename": (lambda t, spec, b, name: [t], lambda ts, spec, b, names: ts[0]),
    "transpose": (lambda t, spec, b, name: [t.t().contiguous()], lambda ts, spec, b, names: ts[0].t()),
    "qkv": (_qkv_split, _cat),
    "qkv_conv1d": (lambda t, spec, b, name: _qkv_split(_conv1d(t), spec, b, name),
                   lambda ts, spec, b, names: _conv1d(torch.cat(ts, dim=0))),  # [3D, D] -> Conv1D [D, 3D]
    "qkv_per_head": (_per_head_split, _per_head_join),
    "gate_up": (_gate_up_split, _cat),
    "shared_norm": (_shared_norm_split, _shared_norm_join),
    "qkv_grouped": (_grouped_split, _grouped_join),
}
