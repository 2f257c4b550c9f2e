"""The spec language: frozen pydantic v2 models, tagged unions keyed on ``kind``.

This module is the single source of truth for what a spec may say. It imports no torch.
Every model forbids unknown keys and is frozen. Defaults that depend on other fields
(``head_dim``, ``num_kv_heads``, ``hidden_dim``) are resolved in validators so that the
validated ``ModelSpec`` carries every value explicitly and dumps to a complete lock file.

Cross-field rules that span several sections live in ``blueprint.spec.rules``; the rules here
are the ones a section can check on its own, with the values in the message. The sections
outside the architecture (dropout, init, training, tokenizer) live in
``blueprint.spec.sections``, the positional section in ``blueprint.spec.positions`` and the FFN
section in ``blueprint.spec.ffn``; all are re-exported here.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, Union

from pydantic import Discriminator, Field, Tag, ValidationInfo, model_validator

from blueprint.spec.base import LOCATED_RULES, Strict, rule_error
from blueprint.spec.sections import (  # re-exported: the whole language is importable from here
    CheckpointPolicy, DropoutSpec, EveryK, InitSpec, LayerList, TokenizerSpec, TrainingSpec)
from blueprint.spec.ffn import (  # re-exported
    Activation, MLPSpec, SwiGLUSpec, GeGLUSpec, ExpertSpec, RouterSpec, MoESpec, FFNSpec)
from blueprint.spec.positions import (  # re-exported
    LearnedPositions, SinusoidalPositions, NoRopeScaling, LinearRopeScaling, Llama3RopeScaling, YarnRopeScaling, LongRopeScaling, RopeScaling, RopePositions, AlibiPositions, NoPositions, PositionalSpec)

# ----------------------------------------------------------------------------- norms


class LayerNormSpec(Strict):
    """(x - mean) / sqrt(var + norm_eps) * (weight_offset + weight) + bias.

    ``weight: false`` and ``bias: false`` together make it non-parametric (OLMo 1).
    ``weight_offset: 1.0`` stores the scale as its distance from 1 (Nemotron's LayerNorm1P).
    """

    kind: Literal["layernorm"] = "layernorm"
    norm_eps: float = Field(1.0e-5, gt=0, le=1.0)
    bias: bool = True
    weight: bool = True
    weight_offset: float = 0.0

    @model_validator(mode="after")
    def _offset_needs_weight(self) -> "LayerNormSpec":
        if not self.weight and self.weight_offset != 0:
            raise rule_error("weight_offset", f"weight_offset ({self.weight_offset:g}) is added to "
                             "the weight, but weight is false: remove weight_offset, or set weight: true")
        return self


class RMSNormSpec(Strict):
    """x / sqrt(mean(x^2) + norm_eps) * (weight_offset + weight).

    ``weight_offset: 1.0`` is Gemma's ``(1 + w)`` scale: the stored weight is the scale's
    distance from 1 (zeros at init), so weight decay pulls the scale towards 1, not 0.
    """

    kind: Literal["rmsnorm"] = "rmsnorm"
    norm_eps: float = Field(1.0e-6, gt=0, le=1.0)
    weight_offset: float = 0.0


NormSpec = Annotated[Union[LayerNormSpec, RMSNormSpec], Field(discriminator="kind")]


# ------------------------------------------------------------------------ attention


class AttentionSpec(Strict):
    """One layer's scaled dot-product self-attention (``kind: dot_product``, the default).

    ``num_kv_heads`` equal to ``num_heads`` is MHA, a proper divisor is GQA, 1 is MQA.
    ``window`` is the number of positions a query sees: for causal attention the last
    ``window`` positions including itself; for bidirectional attention the total width,
    ``window // 2`` on each side (ModernBERT's 128 means 64 each side). ``None`` is global.
    ``rope_base`` overrides the positional section's base for this layer (RoPE only);
    ``rope_scaling`` its scaling; ``rope: false`` applies no rotation on this layer (SmolLM3 and
    Llama 4's no-RoPE layers).
    ``softmax_scale`` multiplies QK^T (default 1/sqrt(head_dim)); it is the attention multiplier
    of Granite (``attention_multiplier``) and Gemma's query_pre_attn_scalar^-0.5.
    ``softcap``: scores become softcap * tanh(scores / softcap) before the mask (Gemma 2).
    ``qk_norm`` normalises queries and keys after projection with the spec's norm; over each head
    (``qk_norm_scope: head``, weights [head_dim]: Qwen3, Gemma 3) or over the whole projection
    (``projection``, weights [num_heads * head_dim] and [num_kv_heads * head_dim]: OLMo 2).
    """

    kind: Literal["dot_product"] = "dot_product"
    num_heads: int = Field(ge=1)
    num_kv_heads: int | None = Field(None, ge=1)
    head_dim: int | None = Field(None, ge=1)
    causal: bool = True
    qkv_bias: bool = False
    out_bias: bool = False
    window: int | None = Field(None, ge=1)
    softmax_scale: float | None = Field(None, gt=0)
    qk_norm: bool = False
    qk_norm_scope: Literal["head", "projection"] = "head"
    softcap: float | None = Field(None, gt=0)
    rope: bool = True
    rope_base: float | None = Field(None, gt=1)
    rope_scaling: RopeScaling | None = None

    @model_validator(mode="after")
    def _heads_divide(self, info: ValidationInfo) -> "AttentionSpec":
        if not (info.context or {}).get(LOCATED_RULES):
            problem = heads_problem(self.num_heads, self.kv_heads)
            if problem:
                raise rule_error("num_kv_heads", problem)
        return self

    @property
    def kv_heads(self) -> int:
        return self.num_kv_heads if self.num_kv_heads is not None else self.num_heads


def _attention_tag(value: Any) -> str | None:
    """The attention variant a mapping names; no ``kind`` is the default, dot_product."""
    if isinstance(value, dict):
        kind = value.get("kind", "dot_product")
        return kind if isinstance(kind, str) else None
    return getattr(value, "kind", None)


# Every attention variant, keyed on ``kind`` (``compiler.lower.ATTENTION_KINDS`` builds each). A
# new variant is a Strict model with its own ``kind`` added here as another Tag'd member.
AttentionVariant = Annotated[
    Union[Annotated[AttentionSpec, Tag("dot_product")]],
    Discriminator(_attention_tag),
]


def heads_problem(num_heads: int, num_kv_heads: int) -> str | None:
    """Why ``num_kv_heads`` cannot share ``num_heads`` out evenly, or None if it can."""
    if num_heads % num_kv_heads:
        return (f"num_heads ({num_heads}) must be a multiple of num_kv_heads ({num_kv_heads}); "
                f"use a divisor of {num_heads} (equal for MHA, 1 for MQA)")
    return None


# ---------------------------------------------------------------------------- block


class BlockSpec(Strict):
    """Everything that may differ from one layer to the next.

    ``norm_placement``: ``pre`` normalises each sublayer's input (GPT-2, LLaMA), ``post``
    normalises after each residual add (GPT, BERT), ``sandwich`` does both around the sublayer
    (norm before it and on its output before the add; Gemma 2), ``post_sublayer`` normalises
    only the sublayer's output inside the residual, x + norm(f(x)) (OLMo 2).
    ``attn_norm: false`` drops the attention input norm in a pre-norm layer (ModernBERT's
    layer 0). ``residual: parallel`` feeds attention and FFN from the same input x, each
    through its own norm, and adds both (GPT-NeoX, Falcon's new decoder architecture);
    ``parallel_shared_norm`` feeds both from one norm's output (GPT-J, Falcon-7B, Cohere).
    ``residual_multiplier`` scales each sublayer's output before the add (Granite).
    """

    attention: AttentionVariant
    ffn: FFNSpec = Field(default_factory=MLPSpec)
    norm_placement: Literal["pre", "post", "sandwich", "post_sublayer"] = "pre"
    attn_norm: bool = True
    residual: Literal["sequential", "parallel", "parallel_shared_norm"] = "sequential"
    residual_multiplier: float = Field(1.0, gt=0)

    @property
    def is_parallel(self) -> bool:
        return self.residual != "sequential"

    @property
    def has_ffn_norm(self) -> bool:
        """Whether the layer has a norm of its own before (pre, sandwich) or after (post) the
        FFN: not with one shared norm, nor when only sublayer outputs are normalised."""
        return self.residual != "parallel_shared_norm" and self.norm_placement != "post_sublayer"

    @property
    def has_attn_norm(self) -> bool:
        return self.attn_norm and self.norm_placement != "post_sublayer"

    @property
    def has_out_norms(self) -> bool:
        """Norms on the sublayer outputs (``attn_out_norm``, ``ffn_out_norm``)."""
        return self.norm_placement in ("sandwich", "post_sublayer")


class LayerOverride(Strict):
    """Changes block fields on the layers it selects.

    Select with exactly one of ``index`` (one layer), ``range`` ([start, stop), Python style)
    or ``every`` (layers where ``(i - offset) % every == 0`` and ``i >= offset``). ``set`` is a
    partial block: nested mappings are merged into the block, other values replace it.
    Overrides apply in order; a later one wins.
    """

    index: int | None = Field(None, ge=0)
    range: tuple[int, int] | None = Field(None, strict=False)  # a YAML list; its items stay strict
    every: int | None = Field(None, ge=1)
    offset: int = Field(0, ge=0)
    set: dict[str, Any]

    @model_validator(mode="after")
    def _one_selector(self) -> "LayerOverride":
        given = [n for n in ("index", "range", "every") if getattr(self, n) is not None]
        if len(given) != 1:
            raise ValueError(
                f"a layer override selects with exactly one of index, range, every "
                f"(got {', '.join(given) or 'none'})"
            )
        if self.range is not None and not 0 <= self.range[0] < self.range[1]:
            raise rule_error(
                "range", f"range {list(self.range)} must be [start, stop) with 0 <= start < stop"
            )
        return self

    def selects(self, layer: int) -> bool:
        if self.index is not None:
            return layer == self.index
        if self.range is not None:
            return self.range[0] <= layer < self.range[1]
        assert self.every is not None
        return layer >= self.offset and (layer - self.offset) % self.every == 0


# ----------------------------------------------------------------------------- head


class CausalLMHead(Strict):
    """logits = x W^T (+ b), times ``logit_scale`` (Cohere's logit_scale, Granite's
    1 / logits_scaling), then soft-capped to (-softcap, softcap) as
    softcap * tanh(logits / softcap) when ``softcap`` is set (Gemma 2's final_logit_softcapping)."""

    kind: Literal["causal_lm"] = "causal_lm"
    bias: bool = False
    logit_scale: float = Field(1.0, gt=0)
    softcap: float | None = Field(None, gt=0)


class MaskedLMHead(Strict):
    """dense -> activation -> norm -> decoder (tied to the embeddings when the spec ties)."""

    kind: Literal["masked_lm"] = "masked_lm"
    activation: Activation = "gelu"
    dense_bias: bool = True
    decoder_bias: bool = True


class EmbeddingsHead(Strict):
    """Pooled sentence embeddings. ``pooler: dense_tanh`` adds BERT's pooler on top."""

    kind: Literal["embeddings"] = "embeddings"
    pooling: Literal["cls", "mean", "last"] = "mean"
    pooler: Literal["none", "dense_tanh"] = "none"
    normalize: bool = False


class ClassificationHead(Strict):
    kind: Literal["classification"] = "classification"
    num_labels: int = Field(ge=1)
    pooling: Literal["cls", "mean", "last"] = "cls"
    pooler: Literal["none", "dense_tanh"] = "none"


HeadSpec = Annotated[
    Union[CausalLMHead, MaskedLMHead, EmbeddingsHead, ClassificationHead],
    Field(discriminator="kind"),
]


# ---------------------------------------------------------------------------- model


class ModelSpec(Strict):
    """A whole transformer. ``block`` is the default layer; ``layers`` overrides it per layer."""

    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$", max_length=128)
    vocab_size: int = Field(ge=2)
    max_seq_len: int = Field(ge=1)
    embed_dim: int = Field(ge=1)
    num_layers: int = Field(ge=1, le=4096)
    type_vocab_size: int = Field(0, ge=0)
    tie_embeddings: bool = False
    dtype: Literal["float32", "float16", "bfloat16"] = "float32"
    dropout: DropoutSpec = Field(default_factory=DropoutSpec)
    init: InitSpec = Field(default_factory=InitSpec)
    positional: PositionalSpec = Field(default_factory=LearnedPositions)
    norm: NormSpec = Field(default_factory=LayerNormSpec)
    embed_norm: bool = False
    # multiplies the token embeddings (before absolute positions are added): Gemma's
    # sqrt(embed_dim), Granite's embedding_multiplier
    embed_multiplier: float = Field(1.0, gt=0)
    final_norm: bool = True
    block: BlockSpec
    layers: list[LayerOverride] = Field(default_factory=list, max_length=256)
    head: HeadSpec = Field(default_factory=CausalLMHead)
    training: TrainingSpec = Field(default_factory=TrainingSpec)
    tokenizer: TokenizerSpec | None = None

    @model_validator(mode="before")
    @classmethod
    def _derive_in_overrides(cls, data: Any) -> Any:
        from blueprint.spec.resolve import derive_in_overrides

        return derive_in_overrides(data)

    @model_validator(mode="after")
    def _fill_defaults(self) -> "ModelSpec":
        from blueprint.spec.resolve import fill_block_defaults

        # In place (the model is frozen to users, not to its own validator): pydantic ignores a
        # different instance returned from ``ModelSpec(...)``, which left the block unresolved
        # (num_kv_heads, head_dim None) for specs built in Python.
        self.__dict__["block"] = fill_block_defaults(self.block, self.embed_dim)
        return self

    @property
    def is_decoder(self) -> bool:
        return self.head.kind == "causal_lm"

    @property
    def token_limit(self) -> int:
        """Token ids below this are real tokens: the tokenizer's vocabulary when the spec names
        its size (the embedding table may be padded beyond it), else ``vocab_size``."""
        tok = self.tokenizer
        return min(self.vocab_size, tok.vocab_size) if tok is not None and tok.vocab_size else self.vocab_size

    def layer(self, i: int) -> BlockSpec:
        """The fully resolved block of layer ``i`` (overrides applied, defaults filled)."""
        from blueprint.spec.resolve import resolve_layer

        return resolve_layer(self, i)

    def resolved_layers(self) -> list[BlockSpec]:
        return [self.layer(i) for i in range(self.num_layers)]
