"""Writing GGUF files the way llama.cpp's converter does, for tests: a seeded transformers
model's tensors under llama.cpp's names, LLaMA q/k rows permuted, in a chosen storage type.

The permutation here is written from llama.cpp's convert_hf_to_gguf.py description
(``reshape(n_head, 2, rows // n_head // 2, cols).swapaxes(1, 2)``), independently of the
inverse blueprint applies."""

from __future__ import annotations

from pathlib import Path

import numpy as np

NAMES = {
    "model.embed_tokens.weight": "token_embd.weight", "model.norm.weight": "output_norm.weight",
    "lm_head.weight": "output.weight",
}
LAYER = {
    "input_layernorm.weight": "attn_norm.weight", "post_attention_layernorm.weight": "ffn_norm.weight",
    "self_attn.q_proj.weight": "attn_q.weight", "self_attn.k_proj.weight": "attn_k.weight",
    "self_attn.v_proj.weight": "attn_v.weight", "self_attn.o_proj.weight": "attn_output.weight",
    "self_attn.q_proj.bias": "attn_q.bias", "self_attn.k_proj.bias": "attn_k.bias",
    "self_attn.v_proj.bias": "attn_v.bias", "self_attn.q_norm.weight": "attn_q_norm.weight",
    "self_attn.k_norm.weight": "attn_k_norm.weight", "mlp.gate_proj.weight": "ffn_gate.weight",
    "mlp.up_proj.weight": "ffn_up.weight", "mlp.down_proj.weight": "ffn_down.weight",
}


def gguf_name(hf: str) -> str:
    if hf in NAMES:
        return NAMES[hf]
    _, _, i, rest = hf.split(".", 3)  # model.layers.{i}.{rest}
    return f"blk.{i}.{LAYER[rest]}"


def permute(w: np.ndarray, n_head: int) -> np.ndarray:
    return w.reshape(n_head, 2, w.shape[0] // n_head // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def write_gguf(path: Path, arch: str, config, state: dict, *, qtype=None, extra_keys=None,
               skip=(), tokens=None) -> Path:
    """``state`` (HF names -> numpy float32) written to ``path``; matrices in ``qtype`` storage."""
    import gguf
    from gguf.quants import quantize

    w = gguf.GGUFWriter(str(path), arch)
    w.add_block_count(config.num_hidden_layers)
    w.add_context_length(config.max_position_embeddings)
    w.add_embedding_length(config.hidden_size)
    w.add_feed_forward_length(config.intermediate_size)
    w.add_head_count(config.num_attention_heads)
    w.add_head_count_kv(config.num_key_value_heads)
    w.add_layer_norm_rms_eps(config.rms_norm_eps)
    w.add_rope_freq_base(float(config.rope_parameters["rope_theta"]))
    head_dim = getattr(config, "head_dim", None) or config.hidden_size // config.num_attention_heads
    if head_dim != config.hidden_size // config.num_attention_heads:
        w.add_key_length(head_dim)
        w.add_value_length(head_dim)
    if getattr(config, "sliding_window", None) and arch == "llama":
        w.add_sliding_window(config.sliding_window)
    for key, value in (extra_keys or {}).items():
        w.add_uint32(key, value)
    if tokens is not None:
        w.add_tokenizer_model("gpt2")
        w.add_token_list(tokens)
    for name, t in state.items():
        if name in skip:
            continue
        g = gguf_name(name)
        if arch == "llama" and g.endswith("attn_q.weight"):
            t = permute(t, config.num_attention_heads)
        elif arch == "llama" and g.endswith("attn_k.weight"):
            t = permute(t, config.num_key_value_heads)
        if qtype is not None and t.ndim == 2 and t.shape[1] % 32 == 0:
            w.add_tensor(g, quantize(t, qtype), raw_dtype=qtype)
        else:
            w.add_tensor(g, np.ascontiguousarray(t, dtype=np.float32))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return path
