"""The spec language's FFN section: MLP, SwiGLU, GeGLU and the mixture of experts (docs/moe.md).
Part of ``blueprint.spec.schema`` (re-exported there; docs/architecture.md); imports no torch."""

from __future__ import annotations

from typing import Annotated, Literal, Union

from pydantic import Field, model_validator

from blueprint.spec.base import Strict, rule_error


# ------------------------------------------------------------------------------ ffn


# relu2 is relu(x)^2 (So et al. 2021, "Primer"; Nemotron)
Activation = Literal["gelu", "gelu_tanh", "relu", "relu2", "silu"]


class MLPSpec(Strict):
    """Two projections with an activation between: up -> act -> down."""

    kind: Literal["mlp"] = "mlp"
    activation: Activation = "gelu"
    hidden_dim: int | None = Field(None, ge=1)
    bias: bool = True


class SwiGLUSpec(Strict):
    """down(silu(gate(x)) * up(x)) (Shazeer 2020), as in LLaMA and Mistral."""

    kind: Literal["swiglu"] = "swiglu"
    hidden_dim: int | None = Field(None, ge=1)
    bias: bool = False


class GeGLUSpec(Strict):
    """down(gelu(gate(x)) * up(x)), as in ModernBERT."""

    kind: Literal["geglu"] = "geglu"
    hidden_dim: int | None = Field(None, ge=1)
    bias: bool = False
    activation: Literal["gelu", "gelu_tanh"] = "gelu"


ExpertSpec = Annotated[Union[MLPSpec, SwiGLUSpec, GeGLUSpec], Field(discriminator="kind")]


class RouterSpec(Strict):
    """How a mixture of experts picks experts for a token.

    The router's linear map gives one logit per expert; a softmax over all experts (computed in
    at least float32) gives probabilities; the ``top_k`` largest are kept (ties: the lower expert
    index first, as ``torch.topk`` and ONNX ``TopK`` choose). ``normalize_top_k`` rescales the
    kept probabilities to sum to 1 (Mixtral always; Qwen-MoE and OLMoE per ``norm_topk_prob``).
    """

    normalize_top_k: bool = True
    bias: bool = False


class MoESpec(Strict):
    """A sparse mixture of experts (Shazeer et al. 2017): each token goes through ``top_k`` of
    ``num_experts`` feed-forward experts, weighted by the router.

    ``expert`` is the FFN every expert is (one shape for all). ``shared_expert`` is an FFN every
    token also goes through (Qwen2-MoE, DeepSeek); ``shared_expert_gate: sigmoid`` scales its
    output by sigmoid(w . x), a learned per-token scalar (Qwen2-MoE).
    """

    kind: Literal["moe"] = "moe"
    num_experts: int = Field(ge=1, le=1024)
    top_k: int = Field(ge=1)
    expert: ExpertSpec
    router: RouterSpec = Field(default_factory=RouterSpec)
    shared_expert: ExpertSpec | None = None
    shared_expert_gate: Literal["none", "sigmoid"] = "none"

    @model_validator(mode="after")
    def _top_k_fits(self) -> "MoESpec":
        if self.top_k > self.num_experts:
            raise rule_error("top_k", f"top_k ({self.top_k}) exceeds num_experts ({self.num_experts}); "
                                      f"use top_k <= {self.num_experts}")
        if self.shared_expert_gate != "none" and self.shared_expert is None:
            raise rule_error("shared_expert_gate", f"shared_expert_gate is {self.shared_expert_gate!r} but there "
                                      "is no shared_expert to gate; add shared_expert: {kind: swiglu, "
                                      "hidden_dim: ...}, or remove shared_expert_gate")
        return self


FFNSpec = Annotated[Union[MLPSpec, SwiGLUSpec, GeGLUSpec, MoESpec], Field(discriminator="kind")]
