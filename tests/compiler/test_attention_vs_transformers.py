"""Attention and position components against transformers' own functions and modules, an
implementation nobody here wrote:

| component                                  | reference                                          | tolerance (fp32) |
|--------------------------------------------|----------------------------------------------------|------------------|
| Rope, every scaling kind, spec from HF     | LlamaRotaryEmbedding (ROPE_INIT_FUNCTIONS, dynamic  | 2e-5 abs         |
|   rope_parameters (blueprint.hf.rope_scaling) | update) + llama apply_rotary_pos_emb              |                  |
| Rope, interleaved layout, partial          | GPT-J create_sinusoidal_positions + apply_rotary_pos_emb | 1e-5 abs    |
| Attention softcap                          | Gemma 2 eager_attention_forward                    | 1e-5 abs         |
| Attention QK-norm over the projection       | OLMo 2 Olmo2Attention                              | 1e-5 abs         |
| LearnedPositions offset 2                  | OPT OPTLearnedPositionalEmbedding                  | exact            |

Inputs are of order one; positions reach past each scaling's original length so long and short
regimes (longrope) and the interpolated frequencies (linear, llama3, yarn) all matter.
"""

from __future__ import annotations

import pytest
import torch

from blueprint.hf.rope_scaling import scaling_from_hf, scaling_to_hf
from blueprint.spec.schema import RopePositions
from compiler.components.attention import Attention
from compiler.components.norms import RMSNorm
from compiler.components.positional import LearnedPositions
from compiler.components.rope import Rope

HD = 16

ROPE_PARAMETERS = {
    "default": {"rope_type": "default", "rope_theta": 10000.0},
    "linear": {"rope_type": "linear", "rope_theta": 10000.0, "factor": 4.0},
    "llama3": {"rope_type": "llama3", "rope_theta": 500.0, "factor": 8.0, "low_freq_factor": 1.0,
               "high_freq_factor": 4.0, "original_max_position_embeddings": 64},
    "yarn": {"rope_type": "yarn", "rope_theta": 1000.0, "factor": 4.0, "original_max_position_embeddings": 32},
    "yarn_mscale": {"rope_type": "yarn", "rope_theta": 1000.0, "factor": 4.0, "original_max_position_embeddings": 32,
                    "mscale": 0.707, "mscale_all_dim": 1.0, "beta_fast": 16.0, "beta_slow": 2.0},
    "yarn_untruncated": {"rope_type": "yarn", "rope_theta": 1000.0, "factor": 4.0,
                         "original_max_position_embeddings": 32, "truncate": False},
    "longrope": {"rope_type": "longrope", "rope_theta": 10000.0, "original_max_position_embeddings": 32,
                 "short_factor": [1.0, 1.1, 1.3, 1.6, 2.0, 2.5, 3.0, 4.0],
                 "long_factor": [1.0, 1.5, 2.5, 4.0, 6.0, 9.0, 13.0, 20.0]},
}


def _hf_rope(params: dict, max_pos: int, q, k, position_ids):
    """transformers' rotation of q, k ([b, s, n, hd]) with a Llama config carrying ``params``."""
    import transformers as T
    from transformers.models.llama.modeling_llama import LlamaRotaryEmbedding, apply_rotary_pos_emb

    config = T.LlamaConfig(hidden_size=4 * HD, num_attention_heads=4, head_dim=HD,
                           max_position_embeddings=max_pos, rope_parameters=dict(params))
    rotary = LlamaRotaryEmbedding(config)
    cos, sin = rotary(q, position_ids)  # [b, s, hd]
    qh, kh = apply_rotary_pos_emb(q.transpose(1, 2), k.transpose(1, 2), cos, sin)  # [b, n, s, hd]
    return qh.transpose(1, 2), kh.transpose(1, 2)


@pytest.mark.parametrize("name", sorted(ROPE_PARAMETERS))
@pytest.mark.parametrize("length", [20, 100])  # within and beyond every original length
def test_rope_scalings_match_transformers(name, length):
    params, max_pos = ROPE_PARAMETERS[name], 128
    scaling = scaling_from_hf(params, max_pos)
    pos = RopePositions(rope_base=params["rope_theta"], scaling=scaling)
    rope = Rope(HD, 1.0, pos.rope_base, pos.layout, pos.scaling)
    g = torch.Generator().manual_seed(0)
    q, k = torch.randn(2, length, 4, HD, generator=g), torch.randn(2, length, 2, HD, generator=g)
    position_ids = torch.stack([torch.arange(length), torch.arange(length) + 3])  # [b, s]
    want = _hf_rope(params, max_pos, q, k, position_ids)
    got = rope(q, k, position_ids)
    for a, b in zip(got, want):
        assert (a - b).abs().max().item() < 2e-5, (name, length, (a - b).abs().max().item())


@pytest.mark.parametrize("name", sorted(ROPE_PARAMETERS))
def test_rope_scaling_round_trips_through_rope_parameters(name):
    params = ROPE_PARAMETERS[name]
    pos = RopePositions(scaling=scaling_from_hf(params, 128))
    back = scaling_to_hf(pos.scaling)
    again = RopePositions(scaling=scaling_from_hf(back, 128))
    assert again == pos
    given = {k: v for k, v in params.items() if k != "rope_theta"}
    assert {k: back[k] for k in given} == given  # every field transformers was given comes back


def test_dynamic_rope_is_refused_with_the_reason():
    from blueprint.errors import BlueprintError

    with pytest.raises(BlueprintError, match="dynamic") as err:
        scaling_from_hf({"rope_type": "dynamic", "factor": 2.0}, 128)
    assert "state" in (err.value.hint or "")


@pytest.mark.parametrize("fraction", [1.0, 0.5])
def test_interleaved_rope_matches_gptj(fraction):
    """GPT-J rotates (x_2j, x_2j+1) pairs of the first rotary_dim features."""
    from transformers.models.gptj.modeling_gptj import apply_rotary_pos_emb, create_sinusoidal_positions

    r = int(HD * fraction)
    rope = Rope(HD, fraction, 10000.0, "interleaved")
    g = torch.Generator().manual_seed(1)
    q, k = torch.randn(2, 9, 4, HD, generator=g), torch.randn(2, 9, 4, HD, generator=g)
    position_ids = torch.stack([torch.arange(9), torch.arange(9) + 40])
    sincos = create_sinusoidal_positions(64, r)[position_ids]  # [b, s, r]
    sin, cos = torch.split(sincos, r // 2, dim=-1)

    def gptj(x):
        rot = apply_rotary_pos_emb(x[..., :r], sin, cos)
        return torch.cat([rot, x[..., r:]], dim=-1)

    got_q, got_k = rope(q, k, position_ids)
    assert (got_q - gptj(q)).abs().max().item() < 1e-5
    assert (got_k - gptj(k)).abs().max().item() < 1e-5


def _causal_mask(b, s):
    allowed = torch.ones(s, s, dtype=torch.bool).tril()
    return torch.where(allowed, 0.0, torch.finfo(torch.float32).min)[None, None].expand(b, 1, s, s)


@pytest.mark.parametrize("kv", [4, 2])
def test_softcap_matches_gemma2(kv):
    from transformers.models.gemma2.modeling_gemma2 import eager_attention_forward

    torch.manual_seed(0)
    h, hd, d, b, s, cap, scale = 4, 8, 32, 2, 7, 3.0, 0.3
    attn = Attention(d, h, kv, hd, causal=True, window=None, qkv_bias=False, out_bias=False,
                     softmax_scale=scale, dropout=0.0, softcap=cap).eval()
    x = torch.randn(b, s, d)
    q = attn.q_proj(x).view(b, s, h, hd).transpose(1, 2)
    k = attn.k_proj(x).view(b, s, kv, hd).transpose(1, 2)
    v = attn.v_proj(x).view(b, s, kv, hd).transpose(1, 2)

    class Module(torch.nn.Module):
        num_key_value_groups, head_dim = h // kv, hd

    out, _ = eager_attention_forward(Module().eval(), q, k, v, _causal_mask(b, s), scaling=scale, softcap=cap)
    want = attn.o_proj(out.reshape(b, s, h * hd))
    got = attn(x, torch.ones(b, s, dtype=torch.int64))
    assert (got - want).abs().max().item() < 1e-5
    plain = Attention(d, h, kv, hd, causal=True, window=None, qkv_bias=False, out_bias=False,
                      softmax_scale=scale, dropout=0.0)
    plain.load_state_dict(attn.state_dict())
    assert (plain(x, torch.ones(b, s, dtype=torch.int64)) - want).abs().max().item() > 1e-3  # the cap matters


def test_projection_qk_norm_matches_olmo2():
    import transformers as T
    from transformers.models.olmo2.modeling_olmo2 import Olmo2Attention, Olmo2RotaryEmbedding

    h, kv, hd, b, s = 4, 2, 8, 2, 6
    config = T.Olmo2Config(hidden_size=h * hd, num_attention_heads=h, num_key_value_heads=kv,
                           rms_norm_eps=1e-6, attention_bias=False)
    config._attn_implementation = "eager"
    ref = Olmo2Attention(config, layer_idx=0).eval()
    torch.manual_seed(0)
    with torch.no_grad():
        for p in ref.parameters():
            p.copy_(torch.randn(p.shape) * 0.3 + (1.0 if p.dim() == 1 else 0.0))
    ours = Attention(h * hd, h, kv, hd, causal=True, window=None, qkv_bias=False, out_bias=False,
                     softmax_scale=None, dropout=0.0, q_norm=RMSNorm(h * hd, 1e-6), k_norm=RMSNorm(kv * hd, 1e-6),
                     qk_norm_scope="projection", rope=Rope(hd, 1.0, config.rope_parameters["rope_theta"])).eval()
    missing, unexpected = ours.load_state_dict(ref.state_dict(), strict=True)
    x = torch.randn(b, s, h * hd)
    position_ids = torch.arange(s)[None].expand(b, s)
    cos_sin = Olmo2RotaryEmbedding(config)(x, position_ids)
    want, _ = ref(x, position_embeddings=cos_sin, attention_mask=_causal_mask(b, s))
    got = ours(x, torch.ones(b, s, dtype=torch.int64), position_ids)
    assert (got - want).abs().max().item() < 1e-5


def test_learned_offset_matches_opt():
    from transformers.models.opt.modeling_opt import OPTLearnedPositionalEmbedding

    ref = OPTLearnedPositionalEmbedding(20, 8)
    ours = LearnedPositions(20, 8, offset=2)
    ours.load_state_dict(ref.state_dict())
    mask = torch.tensor([[1, 1, 1, 1, 1], [1, 1, 1, 1, 1]])
    position_ids = torch.tensor([[0, 1, 2, 3, 4], [5, 6, 7, 8, 9]])
    assert torch.equal(ours(position_ids), ref(mask, position_ids=position_ids))
    assert torch.equal(ours(position_ids[:1]), ref(mask[:1]))  # OPT's own positions from the mask
    assert ours.weight.shape == (22, 8)
