"""The building blocks of the Hugging Face name maps: rules that turn one checkpoint tensor
into canonical tensors, and the ``Family`` table that lists them.

The handlers do the real layout work: GPT-2's Conv1D stores weights as [in, out] (transposed
relative to nn.Linear); GPT-2's ``c_attn`` and ModernBERT's ``Wqkv`` fuse q, k, v along the
output axis; GPT-NeoX fuses them per head ([H, 3, hd] interleaved); ModernBERT's ``Wi`` fuses
the GeGLU halves, and its forward is ``input, gate = Wi(x).chunk(2); Wo(act(input) * gate)``,
so the FIRST half is the activated projection, blueprint's ``gate_proj``, and the second half
is ``up_proj``; Phi feeds attention and FFN from one ``input_layernorm``, which fills both of
the parallel block's norms.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Callable

import torch

from blueprint.errors import BlueprintError

if TYPE_CHECKING:
    from blueprint.spec.schema import ModelSpec

Out = dict[str, torch.Tensor]
Handler = Callable[[re.Match, torch.Tensor, "ModelSpec"], Out]


def rename(template: str) -> Handler:
    return lambda m, t, spec: {template.format(*m.groups()): t}


def transposed(template: str) -> Handler:
    """GPT-2 Conv1D weight [in, out] -> nn.Linear weight [out, in]."""
    return lambda m, t, spec: {template.format(*m.groups()): t.t().contiguous()}


def _qkv_sizes(spec: "ModelSpec", layer: int) -> list[int]:
    a = spec.layer(layer).attention
    return [a.num_heads * a.head_dim, a.kv_heads * a.head_dim, a.kv_heads * a.head_dim]


def _split(t: torch.Tensor, sizes: list[int], name: str) -> tuple[torch.Tensor, ...]:
    if t.shape[0] != sum(sizes):
        raise BlueprintError(
            f"checkpoint tensor '{name}' has {t.shape[0]} rows, the spec's sizes need "
            f"{' + '.join(map(str, sizes))} = {sum(sizes)}",
            hint="check num_heads, num_kv_heads, head_dim and hidden_dim against the checkpoint",
        )
    return torch.split(t, sizes, dim=0)


def fused_qkv(prefix: str, suffix: str, *, conv1d: bool = False) -> Handler:
    """q, k, v concatenated along the output axis (GPT-2 c_attn, ModernBERT Wqkv)."""

    def handle(m: re.Match, t: torch.Tensor, spec: "ModelSpec") -> Out:
        i = int(m.group(1))
        if conv1d and t.dim() == 2:
            t = t.t()  # [D, 3D] -> [3D, D]
        parts = _split(t, _qkv_sizes(spec, i), m.string)
        p = prefix.format(i)
        return {f"{p}.{n}_proj.{suffix}": x.contiguous() for n, x in zip("qkv", parts)}

    return handle


def neox_qkv(suffix: str) -> Handler:
    """GPT-NeoX query_key_value: rows laid out as [H, 3, hd] (per-head interleaved)."""

    def handle(m: re.Match, t: torch.Tensor, spec: "ModelSpec") -> Out:
        i = int(m.group(1))
        a = spec.layer(i).attention
        h, hd = a.num_heads, a.head_dim
        _split(t, [3 * h * hd], m.string)  # size check with a readable error
        per_head = t.reshape(h, 3, hd, *t.shape[1:])  # [H, 3, hd, (D)]
        return {
            f"layers.{i}.attn.{n}_proj.{suffix}": per_head[:, j].reshape(h * hd, *t.shape[1:]).contiguous()
            for j, n in enumerate("qkv")
        }

    return handle


def fused_gate_up(template: str, suffix: str) -> Handler:
    """ModernBERT Wi: first half is activated (gate_proj), second half multiplies (up_proj)."""

    def handle(m: re.Match, t: torch.Tensor, spec: "ModelSpec") -> Out:
        i = int(m.group(1))
        hidden = spec.layer(i).ffn.hidden_dim
        gate, up = _split(t, [hidden, hidden], m.string)
        p = template.format(i)
        return {f"{p}.gate_proj.{suffix}": gate.contiguous(), f"{p}.up_proj.{suffix}": up.contiguous()}

    return handle


@dataclass
class Unused:
    """A checkpoint part a spec may deliberately leave out, with the reason told to the user."""

    pattern: str
    reason: Callable[["ModelSpec"], str | None]  # None: the spec does use it (map it instead)


@dataclass
class Family:
    prefixes: tuple[str, ...]
    rules: list[tuple[str, Handler]]
    unused: list[Unused] = field(default_factory=list)
    tied_head: str = ""  # canonical name of the output projection that may be tied


def shared_norm(part: str) -> Handler:
    """One norm feeding both sublayers of a parallel block (Phi): the same tensor fills
    ``attn_norm`` and ``ffn_norm``. Identical function; refused for a sequential layer, where
    the second norm would see another input."""

    def handle(m: re.Match, t: torch.Tensor, spec: "ModelSpec") -> Out:
        i = int(m.group(1))
        layer = spec.layer(i)
        if layer.residual != "parallel" or layer.norm_placement != "pre" or not layer.attn_norm:
            raise BlueprintError(
                f"checkpoint tensor '{m.string}' is one norm shared by attention and FFN; it fits "
                f"only a pre-norm parallel layer, and the spec's layer {i} is {layer.norm_placement}-norm "
                f"{layer.residual}",
                hint="set block.residual: parallel (as `blueprint import-hf` writes for phi)",
            )
        return {f"layers.{i}.attn_norm.{part}": t, f"layers.{i}.ffn_norm.{part}": t.clone()}

    return handle
