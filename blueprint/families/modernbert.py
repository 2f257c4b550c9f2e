"""ModernBERT (``model_type: modernbert``): pre-LayerNorm without biases, RoPE with a local
(sliding-window) base and a global base, every n-th layer global, a GeGLU FFN with its halves
fused in ``Wi``, no attention norm on layer 0."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from blueprint.errors import BlueprintError
from blueprint.families import Family
from blueprint.families.weightmap import Rule, Unused, WeightMap, unless_masked_lm
from blueprint.hf.common import TO_HF_ACTIVATION, activation, architecture, token_ids
from blueprint.hf.fields import ConfigReader

if TYPE_CHECKING:
    from blueprint.spec.schema import ModelSpec


def _global_layers(r: ConfigReader, layers: int) -> list[bool]:
    """True for global layers. transformers 5 writes layer_types; older configs write
    global_attn_every_n_layers (layer i is global when i % n == 0)."""
    types = r.get("layer_types")
    every = r.get("global_attn_every_n_layers")
    if types is None:
        n = every or 3
        return [i % n == 0 for i in range(layers)]
    if len(types) != layers or set(types) - {"full_attention", "sliding_attention"}:
        raise BlueprintError(f"config.json: layer_types {types} does not describe {layers} layers")
    return [t == "full_attention" for t in types]


def _rope_bases(r: ConfigReader) -> tuple[float, float]:
    """(global base, local base) from rope_parameters (5.x) or global/local_rope_theta (4.x)."""
    params = r.get("rope_parameters")
    if params:
        bases = {}
        for kind in ("full_attention", "sliding_attention"):
            p = params.get(kind, {})
            if p.get("rope_type", "default") != "default" or set(p) - {"rope_type", "rope_theta"}:
                raise BlueprintError(f"config.json: rope_parameters.{kind} = {p} is not supported")
            bases[kind] = float(p.get("rope_theta", 160000.0 if kind == "full_attention" else 10000.0))
        return bases["full_attention"], bases["sliding_attention"]
    return float(r.get("global_rope_theta", 160000.0)), float(r.get("local_rope_theta", 10000.0))


def to_spec(r: ConfigReader, head: dict[str, Any] | None) -> dict[str, Any]:
    layers = r.require("num_hidden_layers")
    heads = r.heads("hidden_size", "num_attention_heads")
    glob = _global_layers(r, layers)
    global_base, local_base = _rope_bases(r)
    window = int(r.get("local_attention", 128))
    attn_bias = bool(r.get("attention_bias", False))
    norm_bias = bool(r.get("norm_bias", False))
    # Training-time and kernel switches that do not change the function computed.
    for key in ("initializer_cutoff_factor", "deterministic_flash_attn", "sparse_prediction",
                "sparse_pred_ignore_index", "reference_compile", "repad_logits_with_grad",
                "classifier_dropout", "global_attn_every_n_layers"):
        r.get(key)
    # ModernBERT drops out inside the MLP (before Wo); blueprint's residual dropout sits after
    # the sublayer. Equal at inference, different in training, so only 0 is accepted.
    r.expect("mlp_dropout", (0.0, 0), "set mlp_dropout to 0 or train with blueprint's residual dropout")
    arch = architecture(r)
    head_act = activation(r, "classifier_activation", "gelu")
    classifier_bias = bool(r.get("classifier_bias", False))
    decoder_bias = bool(r.get("decoder_bias", True))
    r.get("classifier_pooling")
    if head is None:
        if arch.endswith("ForMaskedLM"):
            head = {"kind": "masked_lm", "activation": head_act, "dense_bias": classifier_bias,
                    "decoder_bias": decoder_bias}
        elif arch and not arch.endswith("Model"):
            raise BlueprintError(f"config.json: architecture {arch} has a head blueprint does not model",
                                 hint="import the base ModernBertModel or the ForMaskedLM checkpoint")
        else:
            head = {"kind": "embeddings", "pooling": "mean"}
    # The default block is a local layer; each global layer gets an override.
    overrides: list[dict[str, Any]] = []
    for i, g in enumerate(glob):
        if g:
            overrides.append({"index": i, "set": {"attention": {"window": None, "rope_base": global_base}}})
    overrides.append({"index": 0, "set": {"attn_norm": False}})
    return {
        "vocab_size": r.require("vocab_size"),
        "max_seq_len": r.require("max_position_embeddings"),
        "embed_dim": r.require("hidden_size"),
        "num_layers": layers,
        "tie_embeddings": bool(r.get("tie_word_embeddings", True)) and head["kind"] == "masked_lm",
        "dropout": {
            "embed": r.get("embedding_dropout", 0.0),
            "attention": r.get("attention_dropout", 0.0),
            "residual": 0.0,
        },
        "init": {"std": r.get("initializer_range", 0.02)},
        "positional": {"kind": "rope", "rope_base": local_base},
        "norm": {"kind": "layernorm", "norm_eps": r.get("norm_eps", 1e-5), "bias": norm_bias},
        "embed_norm": True,
        "final_norm": True,
        "block": {
            "norm_placement": "pre",
            "attention": {"num_heads": heads, "causal": False, "qkv_bias": attn_bias, "out_bias": attn_bias,
                          "window": window, "rope_base": local_base},
            "ffn": {"kind": "geglu", "activation": activation(r, "hidden_activation", "gelu"),
                    "hidden_dim": r.require("intermediate_size"), "bias": bool(r.get("mlp_bias", False))},
        },
        "layers": overrides,
        "head": head,
        "_tokenizer": token_ids(r),
    }


def detect(spec: "ModelSpec") -> str | None:
    if not spec.is_decoder and spec.positional.kind == "rope" and spec.block.ffn.kind == "geglu":
        return "modernbert"
    return None


def to_config(spec: "ModelSpec", model_type: str) -> dict[str, Any]:
    layers = spec.resolved_layers()
    a, f, head = spec.block.attention, spec.block.ffn, spec.head
    local = next((l.attention for l in layers if l.attention.window), a)
    glob = next((l.attention for l in layers if not l.attention.window), a)
    base = spec.positional.rope_base
    config: dict[str, Any] = {
        "architectures": ["ModernBertForMaskedLM" if head.kind == "masked_lm" else "ModernBertModel"],
        "vocab_size": spec.vocab_size, "hidden_size": spec.embed_dim,
        "intermediate_size": f.hidden_dim, "num_hidden_layers": spec.num_layers,
        "num_attention_heads": a.num_heads, "hidden_activation": TO_HF_ACTIVATION[f.activation],
        "max_position_embeddings": spec.max_seq_len, "norm_eps": spec.norm.norm_eps,
        "norm_bias": spec.norm.bias, "attention_bias": a.qkv_bias, "mlp_bias": f.bias,
        "local_attention": local.window or 128, "initializer_range": spec.init.std,
        "layer_types": ["sliding_attention" if l.attention.window else "full_attention" for l in layers],
        "rope_parameters": {
            "full_attention": {"rope_type": "default", "rope_theta": glob.rope_base or base},
            "sliding_attention": {"rope_type": "default", "rope_theta": local.rope_base or base},
        },
        "embedding_dropout": spec.dropout.embed, "attention_dropout": spec.dropout.attention,
        "mlp_dropout": 0.0, "tie_word_embeddings": spec.tie_embeddings or head.kind != "masked_lm",
    }
    if head.kind == "masked_lm":
        config.update(classifier_activation=TO_HF_ACTIVATION[head.activation], classifier_bias=head.dense_bias,
                      decoder_bias=head.decoder_bias)
    return config




def _export_prefix(spec: "ModelSpec") -> str:
    """ModernBertForMaskedLM nests the encoder as ``model.``; ModernBertModel does not."""
    return "model." if spec.head.kind == "masked_lm" else ""


# Wi = [activated half; multiplied half]: transformers' forward is
# ``input, gate = Wi(x).chunk(2); Wo(act(input) * gate)``, so the FIRST half is blueprint's gate_proj.
WEIGHTS = WeightMap(
    prefix="model.",
    export_prefix=_export_prefix,
    rules=(
        Rule("embeddings.tok_embeddings.weight", "embed.tokens.weight"),
        Rule("embeddings.norm.{part}", "embed.norm.{part}"),
        Rule("layers.{i}.attn_norm.{part}", "layers.{i}.attn_norm.{part}"),
        Rule("layers.{i}.attn.Wqkv.{part}", "layers.{i}.attn.{n}_proj.{part}", "qkv"),
        Rule("layers.{i}.attn.Wo.{part}", "layers.{i}.attn.o_proj.{part}"),
        Rule("layers.{i}.mlp_norm.{part}", "layers.{i}.ffn_norm.{part}"),
        Rule("layers.{i}.mlp.Wi.{part}", "layers.{i}.ffn.{n}_proj.{part}", "gate_up"),
        Rule("layers.{i}.mlp.Wo.{part}", "layers.{i}.ffn.down_proj.{part}"),
        Rule("final_norm.{part}", "final_norm.{part}"),
        Rule("head.dense.{part}", "head.dense.{part}", base=False),
        Rule("head.norm.{part}", "head.norm.{part}", base=False),
        Rule("decoder.{part}", "head.decoder.{part}", base=False),
    ),
    unused=(Unused("{x:head.dense|head.norm|decoder}.{*}", unless_masked_lm),),
    tied_head="head.decoder.weight",
)

FAMILY = Family(
    name="modernbert", model_types=("modernbert",), to_spec=to_spec, detect=detect, to_config=to_config,
    weights=WEIGHTS,
    # BERT-template leftovers in ModernBERT configs on the Hub; transformers' ModernBERT reads neither
    irrelevant=frozenset({"layer_norm_eps", "position_embedding_type"}),
)
