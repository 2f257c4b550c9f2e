"""Config helpers every family module shares (no family knowledge here): activation names both
ways, RoPE fields, partial-rotary checks, special token ids, the size fields most configs spell
alike, and the head implied by ``architectures``. Imports no torch.

A family module (``blueprint/families/<name>.py``, docs/architecture.md "Adding a family")
reads its config through a ``ConfigReader`` and these helpers.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from blueprint.errors import BlueprintError
from blueprint.hf.fields import ConfigReader

if TYPE_CHECKING:
    from blueprint.spec.schema import ModelSpec

# transformers activation names -> the spec's activation names (exact equivalents only).
ACTIVATIONS = {
    "gelu": "gelu",
    "gelu_new": "gelu_tanh",
    "gelu_pytorch_tanh": "gelu_tanh",
    "relu": "relu",
    "relu2": "relu2",
    "silu": "silu",
    "swish": "silu",
}
# ... and back: the name export-hf writes for each spec activation.
TO_HF_ACTIVATION = {"gelu": "gelu", "gelu_tanh": "gelu_new", "relu": "relu", "relu2": "relu2", "silu": "silu"}


def activation(r: ConfigReader, key: str, default: str) -> str:
    name = r.get(key, default)
    if name not in ACTIVATIONS:
        raise BlueprintError(
            f"config.json: '{key}' = {name!r} is not supported "
            f"(supported: {', '.join(sorted(ACTIVATIONS))})"
        )
    return ACTIVATIONS[name]


def rope(r: ConfigReader, default_base: float = 10000.0) -> tuple[float, float]:
    """(rope_base, rotary_fraction) from rope_parameters (transformers 5) or rope_theta (4.x).

    Any rope scaling (linear, dynamic, yarn, llama3, ...) is refused: the spec cannot express it.
    """
    scaling = r.get("rope_scaling")
    params = r.get("rope_parameters", {}) or {}
    rope_type = params.get("rope_type", params.get("type", "default"))
    if scaling or rope_type != "default":
        raise BlueprintError(
            f"config.json: rope scaling ({scaling or rope_type!r}) is not supported",
            hint="blueprint models plain RoPE only; remove the model's context extension first",
        )
    unknown = set(params) - {"rope_theta", "rope_type", "type", "partial_rotary_factor"}
    if unknown:
        raise BlueprintError(f"config.json: rope_parameters field(s) {sorted(unknown)} are not understood")
    base = params.get("rope_theta", r.first("rope_theta", "rotary_emb_base", default=default_base))
    fraction = params.get("partial_rotary_factor", r.first("partial_rotary_factor", "rotary_pct", default=1.0))
    return float(base), float(fraction)


def full_rope(r: ConfigReader, family: str) -> float:
    """rope_base of a family that rotates every feature of each head (``rope``'s checks); a
    partial rotary factor in the config is refused, naming the family."""
    base, fraction = rope(r)
    if fraction != 1.0:
        raise BlueprintError(f"config.json: partial rotary ({fraction}) is not used by {family}")
    return base


def rope_parameters(spec: "ModelSpec") -> dict[str, Any]:
    """The ``rope_parameters`` export-hf writes for a spec with plain (possibly partial) RoPE."""
    return {"rope_theta": spec.positional.rope_base, "rope_type": "default",
            "partial_rotary_factor": spec.positional.rotary_fraction}


def rotary_fraction(fraction: float, head_dim: int, key: str = "partial_rotary_factor") -> float:
    """``fraction`` if it rotates an even, whole number of features per head, else an error.

    transformers rotates ``int(head_dim * fraction)`` features (rounding down) and needs an even
    count; the spec's rope rounds to nearest. They agree exactly when the product is a whole
    even number, the only case imported."""
    exact = head_dim * fraction
    dims = int(exact)
    if dims != round(exact) or dims % 2 or dims == 0 or abs(exact - round(exact)) > 1e-9:
        raise BlueprintError(
            f"config.json: '{key}' = {fraction} rotates {exact:g} of each head's {head_dim} features; "
            "blueprint imports only an even whole number",
        )
    return fraction


def token_ids(r: ConfigReader) -> dict[str, Any]:
    """bos/eos/pad ids for the spec's tokenizer section. A list of eos ids (Llama 3, chat
    models) keeps every id: generation stops on any of them. A negative id is transformers'
    "no such token". Ids outside the vocabulary are dropped later, with a note
    (``blueprint.hf.config_to_spec``)."""
    out: dict[str, Any] = {}
    for key, field in (("bos_token_id", "bos_id"), ("eos_token_id", "eos_id"), ("pad_token_id", "pad_id")):
        value = r.get(key)
        values = value if isinstance(value, list) else [value]
        kept = list(dict.fromkeys(int(v) for v in values if v is not None and v >= 0))  # in order, once
        if kept:
            out[field] = kept if isinstance(value, list) and field == "eos_id" and len(kept) > 1 else kept[0]
    return out


def sizes(r: ConfigReader, embed_dim: int) -> dict[str, Any]:
    """The size fields most configs spell alike (``hidden_size``-style names)."""
    return {
        "vocab_size": r.require("vocab_size"),
        "max_seq_len": r.require("max_position_embeddings"),
        "embed_dim": embed_dim,
        "num_layers": r.require("num_hidden_layers"),
        "tie_embeddings": bool(r.get("tie_word_embeddings", False)),
    }


def architecture(r: ConfigReader) -> str:
    """The first entry of ``architectures`` ("" when absent): it names the head."""
    archs = r.get("architectures", [])
    return archs[0] if archs else ""


def num_labels(r: ConfigReader) -> int:
    id2label = r.get("id2label")
    return len(id2label) if id2label else int(r.get("num_labels", 2))
