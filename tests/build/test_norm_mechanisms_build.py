"""The norm, residual and scaling mechanisms through a real build: ONNX export, staged stamping
and the float64 verification gate (docs/architecture.md, "Verification").

One decoder puts a different wiring on each layer, so the staged export must tell them apart:
layers 2 and 3 differ only in ``residual_multiplier``; were it missing from the structure key,
one layer would run the other's graph and the gate would fail. Its norms scale by (1 + w)
(initialised to w = 0, so an export that lost the offset would zero every norm's output), its
embeddings are scaled and its logits scaled and soft-capped. An encoder covers the
non-parametric LayerNorm with post-norm parallel layers sharing one norm.

Two builds (~20 s of CPU).
"""

from __future__ import annotations

import numpy as np
import onnxruntime as ort
import pytest
import yaml

from compiler.export import stamp
from compiler.export.build import build
from compiler.export.io import Shape, make_inputs

DECODER = {
    "name": "norms-decoder", "vocab_size": 128, "max_seq_len": 64, "embed_dim": 64, "num_layers": 4,
    "embed_multiplier": 8.0, "tie_embeddings": True,
    "init": {"std": 0.3},
    "positional": {"kind": "rope"},
    "norm": {"kind": "rmsnorm", "norm_eps": 1.0e-6, "weight_offset": 1.0},
    "block": {"attention": {"num_heads": 4, "num_kv_heads": 2}, "ffn": {"kind": "geglu", "hidden_dim": 128,
                                                                        "activation": "gelu_tanh"}},
    "layers": [
        {"index": 0, "set": {"norm_placement": "post_sublayer"}},
        {"index": 1, "set": {"residual": "parallel_shared_norm", "residual_multiplier": 0.5}},
        {"index": 2, "set": {"residual_multiplier": 0.5}},
        {"index": 3, "set": {"residual_multiplier": 2.0}},
    ],
    "head": {"kind": "causal_lm", "logit_scale": 0.5, "softcap": 2.0},
}

ENCODER = {
    "name": "norms-encoder", "vocab_size": 128, "max_seq_len": 64, "embed_dim": 64, "num_layers": 2,
    "embed_multiplier": 2.0, "embed_norm": True, "init": {"std": 0.3},
    "positional": {"kind": "learned"},
    "norm": {"kind": "layernorm", "weight": False, "bias": False},
    "block": {"attention": {"num_heads": 4, "causal": False, "qk_norm": True},
              "residual": "parallel_shared_norm", "norm_placement": "post"},
    "head": {"kind": "embeddings", "pooling": "mean"},
}


@pytest.fixture(scope="module")
def builds(tmp_path_factory):
    """builds(data) -> the BuildResult of that spec, built once per module."""
    done = {}

    def get(data):
        if data["name"] not in done:
            root = tmp_path_factory.mktemp(data["name"])
            path = root / f"{data['name']}.yaml"
            path.write_text(yaml.safe_dump(data))
            done[data["name"]] = build(path, root / "out")
        return done[data["name"]]

    return get


@pytest.mark.parametrize("data, groups", [(DECODER, [[0], [1], [2], [3]]), (ENCODER, [[0, 1]])],
                         ids=["decoder", "encoder"])
def test_build_verifies_each_layer_structure_exported_once(builds, data, groups):
    from blueprint import runtime

    result = builds(data)
    assert result.report is not None and result.report.ok, result.report.format()
    for case in result.report.cases:
        for out, err in case.errors.items():
            assert err.nonfinite is None and err.ort < 1e-4, (case.case, out, err)
    assert stamp.layer_groups(runtime.open_build(result.directory).spec) == groups


def test_soft_cap_holds_in_onnxruntime(builds):
    from blueprint import runtime

    result = builds(DECODER)
    spec = runtime.open_build(result.directory).spec
    session = ort.InferenceSession(str(result.directory / "model.onnx"), providers=["CPUExecutionProvider"])
    feeds = make_inputs(spec, Shape(2, 9, 0), kv_cache=True, rng=np.random.default_rng(2))
    logits = session.run(["logits"], feeds)[0]
    assert 1.0 < np.abs(logits).max() <= 2.0  # the cap binds on some logits, none exceed it
