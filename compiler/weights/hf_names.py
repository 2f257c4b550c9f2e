"""Hugging Face tensor names -> blueprint canonical names, one table per model family.

Each family is a list of rules: a regular expression over the checkpoint name (after an
optional base-model prefix, e.g. ``transformer.`` or ``model.``) and a function that turns the
matched tensor into one or more canonical tensors. The functions do the real layout work:
GPT-2's Conv1D stores weights as [in, out] (transposed relative to nn.Linear); GPT-2's
``c_attn`` and ModernBERT's ``Wqkv`` fuse q, k, v along the output axis; GPT-NeoX fuses them
per head ([H, 3, hd] interleaved); ModernBERT's ``Wi`` fuses the GeGLU halves, and its forward
is ``input, gate = Wi(x).chunk(2); Wo(act(input) * gate)``, so the FIRST half is the activated
projection, blueprint's ``gate_proj``, and the second half is ``up_proj``.

A checkpoint tensor that matches no rule is an error naming it. The only exception is the
explicit ``unused`` table: whole parts a spec may legitimately not use (BERT's pooler when the
head pools without it, a masked-LM head under an embeddings head, recomputed buffers). They are
reported through ``note`` by name and count, never dropped silently.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable

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


def _buffer(_spec: "ModelSpec") -> str:
    return "a buffer the compiled model recomputes"


def _pooler_unused(spec: "ModelSpec") -> str | None:
    head = spec.head
    if getattr(head, "pooler", "none") == "dense_tanh":
        return None
    pooling = getattr(head, "pooling", None)
    how = f"pools by {pooling} without a pooler" if pooling else "has no pooler"
    return f"the pooler (dense + tanh); the spec's {head.kind} head {how}"


def _mlm_unused(spec: "ModelSpec") -> str | None:
    if spec.head.kind == "masked_lm":
        return None
    return f"the masked-LM head; the spec's head is {spec.head.kind}"


def _nsp_unused(_spec: "ModelSpec") -> str:
    return "the next-sentence-prediction head, which the spec language has no head for"


L = r"(\d+)"

GPT2 = Family(
    prefixes=("transformer.",),
    rules=[
        (r"wte\.weight", rename("embed.tokens.weight")),
        (r"wpe\.weight", rename("embed.positions.weight")),
        (rf"h\.{L}\.ln_1\.(weight|bias)", rename("layers.{}.attn_norm.{}")),
        (rf"h\.{L}\.attn\.c_attn\.weight", fused_qkv("layers.{}.attn", "weight", conv1d=True)),
        (rf"h\.{L}\.attn\.c_attn\.bias", fused_qkv("layers.{}.attn", "bias")),
        (rf"h\.{L}\.attn\.c_proj\.weight", transposed("layers.{}.attn.o_proj.weight")),
        (rf"h\.{L}\.attn\.c_proj\.bias", rename("layers.{}.attn.o_proj.bias")),
        (rf"h\.{L}\.ln_2\.(weight|bias)", rename("layers.{}.ffn_norm.{}")),
        (rf"h\.{L}\.mlp\.c_fc\.weight", transposed("layers.{}.ffn.up_proj.weight")),
        (rf"h\.{L}\.mlp\.c_fc\.bias", rename("layers.{}.ffn.up_proj.bias")),
        (rf"h\.{L}\.mlp\.c_proj\.weight", transposed("layers.{}.ffn.down_proj.weight")),
        (rf"h\.{L}\.mlp\.c_proj\.bias", rename("layers.{}.ffn.down_proj.bias")),
        (r"ln_f\.(weight|bias)", rename("final_norm.{}")),
        (r"lm_head\.weight", rename("head.proj.weight")),
    ],
    unused=[Unused(rf"h\.{L}\.attn\.(bias|masked_bias)", _buffer)],
    tied_head="head.proj.weight",
)

# LLaMA, Mistral, Qwen2 (qkv bias), Qwen3 (q/k norm): the same module names.
LLAMA = Family(
    prefixes=("model.",),
    rules=[
        (r"embed_tokens\.weight", rename("embed.tokens.weight")),
        (rf"layers\.{L}\.input_layernorm\.weight", rename("layers.{}.attn_norm.weight")),
        (rf"layers\.{L}\.self_attn\.([qkvo])_proj\.(weight|bias)", rename("layers.{}.attn.{}_proj.{}")),
        (rf"layers\.{L}\.self_attn\.([qk])_norm\.weight", rename("layers.{}.attn.{}_norm.weight")),
        (rf"layers\.{L}\.post_attention_layernorm\.weight", rename("layers.{}.ffn_norm.weight")),
        (rf"layers\.{L}\.mlp\.(gate|up|down)_proj\.(weight|bias)", rename("layers.{}.ffn.{}_proj.{}")),
        (r"norm\.weight", rename("final_norm.weight")),
        (r"lm_head\.weight", rename("head.proj.weight")),
    ],
    unused=[Unused(rf"layers\.{L}\.self_attn\.rotary_emb\.inv_freq", _buffer)],
    tied_head="head.proj.weight",
)

_BERT_LAYER = rf"encoder\.layer\.{L}\."
BERT = Family(
    prefixes=("bert.",),
    rules=[
        (r"embeddings\.word_embeddings\.weight", rename("embed.tokens.weight")),
        (r"embeddings\.position_embeddings\.weight", rename("embed.positions.weight")),
        (r"embeddings\.token_type_embeddings\.weight", rename("embed.token_types.weight")),
        (r"embeddings\.LayerNorm\.(weight|bias)", rename("embed.norm.{}")),
        (_BERT_LAYER + r"attention\.self\.query\.(weight|bias)", rename("layers.{}.attn.q_proj.{}")),
        (_BERT_LAYER + r"attention\.self\.key\.(weight|bias)", rename("layers.{}.attn.k_proj.{}")),
        (_BERT_LAYER + r"attention\.self\.value\.(weight|bias)", rename("layers.{}.attn.v_proj.{}")),
        (_BERT_LAYER + r"attention\.output\.dense\.(weight|bias)", rename("layers.{}.attn.o_proj.{}")),
        (_BERT_LAYER + r"attention\.output\.LayerNorm\.(weight|bias)", rename("layers.{}.attn_norm.{}")),
        (_BERT_LAYER + r"intermediate\.dense\.(weight|bias)", rename("layers.{}.ffn.up_proj.{}")),
        (_BERT_LAYER + r"output\.dense\.(weight|bias)", rename("layers.{}.ffn.down_proj.{}")),
        (_BERT_LAYER + r"output\.LayerNorm\.(weight|bias)", rename("layers.{}.ffn_norm.{}")),
        (r"pooler\.dense\.(weight|bias)", rename("head.pooler.{}")),
        (r"cls\.predictions\.transform\.dense\.(weight|bias)", rename("head.dense.{}")),
        (r"cls\.predictions\.transform\.LayerNorm\.(weight|bias)", rename("head.norm.{}")),
        (r"cls\.predictions\.decoder\.weight", rename("head.decoder.weight")),
        (r"cls\.predictions\.(?:decoder\.)?bias", rename("head.decoder.bias")),
        (r"classifier\.(weight|bias)", rename("head.classifier.{}")),
    ],
    unused=[
        Unused(r"embeddings\.position_ids", _buffer),
        Unused(r"pooler\.dense\.(weight|bias)", _pooler_unused),
        Unused(r"cls\.predictions\..*", _mlm_unused),
        Unused(r"cls\.seq_relationship\..*", _nsp_unused),
    ],
    tied_head="head.decoder.weight",
)

MODERNBERT = Family(
    prefixes=("model.",),
    rules=[
        (r"embeddings\.tok_embeddings\.weight", rename("embed.tokens.weight")),
        (r"embeddings\.norm\.(weight|bias)", rename("embed.norm.{}")),
        (rf"layers\.{L}\.attn_norm\.(weight|bias)", rename("layers.{}.attn_norm.{}")),
        (rf"layers\.{L}\.attn\.Wqkv\.weight", fused_qkv("layers.{}.attn", "weight")),
        (rf"layers\.{L}\.attn\.Wqkv\.bias", fused_qkv("layers.{}.attn", "bias")),
        (rf"layers\.{L}\.attn\.Wo\.(weight|bias)", rename("layers.{}.attn.o_proj.{}")),
        (rf"layers\.{L}\.mlp_norm\.(weight|bias)", rename("layers.{}.ffn_norm.{}")),
        (rf"layers\.{L}\.mlp\.Wi\.weight", fused_gate_up("layers.{}.ffn", "weight")),
        (rf"layers\.{L}\.mlp\.Wi\.bias", fused_gate_up("layers.{}.ffn", "bias")),
        (rf"layers\.{L}\.mlp\.Wo\.(weight|bias)", rename("layers.{}.ffn.down_proj.{}")),
        (r"final_norm\.(weight|bias)", rename("final_norm.{}")),
        (r"head\.dense\.(weight|bias)", rename("head.dense.{}")),
        (r"head\.norm\.(weight|bias)", rename("head.norm.{}")),
        (r"decoder\.(weight|bias)", rename("head.decoder.{}")),
    ],
    unused=[Unused(r"(head\.(dense|norm)|decoder)\..*", _mlm_unused)],
    tied_head="head.decoder.weight",
)

GPT_NEOX = Family(
    prefixes=("gpt_neox.",),
    rules=[
        (r"embed_in\.weight", rename("embed.tokens.weight")),
        (rf"layers\.{L}\.input_layernorm\.(weight|bias)", rename("layers.{}.attn_norm.{}")),
        (rf"layers\.{L}\.post_attention_layernorm\.(weight|bias)", rename("layers.{}.ffn_norm.{}")),
        (rf"layers\.{L}\.attention\.query_key_value\.weight", neox_qkv("weight")),
        (rf"layers\.{L}\.attention\.query_key_value\.bias", neox_qkv("bias")),
        (rf"layers\.{L}\.attention\.dense\.(weight|bias)", rename("layers.{}.attn.o_proj.{}")),
        (rf"layers\.{L}\.mlp\.dense_h_to_4h\.(weight|bias)", rename("layers.{}.ffn.up_proj.{}")),
        (rf"layers\.{L}\.mlp\.dense_4h_to_h\.(weight|bias)", rename("layers.{}.ffn.down_proj.{}")),
        (r"final_layer_norm\.(weight|bias)", rename("final_norm.{}")),
        (r"embed_out\.weight", rename("head.proj.weight")),
        (r"lm_head\.weight", rename("head.proj.weight")),
    ],
    unused=[
        Unused(rf"layers\.{L}\.attention\.(bias|masked_bias|rotary_emb\.inv_freq)", _buffer),
    ],
    tied_head="head.proj.weight",
)

FAMILIES: dict[str, Family] = {
    "gpt2": GPT2,
    "llama": LLAMA,
    "mistral": LLAMA,
    "qwen2": LLAMA,
    "qwen3": LLAMA,
    "bert": BERT,
    "modernbert": MODERNBERT,
    "gpt_neox": GPT_NEOX,
}


def family_for(config: dict[str, Any]) -> Family:
    model_type = config.get("model_type")
    if model_type not in FAMILIES:
        raise BlueprintError(
            f"config.json: model_type '{model_type}' has no weight-name map",
            hint=f"supported model types: {', '.join(sorted(FAMILIES))}",
        )
    return FAMILIES[model_type]


def _put(out: Out, canonical: str, t: torch.Tensor, source: str, origin: dict[str, str]) -> None:
    """Store a mapped tensor; two checkpoint names may feed one parameter only if they agree."""
    if canonical in out:
        if out[canonical].shape == t.shape and torch.equal(out[canonical], t):
            return  # e.g. BERT's cls.predictions.bias and its tied decoder.bias alias
        raise BlueprintError(
            f"checkpoint tensors '{origin[canonical]}' and '{source}' both map to "
            f"'{canonical}' but differ",
            hint="re-save the checkpoint so each parameter is stored once",
        )
    out[canonical] = t
    origin[canonical] = source


def hf_to_canonical(
    tensors: dict[str, torch.Tensor],
    config: dict[str, Any],
    spec: "ModelSpec",
    *,
    note: Callable[[str], None],
) -> Out:
    """Map a Hugging Face checkpoint's tensors to canonical names (shapes checked later).

    Raises:
        BlueprintError: a tensor that matches no rule of the family, or two names that map to
            one parameter with different values, or a tied head that differs from the embedding.
    """
    family = family_for(config)
    # The base-model prefix is optional (a bare LlamaModel has none), and matching the full
    # name keeps it in every error message (``m.string``).
    prefix = "(?:" + "|".join(re.escape(p) for p in family.prefixes) + ")?"
    rules = [(re.compile(prefix + p), h) for p, h in family.rules]
    unused = [(re.compile(prefix + u.pattern), u) for u in family.unused]
    out: Out = {}
    origin: dict[str, str] = {}
    ignored: dict[str, list[str]] = {}
    unknown: list[str] = []
    for name in sorted(tensors):
        skip = next((u for rx, u in unused if rx.fullmatch(name) and u.reason(spec)), None)
        if skip is not None:
            ignored.setdefault(skip.reason(spec) or "", []).append(name)
            continue
        for rx, handler in rules:
            m = rx.fullmatch(name)
            if m:
                for canonical, t in handler(m, tensors[name], spec).items():
                    _put(out, canonical, t, name, origin)
                break
        else:
            unknown.append(name)
    if unknown:
        raise BlueprintError(
            f"checkpoint tensors with no place in a {config.get('model_type')} spec: "
            + ", ".join(f"'{n}'" for n in unknown[:12])
            + (f" ... ({len(unknown) - 12} more)" if len(unknown) > 12 else ""),
            hint="the checkpoint has parts blueprint does not model; check the model type "
            "and the head kind in the spec",
        )
    for reason, names in ignored.items():
        shown = ", ".join(names[:4]) + (f", ... ({len(names) - 4} more)" if len(names) > 4 else "")
        note(f"ignoring {len(names)} checkpoint tensor(s) ({shown}): {reason}")
    _resolve_tied_head(out, origin, family, spec)
    return out


def _resolve_tied_head(out: Out, origin: dict[str, str], family: Family, spec: "ModelSpec") -> None:
    """A tied spec stores the output projection once, as the embedding; a copy must be equal."""
    head = family.tied_head
    if not spec.tie_embeddings or head not in out:
        return
    emb = out.get("embed.tokens.weight")
    if emb is not None and emb.shape == out[head].shape and torch.equal(emb, out[head]):
        del out[head]
        return
    raise BlueprintError(
        f"the spec ties embeddings, but checkpoint tensor '{origin[head]}' differs from the "
        "token embedding",
        hint="set tie_embeddings: false in the spec to load a separate output projection",
    )
