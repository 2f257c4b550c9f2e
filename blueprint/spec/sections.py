"""The sections of a spec that stand apart from the architecture: dropout, init, training
(the activation checkpointing policy the compiler applies) and tokenizer."""

from __future__ import annotations

from typing import Annotated, Any, Literal, Union

from pydantic import Discriminator, Field, Tag

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


def _checkpoint_tag(value: Any) -> str | None:
    """Pick the checkpoint policy variant from its shape, so a typo gives one error, not three."""
    if isinstance(value, str):
        return "policy_name"
    if isinstance(value, EveryK) or (isinstance(value, dict) and "every" in value):
        return "every_k"
    if isinstance(value, LayerList) or (isinstance(value, dict) and "layers" in value):
        return "layer_list"
    return None


CheckpointPolicy = Annotated[
    Union[
        Annotated[Literal["none", "every_layer"], Tag("policy_name")],
        Annotated[EveryK, Tag("every_k")],
        Annotated[LayerList, Tag("layer_list")],
    ],
    Discriminator(
        _checkpoint_tag,
        custom_error_type="checkpoint_policy",
        custom_error_message="checkpointing must be 'none', 'every_layer', {every: K} or "
        "{layers: [i, ...]}",
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
