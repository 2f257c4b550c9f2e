"""Blueprint canonical tensors -> Hugging Face names and layouts (the inverse of ``hf_names``).

Each family function builds the state dict the transformers class expects (GPT-2 Conv1D
transposes, fused q/k/v and GeGLU halves concatenated back). ``to_hf_state`` then maps the
result forward again with ``hf_to_canonical`` and requires it to reproduce the input exactly,
so an export can never silently disagree with import.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch

from blueprint.errors import BlueprintError
from compiler.weights.hf_names import hf_to_canonical

if TYPE_CHECKING:
    from blueprint.spec.schema import ModelSpec

State = dict[str, torch.Tensor]


def _copy_parts(out: State, w: State, src: str, dst: str) -> None:
    """Copy `src.weight` and `src.bias` (whichever exist) to `dst`."""
    for part in ("weight", "bias"):
        if f"{src}.{part}" in w:
            out[f"{dst}.{part}"] = w[f"{src}.{part}"]


def _qkv(w: State, i: int, part: str) -> torch.Tensor:
    return torch.cat([w[f"layers.{i}.attn.{n}_proj.{part}"] for n in "qkv"], dim=0)


def _gpt2(w: State, spec: "ModelSpec") -> State:
    out: State = {"transformer.wte.weight": w["embed.tokens.weight"],
                  "transformer.wpe.weight": w["embed.positions.weight"]}
    for i in range(spec.num_layers):
        p, h = f"layers.{i}", f"transformer.h.{i}"
        _copy_parts(out, w, f"{p}.attn_norm", f"{h}.ln_1")
        out[f"{h}.attn.c_attn.weight"] = _qkv(w, i, "weight").t()  # [3D, D] -> Conv1D [D, 3D]
        out[f"{h}.attn.c_attn.bias"] = _qkv(w, i, "bias")
        out[f"{h}.attn.c_proj.weight"] = w[f"{p}.attn.o_proj.weight"].t()
        out[f"{h}.attn.c_proj.bias"] = w[f"{p}.attn.o_proj.bias"]
        _copy_parts(out, w, f"{p}.ffn_norm", f"{h}.ln_2")
        out[f"{h}.mlp.c_fc.weight"] = w[f"{p}.ffn.up_proj.weight"].t()
        out[f"{h}.mlp.c_fc.bias"] = w[f"{p}.ffn.up_proj.bias"]
        out[f"{h}.mlp.c_proj.weight"] = w[f"{p}.ffn.down_proj.weight"].t()
        out[f"{h}.mlp.c_proj.bias"] = w[f"{p}.ffn.down_proj.bias"]
    _copy_parts(out, w, "final_norm", "transformer.ln_f")
    if "head.proj.weight" in w:
        out["lm_head.weight"] = w["head.proj.weight"]
    return out


def _llama(w: State, spec: "ModelSpec") -> State:
    out: State = {"model.embed_tokens.weight": w["embed.tokens.weight"]}
    for name, t in w.items():
        parts = name.split(".")
        if parts[0] != "layers":
            continue
        i, rest = parts[1], ".".join(parts[2:])
        rest = (rest.replace("attn_norm.", "input_layernorm.").replace("ffn_norm.", "post_attention_layernorm.")
                .replace("attn.", "self_attn.").replace("ffn.", "mlp."))
        out[f"model.layers.{i}.{rest}"] = t
    out["model.norm.weight"] = w["final_norm.weight"]
    if "head.proj.weight" in w:
        out["lm_head.weight"] = w["head.proj.weight"]
    return out


def _neox_qkv(w: State, spec: "ModelSpec", i: int, part: str) -> torch.Tensor:
    """q, k, v [H*hd, (D)] -> GPT-NeoX's per-head interleaved rows [H, 3, hd, (D)] flattened."""
    h, hd = spec.layer(i).attention.num_heads, spec.layer(i).attention.head_dim
    parts = [w[f"layers.{i}.attn.{n}_proj.{part}"] for n in "qkv"]
    return torch.stack([t.reshape(h, hd, *t.shape[1:]) for t in parts], dim=1).reshape(3 * h * hd, *parts[0].shape[1:])


def _gpt_neox(w: State, spec: "ModelSpec") -> State:
    out: State = {"gpt_neox.embed_in.weight": w["embed.tokens.weight"]}
    for i in range(spec.num_layers):
        p, h = f"layers.{i}", f"gpt_neox.layers.{i}"
        _copy_parts(out, w, f"{p}.attn_norm", f"{h}.input_layernorm")
        _copy_parts(out, w, f"{p}.ffn_norm", f"{h}.post_attention_layernorm")
        for part in ("weight", "bias"):
            out[f"{h}.attention.query_key_value.{part}"] = _neox_qkv(w, spec, i, part)
        _copy_parts(out, w, f"{p}.attn.o_proj", f"{h}.attention.dense")
        _copy_parts(out, w, f"{p}.ffn.up_proj", f"{h}.mlp.dense_h_to_4h")
        _copy_parts(out, w, f"{p}.ffn.down_proj", f"{h}.mlp.dense_4h_to_h")
    _copy_parts(out, w, "final_norm", "gpt_neox.final_layer_norm")
    if "head.proj.weight" in w:
        out["embed_out.weight"] = w["head.proj.weight"]
    return out


def _phi(w: State, spec: "ModelSpec") -> State:
    out: State = {"model.embed_tokens.weight": w["embed.tokens.weight"]}
    for i in range(spec.num_layers):
        p, h = f"layers.{i}", f"model.layers.{i}"
        for part in ("weight", "bias"):
            norm, twin = w[f"{p}.attn_norm.{part}"], w[f"{p}.ffn_norm.{part}"]
            if not torch.equal(norm, twin):
                raise BlueprintError(
                    f"export-hf: phi has one input norm per layer, but '{p}.attn_norm.{part}' and "
                    f"'{p}.ffn_norm.{part}' differ (trained separately?)",
                    hint="a parallel block with two different norms has the gpt_neox layout, which has no LM-head bias",
                )
            out[f"{h}.input_layernorm.{part}"] = norm
        for n in "qkv":
            _copy_parts(out, w, f"{p}.attn.{n}_proj", f"{h}.self_attn.{n}_proj")
        _copy_parts(out, w, f"{p}.attn.o_proj", f"{h}.self_attn.dense")
        _copy_parts(out, w, f"{p}.attn.q_norm", f"{h}.self_attn.q_layernorm")
        _copy_parts(out, w, f"{p}.attn.k_norm", f"{h}.self_attn.k_layernorm")
        _copy_parts(out, w, f"{p}.ffn.up_proj", f"{h}.mlp.fc1")
        _copy_parts(out, w, f"{p}.ffn.down_proj", f"{h}.mlp.fc2")
    _copy_parts(out, w, "final_norm", "model.final_layernorm")
    _copy_parts(out, w, "head.proj", "lm_head")
    return out


_BERT_LAYER = {
    "attn.q_proj": "attention.self.query", "attn.k_proj": "attention.self.key",
    "attn.v_proj": "attention.self.value", "attn.o_proj": "attention.output.dense",
    "attn_norm": "attention.output.LayerNorm", "ffn.up_proj": "intermediate.dense",
    "ffn.down_proj": "output.dense", "ffn_norm": "output.LayerNorm",
}


def _bert(w: State, spec: "ModelSpec") -> State:
    kind = spec.head.kind
    base = "bert." if kind in ("masked_lm", "classification") else ""
    out: State = {f"{base}embeddings.word_embeddings.weight": w["embed.tokens.weight"],
                  f"{base}embeddings.position_embeddings.weight": w["embed.positions.weight"],
                  f"{base}embeddings.token_type_embeddings.weight": w["embed.token_types.weight"]}
    _copy_parts(out, w, "embed.norm", f"{base}embeddings.LayerNorm")
    for i in range(spec.num_layers):
        for ours, theirs in _BERT_LAYER.items():
            _copy_parts(out, w, f"layers.{i}.{ours}", f"{base}encoder.layer.{i}.{theirs}")
    _copy_parts(out, w, "head.pooler", f"{base}pooler.dense")
    _copy_parts(out, w, "head.classifier", "classifier")
    if kind == "masked_lm":
        _copy_parts(out, w, "head.dense", "cls.predictions.transform.dense")
        _copy_parts(out, w, "head.norm", "cls.predictions.transform.LayerNorm")
        if "head.decoder.weight" in w:
            out["cls.predictions.decoder.weight"] = w["head.decoder.weight"]
        if "head.decoder.bias" in w:
            out["cls.predictions.bias"] = w["head.decoder.bias"]
    return out


def _modernbert(w: State, spec: "ModelSpec") -> State:
    mlm = spec.head.kind == "masked_lm"
    base = "model." if mlm else ""
    out: State = {f"{base}embeddings.tok_embeddings.weight": w["embed.tokens.weight"]}
    _copy_parts(out, w, "embed.norm", f"{base}embeddings.norm")
    for i in range(spec.num_layers):
        p, h = f"layers.{i}", f"{base}layers.{i}"
        _copy_parts(out, w, f"{p}.attn_norm", f"{h}.attn_norm")
        out[f"{h}.attn.Wqkv.weight"] = _qkv(w, i, "weight")
        if f"{p}.attn.q_proj.bias" in w:
            out[f"{h}.attn.Wqkv.bias"] = _qkv(w, i, "bias")
        _copy_parts(out, w, f"{p}.attn.o_proj", f"{h}.attn.Wo")
        _copy_parts(out, w, f"{p}.ffn_norm", f"{h}.mlp_norm")
        # Wi = [activated half; multiplied half] = [gate_proj; up_proj]
        out[f"{h}.mlp.Wi.weight"] = torch.cat([w[f"{p}.ffn.gate_proj.weight"], w[f"{p}.ffn.up_proj.weight"]])
        if f"{p}.ffn.gate_proj.bias" in w:
            out[f"{h}.mlp.Wi.bias"] = torch.cat([w[f"{p}.ffn.gate_proj.bias"], w[f"{p}.ffn.up_proj.bias"]])
        _copy_parts(out, w, f"{p}.ffn.down_proj", f"{h}.mlp.Wo")
    _copy_parts(out, w, "final_norm", f"{base}final_norm")
    if mlm:
        _copy_parts(out, w, "head.dense", "head.dense")
        _copy_parts(out, w, "head.norm", "head.norm")
        _copy_parts(out, w, "head.decoder", "decoder")
    return out


_EXPORTERS = {"gpt2": _gpt2, "llama": _llama, "mistral": _llama, "qwen2": _llama, "qwen3": _llama,
              "gpt_neox": _gpt_neox, "phi": _phi, "bert": _bert, "modernbert": _modernbert}


def to_hf_state(weights: State, spec: "ModelSpec", config: dict[str, Any]) -> State:
    """Canonical ``weights`` -> the state dict of ``config['model_type']``'s transformers class.

    Raises:
        BlueprintError: the family has no exporter, or mapping the result back does not give
            the input (a bug or a layout the family cannot hold), naming the first tensor.
    """
    family = config["model_type"]
    if family not in _EXPORTERS:
        raise BlueprintError(f"export-hf: no weight layout for model_type '{family}'")
    out = {k: v.detach().contiguous() for k, v in _EXPORTERS[family](weights, spec).items()}
    notes: list[str] = []
    back = hf_to_canonical(out, config, spec, note=notes.append)
    for name, t in weights.items():
        if name not in back or back[name].shape != t.shape or not torch.equal(back[name], t):
            raise BlueprintError(f"export-hf: tensor '{name}' does not survive the {family} layout round trip")
    extra = sorted(set(back) - set(weights))
    if extra or notes:
        raise BlueprintError(f"export-hf: the {family} layout produced unexpected tensors {extra or notes}")
    return out
