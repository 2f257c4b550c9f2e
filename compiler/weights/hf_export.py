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


def _copy_norm(out: State, w: State, src: str, dst: str) -> None:
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
        _copy_norm(out, w, f"{p}.attn_norm", f"{h}.ln_1")
        out[f"{h}.attn.c_attn.weight"] = _qkv(w, i, "weight").t()  # [3D, D] -> Conv1D [D, 3D]
        out[f"{h}.attn.c_attn.bias"] = _qkv(w, i, "bias")
        out[f"{h}.attn.c_proj.weight"] = w[f"{p}.attn.o_proj.weight"].t()
        out[f"{h}.attn.c_proj.bias"] = w[f"{p}.attn.o_proj.bias"]
        _copy_norm(out, w, f"{p}.ffn_norm", f"{h}.ln_2")
        out[f"{h}.mlp.c_fc.weight"] = w[f"{p}.ffn.up_proj.weight"].t()
        out[f"{h}.mlp.c_fc.bias"] = w[f"{p}.ffn.up_proj.bias"]
        out[f"{h}.mlp.c_proj.weight"] = w[f"{p}.ffn.down_proj.weight"].t()
        out[f"{h}.mlp.c_proj.bias"] = w[f"{p}.ffn.down_proj.bias"]
    _copy_norm(out, w, "final_norm", "transformer.ln_f")
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
    _copy_norm(out, w, "embed.norm", f"{base}embeddings.LayerNorm")
    for i in range(spec.num_layers):
        for ours, theirs in _BERT_LAYER.items():
            _copy_norm(out, w, f"layers.{i}.{ours}", f"{base}encoder.layer.{i}.{theirs}")
    _copy_norm(out, w, "head.pooler", f"{base}pooler.dense")
    _copy_norm(out, w, "head.classifier", "classifier")
    if kind == "masked_lm":
        _copy_norm(out, w, "head.dense", "cls.predictions.transform.dense")
        _copy_norm(out, w, "head.norm", "cls.predictions.transform.LayerNorm")
        if "head.decoder.weight" in w:
            out["cls.predictions.decoder.weight"] = w["head.decoder.weight"]
        if "head.decoder.bias" in w:
            out["cls.predictions.bias"] = w["head.decoder.bias"]
    return out


def _modernbert(w: State, spec: "ModelSpec") -> State:
    mlm = spec.head.kind == "masked_lm"
    base = "model." if mlm else ""
    out: State = {f"{base}embeddings.tok_embeddings.weight": w["embed.tokens.weight"]}
    _copy_norm(out, w, "embed.norm", f"{base}embeddings.norm")
    for i in range(spec.num_layers):
        p, h = f"layers.{i}", f"{base}layers.{i}"
        _copy_norm(out, w, f"{p}.attn_norm", f"{h}.attn_norm")
        out[f"{h}.attn.Wqkv.weight"] = _qkv(w, i, "weight")
        if f"{p}.attn.q_proj.bias" in w:
            out[f"{h}.attn.Wqkv.bias"] = _qkv(w, i, "bias")
        _copy_norm(out, w, f"{p}.attn.o_proj", f"{h}.attn.Wo")
        _copy_norm(out, w, f"{p}.ffn_norm", f"{h}.mlp_norm")
        # Wi = [activated half; multiplied half] = [gate_proj; up_proj]
        out[f"{h}.mlp.Wi.weight"] = torch.cat([w[f"{p}.ffn.gate_proj.weight"], w[f"{p}.ffn.up_proj.weight"]])
        if f"{p}.ffn.gate_proj.bias" in w:
            out[f"{h}.mlp.Wi.bias"] = torch.cat([w[f"{p}.ffn.gate_proj.bias"], w[f"{p}.ffn.up_proj.bias"]])
        _copy_norm(out, w, f"{p}.ffn.down_proj", f"{h}.mlp.Wo")
    _copy_norm(out, w, "final_norm", f"{base}final_norm")
    if mlm:
        _copy_norm(out, w, "head.dense", "head.dense")
        _copy_norm(out, w, "head.norm", "head.norm")
        _copy_norm(out, w, "head.decoder", "decoder")
    return out


_EXPORTERS = {"gpt2": _gpt2, "llama": _llama, "mistral": _llama, "qwen2": _llama, "qwen3": _llama,
              "bert": _bert, "modernbert": _modernbert}


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
