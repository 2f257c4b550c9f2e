"""The build gate on a real 30-layer model: it passes the real export and fails when the
export and the torch graph disagree by a wrong window, a wrong position or a dropped op.

The export (model.onnx of the verified SmolLM2 build) is fixed and the torch graph it is
checked against is changed; to the gate that is the same disagreement as an export that lost
the window, shifted the positions or dropped a norm."""

from __future__ import annotations

import copy

import pytest
import torch

from compiler.export import verify as verify_mod


class _ShiftedPositions(torch.nn.Module):
    """The graph fed position_ids + 1 (an off-by-one in the positions)."""

    def __init__(self, inner):
        super().__init__()
        self.inner = inner

    def forward(self, input_ids, attention_mask, position_ids, *past):
        return self.inner(input_ids, attention_mask, position_ids + 1, *past)


def _windowed(spec, module):
    """The same weights in a graph whose every layer has a 4-token sliding window."""
    from compiler.export.build import default_compile

    block = spec.block.model_copy(update={"attention": spec.block.attention.model_copy(update={"window": 4})})
    windowed = spec.model_copy(update={"block": block})
    graph = default_compile(windowed, kv_cache=True)
    graph.load_state_dict(module.state_dict())
    return windowed, graph.eval()


def _dropped_norm(module):
    graph = copy.deepcopy(module)
    getattr(graph.layers, "17").ffn_norm = torch.nn.Identity()  # layer 17 of 30 loses its FFN norm
    return graph


def test_the_real_export_passes(smollm2_build, smollm2_torch):
    spec, module = smollm2_torch
    report = verify_mod.verify(module, spec, smollm2_build.directory / "model.onnx", kv_cache=True)
    assert report.ok, report.format()


@pytest.mark.parametrize("breakage", ["wrong window", "wrong position", "dropped op"])
def test_a_broken_export_fails(smollm2_build, smollm2_torch, breakage):
    spec, module = smollm2_torch
    if breakage == "wrong window":
        spec, graph = _windowed(spec, module)
    elif breakage == "wrong position":
        graph = _ShiftedPositions(module)
    else:
        graph = _dropped_norm(module)
    report = verify_mod.verify(graph, spec, smollm2_build.directory / "model.onnx", kv_cache=True)
    assert not report.ok
    failing = {c.case for c in report.cases if not all(e.ok(report.floor) for e in c.errors.values())}
    if breakage == "wrong window":
        assert "long sequence" in failing and "decode" in failing  # sequences longer than the window
    else:
        assert failing == {c.case for c in report.cases}
    with pytest.raises(Exception, match="verification failed"):
        verify_mod.check(report)
