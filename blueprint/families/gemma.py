"""Gemma (``model_type: gemma``; Gemma 2B / 7B, CodeGemma): LLaMA's layout with a GeGLU FFN
(tanh GELU), multi-query attention on the 2B, head_dim 256, token embeddings scaled by
sqrt(hidden_size) and RMSNorm scaling by ``(1 + weight)`` (the spec's ``weight_offset: 1``).

transformers 5 turns ``hidden_act: gelu`` (what the published configs say) into the tanh
approximation, ``gelu_pytorch_tanh``; so does the import. ``hidden_activation`` (an older
spelling transformers 5 no longer reads) is read and must agree."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from blueprint.families import Family
from blueprint.families.llama import WEIGHTS as LLAMA_WEIGHTS
from blueprint.hf.common import full_rope, sizes, token_ids
from blueprint.hf.fields import ConfigReader

if TYPE_CHECKING:
    from blueprint.spec.schema import ModelSpec

# transformers' GemmaConfig maps its legacy "gelu" to the tanh form the checkpoints were trained with
_TANH_GELU = ("gelu", "gelu_pytorch_tanh", "gelu_new")


def to_spec(r: ConfigReader, head: dict[str, Any] | None) -> dict[str, Any]:
    r.expect("hidden_act", _TANH_GELU, "Gemma's GeGLU uses the tanh GELU")
    r.expect("hidden_activation", (None, *_TANH_GELU), "Gemma's GeGLU uses the tanh GELU")
    r.expect("use_bidirectional_attention", (None, False), "a causal LM attends causally")
    d = r.require("hidden_size")
    heads = r.require("num_attention_heads")
    base = full_rope(r, "gemma")
    bias = bool(r.get("attention_bias", False))
    return {
        **sizes(r, d),
        "tie_embeddings": bool(r.get("tie_word_embeddings", True)),
        "embed_multiplier": math.sqrt(d),
        "dropout": {"attention": r.get("attention_dropout", 0.0)},
        "init": {"std": r.get("initializer_range", 0.02)},
        "positional": {"kind": "rope", "rope_base": base},
        "norm": {"kind": "rmsnorm", "norm_eps": r.get("rms_norm_eps", 1e-6), "weight_offset": 1.0},
        "final_norm": True,
        "block": {
            "norm_placement": "pre",
            "attention": {"num_heads": heads, "num_kv_heads": r.get("num_key_value_heads", heads),
                          "head_dim": r.get("head_dim", d // heads), "causal": True,
                          "qkv_bias": bias, "out_bias": bias},
            "ffn": {"kind": "geglu", "activation": "gelu_tanh", "hidden_dim": r.require("intermediate_size"),
                    "bias": False},
        },
        "head": {"kind": "causal_lm"},
        "_tokenizer": token_ids(r),
    }


def detect(spec: "ModelSpec") -> str | None:
    # pre-norm and no logit cap: Gemma 2 and 3 (sandwich norms, soft-caps) are other families
    if (spec.is_decoder and spec.positional.kind == "rope" and spec.norm.kind == "rmsnorm"
            and spec.block.ffn.kind == "geglu" and spec.head.softcap is None
            and all(l.norm_placement == "pre" for l in spec.resolved_layers())):
        return "gemma"  # sandwich norms: Gemma 2 / 3 (gemma2.py, gemma3.py)
    return None


def to_config(spec: "ModelSpec", model_type: str) -> dict[str, Any]:
    a, f = spec.block.attention, spec.block.ffn
    return {
        "architectures": ["GemmaForCausalLM"], "vocab_size": spec.vocab_size, "hidden_size": spec.embed_dim,
        "intermediate_size": f.hidden_dim, "num_hidden_layers": spec.num_layers,
        "num_attention_heads": a.num_heads, "num_key_value_heads": a.kv_heads, "head_dim": a.head_dim,
        "hidden_act": "gelu_pytorch_tanh", "max_position_embeddings": spec.max_seq_len,
        "rms_norm_eps": spec.norm.norm_eps, "initializer_range": spec.init.std,
        "tie_word_embeddings": spec.tie_embeddings, "attention_bias": a.qkv_bias,
        "attention_dropout": spec.dropout.attention,
        "rope_parameters": {"rope_theta": spec.positional.rope_base, "rope_type": "default"},
    }


WEIGHTS = LLAMA_WEIGHTS  # LLaMA's module and tensor names

FAMILY = Family(name="gemma", model_types=("gemma",), to_spec=to_spec, detect=detect, to_config=to_config,
                weights=WEIGHTS)
