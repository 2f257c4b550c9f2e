"""The fused export's emitted ends (compiler/export/fuse/ends.py) against the plain export.

Every option of the embeddings and the causal LM tail that ``ends`` emits (token multiplier,
learned positions, embedding norm, untied head with bias, logit scale, soft-capping, no final
norm) is compared with the plain export of the same weights in onnxruntime (torch's exporter
of the torch components: an independent path), to 1e-5, on a left-padded batch and a decode
step after a past. A fused build whose ends are all emitted never calls ``torch.onnx.export``;
an end ``ends`` does not cover (sinusoidal positions) is still exported, and says why.
"""

from __future__ import annotations

from collections import Counter

import numpy as np
import onnxruntime as ort
import pytest
import torch

from buildfixtures import vary_norms_and_biases

import blueprint
from compiler.export import fuse, onnx_export
from compiler.export.build import default_compile
from compiler.export.io import Shape, input_names, make_inputs, output_names

TOLERANCE = 1e-5

BASE = """
name: {name}
vocab_size: 256
max_seq_len: 64
embed_dim: 64
num_layers: 2
norm: {{kind: {norm}, norm_eps: 1.0e-5}}
block:
  attention: {{num_heads: 4, num_kv_heads: 2}}
  ffn: {{kind: swiglu, hidden_dim: 96}}
"""
ENDS = {
    # multiplier, learned positions, embedding LayerNorm, untied biased head, scale and softcap
    "every-option": "embed_multiplier: 3.0\nembed_norm: true\npositional: {kind: learned}\n"
                    "head: {kind: causal_lm, bias: true, logit_scale: 0.5, softcap: 4.0}\n",
    # tied head, RoPE, RMSNorm, no final norm
    "no-final-norm": "tie_embeddings: true\nfinal_norm: false\npositional: {kind: rope, rope_base: 10000.0}\n",
    # sinusoidal positions: the embeddings are exported, the tail emitted
    "sinusoidal": "positional: {kind: sinusoidal}\n",
}


def _spec(name, tmp_path):
    norm = "layernorm" if name == "every-option" else "rmsnorm"
    path = tmp_path / f"{name}.yaml"
    path.write_text(BASE.format(name=name, norm=norm) + ENDS[name])
    return blueprint.load_spec(path)


def _session(module, spec, folder, fused):
    folder.mkdir()
    model = onnx_export.export_model(module, spec, kv_cache=True, fused=fused)
    onnx_export.save_model(model, folder, metadata={})
    return model, ort.InferenceSession(str(folder / "model.onnx"), providers=["CPUExecutionProvider"])


def _module(spec):
    torch.manual_seed(0)
    module = default_compile(spec, kv_cache=True).eval()
    vary_norms_and_biases(module)
    with torch.no_grad():
        module.embed.tokens.weight.mul_(10.0)  # logits of order 1 even without a final norm
    return module


@pytest.mark.parametrize("name", sorted(ENDS))
def test_emitted_ends_match_the_plain_export(name, tmp_path):
    spec = _spec(name, tmp_path)
    assert fuse.why_not(spec, kv_cache=True, dtype="fp32") is None
    module = _module(spec)
    _, plain = _session(module, spec, tmp_path / "plain", fused=False)
    model, fused = _session(module, spec, tmp_path / "fused", fused=True)
    emitted = fuse.emitted_ends(spec, input_names(spec, True))
    assert emitted == ({"tail"} if name == "sinusoidal" else {"embed", "tail"})
    ops = Counter(n.op_type for n in model.graph)
    if name == "every-option":
        # softcap; the embedding norm, layer 0's attention norm and the final norm
        assert ops["Tanh"] == 1 and ops["LayerNormalization"] == 3
    rng = np.random.default_rng(0)
    names = output_names(spec, True)
    first = make_inputs(spec, Shape(3, 6, 0), kv_cache=True, rng=rng, pad=[0, 2, 1])
    step = make_inputs(spec, Shape(2, 2, 5), kv_cache=True, rng=rng, pad=[0, 3])
    for feeds in (first, step):
        for n, a, b in zip(names, plain.run(names, feeds), fused.run(names, feeds)):
            assert a.shape == b.shape, n
            assert np.abs(a - b).max() <= TOLERANCE, (n, float(np.abs(a - b).max()))
    assert np.abs(plain.run(["logits"], first)[0]).max() > 0.5  # the comparison is not of near-zeros


def test_a_fused_export_with_both_ends_emitted_never_calls_the_exporter(tmp_path, monkeypatch):
    spec = _spec("every-option", tmp_path)
    module = _module(spec)

    def refuse(*args, **kwargs):
        raise AssertionError("torch.onnx.export was called")

    monkeypatch.setattr(torch.onnx, "export", refuse)
    model = onnx_export.export_model(module, spec, kv_cache=True, fused=True)
    assert model.opset_imports == {"": onnx_export.DEFAULT_OPSET, "com.microsoft": 1}
    assert model.producer_name == "blueprint"


def test_ends_not_emitted_are_named(tmp_path):
    spec = _spec("sinusoidal", tmp_path)
    assert "positional.kind sinusoidal" in fuse.why_not_embed(spec, input_names(spec, True))
    pooled = spec.model_copy(update={"head": blueprint.spec.schema.EmbeddingsHead(pooling="last")})
    assert "head.kind embeddings" in fuse.why_not_tail(pooled)
