"""LLaMA and the families that share its module names: Mistral (sliding window on every
layer), Qwen2 (q/k/v bias, windows per layer), Qwen3 (per-head q/k RMSNorm). Pre-RMSNorm,
plain RoPE, GQA, a SwiGLU FFN."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from blueprint.errors import BlueprintError
from blueprint.families import Family, GGUFLayout
from blueprint.families.weightmap import Rule, Unused, WeightMap, buffer
from blueprint.hf.common import sizes, token_ids
from blueprint.hf.fields import ConfigReader
from blueprint.hf.rope_scaling import read_rope, rope_parameters_with_scaling

if TYPE_CHECKING:
    from blueprint.spec.schema import ModelSpec

_QWEN = ("qwen2", "qwen3")
_ARCHITECTURES = {"llama": "LlamaForCausalLM", "mistral": "MistralForCausalLM",
                  "qwen2": "Qwen2ForCausalLM", "qwen3": "Qwen3ForCausalLM"}


def to_spec(r: ConfigReader, head: dict[str, Any] | None) -> dict[str, Any]:
    family = r.family
    r.expect("hidden_act", ("silu",), "the SwiGLU FFN uses SiLU")
    d = r.require("hidden_size")
    heads = r.require("num_attention_heads")
    layers = r.require("num_hidden_layers")
    base, fraction, scaling = read_rope(r)
    if scaling["kind"] == "longrope":
        raise BlueprintError(f"config.json: longrope RoPE in a {family} config is not modelled (Phi-3's is: phi3.py)")
    if fraction != 1.0:
        raise BlueprintError(f"config.json: partial rotary ({fraction}) is not used by {family}")
    attn_bias = bool(r.get("attention_bias", False))
    attention: dict[str, Any] = {
        "num_heads": heads,
        "num_kv_heads": r.get("num_key_value_heads", heads),
        "head_dim": r.get("head_dim", d // heads),
        "causal": True,
        "qkv_bias": attn_bias or family == "qwen2",
        "out_bias": attn_bias,
        "qk_norm": family == "qwen3",
    }
    overrides: list[dict[str, Any]] = []
    window = _sliding_window(r, layers)
    if isinstance(window, int):
        attention["window"] = window
    elif window is not None:  # per-layer list: layers with a window get an override
        for i, w in enumerate(window):
            if w is not None:
                overrides.append({"index": i, "set": {"attention": {"window": w}}})
    return {
        **sizes(r, d),
        "dropout": {"attention": r.get("attention_dropout", 0.0)},
        "init": {"std": r.get("initializer_range", 0.02)},
        "positional": {"kind": "rope", "rope_base": base, "scaling": scaling},
        "norm": {"kind": "rmsnorm", "norm_eps": r.get("rms_norm_eps", 1e-6)},
        "final_norm": True,
        "block": {
            "norm_placement": "pre",
            "attention": attention,
            "ffn": {"kind": "swiglu", "hidden_dim": r.require("intermediate_size"), "bias": bool(r.get("mlp_bias", False))},
        },
        "layers": overrides,
        "head": {"kind": "causal_lm"},
        "_tokenizer": token_ids(r),
    }


def _sliding_window(r: ConfigReader, layers: int) -> int | list[int | None] | None:
    """Mistral: ``sliding_window`` on every layer. Qwen: only with ``use_sliding_window`` and per
    ``layer_types`` (or ``max_window_layers``)."""
    window = r.get("sliding_window")
    use = r.get("use_sliding_window", r.family not in _QWEN)
    r.get("max_window_layers")
    types = r.get("layer_types")
    if not use or window is None:
        if types and any(t != "full_attention" for t in types):
            raise BlueprintError("config.json: layer_types has sliding layers but no sliding window is enabled")
        return None
    if types is None:
        if r.family in _QWEN:
            start = r.get("max_window_layers", layers)
            return [window if i >= start else None for i in range(layers)]
        return int(window)
    if len(types) != layers:
        raise BlueprintError(f"config.json: layer_types has {len(types)} entries, num_hidden_layers is {layers}")
    bad = sorted({t for t in types} - {"full_attention", "sliding_attention"})
    if bad:
        raise BlueprintError(f"config.json: layer_types value(s) {bad} are not supported")
    if all(t == "sliding_attention" for t in types):
        return int(window)
    return [int(window) if t == "sliding_attention" else None for t in types]


def _granite_scaled(spec: "ModelSpec") -> bool:
    from blueprint.families.granite import scaled  # granite.py reads this module's WEIGHTS

    return scaled(spec)


def detect(spec: "ModelSpec") -> str | None:
    b, a = spec.block, spec.block.attention
    if not (spec.is_decoder and spec.positional.kind == "rope" and spec.norm.kind == "rmsnorm"
            and b.ffn.kind == "swiglu") or _granite_scaled(spec):
        return None
    if any(layer.norm_placement != "pre" for layer in spec.resolved_layers()):
        return None  # x + norm(f(x)): olmo2.py
    if spec.positional.rotary_fraction != 1.0 or spec.positional.scaling.kind == "longrope" \
            or any(not layer.attention.rope for layer in spec.resolved_layers()):
        return None  # partial rotary / LongRoPE: phi3.py; no-RoPE layers: smollm3.py
    if a.qk_norm:
        return "qwen3"
    if a.qkv_bias and not a.out_bias:
        return "qwen2"
    return "mistral" if any(l.attention.window for l in spec.resolved_layers()) else "llama"


def to_config(spec: "ModelSpec", model_type: str) -> dict[str, Any]:
    a, f = spec.block.attention, spec.block.ffn
    config: dict[str, Any] = {
        "architectures": [_ARCHITECTURES[model_type]], "vocab_size": spec.vocab_size, "hidden_size": spec.embed_dim,
        "intermediate_size": f.hidden_dim, "num_hidden_layers": spec.num_layers,
        "num_attention_heads": a.num_heads, "num_key_value_heads": a.kv_heads, "head_dim": a.head_dim,
        "hidden_act": "silu", "max_position_embeddings": spec.max_seq_len,
        "rms_norm_eps": spec.norm.norm_eps, "initializer_range": spec.init.std,
        "tie_word_embeddings": spec.tie_embeddings, "attention_dropout": spec.dropout.attention,
        "rope_parameters": rope_parameters_with_scaling(spec.positional),
    }
    if model_type in ("llama", "qwen3"):
        config["attention_bias"] = a.out_bias
    if model_type == "llama":
        config["mlp_bias"] = f.bias
    windows = [l.attention.window for l in spec.resolved_layers()]
    if model_type == "mistral":
        config["sliding_window"] = windows[0]
    elif model_type in _QWEN:
        w = next((x for x in windows if x), None)
        config["use_sliding_window"] = w is not None
        config["sliding_window"] = w
        config["layer_types"] = ["sliding_attention" if x else "full_attention" for x in windows]
    return config


def decoder_weights(*layer: Rule, final_norm: str = "weight", rope_buffer: bool = True) -> WeightMap:
    """The checkpoint names transformers' LLaMA-derived decoders share, around a family's own
    per-layer ``layer`` rules: ``model.embed_tokens``, ``model.norm`` (``final_norm="{part}"`` when
    it has a bias), ``lm_head`` (absent when tied) and, with ``rope_buffer``, the RoPE
    ``inv_freq`` buffer older checkpoints carry (docs/architecture.md, "Adding a family")."""
    return WeightMap(
        prefix="model.",
        rules=(
            Rule("embed_tokens.weight", "embed.tokens.weight"),
            *layer,
            Rule(f"norm.{final_norm}", f"final_norm.{final_norm}"),
            Rule("lm_head.weight", "head.proj.weight", base=False),
        ),
        unused=(Unused("layers.{i}.self_attn.rotary_emb.inv_freq", buffer),) if rope_buffer else (),
        tied_head="head.proj.weight",
    )


WEIGHTS = decoder_weights(
    Rule("layers.{i}.input_layernorm.weight", "layers.{i}.attn_norm.weight"),
    Rule("layers.{i}.self_attn.{x:q|k|v|o}_proj.{part}", "layers.{i}.attn.{x}_proj.{part}"),
    Rule("layers.{i}.self_attn.{x:q|k}_norm.weight", "layers.{i}.attn.{x}_norm.weight"),
    Rule("layers.{i}.post_attention_layernorm.weight", "layers.{i}.ffn_norm.weight"),
    Rule("layers.{i}.mlp.{x:gate|up|down}_proj.{part}", "layers.{i}.ffn.{x}_proj.{part}"),
)

def gguf_config(arch: str, keys: Any, shapes: dict[str, list[int]]) -> dict[str, Any]:
    """The config.json of a llama.cpp ``llama`` / ``mistral`` / ``qwen2`` / ``qwen3`` file."""
    path = keys.path
    hidden, heads = int(keys.require("embedding_length")), int(keys.require("attention.head_count"))
    head_dim = int(keys.get("attention.key_length", hidden // heads))
    if int(keys.get("attention.value_length", head_dim)) != head_dim:
        raise BlueprintError(f"{path}: key and value head sizes differ; not modelled")
    rotary = keys.get("rope.dimension_count", head_dim)
    if int(rotary) != head_dim:
        raise BlueprintError(f"{path}: '{arch}.rope.dimension_count' = {rotary} rotates part of each "
                             f"{head_dim}-wide head; {arch} rotates all of it")
    scaling = keys.get("rope.scaling.type", "none")
    if scaling not in ("none", None) or "rope_freqs.weight" in shapes:
        raise BlueprintError(f"{path}: RoPE scaling ({scaling if scaling != 'none' else 'rope_freqs'}) "
                             "is not supported", hint="blueprint models plain RoPE only")
    config: dict[str, Any] = {
        "model_type": arch,
        "vocab_size": shapes["token_embd.weight"][1],
        "hidden_size": hidden,
        "intermediate_size": int(keys.require("feed_forward_length")),
        "num_hidden_layers": int(keys.require("block_count")),
        "num_attention_heads": heads,
        "num_key_value_heads": int(keys.get("attention.head_count_kv", heads)),
        "head_dim": head_dim,
        "max_position_embeddings": int(keys.require("context_length")),
        "rms_norm_eps": keys.float32("attention.layer_norm_rms_epsilon"),
        "rope_theta": keys.float32("rope.freq_base", 10000.0),
        "tie_word_embeddings": "output.weight" not in shapes,
        "hidden_act": "silu",
    }
    window = keys.get("attention.sliding_window")
    if window:
        config["sliding_window"] = int(window)
        if arch == "llama":
            config["model_type"] = "mistral"
    if arch in _QWEN:
        config["use_sliding_window"] = False
    if arch in ("llama", "qwen3") and "blk.0.attn_q.bias" in shapes:
        config["attention_bias"] = True
    return config


GGUF = GGUFLayout(
    architectures=tuple(_ARCHITECTURES),
    to_config=gguf_config,
    tensors=(
        ("token_embd.weight", "model.embed_tokens.weight"),
        ("output_norm.weight", "model.norm.weight"),
        ("output.weight", "lm_head.weight"),
        ("blk.{i}.attn_norm.weight", "model.layers.{i}.input_layernorm.weight"),
        ("blk.{i}.ffn_norm.weight", "model.layers.{i}.post_attention_layernorm.weight"),
        ("blk.{i}.attn_{x:q|k|v}.{part}", "model.layers.{i}.self_attn.{x}_proj.{part}"),
        ("blk.{i}.attn_output.{part}", "model.layers.{i}.self_attn.o_proj.{part}"),
        ("blk.{i}.attn_{x:q|k}_norm.weight", "model.layers.{i}.self_attn.{x}_norm.weight"),
        ("blk.{i}.ffn_{x:gate|up|down}.weight", "model.layers.{i}.mlp.{x}_proj.weight"),
    ),
    permuted=("llama", "mistral"),
)

FAMILY = Family(name="llama", model_types=tuple(_ARCHITECTURES), to_spec=to_spec, detect=detect,
                to_config=to_config, weights=WEIGHTS, gguf=GGUF)
