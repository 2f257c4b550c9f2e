"""``genai_config.json``: every decoder build runs in onnxruntime-genai as it is.

onnxruntime-genai drives a plain decoder graph (``model.type: "decoder"``) given the contract's
input and output names (``past_key_values.%d.key`` -> ``present.%d.key``), the cache geometry and
the special token ids. The plain export returns the whole cache (past + new) as a new
``present.*``, so past and present do not share a buffer (``past_present_share_buffer: false``);
a fused build's GroupQueryAttention appends to a cache that past and present share, as
onnxruntime-genai's own builds do (``true``). The generator computes ``position_ids`` from the
attention mask when the graph takes them.

A ``--window-cache`` build runs too (checked token for token in tests/runtime/test_genai_config.py):
onnxruntime-genai allocates every layer's shared buffer at ``max_length`` rows, which the
windowed layers take as their capacity, so the output is right but the cache is not smaller
there, and a ``max_length`` below a layer's window is refused by GroupQueryAttention
("capacity must be at least local_window_size"). Its unshared loop would start from an empty
past, which a window-sized cache refuses, so a bounded build without a shared cache gets no config.
"""

from __future__ import annotations

FILE = "genai_config.json"


def genai_config(spec, *, filename: str = "model.onnx", shared_cache: bool = False,
                 bounded: dict | None = None) -> dict | None:
    """The config for a decoder ``spec`` with a KV cache; None when onnxruntime-genai cannot
    describe it (its config has one KV head count and head size for all layers) or cannot run
    it (``bounded`` window-sized caches without a shared buffer)."""
    if not spec.is_decoder or (bounded and not shared_cache):
        return None
    layers = [spec.layer(i).attention for i in range(spec.num_layers)]
    geometry = {(a.num_heads, a.kv_heads, a.head_dim) for a in layers}
    if len(geometry) != 1:
        return None
    heads, kv_heads, head_dim = geometry.pop()
    tok = spec.tokenizer
    eos_ids = tok.eos_ids if tok is not None else []
    eos = (eos_ids[0] if len(eos_ids) == 1 else eos_ids) if eos_ids else -1  # genai takes an id or a list
    first = eos_ids[0] if eos_ids else -1
    bos = tok.bos_id if tok is not None and tok.bos_id is not None else first
    pad = tok.pad_id if tok is not None and tok.pad_id is not None else first
    inputs = {"input_ids": "input_ids", "attention_mask": "attention_mask",
              "past_key_names": "past_key_values.%d.key", "past_value_names": "past_key_values.%d.value"}
    if spec.positional.kind != "none":
        inputs["position_ids"] = "position_ids"
    return {
        "model": {
            "bos_token_id": bos,
            "eos_token_id": eos,
            "pad_token_id": pad,
            "context_length": spec.max_seq_len,
            "vocab_size": spec.vocab_size,
            "type": "decoder",
            "decoder": {
                "session_options": {"log_id": "onnxruntime-genai", "provider_options": []},
                "filename": filename,
                "head_size": head_dim,
                "hidden_size": spec.embed_dim,
                "num_attention_heads": heads,
                "num_key_value_heads": kv_heads,
                "num_hidden_layers": spec.num_layers,
                "inputs": inputs,
                "outputs": {"logits": "logits", "present_key_names": "present.%d.key",
                            "present_value_names": "present.%d.value"},
            },
        },
        "search": {
            "do_sample": False,
            "num_beams": 1,
            "num_return_sequences": 1,
            "max_length": spec.max_seq_len,
            "min_length": 0,
            "past_present_share_buffer": shared_cache,
            "repetition_penalty": 1.0,
            "temperature": 1.0,
            "top_k": 1,
            "top_p": 1.0,
        },
    }
