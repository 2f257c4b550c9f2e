"""Hugging Face checkpoints -> canonical names: layouts, refusals and notes."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file, save_file

from blueprint.errors import BlueprintError
from compiler.naming import parameter_shapes
from compiler.weights import load_weights

from .hf_models import FAMILIES


@pytest.mark.parametrize("family", FAMILIES)
def test_every_parameter_mapped(references, family):
    ref = references[family]
    notes: list[str] = []
    weights = load_weights(ref.folder, ref.spec, on_note=notes.append)
    assert list(weights) == list(parameter_shapes(ref.spec))
    assert notes == []


def test_gpt2_conv1d_transposed_and_split(references):
    ref = references["gpt2"]
    w = load_weights(ref.folder, ref.spec)
    attn = ref.model.transformer.h[1].attn
    d = ref.spec.embed_dim
    c_attn = attn.c_attn.weight  # Conv1D [in, out]
    assert torch.equal(w["layers.1.attn.k_proj.weight"], c_attn[:, d : 2 * d].t())
    assert torch.equal(w["layers.1.attn.v_proj.bias"], attn.c_attn.bias[2 * d :])
    assert torch.equal(w["layers.1.ffn.down_proj.weight"], ref.model.transformer.h[1].mlp.c_proj.weight.t())
    assert "head.proj.weight" not in w  # tied: stored once, as the embedding


def test_modernbert_wi_halves(references):
    ref = references["modernbert"]
    w = load_weights(ref.folder, ref.spec)
    wi = ref.model.model.layers[2].mlp.Wi.weight
    hidden = ref.spec.layer(2).ffn.hidden_dim
    # transformers: input, gate = Wi(x).chunk(2); act(input) * gate -> the first half is activated
    assert torch.equal(w["layers.2.ffn.gate_proj.weight"], wi[:hidden])
    assert torch.equal(w["layers.2.ffn.up_proj.weight"], wi[hidden:])
    assert "layers.0.attn_norm.weight" not in w and "layers.1.attn_norm.weight" in w


def test_phi_shared_norm_fills_both_norms_of_a_parallel_layer_only(references):
    ref = references["phi"]
    w = load_weights(ref.folder, ref.spec)
    norm = ref.model.model.layers[1].input_layernorm.weight
    assert torch.equal(w["layers.1.attn_norm.weight"], norm) and torch.equal(w["layers.1.ffn_norm.weight"], norm)
    assert w["layers.1.attn_norm.weight"].data_ptr() != w["layers.1.ffn_norm.weight"].data_ptr()  # two parameters
    sequential = ref.spec.model_copy(update={"block": ref.spec.block.model_copy(update={"residual": "sequential"})})
    with pytest.raises(BlueprintError, match="'model.layers.0.input_layernorm.bias' is one norm shared"):
        load_weights(ref.folder, sequential)


def test_gpt_neox_interleaved_qkv(tmp_path):
    import transformers as T

    from blueprint.hf import import_folder
    from blueprint.spec.schema import ModelSpec

    cfg = T.GPTNeoXConfig(num_hidden_layers=1, hidden_size=32, num_attention_heads=4, intermediate_size=64,
                          vocab_size=50, bos_token_id=0, eos_token_id=2, max_position_embeddings=64)
    model = T.GPTNeoXForCausalLM(cfg)
    model.save_pretrained(tmp_path)
    spec = ModelSpec.model_validate(import_folder(tmp_path))
    w = load_weights(tmp_path, spec)
    qkv = model.gpt_neox.layers[0].attention.query_key_value.weight  # rows [H, 3, hd]
    per_head = qkv.view(4, 3, 8, 32)
    assert torch.equal(w["layers.0.attn.k_proj.weight"], per_head[:, 1].reshape(32, 32))


def test_gpt_bigcode_without_multi_query_is_per_head_grouped(tmp_path):
    """The test row covers MQA (c_attn [q; k; v], unequal sizes); without ``multi_query`` the same
    ``qkv_grouped`` rule reads c_attn as [H, 3, hd]: same logits as transformers, and export-hf
    writes the tensor back bit for bit (export-hf itself names such a spec gpt2, which
    computes the same function)."""
    import transformers as T

    from blueprint.hf import import_folder
    from blueprint.spec.schema import ModelSpec
    from compiler import compile_spec
    from compiler.weights.hf_export import to_hf_state

    from .hf_models import randomize
    from .parity import max_abs_on, padded_batch

    cfg = T.GPTBigCodeConfig(n_layer=1, n_embd=32, n_head=4, n_positions=64, vocab_size=96, multi_query=False,
                             resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0, bos_token_id=1, eos_token_id=2)
    model = T.GPTBigCodeForCausalLM(cfg)
    randomize(model, 1)
    model.eval().save_pretrained(tmp_path)
    spec = ModelSpec.model_validate(import_folder(tmp_path))
    assert spec.block.attention.kv_heads == 4
    w = load_weights(tmp_path, spec)
    c_attn = model.transformer.h[0].attn.c_attn.weight  # rows [H, 3, hd]
    assert torch.equal(w["layers.0.attn.k_proj.weight"], c_attn.view(4, 3, 8, 32)[:, 1].reshape(32, 32))
    gm = compile_spec(spec)
    gm.load_state_dict(w, strict=False)
    ids, mask, pos = padded_batch(14, pad_left=4, seed=3)
    with torch.no_grad():
        expected = model(input_ids=ids, attention_mask=mask, position_ids=pos).logits
        got = gm.eval()(ids, mask, pos)["logits"]
    assert max_abs_on(mask, got, expected) < 1e-4
    back = to_hf_state(w, spec, json.loads((tmp_path / "config.json").read_text()))
    assert torch.equal(back["transformer.h.0.attn.c_attn.weight"], c_attn)


def test_unknown_checkpoint_tensor_named(references, tmp_path):
    ref = references["llama"]
    state = load_file(str(ref.folder / "model.safetensors"))
    state["model.layers.0.self_attn.rel_bias.weight"] = torch.zeros(4)
    save_file(state, str(tmp_path / "model.safetensors"), metadata={"format": "pt"})
    (tmp_path / "config.json").write_text((ref.folder / "config.json").read_text())
    with pytest.raises(BlueprintError, match="model.layers.0.self_attn.rel_bias.weight"):
        load_weights(tmp_path, ref.spec)


def _hf_copy(ref, tmp_path, mutate):
    """The reference's HF folder with its state dict changed by ``mutate``."""
    state = load_file(str(ref.folder / "model.safetensors"))
    mutate(state)
    save_file(state, str(tmp_path / "model.safetensors"), metadata={"format": "pt"})
    (tmp_path / "config.json").write_text((ref.folder / "config.json").read_text())
    return tmp_path


def test_hf_tensor_problems_name_the_checkpoint_tensor(references, tmp_path):
    """Shape, non-finite and misplaced tensors of an HF folder are named as the checkpoint spells
    them (and canonically); every problem is reported in one error."""
    ref = references["llama"]

    def mutate(state):
        state["model.layers.0.self_attn.q_proj.weight"] = torch.zeros(8, 32)
        state["model.layers.1.mlp.up_proj.weight"][0, 0] = float("inf")
        del state["model.layers.1.self_attn.k_proj.weight"]

    with pytest.raises(BlueprintError) as info:
        load_weights(_hf_copy(ref, tmp_path, mutate), ref.spec)
    msg = info.value.message
    assert "'layers.0.attn.q_proj.weight' (checkpoint tensor 'model.layers.0.self_attn.q_proj.weight') has shape [8, 32]" in msg
    assert "'layers.1.ffn.up_proj.weight' (checkpoint tensor 'model.layers.1.mlp.up_proj.weight') contains 1 non-finite" in msg
    assert "missing tensors the spec needs: layers.1.attn.k_proj.weight" in msg


def test_hf_tensor_without_place_in_spec_named(references, tmp_path):
    ref = references["bert"]  # a masked-LM spec: a classifier has no place in it
    folder = _hf_copy(ref, tmp_path, lambda s: s.__setitem__("classifier.weight", torch.zeros(2, 32)))
    with pytest.raises(BlueprintError, match=r"head.classifier.weight \(checkpoint tensor 'classifier.weight'\)"):
        load_weights(folder, ref.spec)


def test_tied_head_that_differs_refused(references, tmp_path):
    ref = references["gpt2"]
    state = load_file(str(ref.folder / "model.safetensors"))
    state["lm_head.weight"] = state["transformer.wte.weight"] + 1.0
    save_file(state, str(tmp_path / "model.safetensors"), metadata={"format": "pt"})
    (tmp_path / "config.json").write_text((ref.folder / "config.json").read_text())
    with pytest.raises(BlueprintError, match="ties embeddings.*lm_head.weight"):
        load_weights(tmp_path, ref.spec)


def test_sharded_hf_folder(references, tmp_path):
    ref = references["llama"]
    state = load_file(str(ref.folder / "model.safetensors"))
    names = sorted(state)
    shards = {"model-00001-of-00002.safetensors": names[::2], "model-00002-of-00002.safetensors": names[1::2]}
    for file, ns in shards.items():
        save_file({n: state[n] for n in ns}, str(tmp_path / file), metadata={"format": "pt"})
    index = {"metadata": {}, "weight_map": {n: f for f, ns in shards.items() for n in ns}}
    (tmp_path / "model.safetensors.index.json").write_text(json.dumps(index))
    (tmp_path / "config.json").write_text((ref.folder / "config.json").read_text())
    sharded = load_weights(tmp_path, ref.spec)
    single = load_weights(ref.folder, ref.spec)
    assert all(torch.equal(sharded[n], single[n]) for n in single)


def test_minilm_pooler_reported_not_silent(minilm_dir):
    from blueprint.hf import import_folder
    from blueprint.spec.schema import ModelSpec

    spec = ModelSpec.model_validate(import_folder(minilm_dir))
    notes: list[str] = []
    weights = load_weights(minilm_dir, spec, on_note=notes.append)
    assert len(weights) == len(parameter_shapes(spec))
    assert any("pooler.dense.weight" in n and "pools by mean" in n for n in notes), notes


def test_pooler_used_when_spec_has_one(minilm_dir):
    from blueprint.hf import config_to_spec
    from blueprint.spec.schema import ModelSpec

    config = json.loads((minilm_dir / "config.json").read_text())
    spec = ModelSpec.model_validate(config_to_spec(config))  # BertModel -> cls + dense_tanh pooler
    weights = load_weights(minilm_dir, spec, on_note=lambda m: None)
    assert "head.pooler.weight" in weights


def test_file_inside_hf_folder_is_mapped(references):
    ref = references["bert"]
    direct = load_weights(ref.folder / "model.safetensors", ref.spec)
    assert all(torch.equal(direct[n], t) for n, t in load_weights(ref.folder, ref.spec).items())


def test_unknown_model_type_in_weights_folder(references, tmp_path):
    ref = references["llama"]
    (tmp_path / "model.safetensors").write_bytes((ref.folder / "model.safetensors").read_bytes())
    config = json.loads((ref.folder / "config.json").read_text())
    (tmp_path / "config.json").write_text(json.dumps({**config, "model_type": "mamba"}))
    with pytest.raises(BlueprintError, match="model_type 'mamba' has no weight-name map"):
        load_weights(tmp_path, ref.spec)


def test_checkpoint_of_another_family_reports_names(references):
    ref, other = references["llama"], references["gpt2"]
    with pytest.raises(BlueprintError) as info:
        load_weights(other.folder, ref.spec)
    # GPT-2's fused c_attn cannot be split into this spec's GQA sizes; the full name is given
    assert "'transformer.h.0.attn.c_attn.bias' has 96 rows" in info.value.message


def test_every_registered_family_has_one_test_row():
    """Adding a family = one module in blueprint/families + one row in tests/hf/hf_models.py."""
    from blueprint.families import model_types

    from .hf_models import DECODERS, ENCODERS, _configs

    assert sorted(_configs()) == model_types()
    assert sorted(DECODERS + ENCODERS) == model_types()
