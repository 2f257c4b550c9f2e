"""The spec language's positional section: learned, sinusoidal, RoPE (with its scalings), ALiBi,
none. Part of ``blueprint.spec.schema`` (re-exported there; docs/architecture.md); imports no torch."""

from __future__ import annotations

import math
from typing import Annotated, Literal, Union

from pydantic import Field, model_validator

from blueprint.spec.base import Strict, rule_error


# ----------------------------------------------------------------------- positional


class LearnedPositions(Strict):
    """Absolute positions looked up in a trained [max_seq_len + offset, embed_dim] table (GPT,
    BERT). ``offset``: position p reads row p + offset; OPT and RoBERTa keep two rows in front
    (RoBERTa's padding row and the one before it, OPT's legacy offset), so their offset is 2."""

    kind: Literal["learned"] = "learned"
    offset: int = Field(0, ge=0, le=1024)


class SinusoidalPositions(Strict):
    """Fixed sin/cos absolute positions added to the embeddings (Vaswani et al. 2017)."""

    kind: Literal["sinusoidal"] = "sinusoidal"
    base: float = Field(10000.0, gt=1)


class NoRopeScaling(Strict):
    """Plain RoPE frequencies base^(-2j/r)."""

    kind: Literal["none"] = "none"


class LinearRopeScaling(Strict):
    """Position interpolation: every frequency divided by ``factor`` (transformers' "linear")."""

    kind: Literal["linear"] = "linear"
    factor: float = Field(gt=0)


class Llama3RopeScaling(Strict):
    """Llama 3.1: low frequencies (wavelength above original_max_seq_len / low_freq_factor)
    divided by ``factor``, high ones (below original_max_seq_len / high_freq_factor) kept, a
    smooth blend between (transformers' "llama3")."""

    kind: Literal["llama3"] = "llama3"
    factor: float = Field(gt=0)
    low_freq_factor: float = Field(gt=0)
    high_freq_factor: float = Field(gt=0)
    original_max_seq_len: int = Field(ge=1)

    @model_validator(mode="after")
    def _ordered(self) -> "Llama3RopeScaling":
        if self.high_freq_factor <= self.low_freq_factor:
            raise rule_error("high_freq_factor", f"high_freq_factor ({self.high_freq_factor:g}) must exceed "
                             f"low_freq_factor ({self.low_freq_factor:g})")
        return self


class YarnRopeScaling(Strict):
    """YaRN (Peng et al. 2023): frequencies ramp from interpolated (divided by ``factor``) to
    kept between the dimensions turning beta_slow and beta_fast times over
    original_max_seq_len; cos and sin are multiplied by ``attention_factor`` (default
    0.1 ln(factor) + 1, or the mscale / mscale_all_dim ratio when both are given), as in
    transformers' "yarn". ``truncate: false`` keeps the correction range unrounded (gpt-oss)."""

    kind: Literal["yarn"] = "yarn"
    factor: float = Field(gt=0)
    original_max_seq_len: int = Field(ge=1)
    beta_fast: float = Field(32.0, gt=0)
    beta_slow: float = Field(1.0, gt=0)
    mscale: float | None = Field(None, gt=0)
    mscale_all_dim: float | None = Field(None, gt=0)
    attention_factor: float | None = Field(None, gt=0)
    truncate: bool = True

    @model_validator(mode="after")
    def _resolve_attention_factor(self) -> "YarnRopeScaling":
        if self.attention_factor is None:  # resolved once, so the lock file states it
            def mscale(scale: float, m: float = 1.0) -> float:
                return 1.0 if scale <= 1 else 0.1 * m * math.log(scale) + 1.0
            if self.mscale and self.mscale_all_dim:
                value = mscale(self.factor, self.mscale) / mscale(self.factor, self.mscale_all_dim)
            else:
                value = mscale(self.factor)
            self.__dict__["attention_factor"] = float(value)
        return self


class LongRopeScaling(Strict):
    """LongRoPE (Phi-3 long-context variants): one divisor per frequency, ``short_factor`` while
    the call's largest position + 1 is at most original_max_seq_len, ``long_factor`` beyond
    (chosen per forward call, as transformers does); cos and sin are multiplied by
    ``attention_factor`` (default sqrt(1 + ln(factor) / ln(original_max_seq_len)), 1 when
    factor <= 1). ``factor`` is max_position_embeddings / original_max_position_embeddings."""

    kind: Literal["longrope"] = "longrope"
    short_factor: list[Annotated[float, Field(gt=0)]] = Field(min_length=1)
    long_factor: list[Annotated[float, Field(gt=0)]] = Field(min_length=1)
    original_max_seq_len: int = Field(ge=2)
    factor: float = Field(gt=0)
    attention_factor: float | None = Field(None, gt=0)

    @model_validator(mode="after")
    def _resolve(self) -> "LongRopeScaling":
        if len(self.short_factor) != len(self.long_factor):
            raise rule_error("long_factor", f"short_factor has {len(self.short_factor)} entries, "
                             f"long_factor {len(self.long_factor)}; both need one per rotary frequency")
        if self.attention_factor is None:
            value = 1.0 if self.factor <= 1 else math.sqrt(
                1 + math.log(self.factor) / math.log(self.original_max_seq_len))
            self.__dict__["attention_factor"] = float(value)
        return self


RopeScaling = Annotated[
    Union[NoRopeScaling, LinearRopeScaling, Llama3RopeScaling, YarnRopeScaling, LongRopeScaling],
    Field(discriminator="kind"),
]


class RopePositions(Strict):
    """Rotary embeddings applied to queries and keys inside attention.

    ``rotary_fraction`` < 1 rotates only the first part of each head (GPT-NeoX, Phi).
    ``layout``: ``half_split`` pairs feature j with j + r/2 (GPT-NeoX, LLaMA: "rotate_half");
    ``interleaved`` pairs 2j with 2j + 1 (GPT-J: "rotate_every_two"). ``scaling`` changes the
    frequencies for long contexts (linear, llama3, yarn, longrope as transformers defines them).
    A layer may override the base (``attention.rope_base``), the scaling
    (``attention.rope_scaling``) or turn RoPE off (``attention.rope: false``).
    """

    kind: Literal["rope"] = "rope"
    rope_base: float = Field(10000.0, gt=1)
    rotary_fraction: float = Field(1.0, gt=0, le=1)
    layout: Literal["half_split", "interleaved"] = "half_split"
    scaling: RopeScaling = Field(default_factory=NoRopeScaling)


class AlibiPositions(Strict):
    """Linear attention biases with a geometric slope per head (Press et al. 2022)."""

    kind: Literal["alibi"] = "alibi"


class NoPositions(Strict):
    kind: Literal["none"] = "none"


PositionalSpec = Annotated[
    Union[LearnedPositions, SinusoidalPositions, RopePositions, AlibiPositions, NoPositions],
    Field(discriminator="kind"),
]
