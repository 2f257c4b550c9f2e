"""The attention component against an explicit softmax(Q K^T * scale + mask) V computed here,
for MHA / GQA / MQA, causal / bidirectional, windows, padding, ALiBi and a KV-cache past.
Tolerance: max |diff| <= 1e-5 (fp32, values of order one)."""

from __future__ import annotations

import math

import pytest
import torch

from compiler.components.attention import Attention, allowed_keys
from compiler.components.positional import Alibi, alibi_slopes

TOL = 1e-5


def explicit(attn: Attention, x, key_mask, past=None):
    """softmax(QK^T * scale + M) V with M = 0 where allowed and finfo.min elsewhere, K/V heads
    repeated for grouped queries; allowed keys enumerated one (query, key) pair at a time."""
    b, s, _ = x.shape
    h, kv, hd = attn.num_heads, attn.num_kv_heads, attn.head_dim
    q = (x @ attn.q_proj.weight.T).view(b, s, h, hd).transpose(1, 2)
    k = (x @ attn.k_proj.weight.T).view(b, s, kv, hd).transpose(1, 2)
    v = (x @ attn.v_proj.weight.T).view(b, s, kv, hd).transpose(1, 2)
    if past is not None:
        k, v = torch.cat([past[0], k], 2), torch.cat([past[1], v], 2)
    t = k.shape[2]
    mask = torch.full((b, h, s, t), torch.finfo(torch.float32).min)
    slopes = torch.zeros(h)
    if attn.alibi is not None:  # Press et al.: 2^(-8/h), 2^(-16/h), ... (h a power of two here)
        assert h & (h - 1) == 0
        slopes = torch.tensor([2.0 ** (-8.0 * (i + 1) / h) for i in range(h)])
    for r in range(b):
        for i in range(s):
            p = t - s + i
            for j in range(t):
                if attn.causal:
                    ok = j <= p and (attn.window is None or p - j < attn.window)
                else:
                    ok = attn.window is None or abs(p - j) <= attn.window // 2
                if (ok and key_mask[r, j] == 1) or j == p:
                    mask[r, :, i, j] = -slopes * abs(p - j)
    group = h // kv
    k, v = k.repeat_interleave(group, 1), v.repeat_interleave(group, 1)
    scores = q @ k.transpose(-1, -2) * attn.softmax_scale + mask
    out = torch.softmax(scores, -1) @ v
    return out.transpose(1, 2).reshape(b, s, h * hd) @ attn.o_proj.weight.T


def make(h=4, kv=4, hd=8, causal=True, window=None, scale=None, alibi=False):
    torch.manual_seed(0)
    attn = Attention(h * hd, h, kv, hd, causal=causal, window=window, qkv_bias=False, out_bias=False,
                     softmax_scale=scale, dropout=0.0, alibi=Alibi(h) if alibi else None).eval()
    return attn


CASES = {
    "mha_causal": dict(),
    "gqa_causal": dict(kv=2),
    "mqa_causal": dict(kv=1),
    "mha_bidirectional": dict(causal=False),
    "gqa_bidirectional": dict(kv=2, causal=False),
    "causal_window_3": dict(kv=2, window=3),
    "bidi_window_4": dict(causal=False, window=4),
    "bidi_window_1": dict(causal=False, window=1),
    "softmax_scale": dict(scale=0.05),
    "alibi_causal": dict(alibi=True),
    "alibi_bidi_window": dict(alibi=True, causal=False, window=6),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_attention_matches_explicit_softmax(name):
    attn = make(**CASES[name])
    x = torch.randn(3, 9, attn.num_heads * attn.head_dim)
    key_mask = torch.ones(3, 9, dtype=torch.int64)
    key_mask[1, 6:] = 0  # right padding
    key_mask[2, :4] = 0  # left padding
    got = attn(x, key_mask)
    want = explicit(attn, x, key_mask)
    assert (got - want).abs().max().item() <= TOL


@pytest.mark.parametrize("name", ["mha_causal", "gqa_causal", "causal_window_3", "alibi_causal"])
def test_attention_with_past_matches_explicit_softmax(name):
    attn = make(**CASES[name])
    past = (torch.randn(2, attn.num_kv_heads, 5, attn.head_dim), torch.randn(2, attn.num_kv_heads, 5, attn.head_dim))
    x = torch.randn(2, 3, attn.num_heads * attn.head_dim)
    key_mask = torch.ones(2, 8, dtype=torch.int64)
    key_mask[1, :2] = 0
    got, k, v = attn(x, key_mask, None, *past)
    assert k.shape == (2, attn.num_kv_heads, 8, attn.head_dim) and torch.equal(k[:, :, :5], past[0])
    assert (got - explicit(attn, x, key_mask, past)).abs().max().item() <= TOL


def test_gqa_projects_only_kv_heads():
    attn = make(h=8, kv=2)
    assert attn.k_proj.weight.shape == (2 * 8, 8 * 8) and attn.v_proj.weight.shape == (16, 64)


def test_window_semantics_match_the_contract():
    """Causal W sees p - W < q <= p; bidirectional W sees |p - q| <= W // 2 (ModernBERT)."""
    ones = torch.ones(1, 10, dtype=torch.int64)
    causal, _ = allowed_keys(ones, 10, True, 4)
    assert causal[0, 0, 7].nonzero().flatten().tolist() == [4, 5, 6, 7]
    bidi, _ = allowed_keys(ones, 10, False, 128 // 32)  # W=4 -> 2 each side
    assert bidi[0, 0, 5].nonzero().flatten().tolist() == [3, 4, 5, 6, 7]


def test_modernbert_and_mistral_windows_at_their_real_sizes():
    """ModernBERT's local_attention 128 is 64 keys on each side of the query (129 in all, as in
    transformers' ModernBERT); Mistral's 4096 is the query and the 4095 keys before it."""
    ones = torch.ones(1, 300, dtype=torch.int64)
    bidi, _ = allowed_keys(ones, 300, False, 128)
    assert bidi[0, 0, 150].nonzero().flatten().tolist() == list(range(86, 215))
    assert bidi[0, 0, 10].nonzero().flatten().tolist() == list(range(0, 75))
    mask = torch.ones(1, 5000, dtype=torch.int64)
    causal, _ = allowed_keys(mask, 1, True, 4096)  # one decode step at cache index 4999
    assert causal[0, 0, 0].nonzero().flatten().tolist() == list(range(904, 5000))


@pytest.mark.parametrize("num_heads", range(1, 17))
def test_alibi_slopes_match_bloom(num_heads):
    """Against transformers' BLOOM, an independent implementation (non-powers of two too)."""
    from transformers.models.bloom.modeling_bloom import build_alibi_tensor

    bloom = build_alibi_tensor(torch.ones(1, 2), num_heads, torch.float32)[:, 0, 1]  # slope * 1
    assert torch.allclose(alibi_slopes(num_heads), bloom, rtol=1e-6, atol=0.0)


def test_fully_padded_row_is_finite():
    attn = make(kv=2)
    x = torch.randn(2, 5, 32)
    key_mask = torch.tensor([[1, 1, 1, 1, 1], [0, 0, 0, 0, 0]])
    out = attn(x, key_mask)
    assert torch.isfinite(out).all()


def test_rope_rotates_pairs_by_position():
    """Against the closed form: pair (x_j, x_{j+r/2}) turns by p * base^(-2j/r)."""
    from compiler.components.positional import Rope

    rope = Rope(8, 1.0, 100.0)
    q = torch.randn(1, 3, 1, 8)  # [b, s, H, hd]
    pos = torch.tensor([[0, 5, 11]])
    rq, _ = rope(q, q[:, :, :0], pos)
    for i, p in enumerate([0, 5, 11]):
        for j in range(4):
            th = p * 100.0 ** (-2 * j / 8)
            a, b = q[0, i, 0, j].item(), q[0, i, 0, j + 4].item()
            assert math.isclose(rq[0, i, 0, j].item(), a * math.cos(th) - b * math.sin(th), abs_tol=1e-5)
            assert math.isclose(rq[0, i, 0, j + 4].item(), b * math.cos(th) + a * math.sin(th), abs_tol=1e-5)


def test_sinusoidal_table_is_exact_at_long_positions():
    """pe[p, 2i] = sin(p / base^(2i/D)), pe[p, 2i+1] = cos(same), to fp32 rounding (1e-6) up to
    position 8191: angles of thousands of radians must not be rounded to float32 first (that
    alone puts errors of ~5e-4 into the table)."""
    from compiler.components.positional import SinusoidalPositions

    d, base = 64, 10000.0
    pos = torch.arange(8192)
    got = SinusoidalPositions(d, base)(pos[None])[0]  # [8192, D]
    i = torch.arange(d)
    angle = pos.double()[:, None] / base ** ((2 * (i // 2)).double() / d)
    want = torch.where(i % 2 == 0, torch.sin(angle), torch.cos(angle))
    assert got.dtype == torch.float64  # the embeddings cast it to the model's dtype
    assert (got.float().double() - want).abs().max().item() <= 1e-6
