"""The families the norm, residual, scaling and relu2 mechanisms unlock (Falcon, Gemma, Granite,
Nemotron, OLMo, Persimmon), beyond their one test row each
(tests/hf/hf_models.py): Falcon's other layer layouts, the published configurations' sizes,
and the refusals.

Falcon's row is the new decoder architecture with two norms; FalconDecoderLayer has three more
wirings (one shared norm in the new architecture, Falcon-7B's multi-query parallel block,
Falcon-RW's sequential block), each checked here as the row is by the parity tests: logits and
gradients on a left-padded batch and a KV-cached decode step within 1e-4 of transformers
(fp32), and export-hf loading back in transformers with the reference's logits.
"""

from __future__ import annotations

import json

import pytest
import torch

from blueprint.cli import main
from blueprint.errors import BlueprintError
from blueprint.hf import config_to_spec, import_folder
from blueprint.spec.schema import ModelSpec
from compiler.naming import parameter_count
from compiler.weights import load_weights

from .hf_models import VOCAB, randomize
from .parity import canonical_grads, compare_grads, compile_with_weights, max_abs_on, our_grads, padded_batch
from .test_export_hf import _fake_build

TOL = 1e-4

FALCON_LAYOUTS = {
    "new_one_norm": dict(new_decoder_architecture=True, num_ln_in_parallel_attn=1, num_kv_heads=2),
    "parallel_7b": dict(new_decoder_architecture=False, parallel_attn=True, multi_query=True),
    "sequential_rw": dict(new_decoder_architecture=False, parallel_attn=False, multi_query=False, bias=True),
}


class _Falcon:
    """A Reference (tests/hf/conftest.py) for one Falcon layout."""

    family = "falcon"

    def __init__(self, layout: str, folder):
        import transformers as T

        config = T.FalconConfig(vocab_size=VOCAB, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                                ffn_hidden_size=48, max_position_embeddings=128, hidden_dropout=0.0,
                                attention_dropout=0.0, tie_word_embeddings=False, bos_token_id=1,
                                eos_token_id=2, pad_token_id=0, **FALCON_LAYOUTS[layout])
        config._attn_implementation = "eager"
        torch.manual_seed(0)
        self.model = T.FalconForCausalLM(config)
        randomize(self.model, 0)
        self.model.eval()
        self.folder = folder
        self.model.save_pretrained(folder)
        self.spec = ModelSpec.model_validate(import_folder(folder, spec_dir=folder))


@pytest.fixture(scope="module", params=sorted(FALCON_LAYOUTS))
def falcon(request, tmp_path_factory):
    return _Falcon(request.param, tmp_path_factory.mktemp(request.param))


def test_falcon_layout_is_imported_as_its_wiring(falcon):
    layout = falcon.folder.name.rstrip("0123456789")
    block = falcon.spec.block
    assert block.residual == {"sequential_rw": "sequential"}.get(layout, "parallel_shared_norm")
    assert block.attention.kv_heads == {"new_one_norm": 2, "parallel_7b": 1, "sequential_rw": 4}[layout]
    assert block.attention.qkv_bias == (layout == "sequential_rw")


def test_falcon_layout_logits_gradients_and_decode_step(falcon):
    gm = compile_with_weights(falcon)
    ids, mask, pos = padded_batch(14, pad_left=4, seed=3)
    falcon.model.zero_grad()
    expected = falcon.model(input_ids=ids, attention_mask=mask, position_ids=pos).logits
    got = gm(ids, mask, pos)["logits"]
    assert max_abs_on(mask, got, expected) < TOL
    probe = torch.randn(expected.shape, generator=torch.Generator().manual_seed(7)) * mask[..., None]
    (expected * probe).sum().backward()
    (got * probe).sum().backward()
    compare_grads(canonical_grads(falcon, falcon.model), our_grads(falcon, gm), TOL)

    cached = compile_with_weights(falcon, kv_cache=True)
    empty = [torch.zeros(2, falcon.spec.layer(i).attention.kv_heads, 0, falcon.spec.layer(i).attention.head_dim)
             for i in range(falcon.spec.num_layers) for _ in range(2)]
    with torch.no_grad():
        out = cached(ids, mask, pos, *empty)
        hf = falcon.model(input_ids=ids, attention_mask=mask, position_ids=pos, use_cache=True)
        present = [out[f"present.{i}.{kv}"] for i in range(falcon.spec.num_layers) for kv in ("key", "value")]
        step_mask = torch.cat([mask, torch.ones(2, 1, dtype=torch.int64)], dim=1)
        step_ids, step_pos = torch.tensor([[5], [7]]), pos[:, -1:] + 1
        step = cached(step_ids, step_mask, step_pos, *present)
        hf_step = falcon.model(input_ids=step_ids, attention_mask=step_mask, position_ids=step_pos,
                               past_key_values=hf.past_key_values, use_cache=True)
    assert float((step["logits"] - hf_step.logits).abs().max()) < TOL


def test_falcon_layout_exports_to_transformers(falcon, tmp_path):
    """export-hf writes the new decoder architecture for parallel specs (multi-query included)
    and the original one for sequential specs; transformers computes the reference's logits."""
    import transformers as T

    build = _fake_build(tmp_path, falcon.spec, load_weights(falcon.folder, falcon.spec))
    assert main(["export-hf", str(build), "-o", str(tmp_path / "hf")]) == 0
    loaded = T.AutoModelForCausalLM.from_pretrained(tmp_path / "hf", attn_implementation="eager").eval()
    ids, mask, _ = padded_batch(14, pad_right=4, seed=5)
    with torch.no_grad():
        expected = falcon.model(input_ids=ids, attention_mask=mask).logits
        got = loaded(input_ids=ids, attention_mask=mask).logits
    assert max_abs_on(mask, got, expected) < 1e-5


def _meta_count(cls_name: str, config) -> int:
    import transformers as T

    with torch.device("meta"):
        model = getattr(T, cls_name)(config)
    return sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize("config_name, cls_name, kwargs, expected", [
    ("FalconConfig", "FalconForCausalLM", {}, {"residual": "parallel_shared_norm", "kv": 1}),  # falcon-7b
    ("GemmaConfig", "GemmaForCausalLM", {}, {"residual": "sequential", "kv": 16}),  # gemma-7b
    ("OlmoConfig", "OlmoForCausalLM", {}, {"residual": "sequential", "kv": 32}),  # OLMo-7B
    ("PersimmonConfig", "PersimmonForCausalLM", {}, {"residual": "sequential", "kv": 64}),  # Persimmon-8B
    # Nemotron-4 15B (transformers leaves head_dim and num_key_value_heads unset, and cannot build that)
    ("NemotronConfig", "NemotronForCausalLM", {"head_dim": 128, "num_key_value_heads": 8},
     {"residual": "sequential", "kv": 8}),
])
def test_published_sizes_import_with_transformers_parameter_count(config_name, cls_name, kwargs, expected):
    """transformers' default configs are published models' sizes (named above)."""
    import transformers as T

    config = getattr(T, config_name)(**kwargs)
    spec = ModelSpec.model_validate(config_to_spec(config.to_dict(), name="t"))
    assert spec.block.residual == expected["residual"] and spec.block.attention.kv_heads == expected["kv"]
    assert parameter_count(spec) == _meta_count(cls_name, config)


def test_granite_scalars_land_in_their_spec_fields():
    import transformers as T

    config = T.GraniteConfig(embedding_multiplier=12.0, residual_multiplier=0.22, attention_multiplier=0.015625,
                             logits_scaling=8.0, num_key_value_heads=8)
    spec = ModelSpec.model_validate(config_to_spec(config.to_dict(), name="t"))
    assert spec.embed_multiplier == 12.0 and spec.block.residual_multiplier == 0.22
    assert spec.block.attention.softmax_scale == 0.015625 and spec.head.logit_scale == 0.125
    assert parameter_count(spec) == _meta_count("GraniteForCausalLM", config)


@pytest.mark.parametrize("cls_name, change, message", [
    ("FalconConfig", {"alibi": True}, "'alibi' = True is not supported"),
    ("FalconConfig", {"hidden_dropout": 0.1}, "'hidden_dropout' = 0.1 is not supported"),
    ("FalconConfig", {"new_decoder_architecture": False, "multi_query": False, "num_kv_heads": 2,
                      "num_attention_heads": 4, "hidden_size": 32},
     "num_kv_heads 2 needs new_decoder_architecture"),
    ("OlmoConfig", {"clip_qkv": 8.0}, "'clip_qkv' = 8.0 is not supported"),
    ("PersimmonConfig", {"hidden_dropout": 0.1}, "'hidden_dropout' = 0.1 is not supported"),
    ("GemmaConfig", {"use_bidirectional_attention": True}, "'use_bidirectional_attention' = True is not supported"),
    ("GraniteConfig", {"logits_scaling": 0.0}, "'logits_scaling' = 0.0 must be positive"),
])
def test_what_the_spec_cannot_express_is_refused(cls_name, change, message):
    import transformers as T

    config = {**getattr(T, cls_name)().to_dict(), **change}
    with pytest.raises(BlueprintError, match=message.replace("(", r"\(").replace(")", r"\)")):
        config_to_spec(config, name="t")


def test_gemma_legacy_gelu_means_the_tanh_form():
    """Published Gemma configs say hidden_act: gelu; transformers runs gelu_pytorch_tanh."""
    import transformers as T

    config = {**T.GemmaConfig().to_dict(), "hidden_act": "gelu"}
    spec = ModelSpec.model_validate(config_to_spec(config, name="t"))
    assert spec.block.ffn.kind == "geglu" and spec.block.ffn.activation == "gelu_tanh"
    assert spec.norm.weight_offset == 1.0 and spec.embed_multiplier == 3072 ** 0.5


def test_a_spec_with_granite_scalars_is_not_exported_as_llama(tmp_path):
    """The scalars pick Granite's layout; without them the same spec is LLaMA's."""
    from blueprint.hf.to_config import spec_to_config

    base = {"name": "t", "vocab_size": 64, "max_seq_len": 32, "embed_dim": 32, "num_layers": 1,
            "positional": {"kind": "rope"}, "norm": {"kind": "rmsnorm"},
            "block": {"attention": {"num_heads": 4}, "ffn": {"kind": "swiglu", "hidden_dim": 64}}}
    assert spec_to_config(ModelSpec.model_validate(base))["model_type"] == "llama"
    scaled = {**base, "embed_multiplier": 2.0, "block": {**base["block"], "attention": {
        "num_heads": 4, "softmax_scale": 0.125}}}
    config = spec_to_config(ModelSpec.model_validate(scaled))
    assert config["model_type"] == "granite" and config["embedding_multiplier"] == 2.0
    assert json.dumps(config)  # plain JSON
