"""compiler.inspect.capture: intermediate tensors by fx node name, layer index, kind and module
path, checked against the model's own submodules run by hand (no graph)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

import blueprint
from blueprint.errors import BlueprintError
from compiler import compile_spec
from compiler.inspect import capture

SPECS = Path(__file__).resolve().parents[2] / "specs"


@pytest.fixture(scope="module")
def llama():
    spec = blueprint.load_spec(SPECS / "llama-tiny.yaml")
    torch.manual_seed(0)
    gm = compile_spec(spec, attention="analysis").eval()
    s = 6
    ids = torch.randint(0, spec.vocab_size, (2, s), generator=torch.Generator().manual_seed(1))
    inputs = {"input_ids": ids, "attention_mask": torch.ones_like(ids), "position_ids": torch.arange(s).expand(2, s)}
    return spec, gm, inputs


def by_hand(gm, inputs):
    """Embeddings, then each layer module, then final norm and head, called directly."""
    mask, pos = inputs["attention_mask"], inputs["position_ids"]
    x = gm.embed(inputs["input_ids"], pos, None)
    hidden = []
    for layer in gm.layers.children():  # a plain Module in the GraphModule
        x = layer(x, mask, pos)
        hidden.append(x)
    return hidden, gm.head(gm.final_norm(x), mask)


def test_layers_nodes_kinds_and_modules(llama):
    spec, gm, inputs = llama
    with torch.no_grad():
        hidden, logits = by_hand(gm, inputs)
        seen = capture(gm, inputs, [0, 1, "embed", "head", "layers.1.attn.probs", "attention"])
    assert list(seen) == ["layers_0", "layers_1", "embed", "head", "layers.1.attn.probs",
                          "layers.0.attn.probs", "output"]
    torch.testing.assert_close(seen["layers_0"], hidden[0], rtol=0, atol=0)
    torch.testing.assert_close(seen["layers_1"], hidden[1], rtol=0, atol=0)
    torch.testing.assert_close(seen["head"], logits, rtol=0, atol=0)
    torch.testing.assert_close(seen["output"]["logits"], logits, rtol=0, atol=0)
    probs = seen["layers.1.attn.probs"]
    assert probs.shape == (2, 4, 6, 6)  # [b, H, s, t]
    torch.testing.assert_close(probs.sum(-1), torch.ones(2, 4, 6))
    assert probs.triu(1).abs().max() == 0  # causal


def test_kind_selects_every_layer_and_positional_inputs_work(llama):
    spec, gm, inputs = llama
    with torch.no_grad():
        seen = capture(gm, list(inputs.values()), ["block"])
    assert [k for k in seen if k != "output"] == ["layers_0", "layers_1"]


def test_cached_graph_layer_is_the_hidden_state():
    spec = blueprint.load_spec(SPECS / "llama-tiny.yaml")
    torch.manual_seed(0)
    gm = compile_spec(spec, kv_cache=True, attention="analysis").eval()
    s, past = 3, 2
    feeds = [torch.randint(0, 256, (1, s)), torch.ones(1, past + s, dtype=torch.int64),
             torch.arange(past, past + s)[None]]
    for _ in range(spec.num_layers):
        feeds += [torch.randn(1, 4, past, 16), torch.randn(1, 4, past, 16)]  # [b, KV, past, hd]
    with torch.no_grad():
        seen = capture(gm, feeds, [1, "attention"])
    assert seen["hidden_1"].shape == (1, s, 64)
    assert seen["layers.0.attn.probs"].shape == (1, 4, s, past + s)


def test_bad_selectors_and_inputs_are_user_errors(llama):
    spec, gm, inputs = llama
    with pytest.raises(BlueprintError, match="'layers.7' is not a node, a layer, a kind or a module"):
        capture(gm, inputs, ["layers.7"])
    with pytest.raises(BlueprintError, match="no layer 5"):
        capture(gm, inputs, [5])
    with pytest.raises(BlueprintError, match="input 'position_ids' is missing"):
        capture(gm, {"input_ids": inputs["input_ids"], "attention_mask": inputs["attention_mask"]}, [0])
    fused = compile_spec(spec).eval()
    with pytest.raises(BlueprintError, match="no attention probabilities"):
        capture(fused, inputs, ["attention"])
    assert not any(m._forward_hooks for m in gm.modules())  # hooks are removed again
