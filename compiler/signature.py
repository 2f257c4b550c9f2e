"""The compiled model's I/O contract (docs/architecture.md, Contracts 8): input and output names, in order.

The GraphModule takes its inputs positionally in ``input_names`` order (placeholder names are
the same with '.' replaced by '_') and returns a dict keyed by ``output_names``. ONNX export,
verification and the runtime all read these lists. Imports no torch.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from blueprint.spec.schema import ModelSpec


def input_names(spec: "ModelSpec", kv_cache: bool = False) -> list[str]:
    """Decoders: input_ids, attention_mask [b, past+s], position_ids (unless positional is
    none), then past_key_values.{i}.key/.value per layer when ``kv_cache``.
    Encoders: input_ids, attention_mask, token_type_ids (when type_vocab_size > 0)."""
    names = ["input_ids", "attention_mask"]
    if spec.is_decoder:
        if spec.positional.kind != "none":
            names.append("position_ids")
        if kv_cache:
            for i in range(spec.num_layers):
                names += [f"past_key_values.{i}.key", f"past_key_values.{i}.value"]
    elif spec.type_vocab_size:
        names.append("token_type_ids")
    return names


def output_names(spec: "ModelSpec", kv_cache: bool = False) -> list[str]:
    """Decoders: logits, then present.{i}.key/.value per layer when ``kv_cache``.
    Encoders: last_hidden_state, then logits (masked_lm, classification) or embeddings."""
    if spec.is_decoder:
        names = ["logits"]
        if kv_cache:
            for i in range(spec.num_layers):
                names += [f"present.{i}.key", f"present.{i}.value"]
        return names
    return ["last_hidden_state", "embeddings" if spec.head.kind == "embeddings" else "logits"]


def placeholder_name(name: str) -> str:
    """The graph placeholder (and Python argument) name of input ``name``."""
    return name.replace(".", "_")


def check_kv_cache(spec: "ModelSpec", kv_cache: bool) -> None:
    """A KV cache only exists for decoders."""
    if kv_cache and not spec.is_decoder:
        from blueprint.errors import BlueprintError

        raise BlueprintError(
            f"kv_cache=True needs a decoder, but {spec.name!r} has a {spec.head.kind!r} head",
            "build encoders without a KV cache")
