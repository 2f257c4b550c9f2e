"""RoPE scaling through import-hf and export-hf for the LLaMA-layout families: a published
context extension (Llama 3.1's llama3, Qwen's yarn, linear interpolation) imports into the spec's
``positional.scaling``, the compiled model gives transformers' logits on a sequence past the
original length (1e-4, fp32), and export-hf writes rope_parameters transformers reads back to the
same logits, bit for bit. Dynamic NTK is refused, naming why."""

from __future__ import annotations

import pytest
import torch

from blueprint.cli import main
from blueprint.errors import BlueprintError
from blueprint.hf import import_folder
from blueprint.spec.schema import ModelSpec

from .hf_models import VOCAB, randomize
from .parity import compile_with_weights, max_abs_on, padded_batch

CASES = {
    "llama-llama3": ("LlamaForCausalLM", "LlamaConfig", {"rope_type": "llama3", "rope_theta": 500.0, "factor": 8.0,
                     "low_freq_factor": 1.0, "high_freq_factor": 4.0, "original_max_position_embeddings": 16}),
    "qwen3-yarn": ("Qwen3ForCausalLM", "Qwen3Config", {"rope_type": "yarn", "rope_theta": 1000.0, "factor": 4.0,
                   "original_max_position_embeddings": 16}),
    "mistral-linear": ("MistralForCausalLM", "MistralConfig", {"rope_type": "linear", "rope_theta": 10000.0,
                       "factor": 3.0}),
}
EXTRA = {"mistral-linear": {"sliding_window": 6}}


class _Ref:
    def __init__(self, folder, model):
        self.folder, self.model, self.family = folder, model, "scaled"
        self.spec = ModelSpec.model_validate(import_folder(folder, spec_dir=folder))


def _reference(tmp_path, case):
    import transformers as T

    cls_name, config_name, params = CASES[case]
    config = getattr(T, config_name)(
        vocab_size=VOCAB, hidden_size=32, intermediate_size=48, num_hidden_layers=2, num_attention_heads=4,
        num_key_value_heads=2, head_dim=16, max_position_embeddings=128, rope_parameters=dict(params),
        tie_word_embeddings=False, bos_token_id=1, eos_token_id=2, pad_token_id=0, **EXTRA.get(case, {}))
    config._attn_implementation = "eager"
    torch.manual_seed(0)
    model = getattr(T, cls_name)(config)
    randomize(model, 0)
    model.eval().save_pretrained(tmp_path / "ref")
    return _Ref(tmp_path / "ref", model)


@pytest.mark.parametrize("case", sorted(CASES))
def test_scaled_rope_imports_computes_and_exports(tmp_path, case):
    from blueprint import dump_lock
    from compiler.weights import load_weights, save_weights

    ref = _reference(tmp_path, case)
    assert ref.spec.positional.scaling.kind == CASES[case][2]["rope_type"]
    ids, mask, pos = padded_batch(40, pad_left=4, seed=3)  # past every original length (16)
    with torch.no_grad():
        want = ref.model(input_ids=ids, attention_mask=mask, position_ids=pos).logits
        got = compile_with_weights(ref)(ids, mask, pos)["logits"]
    assert max_abs_on(mask, got, want) < 1e-4
    build = tmp_path / "build"
    build.mkdir()
    (build / "spec.lock.yaml").write_text(dump_lock(ref.spec))
    save_weights(load_weights(ref.folder, ref.spec), build / "weights.safetensors")
    assert main(["export-hf", str(build), "-o", str(tmp_path / "hf")]) == 0
    import transformers as T

    loaded = T.AutoModelForCausalLM.from_pretrained(tmp_path / "hf", attn_implementation="eager").eval()
    assert type(loaded) is type(ref.model)
    with torch.no_grad():
        assert torch.equal(loaded(input_ids=ids, attention_mask=mask, position_ids=pos).logits, want)


def test_dynamic_ntk_is_refused(tmp_path):
    import json

    ref = _reference(tmp_path, "mistral-linear")
    config = json.loads((ref.folder / "config.json").read_text())
    config["rope_parameters"] = {"rope_type": "dynamic", "rope_theta": 10000.0, "factor": 2.0}
    (ref.folder / "config.json").write_text(json.dumps(config))
    with pytest.raises(BlueprintError, match="dynamic"):
        import_folder(ref.folder, spec_dir=ref.folder)


def test_gemma3_config_of_either_transformers_generation_imports_alike():
    """A Gemma 3 config.json as transformers 4.x wrote it (rope_theta, rope_scaling for global
    layers, rope_local_base_freq) and as 5.x writes it (rope_parameters per layer type) give one spec."""
    from blueprint.hf import config_to_spec

    common = {"model_type": "gemma3_text", "vocab_size": 96, "hidden_size": 32, "intermediate_size": 48,
              "num_hidden_layers": 6, "num_attention_heads": 4, "num_key_value_heads": 2, "head_dim": 16,
              "max_position_embeddings": 128, "sliding_window": 5, "query_pre_attn_scalar": 16,
              "hidden_activation": "gelu_pytorch_tanh", "rms_norm_eps": 1e-6}
    old = {**common, "rope_theta": 1000000.0, "rope_local_base_freq": 10000.0,
           "rope_scaling": {"rope_type": "linear", "factor": 8.0}, "sliding_window_pattern": 6}
    new = {**common, "rope_parameters": {
        "sliding_attention": {"rope_type": "default", "rope_theta": 10000.0},
        "full_attention": {"rope_type": "linear", "factor": 8.0, "rope_theta": 1000000.0}}}
    a, b = (ModelSpec.model_validate(config_to_spec(c, name="g")) for c in (old, new))
    assert a.resolved_layers() == b.resolved_layers() and a.positional == b.positional
    layers = a.resolved_layers()
    assert [l.attention.window for l in layers] == [5, 5, 5, 5, 5, None]  # layer 5 global (5 local : 1 global)
    assert layers[5].attention.rope_base is None and a.positional.rope_base == 1e6
    assert a.positional.scaling.kind == "linear" and layers[0].attention.rope_scaling.kind == "none"
    assert layers[0].attention.rope_base == 10000.0 and layers[0].attention.qk_norm
