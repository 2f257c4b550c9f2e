"""The analysis attention (compile_spec(..., attention="analysis")) against the fused one and
against the independent float64 reference (tests/compiler/reference.py), which records its own
explicit softmax probabilities.

Tolerances (fp32, random weights of scale 0.2):
| quantity                                  | check                                        |
|-------------------------------------------|----------------------------------------------|
| outputs, analysis vs fused (sdpa) graph    | max |diff| <= 1e-5 * max(1, max |fused|)     |
| probabilities, float64 graph vs reference | max |diff| <= 1e-10                          |
| gradients, analysis vs fused               | max |diff| <= 1e-5 * max(1, max |fused|)     |

The property test draws specs from the spec tests' generator of valid specs, so GQA/MQA,
windows, ALiBi, RoPE (partial, per-layer bases), encoders and every norm/FFN/head combination
the validator accepts are covered, each with a padded batch.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest
import torch
from hypothesis import HealthCheck, given, settings

from blueprint.spec.schema import ModelSpec
from compiler import compile_spec
from compiler.inspect import capture, inspect_ids
from compiler.inspect.analyse import LENS_HEADS
from helpers import TINY, assert_close, canonical_params, load, make_inputs, randomize, without_dropout
from reference import reference_forward

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "spec"))
from test_spec_properties import valid_specs  # noqa: E402 - the spec tests' generator

TOL = 1e-5
TOL64 = 1e-10
PROPERTY = settings(deadline=None, max_examples=25, derandomize=bool(os.environ.get("CI")),
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


def pair(spec: ModelSpec, *, kv_cache: bool = False, dtype: torch.dtype = torch.float32):
    """The fused and the analysis graph of ``spec`` with the same (randomised) weights, eval mode."""
    torch.manual_seed(0)
    # float32 whatever spec.dtype says (the comparison is of the attention variants, at fp32
    # tolerances); no checkpointing: these are eval graphs, and a {memory_budget} may be unmeetable
    fused = compile_spec(spec, kv_cache=kv_cache, checkpointing=False).to(dtype).eval()
    randomize(fused)
    analysis = compile_spec(spec, kv_cache=kv_cache, attention="analysis", checkpointing=False).to(dtype).eval()
    analysis.load_state_dict(fused.state_dict())
    return fused, analysis


def check_against_reference(spec: ModelSpec, b: int = 3, s: int = 9, dtype: torch.dtype = torch.float32) -> None:
    fused, analysis = pair(spec, dtype=dtype)
    s = min(s, spec.max_seq_len)
    feeds = make_inputs(spec, b, s, pad=[0, min(2, s - 1), 0][:b])
    with torch.no_grad():
        want = fused(*feeds.values())
        seen = capture(analysis, feeds, ["attention"])
    for name, value in want.items():
        assert_close(seen["output"][name], value, f"{name}, analysis vs fused")
    record: list[torch.Tensor] = []
    params = {k: v.detach().double() for k, v in canonical_params(fused, spec).items()}
    reference_forward(spec, params, **feeds, record=record)
    # the same graph in float64: the probabilities' semantics, free of fp32 error carried in
    # from earlier layers (fp32 itself is held to transformers' in tests/inspect)
    with torch.no_grad():
        seen64 = capture(analysis.double(), feeds, ["attention"])
    probs = [v for k, v in seen64.items() if k.endswith(".attn.probs")]
    assert len(probs) == len(record) == spec.num_layers
    for i, (ours, ref) in enumerate(zip(probs, record)):
        assert ours.dtype == torch.float64
        err = (ours - ref).abs().max().item()
        assert err <= TOL64, f"layer {i}: probabilities differ from the reference by {err:.2e}"


@pytest.mark.parametrize("name", TINY)
def test_family_probabilities_match_reference(name):
    check_against_reference(without_dropout(load(name)), s=12)


@pytest.mark.parametrize("name", ["llama-tiny", "mistral-tiny", "gpt2-tiny"])
def test_kv_cache_graph_matches_fused(name):
    spec = without_dropout(load(name))
    fused, analysis = pair(spec, kv_cache=True)
    feeds = make_inputs(spec, 2, 5, pad=[0, 1])
    g = torch.Generator().manual_seed(3)
    past = {}
    for i, block in enumerate(spec.resolved_layers()):
        shape = (2, block.attention.kv_heads, 4, block.attention.head_dim)  # [b, KV, past, hd]
        past[f"past_key_values.{i}.key"] = torch.randn(shape, generator=g)
        past[f"past_key_values.{i}.value"] = torch.randn(shape, generator=g)
    feeds["attention_mask"] = torch.cat([torch.ones(2, 4, dtype=torch.int64), feeds["attention_mask"]], 1)
    feeds["position_ids"] = feeds["position_ids"] + 4
    args = [*feeds.values(), *past.values()]
    with torch.no_grad():
        want, got = fused(*args), analysis(*args)
    assert list(want) == list(got)
    for k in want:
        assert_close(got[k], want[k], k)


def test_gradients_match_fused():
    """Training through the analysis graph (checkpointing on, eval-free) gives the fused graph's gradients."""
    spec = without_dropout(load("llama-tiny"))
    torch.manual_seed(0)
    fused = compile_spec(spec)
    randomize(fused)
    analysis = compile_spec(spec, attention="analysis")
    analysis.load_state_dict(fused.state_dict())
    feeds = make_inputs(spec, 2, 8, pad=[0, 3])
    for gm in (fused, analysis):
        gm(*feeds.values())["logits"].square().mean().backward()
    grads = dict(fused.named_parameters())
    for name, p in analysis.named_parameters():
        assert_close(p.grad, grads[name].grad, f"gradient of {name}")


def test_unknown_variant_is_a_user_error():
    from blueprint.errors import BlueprintError

    with pytest.raises(BlueprintError, match="unknown attention variant 'flash'"):
        compile_spec(load("llama-tiny"), attention="flash")


@PROPERTY
@given(valid_specs())
def test_any_valid_spec(raw):
    """For any spec the validator accepts: analysis == fused == reference, and an inspection
    runs with scores in range, and the last logit-lens layer is the model's own prediction."""
    spec = ModelSpec.model_validate(raw)
    # float64: any valid spec includes init std 1.0 and norm_eps 0.5, where two correct fp32
    # softmax orders differ by ~1e-5 relative; in float64 the two variants must agree to ~1e-12
    check_against_reference(spec, b=2, s=7, dtype=torch.float64)
    fused, analysis = pair(spec)
    s = min(7, spec.max_seq_len)
    ids = [t % spec.vocab_size for t in (3, 5, 3, 5, 8, 3, 5)][:s]
    result = inspect_ids(analysis, spec, ids, top_k=3)
    for name, rows in result.scores.items():
        for row in rows:
            assert all(v is None or -1e-6 <= v <= 1 + 1e-6 for v in row), (name, row)
    assert all(v >= -1e-9 for row in result.entropy for v in row)
    assert (result.lens_ids is not None) == (spec.head.kind in LENS_HEADS)
    if result.lens_ids is not None:
        logits = result.outputs["logits"][0]  # the inspected run's own output [s, vocab]
        assert result.lens_ids[-1][:, 0].tolist() == logits.argmax(-1).tolist()
