"""What build verification covers: a padded batch compared at every position (padding included),
a sequence longer than any sliding window, and a cached decode step over a cache longer than the
window; a difference only in padded rows fails the build's check."""

from __future__ import annotations

import pytest
import torch
from buildfixtures import DECODERS, TINY, load_tiny

from compiler.export import verify as verify_mod
from compiler.export.io import max_window


@pytest.mark.parametrize("name", TINY)
def test_cases_cover_padding_windows_and_the_cache(name):
    spec = load_tiny(name)
    window = max_window(spec)
    cases = {c.name: c for c in verify_mod.verification_cases(spec, spec.is_decoder)}
    padded = cases["padded batch"]
    assert padded.shape.batch == len(padded.pad) >= 2 and sum(p > 0 for p in padded.pad) >= 1 and padded.pad[0] == 0
    assert cases["long sequence"].shape.seq > window and cases["long sequence"].shape.seq <= spec.max_seq_len
    if name in DECODERS:
        decode = cases["decode"]
        # prefill, then single tokens and a chunk, each over the cache the previous call produced
        assert decode.steps[:3] == (1, 1, 1) and max(decode.steps) > 1 and any(decode.pad)
        assert decode.shape.seq + len([s for s in decode.steps if s == 1]) > window
        assert decode.shape.seq + sum(decode.steps) <= spec.max_seq_len
        assert cases["single row"].shape.batch == 1 and cases["single row"].steps
    if name in ("mistral-tiny", "modernbert-tiny"):
        assert window > 0  # the window checks above are not vacuous for these


class _PaddedRowsDiffer(torch.nn.Module):
    """The torch graph with 1e-3 added to the logits of padding query positions only."""

    def __init__(self, inner):
        super().__init__()
        self.inner = inner

    def forward(self, *args):
        out = dict(self.inner(*args))
        ids, mask = args[0], args[1]
        padding = (mask[:, -ids.shape[1]:] == 0)[..., None]  # [b, s, 1]
        out["logits"] = out["logits"] + 1e-3 * padding
        return out


def test_a_difference_only_in_padded_rows_fails(builds, torch_model):
    result = builds("gpt2-tiny")
    spec = load_tiny("gpt2-tiny")
    module = _PaddedRowsDiffer(torch_model(result, kv_cache=True))
    report = verify_mod.verify(module, spec, result.directory / "model.onnx", kv_cache=True)
    assert not report.ok
    by_case = {c.case: c for c in report.cases}
    assert by_case["padded batch"].errors["logits"].ort == pytest.approx(1e-3, abs=1e-5)
    assert by_case["padded batch"].errors["logits"].torch < 1e-5
    assert by_case["long sequence"].errors["logits"].ok(report.floor)  # no padding there
    with pytest.raises(Exception, match="padded batch"):
        verify_mod.check(report)


def test_a_model_onnxruntime_cannot_load_is_reported_and_restores_the_module(builds, torch_model, tmp_path):
    """onnxruntime loads on a thread beside the float64 reference: its failure still ends the
    gate with a clear error, and the module's weights are back in their own dtype."""
    from blueprint.errors import BlueprintError

    result = builds("gpt2-tiny")
    module = torch_model(result, kv_cache=True)
    before = {n: p.detach().clone() for n, p in module.named_parameters()}
    threads = torch.get_num_threads()
    broken = tmp_path / "model.onnx"
    broken.write_bytes(b"not an onnx model")
    with pytest.raises(BlueprintError, match="onnxruntime cannot load the exported model"):
        verify_mod.verify(module, load_tiny("gpt2-tiny"), broken, kv_cache=True)
    after = dict(module.named_parameters())
    assert all(after[n].dtype == t.dtype and torch.equal(after[n], t) for n, t in before.items())
    assert torch.get_num_threads() == threads  # torch had one thread during the gate
