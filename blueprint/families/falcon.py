"""Falcon (``model_type: falcon``; Falcon-7B/40B/180B, Falcon2-11B, Falcon-RW): every layout
transformers' FalconDecoderLayer computes with rotary positions.

- the new decoder architecture (40B, 180B): parallel attention and MLP, each with its own
  LayerNorm (``ln_attn``, ``ln_mlp``): ``residual: parallel``; with
  ``num_ln_in_parallel_attn: 1`` (Falcon2-11B) one ``input_layernorm`` feeds both:
  ``residual: parallel_shared_norm``;
- the original architecture with ``parallel_attn`` (7B): one shared norm, multi-query;
- without ``parallel_attn`` (Falcon-RW): sequential pre-norm.

The fused ``query_key_value`` rows are [KV groups, H/KV queries + key + value, head_dim]
(``qkv_grouped``); the 7B's multi-query [q; k; v] and the original per-head [H, 3, hd] are the
same layout with KV = 1 and KV = H. export-hf writes the new decoder architecture for parallel
specs and the original one for sequential specs (where KV must be 1 or H).

Refused, naming the mechanism: ``alibi`` (Falcon-RW's eager path scales the ALiBi biases by
1/sqrt(head_dim) together with the scores, which the spec's ALiBi does not), and dropout
before the residual add (Falcon drops attention+MLP together; blueprint drops each sublayer's
output), so ``hidden_dropout``/``attention_dropout`` must be 0."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from blueprint.errors import BlueprintError
from blueprint.families import Family
from blueprint.families.gpt_neox import neox_layout, parallel_rope_layout, sequential_elsewhere
from blueprint.families.weightmap import Rule, Unused, WeightMap, buffer
from blueprint.hf.common import TO_HF_ACTIVATION, activation, full_rope, sizes, token_ids
from blueprint.hf.fields import ConfigReader

if TYPE_CHECKING:
    from blueprint.spec.schema import ModelSpec


def _wiring(r: ConfigReader) -> tuple[str, int]:
    """(the spec's residual, KV heads) of a Falcon config."""
    heads = r.heads("hidden_size", "num_attention_heads")
    new = bool(r.get("new_decoder_architecture", False))
    parallel = bool(r.get("parallel_attn", True))
    multi_query = bool(r.get("multi_query", True))
    norms = r.get("num_ln_in_parallel_attn")
    kv = r.get("num_kv_heads", heads)
    if new:
        norms = 2 if norms is None else norms
        if norms not in (1, 2):
            raise BlueprintError(f"config.json: 'num_ln_in_parallel_attn' = {norms} must be 1 or 2")
        if norms == 1 and not parallel:
            raise BlueprintError("config.json: num_ln_in_parallel_attn 1 needs parallel_attn (transformers "
                                 "has no MLP input otherwise)")
        return ("parallel" if norms == 2 else "parallel_shared_norm"), kv
    kv = 1 if multi_query else kv
    if kv not in (1, heads):
        raise BlueprintError(f"config.json: num_kv_heads {kv} needs new_decoder_architecture (the original "
                             "architecture has one key/value head, or one per query head)")
    return ("parallel_shared_norm" if parallel else "sequential"), kv


def to_spec(r: ConfigReader, head: dict[str, Any] | None) -> dict[str, Any]:
    r.expect("alibi", (False,), "Falcon's ALiBi scales the biases with the scores by 1/sqrt(head_dim); "
             "the spec's ALiBi adds them after scaling")
    for key in ("hidden_dropout", "attention_dropout"):
        r.expect(key, (0.0, 0), "Falcon drops attention + MLP output together; blueprint drops each "
                 "sublayer's output (set it to 0)")
    d = r.require("hidden_size")
    heads = r.heads("hidden_size", "num_attention_heads")
    residual, kv = _wiring(r)
    base = full_rope(r, "falcon")
    bias = bool(r.get("bias", False))
    return {
        **sizes(r, d),
        "tie_embeddings": bool(r.get("tie_word_embeddings", True)),
        "init": {"std": r.get("initializer_range", 0.02)},
        "positional": {"kind": "rope", "rope_base": base},
        "norm": {"kind": "layernorm", "norm_eps": r.get("layer_norm_epsilon", 1e-5)},
        "final_norm": True,
        "block": {
            "norm_placement": "pre",
            "residual": residual,
            "attention": {"num_heads": heads, "num_kv_heads": kv, "head_dim": d // heads, "causal": True,
                          "qkv_bias": bias, "out_bias": bias},
            "ffn": {"kind": "mlp", "activation": activation(r, "activation", "gelu"),
                    "hidden_dim": r.get("ffn_hidden_size", 4 * d), "bias": bias},
        },
        "head": {"kind": "causal_lm"},
        "_tokenizer": token_ids(r),
    }


def detect(spec: "ModelSpec") -> str | None:
    if (parallel_rope_layout(spec) and not (spec.head.kind == "causal_lm" and spec.head.bias)
            and not spec.block.attention.qk_norm  # q/k norms: Persimmon
            and not neox_layout(spec) and not sequential_elsewhere(spec)):
        return "falcon"
    return None


def to_config(spec: "ModelSpec", model_type: str) -> dict[str, Any]:
    b, a, f = spec.block, spec.block.attention, spec.block.ffn
    config: dict[str, Any] = {
        "architectures": ["FalconForCausalLM"], "vocab_size": spec.vocab_size, "hidden_size": spec.embed_dim,
        "num_hidden_layers": spec.num_layers, "num_attention_heads": a.num_heads,
        "num_kv_heads": a.kv_heads, "ffn_hidden_size": f.hidden_dim, "activation": TO_HF_ACTIVATION[f.activation],
        "layer_norm_epsilon": spec.norm.norm_eps, "bias": f.bias, "alibi": False,
        "max_position_embeddings": spec.max_seq_len, "tie_word_embeddings": spec.tie_embeddings,
        "hidden_dropout": 0.0, "attention_dropout": 0.0, "initializer_range": spec.init.std,
        "rope_parameters": {"rope_theta": spec.positional.rope_base, "rope_type": "default"},
    }
    if b.residual == "sequential":  # the original architecture, parallel_attn off
        config.update(new_decoder_architecture=False, parallel_attn=False, multi_query=a.kv_heads == 1)
    else:
        config.update(new_decoder_architecture=True, parallel_attn=True, multi_query=a.kv_heads == 1,
                      num_ln_in_parallel_attn=2 if b.residual == "parallel" else 1)
    return config


def _two_norms(spec: "ModelSpec") -> bool:
    return spec.block.residual == "parallel"


def _one_input_norm(spec: "ModelSpec") -> bool:
    return spec.block.residual != "parallel"


WEIGHTS = WeightMap(
    prefix="transformer.",
    rules=(
        Rule("word_embeddings.weight", "embed.tokens.weight"),
        Rule("h.{i}.ln_attn.{part}", "layers.{i}.attn_norm.{part}", when=_two_norms),
        Rule("h.{i}.ln_mlp.{part}", "layers.{i}.ffn_norm.{part}", when=_two_norms),
        Rule("h.{i}.input_layernorm.{part}", "layers.{i}.attn_norm.{part}", when=_one_input_norm),
        Rule("h.{i}.post_attention_layernorm.{part}", "layers.{i}.ffn_norm.{part}", when=_one_input_norm),
        Rule("h.{i}.self_attention.query_key_value.{part}", "layers.{i}.attn.{n}_proj.{part}", "qkv_grouped"),
        Rule("h.{i}.self_attention.dense.{part}", "layers.{i}.attn.o_proj.{part}"),
        Rule("h.{i}.mlp.dense_h_to_4h.{part}", "layers.{i}.ffn.up_proj.{part}"),
        Rule("h.{i}.mlp.dense_4h_to_h.{part}", "layers.{i}.ffn.down_proj.{part}"),
        Rule("ln_f.{part}", "final_norm.{part}"),
        Rule("lm_head.weight", "head.proj.weight", base=False),
    ),
    unused=(Unused("h.{i}.self_attention.rotary_emb.inv_freq", buffer),),
    tied_head="head.proj.weight",
)

FAMILY = Family(name="falcon", model_types=("falcon",), to_spec=to_spec, detect=detect, to_config=to_config,
                weights=WEIGHTS)
