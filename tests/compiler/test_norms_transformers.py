"""The norm, residual and scaling mechanisms against transformers' own modules.

Each test builds blueprint's component from a spec (through ``compiler.lower``) and the
transformers module it stands for, copies the weights across, and compares outputs and the
gradients of every shared parameter. Decoder layers get one shared stand-in attention on both
sides (a seeded tanh(Linear)), so the test isolates what this file is about: where the norms
sit, which input each sublayer reads and how the residuals add; attention itself has its own
parity tests (tests/hf).

Tolerance: fp32, max |ours - transformers| <= 1e-5 * max(1, max |transformers|), outputs and
gradients; random weights of scale 0.5 (norm weights 1 +- 0.5, Gemma-style offsets +- 0.5) so
every path contributes.
"""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from blueprint.spec.schema import ModelSpec
from compiler.lower import HEADS, build_block, build_embeddings
from compiler.components.norms import build_norm
from helpers import assert_close

D, HIDDEN, VOCAB = 32, 48, 96


def _spec(**update) -> ModelSpec:
    base = {"name": "t", "vocab_size": VOCAB, "max_seq_len": 64, "embed_dim": D, "num_layers": 1,
            "positional": {"kind": "none"},
            "block": {"attention": {"num_heads": 4}, "ffn": {"kind": "swiglu", "hidden_dim": HIDDEN}}}
    for key, value in update.items():
        if isinstance(value, dict) and isinstance(base.get(key), dict):
            base[key] = {**base[key], **value}
        else:
            base[key] = value
    return ModelSpec.model_validate(base)


def _randomize(*modules: nn.Module, seed: int = 0) -> None:
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for module in modules:
            for name, p in module.named_parameters():
                noise = 0.5 * torch.randn(p.shape, generator=g)
                norm_weight = p.ndim == 1 and ("norm" in name or "ln" in name) and name.endswith("weight")
                p.copy_(1.0 + noise if norm_weight else noise)


class _StandInAttention(nn.Module):
    """tanh(Linear(h)), callable the way blueprint's Block calls attention (h, mask, positions,
    past K, past V -> out) and the way transformers' layers do (hidden states positionally or
    as ``hidden_states=``, -> (out, weights))."""

    def __init__(self, proj: nn.Linear, hf: bool):
        super().__init__()
        self.proj, self.hf = proj, hf

    def forward(self, *args, **kwargs):
        h = args[0] if args else kwargs["hidden_states"]
        out = torch.tanh(self.proj(h))
        return (out, None) if self.hf else out


def _with_stand_in(ours: nn.Module, theirs: nn.Module, attr: str) -> None:
    proj = nn.Linear(D, D)
    _randomize(proj, seed=11)
    ours.attn = _StandInAttention(proj, hf=False)
    setattr(theirs, attr, _StandInAttention(proj, hf=True))


def _copy(ours: nn.Module, theirs: nn.Module, names: dict[str, str]) -> None:
    """ours[name] <- theirs[names[name]] for every blueprint parameter (all must be mapped)."""
    src = dict(theirs.named_parameters())
    with torch.no_grad():
        for name, p in ours.named_parameters():
            if name.startswith("attn."):
                continue  # the shared stand-in
            p.copy_(src[names[name]])


def _compare(ours: nn.Module, theirs: nn.Module, names: dict[str, str], run_ours, run_theirs) -> None:
    """Same output, same gradient for every mapped parameter, on a fixed random probe."""
    x = torch.randn(2, 7, D, generator=torch.Generator().manual_seed(3))
    got, want = run_ours(x), run_theirs(x)
    assert_close(got, want, "output")
    probe = torch.randn(want.shape, generator=torch.Generator().manual_seed(4))
    (got * probe).sum().backward()
    (want * probe).sum().backward()
    src = dict(theirs.named_parameters())
    for name, p in ours.named_parameters():
        if not name.startswith("attn."):
            assert_close(p.grad, src[names[name]].grad, f"gradient of {name}")


def _block_case(spec: ModelSpec, theirs: nn.Module, attr: str, names: dict[str, str], call):
    ours = build_block(spec, spec.layer(0))
    assert {n for n, _ in ours.named_parameters() if not n.startswith("attn.")} == set(names)
    _randomize(theirs)
    _with_stand_in(ours, theirs, attr)
    _copy(ours, theirs, names)
    mask = torch.ones(2, 7, dtype=torch.int64)
    _compare(ours, theirs, names, lambda x: ours(x, mask), lambda x: call(theirs, x))


GLU_NAMES = {f"ffn.{p}_proj.weight": f"mlp.{p}_proj.weight" for p in ("gate", "up", "down")}


def test_gemma_rmsnorm_one_plus_w():
    from transformers.models.gemma.modeling_gemma import GemmaRMSNorm

    spec = _spec(norm={"kind": "rmsnorm", "norm_eps": 1.0e-6, "weight_offset": 1.0})
    ours, theirs = build_norm(spec.norm, D), GemmaRMSNorm(D, eps=1e-6)
    _randomize(theirs)
    with torch.no_grad():
        theirs.weight.mul_(0.0).add_(0.5 * torch.randn(D, generator=torch.Generator().manual_seed(1)))
    _copy(ours, theirs, {"weight": "weight"})
    _compare(ours, theirs, {"weight": "weight"}, ours, theirs)


def test_gemma_rmsnorm_in_bfloat16_matches_transformers_bit_for_bit_after_the_cast():
    """Gemma multiplies by (1 + w) in float32 and casts once at the end; so do we."""
    from transformers.models.gemma.modeling_gemma import GemmaRMSNorm

    spec = _spec(norm={"kind": "rmsnorm", "norm_eps": 1.0e-6, "weight_offset": 1.0})
    ours, theirs = build_norm(spec.norm, D), GemmaRMSNorm(D, eps=1e-6)
    _randomize(theirs)
    _copy(ours, theirs, {"weight": "weight"})
    ours, theirs = ours.bfloat16(), theirs.bfloat16()
    x = torch.randn(3, 5, D, generator=torch.Generator().manual_seed(2)).bfloat16()
    with torch.no_grad():
        diff = (ours(x).float() - theirs(x).float()).abs().max().item()
    assert diff <= 2 ** -7 * 4, diff  # at most a bf16 rounding step at values ~4


def test_fresh_offset_norm_is_the_identity_scale():
    """Init stores 1 - weight_offset, so a freshly initialised (1 + w) norm scales by 1."""
    from compiler import compile_spec

    spec = _spec(norm={"kind": "rmsnorm", "weight_offset": 1.0})
    gm = compile_spec(spec)
    assert torch.equal(gm.final_norm.weight, torch.zeros(D))
    x = torch.randn(2, 3, D)
    plain = nn.functional.rms_norm(x, (D,), eps=spec.norm.norm_eps)
    assert_close(gm.final_norm(x), plain, "fresh norm")


def test_olmo_non_parametric_layernorm():
    from transformers.models.olmo.modeling_olmo import OlmoLayerNorm

    spec = _spec(norm={"kind": "layernorm", "weight": False, "bias": False})
    ours, theirs = build_norm(spec.norm, D), OlmoLayerNorm(D)
    assert not list(ours.parameters())
    x = torch.randn(2, 7, D, generator=torch.Generator().manual_seed(5), requires_grad=True)
    assert_close(ours(x), theirs(x), "output")


def test_olmo2_decoder_layer_norms_each_sublayer_output():
    """OLMo 2: x + norm(attn(x)), then x + norm(mlp(x)); no input norms."""
    from transformers import Olmo2Config
    from transformers.models.olmo2.modeling_olmo2 import Olmo2DecoderLayer

    config = Olmo2Config(hidden_size=D, intermediate_size=HIDDEN, num_attention_heads=4, rms_norm_eps=1e-6)
    spec = _spec(norm={"kind": "rmsnorm", "norm_eps": 1.0e-6}, block={"norm_placement": "post_sublayer"})
    names = {**GLU_NAMES, "attn_out_norm.weight": "post_attention_layernorm.weight",
             "ffn_out_norm.weight": "post_feedforward_layernorm.weight"}
    _block_case(spec, Olmo2DecoderLayer(config, 0), "self_attn", names, lambda m, x: m(x))


def test_granite_decoder_layer_residual_multiplier():
    from transformers import GraniteConfig
    from transformers.models.granite.modeling_granite import GraniteDecoderLayer

    config = GraniteConfig(hidden_size=D, intermediate_size=HIDDEN, num_attention_heads=4,
                           rms_norm_eps=1e-6, residual_multiplier=0.22)
    spec = _spec(norm={"kind": "rmsnorm", "norm_eps": 1.0e-6}, block={"residual_multiplier": 0.22})
    names = {**GLU_NAMES, "attn_norm.weight": "input_layernorm.weight",
             "ffn_norm.weight": "post_attention_layernorm.weight"}
    _block_case(spec, GraniteDecoderLayer(config, 0), "self_attn", names, lambda m, x: m(x))


def test_gptj_block_parallel_with_one_shared_norm():
    from transformers import GPTJConfig
    from transformers.models.gptj.modeling_gptj import GPTJBlock

    config = GPTJConfig(n_embd=D, n_inner=HIDDEN, n_head=4, rotary_dim=4, layer_norm_epsilon=1e-5,
                        resid_pdrop=0.0, activation_function="gelu_new")
    spec = _spec(norm={"kind": "layernorm", "norm_eps": 1.0e-5},
                 block={"residual": "parallel_shared_norm",
                        "ffn": {"kind": "mlp", "activation": "gelu_tanh", "hidden_dim": HIDDEN, "bias": True}})
    names = {"attn_norm.weight": "ln_1.weight", "attn_norm.bias": "ln_1.bias",
             "ffn.up_proj.weight": "mlp.fc_in.weight", "ffn.up_proj.bias": "mlp.fc_in.bias",
             "ffn.down_proj.weight": "mlp.fc_out.weight", "ffn.down_proj.bias": "mlp.fc_out.bias"}
    _block_case(spec, GPTJBlock(config, 0).eval(), "attn", names, lambda m, x: m(x))


def test_cohere_decoder_layer_parallel_shared_bias_free_layernorm():
    from transformers import CohereConfig
    from transformers.models.cohere.modeling_cohere import CohereDecoderLayer

    config = CohereConfig(hidden_size=D, intermediate_size=HIDDEN, num_attention_heads=4, layer_norm_eps=1e-5)
    spec = _spec(norm={"kind": "layernorm", "norm_eps": 1.0e-5, "bias": False},
                 block={"residual": "parallel_shared_norm"})
    names = {**GLU_NAMES, "attn_norm.weight": "input_layernorm.weight"}
    _block_case(spec, CohereDecoderLayer(config, 0), "self_attn", names, lambda m, x: m(x))


@pytest.mark.parametrize("arch", ["new_two_norms", "new_one_norm", "parallel_7b", "sequential_rw"])
def test_falcon_decoder_layer_variants(arch):
    """Falcon's four layer wirings: the new decoder architecture with two norms (parallel), or
    one (parallel_shared_norm), Falcon-7B's parallel_attn (one norm) and Falcon-RW (sequential)."""
    from transformers import FalconConfig
    from transformers.models.falcon.modeling_falcon import FalconDecoderLayer

    new = arch.startswith("new")
    config = FalconConfig(hidden_size=D, num_attention_heads=4, new_decoder_architecture=new,
                          parallel_attn=arch != "sequential_rw", ffn_hidden_size=HIDDEN, bias=True,
                          num_ln_in_parallel_attn={"new_two_norms": 2, "new_one_norm": 1}.get(arch),
                          hidden_dropout=0.0, attention_dropout=0.0, layer_norm_epsilon=1e-5)
    config._attn_implementation = "eager"
    residual = {"new_two_norms": "parallel", "sequential_rw": "sequential"}.get(arch, "parallel_shared_norm")
    spec = _spec(norm={"kind": "layernorm", "norm_eps": 1.0e-5},
                 block={"residual": residual,
                        "ffn": {"kind": "mlp", "activation": "gelu", "hidden_dim": HIDDEN, "bias": True}})
    mlp = {"ffn.up_proj": "mlp.dense_h_to_4h", "ffn.down_proj": "mlp.dense_4h_to_h"}
    norms = {"new_two_norms": {"attn_norm": "ln_attn", "ffn_norm": "ln_mlp"},
             "sequential_rw": {"attn_norm": "input_layernorm", "ffn_norm": "post_attention_layernorm"}}
    norms = norms.get(arch, {"attn_norm": "input_layernorm"})
    names = {f"{o}.{p}": f"{t}.{p}" for o, t in {**mlp, **norms}.items() for p in ("weight", "bias")}
    _block_case(spec, FalconDecoderLayer(config, 0).eval(), "self_attention", names,
                lambda m, x: m(x, alibi=None, attention_mask=None)[0])


def _final_hidden_and_logits(model, ids):
    """The final norm's output (hooked) and the model's logits."""
    seen = {}
    handle = model.model.norm.register_forward_hook(lambda m, i, o: seen.setdefault("h", o))
    try:
        logits = model(input_ids=ids).logits
    finally:
        handle.remove()
    return seen["h"], logits


def _head_case(spec: ModelSpec, model) -> None:
    _randomize(model)
    model.tie_weights()
    model.eval()
    ids = torch.randint(0, VOCAB, (2, 9), generator=torch.Generator().manual_seed(6))
    hidden, want = _final_hidden_and_logits(model, ids)
    head = HEADS["causal_lm"](spec)
    with torch.no_grad():
        head.proj.weight.copy_(model.lm_head.weight)
    got = head(hidden, torch.ones(2, 9, dtype=torch.int64))
    assert_close(got, want, "logits")


def test_gemma2_final_logit_softcap():
    from transformers import Gemma2Config, Gemma2ForCausalLM

    config = Gemma2Config(vocab_size=VOCAB, hidden_size=D, intermediate_size=HIDDEN, num_hidden_layers=1,
                          num_attention_heads=4, num_key_value_heads=2, head_dim=8,
                          final_logit_softcapping=3.0, attn_implementation="eager")
    model = Gemma2ForCausalLM(config)
    _head_case(_spec(head={"kind": "causal_lm", "softcap": 3.0}), model)
    # the cap matters on this input: uncapped logits exceed it
    hidden, logits = _final_hidden_and_logits(model, torch.arange(9)[None])
    assert model.lm_head(hidden).abs().max() > 6.0 and logits.abs().max() <= 3.0


def test_granite_logits_scaling_and_cohere_logit_scale():
    from transformers import CohereConfig, CohereForCausalLM, GraniteConfig, GraniteForCausalLM

    small = dict(vocab_size=VOCAB, hidden_size=D, intermediate_size=HIDDEN, num_hidden_layers=1,
                 num_attention_heads=4)
    _head_case(_spec(head={"kind": "causal_lm", "logit_scale": 1 / 8.0}),
               GraniteForCausalLM(GraniteConfig(**small, logits_scaling=8.0)))
    _head_case(_spec(head={"kind": "causal_lm", "logit_scale": 0.0625}),
               CohereForCausalLM(CohereConfig(**small, logit_scale=0.0625)))


@pytest.mark.parametrize("family", ["gemma", "granite"])
def test_embedding_multiplier(family):
    """Gemma scales the embeddings by sqrt(hidden_size), Granite by embedding_multiplier: compare
    what enters layer 0."""
    import transformers as T

    small = dict(vocab_size=VOCAB, hidden_size=D, intermediate_size=HIDDEN, num_hidden_layers=1,
                 num_attention_heads=4)
    if family == "gemma":
        model, multiplier = T.GemmaModel(T.GemmaConfig(**small, num_key_value_heads=4, head_dim=8)), math.sqrt(D)
    else:
        model, multiplier = T.GraniteModel(T.GraniteConfig(**small, embedding_multiplier=12.0)), 12.0
    _randomize(model)
    spec = _spec(embed_multiplier=multiplier)
    embed = build_embeddings(spec)
    with torch.no_grad():
        embed.tokens.weight.copy_(model.embed_tokens.weight)
    seen = {}

    def grab(module, args, kwargs):
        seen["x"] = args[0] if args else kwargs["hidden_states"]

    model.layers[0].register_forward_pre_hook(grab, with_kwargs=True)
    ids = torch.randint(0, VOCAB, (2, 9), generator=torch.Generator().manual_seed(7))
    with torch.no_grad():
        model(input_ids=ids)
        assert_close(embed(ids), seen["x"], "layer 0 input")


def test_nemotron_layernorm1p_and_relu2_mlp():
    """Nemotron's LayerNorm1P scales by (weight + 1) and has a bias; its MLP is
    down(relu(up(x))^2) (the spec's ``relu2``)."""
    from transformers import NemotronConfig
    from transformers.models.nemotron.modeling_nemotron import NemotronLayerNorm1P, NemotronMLP

    spec = _spec(norm={"kind": "layernorm", "norm_eps": 1.0e-5, "weight_offset": 1.0},
                 block={"ffn": {"kind": "mlp", "activation": "relu2", "hidden_dim": HIDDEN, "bias": False}})
    ours, theirs = build_norm(spec.norm, D), NemotronLayerNorm1P(D, eps=1e-5)
    _randomize(theirs)
    with torch.no_grad():
        theirs.weight.sub_(1.0)  # stored as the distance from a scale of 1
    names = {"weight": "weight", "bias": "bias"}
    _copy(ours, theirs, names)
    _compare(ours, theirs, names, ours, theirs)

    config = NemotronConfig(hidden_size=D, intermediate_size=HIDDEN, hidden_act="relu2", mlp_bias=False)
    block = build_block(spec, spec.layer(0))
    mlp = NemotronMLP(config)
    _randomize(mlp)
    names = {"up_proj.weight": "up_proj.weight", "down_proj.weight": "down_proj.weight"}
    _copy(block.ffn, mlp, names)
    _compare(block.ffn, mlp, names, block.ffn, mlp)
