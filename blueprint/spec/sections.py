"""The sections of a spec that stand apart from the architecture: dropout, init, training
(the activation checkpointing policy the compiler applies) and tokenizer."""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal, Union

from pydantic import BeforeValidator, Discriminator, Field, Tag

from blueprint.spec.base import Strict


TokenId = Annotated[int, Field(ge=0)]


class DropoutSpec(Strict):
    embed: float = Field(0.0, ge=0, lt=1)
    attention: float = Field(0.0, ge=0, lt=1)
    residual: float = Field(0.0, ge=0, lt=1)


class InitSpec(Strict):
    """Normal init with ``std``; ``scaled_residual`` divides output projections' std by
    sqrt(2 * num_layers) (GPT-2). Seeded so a build is reproducible."""

    kind: Literal["normal"] = "normal"
    std: float = Field(0.02, gt=0)
    scaled_residual: bool = False
    seed: int = Field(0, ge=0, lt=2**64)  # torch's generators take 64-bit seeds


class EveryK(Strict):
    every: int = Field(ge=1)


class LayerList(Strict):
    layers: list[Annotated[int, Field(ge=0)]] = Field(min_length=1)


_UNITS = {"": 1, "b": 1, "kb": 10**3, "mb": 10**6, "gb": 10**9, "tb": 10**12,
          "kib": 2**10, "mib": 2**20, "gib": 2**30, "tib": 2**40}
_SIZE = re.compile(r"\s*([0-9]+(?:\.[0-9]+)?)\s*([a-zA-Z]*)\s*")


def parse_bytes(value: Any) -> int:
    """``"2GiB"``, ``"512 MB"``, ``"1.5GiB"`` or an integer number of bytes -> bytes."""
    if isinstance(value, bool):
        raise ValueError("expected a size such as '2GiB' or a number of bytes, got a boolean")
    if isinstance(value, int):
        return value
    match = _SIZE.fullmatch(value) if isinstance(value, str) else None
    unit = match.group(2).lower() if match else None
    if match is None or unit not in _UNITS:
        raise ValueError("not a size: write a number with an optional unit "
                         "(B, KB, MB, GB, TB, KiB, MiB, GiB, TiB), e.g. '2GiB'")
    return int(float(match.group(1)) * _UNITS[unit])


class MemoryBudget(Strict):
    """Recompute the fewest (cheapest) layers that bring the activations a training step saves
    for backward, as the cost model counts them, under ``memory_budget`` bytes. Written as a
    size (``"2GiB"``, ``"512MB"``) or a byte count; resolved to bytes at validation."""

    memory_budget: Annotated[int, BeforeValidator(parse_bytes, json_schema_input_type=Union[int, str]), Field(ge=1)]


def _checkpoint_tag(value: Any) -> str | None:
    """Pick the checkpoint policy variant from its shape, so a typo gives one error, not three.
    A mapping naming two policies at once matches none (the union's own error says so)."""
    if isinstance(value, str):
        return "policy_name"
    for model, tag in ((EveryK, "every_k"), (LayerList, "layer_list"), (MemoryBudget, "memory_budget")):
        if isinstance(value, model):
            return tag
    if isinstance(value, dict):
        tags = [tag for key, tag in _POLICY_KEYS.items() if key in value]
        return tags[0] if len(tags) == 1 else None
    return None


_POLICY_KEYS = {"every": "every_k", "layers": "layer_list", "memory_budget": "memory_budget"}


CheckpointPolicy = Annotated[
    Union[
        Annotated[Literal["none", "every_layer"], Tag("policy_name")],
        Annotated[EveryK, Tag("every_k")],
        Annotated[LayerList, Tag("layer_list")],
        Annotated[MemoryBudget, Tag("memory_budget")],
    ],
    Discriminator(
        _checkpoint_tag,
        custom_error_type="checkpoint_policy",
        custom_error_message="checkpointing must be 'none', 'every_layer', {every: K}, "
        "{layers: [i, ...]} or {memory_budget: SIZE}",
    ),
]


class TrainingSpec(Strict):
    checkpointing: CheckpointPolicy = "none"


class TokenizerSpec(Strict):
    """A tokenizer.json (path relative to the spec file) and/or its vocabulary size.

    ``vocab_size`` here is the tokenizer's real vocabulary, which may be smaller than the
    model's padded ``vocab_size``; generation never emits ids at or above it.
    """

    path: str | None = None
    vocab_size: int | None = Field(None, ge=1)
    bos_id: int | None = Field(None, ge=0)
    # One end-of-sequence id, or several (Llama 3 and chat models stop on any of them).
    eos_id: TokenId | Annotated[list[TokenId], Field(min_length=1)] | None = None
    pad_id: int | None = Field(None, ge=0)
    mask_id: int | None = Field(None, ge=0)

    @property
    def eos_ids(self) -> list[int]:
        """Every end-of-sequence id (empty when there is none)."""
        if self.eos_id is None:
            return []
        return list(self.eos_id) if isinstance(self.eos_id, (list, tuple)) else [self.eos_id]
