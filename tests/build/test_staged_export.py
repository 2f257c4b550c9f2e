"""Staged export (compiler/export/stamp.py) against the whole-model export, and weights stored once.

The staged graph is compared in onnxruntime with the graph ``torch.onnx.export`` gives for the
whole model (an independent path through the exporter), on padded batches and a decode step:
fp32 tolerance 1e-5 (both run the same float32 kernels; observed differences ~1e-7).
ModernBERT-tiny has two layer structures (global and local attention), so two block pieces are
stamped; a mismatch of structure and weights would show up as a numeric difference.
"""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from buildfixtures import SPECS, load_tiny

from compiler.export import onnx_export, stamp
from compiler.export.build import default_compile
from compiler.export.io import Shape, make_inputs, output_names

TOLERANCE = 1e-5


def _session(model, directory):
    onnx_export.save_model(model, directory, metadata={})
    return ort.InferenceSession(str(directory / "model.onnx"), providers=["CPUExecutionProvider"])


@pytest.mark.parametrize("name", ["llama-tiny", "modernbert-tiny"])
def test_staged_export_matches_the_whole_model_export(name, tmp_path):
    spec = load_tiny(name)
    kv = spec.is_decoder
    torch.manual_seed(0)
    module = default_compile(spec, kv_cache=kv).eval()
    assert stamp.can_stage(module, spec)
    groups = stamp.layer_groups(spec)
    assert sum(len(g) for g in groups) == spec.num_layers
    assert len(groups) == len({b.model_dump_json() for b in spec.resolved_layers()})
    (tmp_path / "staged").mkdir()
    (tmp_path / "whole").mkdir()
    staged = _session(onnx_export.export_model(module, spec, kv_cache=kv), tmp_path / "staged")
    whole = _session(onnx_export.export_model(module, spec, kv_cache=kv, staged=False), tmp_path / "whole")
    rng = np.random.default_rng(1)
    shapes = [(Shape(3, 9, 0), [0, 4, 1])] + ([(Shape(2, 1, 11), [0, 3])] if kv else [])
    names = output_names(spec, kv)
    for shape, pad in shapes:
        feeds = make_inputs(spec, shape, kv_cache=kv, rng=rng, pad=pad)
        for n, a, b in zip(names, staged.run(names, feeds), whole.run(names, feeds)):
            assert a.shape == b.shape, n
            assert np.abs(a - b).max() <= TOLERANCE, (n, shape, float(np.abs(a - b).max()))


def test_a_build_stores_its_weights_once(builds):
    """model.onnx holds no parameter: every one points into weights.safetensors."""
    d = builds("llama-tiny").directory
    model = onnx.load(str(d / "model.onnx"), load_external_data=False)
    external = {t.name: {e.key: e.value for e in t.external_data} for t in model.graph.initializer if t.external_data}
    inline = sum(len(t.raw_data) for t in model.graph.initializer)
    params = dict(default_compile(load_tiny("llama-tiny"), kv_cache=True).named_parameters())
    assert set(params) <= set(external) | {"head.proj.weight"}  # tied weights are stored once
    assert all(e["location"] == "weights.safetensors" for e in external.values())
    assert inline < 4096
    assert (d / "model.onnx").stat().st_size < (d / "weights.safetensors").stat().st_size / 4
