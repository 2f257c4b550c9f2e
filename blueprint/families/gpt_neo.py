"""GPT-Neo (``model_type: gpt_neo``; EleutherAI GPT-Neo 125M-2.7B): GPT-2's layout (learned
positions, pre-LayerNorm, a biased GELU MLP, tied head) with q/k/v without bias, an output
projection with bias, attention scores NOT scaled by 1/sqrt(head_dim) (``softmax_scale: 1``),
and local layers (``attention_types``) that see only the last ``window_size`` tokens."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from blueprint.errors import BlueprintError
from blueprint.families import Family
from blueprint.families.weightmap import Rule, Unused, WeightMap, buffer
from blueprint.hf.common import TO_HF_ACTIVATION, activation, token_ids
from blueprint.hf.fields import ConfigReader

if TYPE_CHECKING:
    from blueprint.spec.schema import ModelSpec


def _layer_kinds(r: ConfigReader, layers: int) -> list[str]:
    """'global' / 'local' per layer, from ``attention_types`` ([[kinds, repeat], ...]) and the
    expanded ``attention_layers`` transformers also writes (they must agree)."""
    types = r.get("attention_types", [[["global", "local"], layers // 2]])
    try:
        kinds = [k for pattern, repeat in types for _ in range(int(repeat)) for k in pattern]
    except (TypeError, ValueError):
        raise BlueprintError(f"config.json: 'attention_types' = {types!r} is not [[kinds, repeat], ...]") from None
    written = r.get("attention_layers", kinds)
    if written != kinds or len(kinds) != layers or set(kinds) - {"global", "local"}:
        raise BlueprintError(f"config.json: attention_types {types!r} / attention_layers {written!r} do not give "
                             f"'global' or 'local' for each of the {layers} layers")
    return kinds


def to_spec(r: ConfigReader, head: dict[str, Any] | None) -> dict[str, Any]:
    d = r.require("hidden_size")
    layers = r.require("num_layers")
    window = r.get("window_size", 256)
    overrides = [{"index": i, "set": {"attention": {"window": int(window)}}}
                 for i, kind in enumerate(_layer_kinds(r, layers)) if kind == "local"]
    r.get("classifier_dropout")  # dropout before a classifier head: not imported
    return {
        "vocab_size": r.require("vocab_size"),
        "max_seq_len": r.require("max_position_embeddings"),
        "embed_dim": d,
        "num_layers": layers,
        "tie_embeddings": bool(r.get("tie_word_embeddings", True)),
        "dropout": {"embed": r.get("embed_dropout", 0.0), "attention": r.get("attention_dropout", 0.0),
                    "residual": r.get("resid_dropout", 0.0)},
        "init": {"std": r.get("initializer_range", 0.02)},
        "positional": {"kind": "learned"},
        "norm": {"kind": "layernorm", "norm_eps": r.get("layer_norm_epsilon", 1e-5)},
        "final_norm": True,
        "block": {
            "norm_placement": "pre",
            "attention": {"num_heads": r.heads("hidden_size", "num_heads"), "causal": True,
                          "qkv_bias": False, "out_bias": True, "softmax_scale": 1.0},
            "ffn": {"kind": "mlp", "activation": activation(r, "activation_function", "gelu_new"),
                    "hidden_dim": r.get("intermediate_size") or 4 * d, "bias": True},
        },
        "layers": overrides,
        "head": {"kind": "causal_lm"},
        "_tokenizer": token_ids(r),
    }


def detect(spec: "ModelSpec") -> str | None:
    """GPT-2's layout with q/k/v without bias (GPT-2 claims the biased ones, GPT-BigCode MQA)."""
    a = spec.block.attention
    if (spec.is_decoder and spec.positional.kind == "learned" and spec.norm.kind == "layernorm"
            and spec.block.ffn.kind == "mlp" and a.kv_heads == a.num_heads and not a.qkv_bias):
        return "gpt_neo"
    return None


def to_config(spec: "ModelSpec", model_type: str) -> dict[str, Any]:
    a, f = spec.block.attention, spec.block.ffn
    windows = [layer.attention.window for layer in spec.resolved_layers()]
    window = next((w for w in windows if w), 256)
    kinds = ["local" if w else "global" for w in windows]
    return {
        "architectures": ["GPTNeoForCausalLM"], "vocab_size": spec.vocab_size,
        "max_position_embeddings": spec.max_seq_len, "hidden_size": spec.embed_dim, "num_layers": spec.num_layers,
        "num_heads": a.num_heads, "intermediate_size": f.hidden_dim, "window_size": window,
        "attention_types": [[[kind], 1] for kind in kinds],  # one entry per layer: any pattern
        "activation_function": TO_HF_ACTIVATION[f.activation], "layer_norm_epsilon": spec.norm.norm_eps,
        "embed_dropout": spec.dropout.embed, "attention_dropout": spec.dropout.attention,
        "resid_dropout": spec.dropout.residual, "initializer_range": spec.init.std,
        "tie_word_embeddings": spec.tie_embeddings,
    }


WEIGHTS = WeightMap(
    prefix="transformer.",
    rules=(
        Rule("wte.weight", "embed.tokens.weight"),
        Rule("wpe.weight", "embed.positions.weight"),
        Rule("h.{i}.ln_1.{part}", "layers.{i}.attn_norm.{part}"),
        Rule("h.{i}.attn.attention.{x:q|k|v}_proj.weight", "layers.{i}.attn.{x}_proj.weight"),
        Rule("h.{i}.attn.attention.out_proj.{part}", "layers.{i}.attn.o_proj.{part}"),
        Rule("h.{i}.ln_2.{part}", "layers.{i}.ffn_norm.{part}"),
        Rule("h.{i}.mlp.c_fc.{part}", "layers.{i}.ffn.up_proj.{part}"),
        Rule("h.{i}.mlp.c_proj.{part}", "layers.{i}.ffn.down_proj.{part}"),
        Rule("ln_f.{part}", "final_norm.{part}"),
        Rule("lm_head.weight", "head.proj.weight", base=False),
    ),
    unused=(Unused("h.{i}.attn.attention.{x:bias|masked_bias}", buffer),),
    tied_head="head.proj.weight",
)

FAMILY = Family(name="gpt_neo", model_types=("gpt_neo",), to_spec=to_spec, detect=detect,
                to_config=to_config, weights=WEIGHTS)
