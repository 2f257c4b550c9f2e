"""config.json -> spec: each family from transformers' own config classes, and every refusal."""

from __future__ import annotations

import json
import os

import pytest
import yaml

from blueprint.errors import BlueprintError
from blueprint.hf import config_to_spec
from blueprint.spec.schema import ModelSpec


def _config(cls_name: str, **kw) -> dict:
    import transformers

    return getattr(transformers, cls_name)(**kw).to_dict()


def _spec(config: dict, **kw) -> ModelSpec:
    return ModelSpec.model_validate(config_to_spec(config, name="t", **kw))


def test_gpt2():
    spec = _spec(_config("GPT2Config", n_layer=3, n_embd=48, n_head=6, vocab_size=100, n_positions=32,
                         bos_token_id=0, eos_token_id=99))
    layer = spec.layer(2)
    assert (spec.num_layers, spec.embed_dim, spec.max_seq_len) == (3, 48, 32)
    assert spec.tie_embeddings and spec.final_norm and spec.positional.kind == "learned"
    assert layer.norm_placement == "pre" and layer.ffn.activation == "gelu_tanh" and layer.ffn.hidden_dim == 192
    assert layer.attention.qkv_bias and layer.attention.out_bias and layer.attention.causal
    assert spec.tokenizer.eos_id == 99


def test_llama_gqa_and_rope_base():
    spec = _spec(_config("LlamaConfig", num_hidden_layers=2, hidden_size=64, num_attention_heads=8,
                         num_key_value_heads=2, intermediate_size=100, vocab_size=50,
                         rope_parameters={"rope_theta": 500000.0, "rope_type": "default"},
                         bos_token_id=1, eos_token_id=2))
    a = spec.layer(0).attention
    assert (a.num_heads, a.kv_heads, a.head_dim) == (8, 2, 8)
    assert spec.positional.rope_base == 500000.0 and spec.norm.kind == "rmsnorm"
    assert spec.layer(0).ffn.kind == "swiglu" and spec.layer(0).ffn.hidden_dim == 100
    assert not spec.tie_embeddings and a.window is None


def test_mistral_window():
    spec = _spec(_config("MistralConfig", num_hidden_layers=2, hidden_size=32, num_attention_heads=4,
                         num_key_value_heads=1, intermediate_size=40, vocab_size=50, sliding_window=7,
                         bos_token_id=1, eos_token_id=2))
    assert all(l.attention.window == 7 for l in spec.resolved_layers())


def test_qwen2_bias_and_qwen3_qk_norm():
    q2 = _spec(_config("Qwen2Config", num_hidden_layers=2, hidden_size=32, num_attention_heads=4,
                       num_key_value_heads=2, intermediate_size=40, vocab_size=50))
    assert q2.block.attention.qkv_bias and not q2.block.attention.out_bias
    q3 = _spec(_config("Qwen3Config", num_hidden_layers=2, hidden_size=32, num_attention_heads=4,
                       num_key_value_heads=2, head_dim=16, intermediate_size=40, vocab_size=50))
    assert q3.block.attention.qk_norm and q3.block.attention.head_dim == 16


def test_gpt_neox_parallel_partial_rotary():
    spec = _spec(_config("GPTNeoXConfig", num_hidden_layers=2, hidden_size=32, num_attention_heads=4,
                         intermediate_size=64, vocab_size=50, bos_token_id=0, eos_token_id=2))
    assert spec.block.residual == "parallel" and spec.positional.rotary_fraction == 0.25


@pytest.mark.parametrize("field, message", [
    ("use_parallel_residual", "parallel StableLM"),
    ("qk_layernorm", "its own weights per head"),
])
def test_stablelm_variants_the_spec_cannot_express_are_refused(field, message):
    config = _config("StableLmConfig", num_hidden_layers=2, hidden_size=32, num_attention_heads=4, num_key_value_heads=4,
                     intermediate_size=48, vocab_size=50)
    assert _spec(config).positional.rotary_fraction == 0.25  # StableLM's default
    with pytest.raises(BlueprintError, match=f"'{field}' = True is not supported for model_type 'stablelm'") as info:
        config_to_spec({**config, field: True})
    assert message in info.value.hint


def test_phi_parallel_partial_rotary_head_bias():
    spec = _spec(_config("PhiConfig", num_hidden_layers=2, hidden_size=64, num_attention_heads=4,
                         num_key_value_heads=2, intermediate_size=96, vocab_size=50, qk_layernorm=True))
    layer = spec.layer(1)
    assert layer.residual == "parallel" and layer.norm_placement == "pre" and layer.attn_norm
    assert spec.positional.rotary_fraction == 0.5 and spec.norm.kind == "layernorm" and spec.norm.bias
    assert layer.attention.kv_heads == 2 and layer.attention.qk_norm and layer.attention.qkv_bias
    assert layer.ffn.activation == "gelu_tanh" and spec.head.bias and not spec.tie_embeddings


@pytest.mark.parametrize("cls, key, fraction", [
    ("GPTNeoXConfig", "partial_rotary_factor", 0.3),  # 8 * 0.3 = 2.4 features
    ("PhiConfig", "partial_rotary_factor", 0.375),  # 8 * 0.375 = 3, odd
])
def test_partial_rotary_that_is_not_an_even_feature_count_refused(cls, key, fraction):
    cfg = _config(cls, num_hidden_layers=1, hidden_size=32, num_attention_heads=4, intermediate_size=64,
                  vocab_size=50, bos_token_id=0, eos_token_id=2)
    cfg["rope_parameters"] = {"rope_theta": 10000.0, "rope_type": "default", key: fraction}
    with pytest.raises(BlueprintError, match=f"'{key}' = {fraction}"):
        config_to_spec(cfg)


@pytest.mark.parametrize("attn, message", [
    ({"qk_ln": True}, "'qk_ln' = True is not supported for model_type 'mpt \\(attn_config\\)'"),
    ({"clip_qkv": 6.0}, "'clip_qkv' = 6.0"),
    ({"alibi_bias_max": 16}, "'alibi_bias_max' = 16"),
])
def test_mpt_attn_config_read_field_by_field(attn, message):
    """MPT keeps its attention settings in a nested config: each is read, or refused by name."""
    spec = _spec(_config("MptConfig", d_model=48, n_heads=6, n_layers=2, vocab_size=50, max_seq_len=32,
                         attn_config={"softmax_scale": 0.25}))
    assert spec.positional.kind == "alibi" and spec.block.attention.softmax_scale == 0.25
    assert not spec.norm.bias and spec.block.ffn.hidden_dim == 192 and not spec.block.ffn.bias
    with pytest.raises(BlueprintError, match=message):
        _spec(_config("MptConfig", d_model=48, n_heads=6, n_layers=2, vocab_size=50, attn_config=attn))


def test_bert_pruned_heads_refused():
    """Pruned heads change the shapes of some layers; dropping the field would describe another model."""
    cfg = _config("BertConfig", num_hidden_layers=2, hidden_size=32, num_attention_heads=4, vocab_size=50,
                  intermediate_size=64)
    cfg["pruned_heads"] = {"1": [0, 2]}
    with pytest.raises(BlueprintError, match="'pruned_heads'"):
        config_to_spec(cfg)
    cfg["pruned_heads"] = {}
    assert _spec(cfg).layer(1).attention.num_heads == 4


def test_bert_masked_lm_and_plain():
    kw = dict(num_hidden_layers=2, hidden_size=32, num_attention_heads=4, intermediate_size=64, vocab_size=50)
    cfg = _config("BertConfig", **kw)
    cfg["architectures"] = ["BertForMaskedLM"]
    mlm = _spec(cfg)
    assert mlm.head.kind == "masked_lm" and mlm.tie_embeddings and mlm.block.norm_placement == "post"
    assert mlm.embed_norm and not mlm.final_norm and mlm.type_vocab_size == 2 and mlm.norm.norm_eps == 1e-12
    cfg["architectures"] = ["BertModel"]
    plain = _spec(cfg)
    assert plain.head.kind == "embeddings" and plain.head.pooler == "dense_tanh"


def test_modernbert_layers():
    cfg = _config("ModernBertConfig", num_hidden_layers=7, hidden_size=32, num_attention_heads=4,
                  intermediate_size=48, vocab_size=64, local_attention=10, pad_token_id=0,
                  bos_token_id=1, eos_token_id=2, cls_token_id=1, sep_token_id=2)
    cfg["architectures"] = ["ModernBertForMaskedLM"]
    spec = _spec(cfg)
    layers = spec.resolved_layers()
    for i, layer in enumerate(layers):
        is_global = i % 3 == 0
        assert layer.attention.window == (None if is_global else 10), i
        assert layer.attention.rope_base == (160000.0 if is_global else 10000.0), i
        assert layer.attn_norm == (i != 0), i
        assert layer.ffn.kind == "geglu" and not layer.attention.qkv_bias and not layer.ffn.bias
    assert spec.norm.kind == "layernorm" and not spec.norm.bias and spec.embed_norm and spec.final_norm
    assert spec.head.kind == "masked_lm" and not spec.head.dense_bias and spec.head.decoder_bias


def test_unknown_field_is_named():
    cfg = _config("LlamaConfig", num_hidden_layers=1, hidden_size=16, num_attention_heads=2, vocab_size=10)
    cfg["attn_logit_softcapping"] = 50.0
    with pytest.raises(BlueprintError, match="'attn_logit_softcapping'"):
        config_to_spec(cfg)


@pytest.mark.parametrize("params", [  # linear, llama3, yarn import (tests/hf/test_rope_scaling_families.py)
    {"rope_theta": 10000.0, "rope_type": "dynamic", "factor": 2.0},
    {"rope_theta": 10000.0, "rope_type": "proportional", "factor": 8.0},
])
def test_rope_scaling_refused(params):
    cfg = _config("LlamaConfig", num_hidden_layers=1, hidden_size=16, num_attention_heads=2, vocab_size=10)
    cfg["rope_parameters"] = params
    with pytest.raises(BlueprintError, match="rope scaling"):
        config_to_spec(cfg)


def test_llama_refuses_longrope():
    cfg = _config("LlamaConfig", num_hidden_layers=1, hidden_size=16, num_attention_heads=2, vocab_size=10)
    cfg["rope_parameters"] = {"rope_theta": 10000.0, "rope_type": "longrope", "factor": 4.0,
                              "original_max_position_embeddings": 16, "short_factor": [1.0] * 4,
                              "long_factor": [2.0] * 4}
    with pytest.raises(BlueprintError, match="longrope"):
        config_to_spec(cfg)


def test_old_style_rope_scaling_refused():
    cfg = {"model_type": "llama", "hidden_size": 16, "num_attention_heads": 2, "num_hidden_layers": 1,
           "intermediate_size": 20, "vocab_size": 10, "max_position_embeddings": 64,
           "rope_theta": 10000.0, "rope_scaling": {"type": "dynamic", "factor": 2.0}}
    with pytest.raises(BlueprintError, match="rope scaling"):
        config_to_spec(cfg)


def test_unsupported_value_named():
    cfg = _config("GPT2Config", n_layer=1, n_embd=16, n_head=2, vocab_size=10, bos_token_id=0, eos_token_id=1)
    cfg["scale_attn_by_inverse_layer_idx"] = True
    with pytest.raises(BlueprintError, match="scale_attn_by_inverse_layer_idx"):
        config_to_spec(cfg)
    cfg = _config("BertConfig", num_hidden_layers=1, hidden_size=16, num_attention_heads=2, vocab_size=10)
    cfg["position_embedding_type"] = "relative_key"
    with pytest.raises(BlueprintError, match="position_embedding_type"):
        config_to_spec(cfg)


def test_unknown_model_type():
    with pytest.raises(BlueprintError, match="model_type 't5' is not supported"):
        config_to_spec({"model_type": "t5"})


def test_negative_token_id_means_none_and_every_eos_id_is_kept():
    """Early LLaMA conversions write pad_token_id: -1 for "no pad token"; chat models and
    Llama 3 list several eos ids, and generation must stop on each of them."""
    spec = _spec({**_LLAMA, "bos_token_id": 1, "eos_token_id": [2, 3], "pad_token_id": -1})
    assert (spec.tokenizer.bos_id, spec.tokenizer.eos_id, spec.tokenizer.pad_id) == (1, [2, 3], None)
    assert spec.tokenizer.eos_ids == [2, 3]
    assert _spec({**_LLAMA, "eos_token_id": [2]}).tokenizer.eos_id == 2


@pytest.mark.parametrize("cls, sizes, dropped", [
    ("GPT2Config", dict(n_layer=1, n_embd=16, n_head=2, vocab_size=10), {"bos_id", "eos_id"}),  # 50256
    ("ModernBertConfig", dict(num_hidden_layers=1, hidden_size=16, num_attention_heads=2, intermediate_size=24,
                              vocab_size=10), {"bos_id", "eos_id", "pad_id"}),  # 50281.. defaults
])
def test_special_ids_outside_the_vocabulary_are_left_out_with_a_note(cls, sizes, dropped):
    """transformers loads these default configs with a warning; so does import-hf."""
    notes: list[str] = []
    spec = ModelSpec.model_validate(config_to_spec(_config(cls, **sizes), notes=notes))
    kept = {k for k in ("bos_id", "eos_id", "pad_id") if spec.tokenizer and getattr(spec.tokenizer, k) is not None}
    assert not kept & dropped
    assert len(notes) >= len(dropped) and all("outside the vocabulary (10 ids)" in n for n in notes)


def test_eos_list_partly_outside_the_vocabulary_keeps_the_rest():
    notes: list[str] = []
    spec = ModelSpec.model_validate(config_to_spec({**_LLAMA, "eos_token_id": [2, 999999, 3]}, notes=notes))
    assert spec.tokenizer.eos_id == [2, 3] and len(notes) == 1 and "999999" in notes[0]


def test_bookkeeping_fields_transformers_writes_are_ignored():
    """save_pretrained of a model loaded from a GGUF writes _model_name_or_path; these fields
    name, version or switch things but never change the computed function."""
    cfg = {**_LLAMA, "_model_name_or_path": "Smollm2 135M", "transformers_version": "5.24.0", "dtype": "float32",
           "torch_dtype": "float32", "architectures": ["LlamaForCausalLM"], "use_cache": True,
           "_attn_implementation_autoset": True, "unk_token_id": 0}
    assert _spec(cfg) == _spec(_LLAMA)


def test_old_modernbert_config_fields():
    """transformers 4.x configs: global_attn_every_n_layers and global/local_rope_theta."""
    cfg = {"model_type": "modernbert", "architectures": ["ModernBertModel"], "vocab_size": 50,
           "hidden_size": 32, "intermediate_size": 48, "num_hidden_layers": 4, "num_attention_heads": 4,
           "max_position_embeddings": 64, "global_attn_every_n_layers": 2, "global_rope_theta": 80000.0,
           "local_rope_theta": 5000.0, "local_attention": 16, "norm_eps": 1e-5, "norm_bias": False}
    spec = _spec(cfg)
    assert [l.attention.window for l in spec.resolved_layers()] == [None, 16, None, 16]
    assert [l.attention.rope_base for l in spec.resolved_layers()] == [80000.0, 5000.0, 80000.0, 5000.0]
    assert spec.head.kind == "embeddings" and spec.head.pooling == "mean"


def test_import_hf_cli_minilm(tmp_path, minilm_dir):
    from blueprint.cli import main

    out = tmp_path / "specs" / "minilm.yaml"
    assert main(["import-hf", str(minilm_dir), "-o", str(out), "--name", "all-MiniLM-L6-v2"]) == 0
    text = out.read_text()
    assert "norm_eps: 1.0e-12" in text  # YAML 1.1 reads this as a float
    data = yaml.safe_load(text)
    assert isinstance(data["norm"]["norm_eps"], float)
    assert data["head"] == {"kind": "embeddings", "pooling": "mean", "pooler": "none", "normalize": True}
    assert (out.parent / data["tokenizer"]["path"]).resolve() == (minilm_dir / "tokenizer.json").resolve()
    assert data["tokenizer"]["vocab_size"] == 30522 and data["tokenizer"]["mask_id"] == 103
    assert data["tokenizer"]["pad_id"] == 0


def test_sentence_transformers_max_pooling_refused(tmp_path, minilm_dir):
    import shutil

    folder = tmp_path / "st"
    shutil.copytree(minilm_dir, folder, ignore=shutil.ignore_patterns("*.safetensors"))
    pooling = json.loads((folder / "1_Pooling" / "config.json").read_text())
    pooling.update(pooling_mode_mean_tokens=False, pooling_mode_max_tokens=True)
    (folder / "1_Pooling" / "config.json").write_text(json.dumps(pooling))
    from blueprint.hf import import_folder

    with pytest.raises(BlueprintError, match="pooling_mode_max_tokens"):
        import_folder(folder)


def test_import_hf_no_torch():
    import subprocess
    import sys

    code = ("import sys, blueprint.hf, blueprint.hf.folder, blueprint.hf.to_config, "
            "blueprint.commands.import_hf; assert 'torch' not in sys.modules, 'torch imported'")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_tokenizer_path_relative_near_the_model_absolute_across_the_tree(tmp_path, minilm_dir):
    import shutil

    from blueprint.hf.folder import tokenizer_fields

    model = tmp_path / "models" / "m"
    shutil.copytree(minilm_dir, model, ignore=shutil.ignore_patterns("*.safetensors"))
    assert tokenizer_fields(model, tmp_path / "specs")["path"] == "../models/m/tokenizer.json"
    if os.path.commonpath([minilm_dir.resolve(), tmp_path.resolve()]) == "/":  # site-packages vs /tmp
        far = tokenizer_fields(minilm_dir, tmp_path / "specs")["path"]
        assert far == str((minilm_dir / "tokenizer.json").resolve())


def test_tokenizer_without_tokenizer_json_is_noted(tmp_path, minilm_dir, capsys):
    import shutil

    from blueprint.cli import main

    folder = tmp_path / "m"
    shutil.copytree(minilm_dir, folder, ignore=shutil.ignore_patterns("*.safetensors", "tokenizer.json"))
    assert main(["import-hf", str(folder), "-o", str(tmp_path / "m.yaml")]) == 0
    err = capsys.readouterr().err
    assert "has tokenizer files (vocab.txt) but no tokenizer.json" in err
    assert "path" not in yaml.safe_load((tmp_path / "m.yaml").read_text())["tokenizer"]


_LLAMA = {"model_type": "llama", "hidden_size": 16, "num_attention_heads": 2, "num_hidden_layers": 1,
          "vocab_size": 10, "intermediate_size": 8, "max_position_embeddings": 8}


@pytest.mark.parametrize("change, named", [
    ({"hidden_size": "16"}, "'hidden_size' = '16' must be a whole number"),
    ({"num_attention_heads": 0}, "'num_attention_heads' = 0 must be a whole number >= 1"),
    ({"rms_norm_eps": "1e-6"}, "'rms_norm_eps' = '1e-6' must be a number"),
    ({"tie_word_embeddings": "no"}, "'tie_word_embeddings' = 'no' must be true or false"),
    ({"rope_parameters": "x"}, "'rope_parameters' = 'x' must be an object"),
    ({"eos_token_id": "2"}, "'eos_token_id' = '2' must be a token id"),
    ({"model_type": "bert", "eos_token_id": [2, "x"]}, "'eos_token_id' = \\[2, 'x'\\] must be a token id"),
    ({"rope_parameters": {"rope_theta": "x"}}, "malformed value for model_type 'llama'"),
    ({"model_type": "bert", "num_attention_heads": 3}, "'hidden_size' \\(16\\) is not a multiple of 'num_attention_heads' \\(3\\)"),
    ({"model_type": "bert", "architectures": "BertModel"}, "'architectures' = 'BertModel' must be a list"),
])
def test_malformed_config_values_named(tmp_path, capsys, change, named):
    """A malformed config.json is a located user error, never a traceback."""
    from blueprint.cli import main

    (tmp_path / "config.json").write_text(json.dumps({**_LLAMA, **change}))
    with pytest.raises(BlueprintError, match=named):
        config_to_spec(json.loads((tmp_path / "config.json").read_text()))
    assert main(["import-hf", str(tmp_path)]) == 1
    assert "Traceback" not in capsys.readouterr().err


@pytest.mark.parametrize("file, text", [
    ("tokenizer.json", "[]"),
    ("tokenizer.json", '{"model": {"vocab": {"a": "x"}}}'),
    ("modules.json", "[1]"),
    ("modules.json", "{}"),
    ("1_Pooling/config.json", "[]"),
])
def test_malformed_folder_files_named(tmp_path, minilm_dir, file, text):
    import shutil

    from blueprint.hf import import_folder

    folder = tmp_path / "m"
    shutil.copytree(minilm_dir, folder, ignore=shutil.ignore_patterns("*.safetensors"))
    (folder / file).write_text(text)
    with pytest.raises(BlueprintError, match=file.split("/")[0]):
        import_folder(folder)


def test_import_hf_cli_outputs(tmp_path, minilm_dir, capsys):
    from blueprint.cli import main

    (tmp_path / "adir").mkdir()
    (tmp_path / "afile").write_text("x")
    assert main(["import-hf", str(minilm_dir), "-o", str(tmp_path / "adir")]) == 1
    assert main(["import-hf", str(minilm_dir), "-o", str(tmp_path / "afile" / "m.yaml")]) == 1
    err = capsys.readouterr().err
    assert "is a folder; name the spec file" in err and "cannot write" in err and "Traceback" not in err
    assert main(["import-hf", str(minilm_dir / "config.json"), "-o", str(tmp_path / "m.yaml")]) == 0


def test_import_hf_never_overwrites_without_force(tmp_path, minilm_dir, capsys):
    from blueprint.cli import main

    mine = tmp_path / "m.yaml"
    mine.write_text("# my hand-written spec\n")
    assert main(["import-hf", str(minilm_dir), "-o", str(mine)]) == 1
    assert "already exists; refusing to overwrite it" in capsys.readouterr().err
    assert mine.read_text() == "# my hand-written spec\n"
    assert main(["import-hf", str(minilm_dir), "-o", str(mine), "--force"]) == 0
    assert "Imported from" in mine.read_text()
    # a device or FIFO is never swapped for a file, even with --force (-o /dev/null once replaced
    # the machine's /dev/null with a regular file through the atomic rename)
    import os
    import stat

    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    assert main(["import-hf", str(minilm_dir), "-o", str(fifo), "--force"]) == 1
    assert "exists and is not a regular file" in capsys.readouterr().err
    assert stat.S_ISFIFO(os.stat(fifo).st_mode)


# config.json files in the form the Hub publishes them (transformers 4.x era, every key written).
_HUB = {
    "answerdotai/ModernBERT-base": {
        "architectures": ["ModernBertForMaskedLM"], "attention_bias": False, "attention_dropout": 0.0,
        "bos_token_id": 50281, "classifier_activation": "gelu", "classifier_bias": False, "classifier_dropout": 0.0,
        "classifier_pooling": "mean", "cls_token_id": 50281, "decoder_bias": True, "deterministic_flash_attn": False,
        "embedding_dropout": 0.0, "eos_token_id": 50282, "global_attn_every_n_layers": 3,
        "global_rope_theta": 160000.0, "gradient_checkpointing": False, "hidden_activation": "gelu",
        "hidden_size": 768, "initializer_cutoff_factor": 2.0, "initializer_range": 0.02, "intermediate_size": 1152,
        "layer_norm_eps": 1e-05, "local_attention": 128, "local_rope_theta": 10000.0,
        "max_position_embeddings": 8192, "mlp_bias": False, "mlp_dropout": 0.0, "model_type": "modernbert",
        "norm_bias": False, "norm_eps": 1e-05, "num_attention_heads": 12, "num_hidden_layers": 22,
        "pad_token_id": 50283, "position_embedding_type": "absolute", "sep_token_id": 50282,
        "tie_word_embeddings": True, "torch_dtype": "float32", "transformers_version": "4.47.0.dev0",
        "vocab_size": 50368},
    "microsoft/phi-2": {
        "_name_or_path": "microsoft/phi-2", "architectures": ["PhiForCausalLM"], "attention_dropout": 0.0,
        "bos_token_id": 50256, "embd_pdrop": 0.0, "eos_token_id": 50256, "hidden_act": "gelu_new",
        "hidden_size": 2560, "initializer_range": 0.02, "intermediate_size": 10240, "layer_norm_eps": 1e-05,
        "max_position_embeddings": 2048, "model_type": "phi", "num_attention_heads": 32, "num_hidden_layers": 32,
        "num_key_value_heads": 32, "partial_rotary_factor": 0.4, "qk_layernorm": False, "resid_pdrop": 0.1,
        "rope_scaling": None, "rope_theta": 10000.0, "tie_word_embeddings": False, "torch_dtype": "float16",
        "transformers_version": "4.37.0", "use_cache": True, "vocab_size": 51200},
    "EleutherAI/pythia-70m": {
        "architectures": ["GPTNeoXForCausalLM"], "bos_token_id": 0, "eos_token_id": 0, "hidden_act": "gelu",
        "hidden_size": 512, "initializer_range": 0.02, "intermediate_size": 2048, "layer_norm_eps": 1e-05,
        "max_position_embeddings": 2048, "model_type": "gpt_neox", "num_attention_heads": 8,
        "num_hidden_layers": 6, "rotary_emb_base": 10000, "rotary_pct": 0.25, "tie_word_embeddings": False,
        "torch_dtype": "float16", "transformers_version": "4.24.0", "use_cache": True,
        "use_parallel_residual": True, "vocab_size": 50304},
}


def test_hub_configs_import():
    mb = _spec(_HUB["answerdotai/ModernBERT-base"])
    assert [l.attention.window for l in mb.resolved_layers()[:4]] == [None, 128, 128, None]
    assert mb.head.kind == "masked_lm" and mb.tie_embeddings and mb.norm.norm_eps == 1e-5
    phi = _spec(_HUB["microsoft/phi-2"])
    assert phi.positional.rotary_fraction == 0.4 and phi.layer(0).attention.head_dim == 80  # 32 rotated
    assert phi.head.bias and phi.block.residual == "parallel" and phi.dropout.residual == 0.1
    pythia = _spec(_HUB["EleutherAI/pythia-70m"])
    assert pythia.positional.rotary_fraction == 0.25 and pythia.block.residual == "parallel"
