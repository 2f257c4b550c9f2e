"""Mixture of experts (compiler/components/moe.py) against transformers' own sparse MoE blocks.

| check                                                            | tolerance                  |
|------------------------------------------------------------------|----------------------------|
| chosen experts vs transformers' router (same weights, same input) | identical                  |
| block output vs MixtralSparseMoeBlock / Qwen2MoeSparseMoeBlock /  | max abs <= 1e-5            |
| OlmoeSparseMoeBlock / Qwen3MoeSparseMoeBlock (fp32)                |                            |
| input and parameter gradients vs the same blocks                  | max abs <= 1e-5            |
| dense (export) path vs active-only path, outputs and gradients    | max abs <= 1e-5            |
| exact ties at the k-th place: torch vs transformers               | identical experts, 1e-5    |
| exact ties: onnxruntime                                           | the lower expert index     |

The transformers blocks are built from their own config classes and run their eager experts
(the reference loop over experts), seeded random weights of scale 0.2 so every path matters.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from blueprint.spec.schema import MoESpec
from compiler.lower import build_moe

D, H, SHARED_H = 16, 24, 20
TOL = 1e-5


def _hf(family: str, num_experts: int, top_k: int, normalize: bool):
    """A transformers sparse MoE block of ``family``; the matching blueprint spec."""
    common = dict(hidden_size=D, num_experts_per_tok=top_k, hidden_act="silu", experts_implementation="eager")
    expert = {"kind": "swiglu", "hidden_dim": H}
    if family == "mixtral":
        from transformers import MixtralConfig
        from transformers.models.mixtral.modeling_mixtral import MixtralSparseMoeBlock

        cfg = MixtralConfig(intermediate_size=H, num_local_experts=num_experts, router_jitter_noise=0.0, **common)
        return MixtralSparseMoeBlock(cfg), {"expert": expert}  # Mixtral always renormalises
    if family == "qwen2_moe":
        from transformers import Qwen2MoeConfig
        from transformers.models.qwen2_moe.modeling_qwen2_moe import Qwen2MoeSparseMoeBlock

        cfg = Qwen2MoeConfig(moe_intermediate_size=H, shared_expert_intermediate_size=SHARED_H,
                             num_experts=num_experts, norm_topk_prob=normalize, **common)
        return Qwen2MoeSparseMoeBlock(cfg), {
            "expert": expert, "router": {"normalize_top_k": normalize},
            "shared_expert": {"kind": "swiglu", "hidden_dim": SHARED_H}, "shared_expert_gate": "sigmoid"}
    if family == "olmoe":
        from transformers import OlmoeConfig
        from transformers.models.olmoe.modeling_olmoe import OlmoeSparseMoeBlock

        cfg = OlmoeConfig(intermediate_size=H, num_experts=num_experts, norm_topk_prob=normalize, **common)
        return OlmoeSparseMoeBlock(cfg), {"expert": expert, "router": {"normalize_top_k": normalize}}
    from transformers import Qwen3MoeConfig
    from transformers.models.qwen3_moe.modeling_qwen3_moe import Qwen3MoeSparseMoeBlock

    cfg = Qwen3MoeConfig(moe_intermediate_size=H, num_experts=num_experts, norm_topk_prob=normalize, **common)
    return Qwen3MoeSparseMoeBlock(cfg), {"expert": expert, "router": {"normalize_top_k": normalize}}


def _pair(family: str, num_experts: int = 6, top_k: int = 2, normalize: bool = True, seed: int = 0):
    """(transformers block, blueprint MoE) holding the same seeded weights."""
    hf, fields = _hf(family, num_experts, top_k, normalize)
    spec = MoESpec(kind="moe", num_experts=num_experts, top_k=top_k, **fields)
    ours = build_moe(D, spec)
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in hf.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 0.2)
        ours.router.proj.weight.copy_(hf.gate.weight)
        gate, up = hf.experts.gate_up_proj.chunk(2, dim=1)  # [E, 2H, D] -> [E, H, D] twice
        for e, expert in enumerate(ours.experts):
            expert.gate_proj.weight.copy_(gate[e])
            expert.up_proj.weight.copy_(up[e])
            expert.down_proj.weight.copy_(hf.experts.down_proj[e])  # [D, H]
        if hasattr(hf, "shared_expert"):
            for name in ("gate_proj", "up_proj", "down_proj"):
                getattr(ours.shared_expert, name).weight.copy_(getattr(hf.shared_expert, name).weight)
            ours.shared_expert_gate.weight.copy_(hf.shared_expert_gate.weight)
    return hf, ours


def _run(module, x, probe):
    x = x.clone().requires_grad_(True)
    module.zero_grad(set_to_none=True)
    out = module(x)
    (out * probe).sum().backward()
    return out.detach(), x.grad


def _stacked_grad(ours, name: str) -> torch.Tensor:
    """[E, out, in]: each expert's gradient (zeros for an expert no token chose: no gradient)."""
    weights = [getattr(expert, name).weight for expert in ours.experts]
    return torch.stack([w.grad if w.grad is not None else torch.zeros_like(w) for w in weights])


CASES = [("mixtral", 8, 2, True), ("qwen2_moe", 6, 4, False), ("qwen2_moe", 6, 2, True),
         ("olmoe", 8, 3, False), ("qwen3_moe", 5, 2, True), ("olmoe", 4, 4, True), ("mixtral", 3, 1, True)]


@pytest.mark.parametrize("family,num_experts,top_k,normalize", CASES)
def test_same_experts_outputs_and_gradients_as_transformers(family, num_experts, top_k, normalize):
    hf, ours = _pair(family, num_experts, top_k, normalize)
    g = torch.Generator().manual_seed(1)
    x = torch.randn(3, 7, D, generator=g)
    probe = torch.randn(3, 7, D, generator=g)
    _, hf_weights, hf_chosen = hf.gate(x.reshape(-1, D))
    our_weights, our_chosen = ours.router(x.reshape(-1, D))
    assert torch.equal(hf_chosen, our_chosen)
    assert (our_weights - hf_weights).abs().max().item() <= TOL
    ref, ref_dx = _run(hf, x, probe)
    out, dx = _run(ours, x, probe)
    assert (out - ref).abs().max().item() <= TOL
    assert (dx - ref_dx).abs().max().item() <= TOL
    assert (ours.router.proj.weight.grad - hf.gate.weight.grad).abs().max().item() <= TOL
    hf_gate, hf_up = hf.experts.gate_up_proj.grad.chunk(2, dim=1)
    for name, ref_grad in (("gate_proj", hf_gate), ("up_proj", hf_up), ("down_proj", hf.experts.down_proj.grad)):
        assert (_stacked_grad(ours, name) - ref_grad).abs().max().item() <= TOL, name
    if hasattr(hf, "shared_expert"):
        assert (ours.shared_expert_gate.weight.grad - hf.shared_expert_gate.weight.grad).abs().max().item() <= TOL
        assert (ours.shared_expert.down_proj.weight.grad - hf.shared_expert.down_proj.weight.grad).abs().max() <= TOL


@pytest.mark.parametrize("family", ["mixtral", "qwen2_moe"])
def test_dense_export_path_equals_active_path(family):
    """The dense path the ONNX export traces computes what the active-only path does."""
    _, ours = _pair(family, 6, 2)
    g = torch.Generator().manual_seed(2)
    x = torch.randn(2, 9, D, generator=g)
    probe = torch.randn(2, 9, D, generator=g)
    active, active_dx = _run(ours, x, probe)
    active_grads = {n: p.grad.clone() if p.grad is not None else torch.zeros_like(p) for n, p in ours.named_parameters()}
    ours._active = ours._dense  # the forward's eager branch now runs the dense path
    try:
        dense, dense_dx = _run(ours, x, probe)
    finally:
        del ours._active
    assert (dense - active).abs().max().item() <= TOL
    assert (dense_dx - active_dx).abs().max().item() <= TOL
    for n, p in ours.named_parameters():
        assert (p.grad - active_grads[n]).abs().max().item() <= TOL, n


def _tied(family: str):
    """A block whose router rows 1, 2 and 3 are equal, so those experts tie exactly on every
    token; row 0 is row 1 plus a and row 4 row 1 minus a, with a . x > 0 on every token, so
    expert 0 comes first and with top_k 2 the second place is a three-way tie."""
    hf, ours = _pair(family, 5, 2)
    g = torch.Generator().manual_seed(3)
    x = torch.randn(2, 6, D, generator=g) * 0.3
    x[..., 0] += 1.0  # every token leans along the first axis
    a = torch.zeros(D)
    a[0] = 2.0
    with torch.no_grad():
        w = hf.gate.weight
        w[2].copy_(w[1])
        w[3].copy_(w[1])
        w[0].copy_(w[1] + a)
        w[4].copy_(w[1] - a)
        ours.router.proj.weight.copy_(w)
        logits = x.reshape(-1, D) @ w.t()
        assert torch.all(logits[:, 0] > logits[:, 1]) and torch.all(logits[:, 1] > logits[:, 4])
        assert torch.all(logits[:, 1] == logits[:, 2]) and torch.all(logits[:, 2] == logits[:, 3])
    return hf, ours, x


@pytest.mark.parametrize("family", ["mixtral", "olmoe"])
def test_exact_ties_choose_what_transformers_chooses(family):
    hf, ours, x = _tied(family)
    _, _, hf_chosen = hf.gate(x.reshape(-1, D))
    _, chosen = ours.router(x.reshape(-1, D))
    assert torch.equal(chosen, hf_chosen)
    assert set(chosen[:, 1].tolist()) <= {1, 2, 3}  # the tie really was at the second place
    with torch.no_grad():
        assert (ours(x) - hf(x)).abs().max().item() <= TOL


def _export(module, x, path):
    import onnxruntime as ort
    from torch.export import Dim

    module.eval()
    with torch.no_grad():
        torch.onnx.export(module, (x,), str(path), dynamo=True, input_names=["x"], output_names=["y"],
                          dynamic_shapes=({0: Dim.DYNAMIC, 1: Dim.DYNAMIC},))
    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])


def _lower_index_rule(ours, x, experts):
    """The block's output when every token takes ``experts`` (weights from the router)."""
    with torch.no_grad():
        tokens = x.reshape(-1, D)
        weights, _ = ours.router(tokens)
        return sum(weights[:, j:j + 1] * ours.experts[e](tokens) for j, e in enumerate(experts)).numpy()


def test_exact_ties_in_onnxruntime_take_the_lower_expert_index(tmp_path):
    """ONNX TopK breaks exact ties by the lower index; torch.topk on CPU has an order of its own.
    A three-way tie at the second place: both take expert 1 here. A zero router (every expert
    ties on every token): torch, like transformers, takes experts 2 and 4 of 5, onnxruntime 0
    and 1. docs/moe.md says so: only bitwise-equal probabilities at the k-th place differ."""
    hf, ours, x = _tied("mixtral")
    session = _export(ours, x, tmp_path / "tied.onnx")
    (got,) = session.run(None, {"x": x.numpy()})
    np.testing.assert_allclose(got.reshape(-1, D), _lower_index_rule(ours, x, (0, 1)), atol=TOL, rtol=0)
    with torch.no_grad():
        hf.gate.weight.zero_()
        ours.router.proj.weight.zero_()
        _, _, hf_chosen = hf.gate(x.reshape(-1, D))
        _, chosen = ours.router(x.reshape(-1, D))
    assert torch.equal(chosen, hf_chosen)
    session = _export(ours, x, tmp_path / "zero.onnx")
    (got,) = session.run(None, {"x": x.numpy()})
    np.testing.assert_allclose(got.reshape(-1, D), _lower_index_rule(ours, x, (0, 1)), atol=TOL, rtol=0)
    if sorted(chosen[0].tolist()) != [0, 1]:  # torch's own order (2, 4 on torch 2.13): the engines differ
        assert np.abs(got - ours(x).detach().numpy()).max() > 1e-3


def test_onnx_export_matches_torch_at_new_shapes(tmp_path):
    """The dense export runs in onnxruntime and matches the torch module at shapes other than
    the example's (dynamic token count), shared expert and sigmoid gate included."""
    import onnx

    _, ours = _pair("qwen2_moe", 6, 2, normalize=False)
    session = _export(ours, torch.randn(2, 5, D), tmp_path / "moe.onnx")
    assert "TopK" in {n.op_type for n in onnx.load(str(tmp_path / "moe.onnx")).graph.node}
    for shape in ((1, 1), (3, 11), (2, 33)):
        x = torch.randn(*shape, D, generator=torch.Generator().manual_seed(sum(shape)))
        with torch.no_grad():
            ref = ours(x).numpy()
        (got,) = session.run(None, {"x": x.numpy()})
        np.testing.assert_allclose(got, ref, atol=TOL, rtol=0)


def test_cost_model_counts_total_and_active_parameters_and_flops():
    """moe-tiny by hand: D 64, 4 SwiGLU experts of 128, top 2; layer 1 adds a SwiGLU shared
    expert of 64 and its [1, D] sigmoid gate. Totals are checked against the compiled model in
    test_cost.py (every spec); here the active count and FLOPs per token."""
    from compiler import compile_spec
    from compiler.cost import cost_report
    from helpers import load

    spec = load("moe-tiny")
    d, e, k, h, sh, v, kv = 64, 4, 2, 128, 64, 256, 2 * 16
    expert = 3 * d * h
    report = cost_report(spec, seq_len=8)
    gm = compile_spec(spec, device="meta")
    assert report.params_total == sum(p.numel() for p in gm.parameters())
    assert report.params_active == report.params_total - 2 * (e - k) * expert
    attn = d * 64 * 2 + d * kv * 2  # q, o and k, v projections
    layer0 = attn + d * e + k * expert
    layer1 = layer0 + 3 * d * sh + d
    causal_keys = sum(p + 1 for p in range(8)) / 8
    assert report.flops_per_token_prefill == pytest.approx(2 * (layer0 + layer1 + d * v) + 2 * 4 * 64 * causal_keys)
