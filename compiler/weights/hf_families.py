"""Hugging Face tensor names -> blueprint canonical names, one ``Family`` table per model type.

Each rule is a regular expression over the checkpoint name (after an optional base-model
prefix, e.g. ``transformer.`` or ``model.``) and a handler from ``hf_rules``. The ``unused``
lists name whole parts a spec may legitimately not use (BERT's pooler when the head pools
without it, a masked-LM head under an embeddings head, recomputed buffers); they are reported
by name, never dropped silently.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from compiler.weights.hf_rules import (
    Family, Unused, fused_gate_up, fused_qkv, neox_qkv, rename, shared_norm, transposed)

if TYPE_CHECKING:
    from blueprint.spec.schema import ModelSpec


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

PHI = Family(
    prefixes=("model.",),
    rules=[
        (r"embed_tokens\.weight", rename("embed.tokens.weight")),
        (rf"layers\.{L}\.input_layernorm\.(weight|bias)", lambda m, t, spec: shared_norm(m.group(2))(m, t, spec)),
        (rf"layers\.{L}\.self_attn\.([qkv])_proj\.(weight|bias)", rename("layers.{}.attn.{}_proj.{}")),
        (rf"layers\.{L}\.self_attn\.dense\.(weight|bias)", rename("layers.{}.attn.o_proj.{}")),
        (rf"layers\.{L}\.self_attn\.([qk])_layernorm\.(weight|bias)", rename("layers.{}.attn.{}_norm.{}")),
        (rf"layers\.{L}\.mlp\.fc1\.(weight|bias)", rename("layers.{}.ffn.up_proj.{}")),
        (rf"layers\.{L}\.mlp\.fc2\.(weight|bias)", rename("layers.{}.ffn.down_proj.{}")),
        (r"final_layernorm\.(weight|bias)", rename("final_norm.{}")),
        (r"lm_head\.(weight|bias)", rename("head.proj.{}")),
    ],
    unused=[Unused(rf"layers\.{L}\.self_attn\.rotary_emb\.inv_freq", _buffer)],
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
    "phi": PHI,
}


