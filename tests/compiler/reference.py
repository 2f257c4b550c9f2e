"""An independent plain-PyTorch reference for blueprint models, written separately from
compiler/ (it shares no code with it): a functional forward pass over a canonical state dict.

It reads the spec and the parameters by their canonical names (compiler.naming's contract) and
recomputes everything from formulas: LayerNorm and RMSNorm by hand, erf/tanh GELU by formula,
RoPE as a complex rotation of (x_j, x_{j+r/2}) pairs, ALiBi slopes in closed form, sinusoidal
tables by their definition, and attention as an explicit softmax(QK^T * scale + mask) V with
K/V heads repeated for GQA/MQA.
"""

from __future__ import annotations

import math

import torch



def _norm(spec, P, prefix, x):
    """Normalise, then scale by (weight_offset + weight) when there is a weight, then add the bias."""
    w = P.get(f"{prefix}.weight")
    scale = 1.0 if w is None else spec.norm.weight_offset + w
    if spec.norm.kind == "rmsnorm":
        return x / torch.sqrt((x * x).mean(-1, keepdim=True) + spec.norm.norm_eps) * scale
    mu = x.mean(-1, keepdim=True)
    var = ((x - mu) ** 2).mean(-1, keepdim=True)
    y = (x - mu) / torch.sqrt(var + spec.norm.norm_eps) * scale
    b = P.get(f"{prefix}.bias")
    return y if b is None else y + b


def _linear(P, prefix, x):
    y = x @ P[f"{prefix}.weight"].T
    b = P.get(f"{prefix}.bias")
    return y if b is None else y + b


def _act(name, x):
    if name == "gelu":
        return 0.5 * x * (1.0 + torch.erf(x / math.sqrt(2.0)))
    if name == "gelu_tanh":
        return 0.5 * x * (1.0 + torch.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x ** 3)))
    if name == "relu":
        return torch.clamp(x, min=0.0)
    if name == "relu2":
        return torch.clamp(x, min=0.0) ** 2
    if name == "silu":
        return x * torch.sigmoid(x)
    raise ValueError(name)


def _frequencies(scaling, base, rotary_dim, pos):
    """(per-pair angular frequencies as Python floats, cos/sin factor), from the published
    formulas (linear: Chen et al. 2023; llama3: Meta's Llama 3.1 code; YaRN: Peng et al. 2023;
    LongRoPE: Phi-3), written out one frequency at a time."""
    half = rotary_dim // 2
    plain = [base ** (-2.0 * j / rotary_dim) for j in range(half)]
    kind = "none" if scaling is None else scaling.kind
    if kind == "none":
        return plain, 1.0
    if kind == "linear":
        return [f / scaling.factor for f in plain], 1.0
    if kind == "llama3":
        old, lo, hi, factor = scaling.original_max_seq_len, scaling.low_freq_factor, scaling.high_freq_factor, scaling.factor
        out = []
        for f in plain:
            wavelen = 2 * math.pi / f
            if wavelen < old / hi:
                out.append(f)
            elif wavelen > old / lo:
                out.append(f / factor)
            else:
                t = (old / wavelen - lo) / (hi - lo)
                out.append((1 - t) * f / factor + t * f)
        return out, 1.0
    if kind == "yarn":
        def dim_of(turns):  # the pair index whose wavelength fits ``turns`` times into the original length
            return rotary_dim * math.log(scaling.original_max_seq_len / (turns * 2 * math.pi)) / (2 * math.log(base))
        lo, hi = dim_of(scaling.beta_fast), dim_of(scaling.beta_slow)
        if scaling.truncate:
            lo, hi = math.floor(lo), math.ceil(hi)
        lo, hi = max(lo, 0), min(hi, rotary_dim - 1)
        if lo == hi:
            hi += 0.001
        out = []
        for j, f in enumerate(plain):
            ramp = min(max((j - lo) / (hi - lo), 0.0), 1.0)  # 0: keep f, 1: f / factor
            out.append(f * (1 - ramp) + f / scaling.factor * ramp)
        return out, scaling.attention_factor
    if kind == "longrope":
        factors = scaling.long_factor if int(pos.max()) + 1 > scaling.original_max_seq_len else scaling.short_factor
        return [f / e for f, e in zip(plain, factors)], scaling.attention_factor
    raise ValueError(kind)


def _rope(x, pos, base, rotary_dim, layout="half_split", scaling=None):
    """x [b, n, s, hd]; rotate pairs (j, j + r/2) (half_split) or (2j, 2j + 1) (interleaved) by
    pos * frequency_j as complex numbers, then scale by the cos/sin factor."""
    half = rotary_dim // 2
    freqs, factor = _frequencies(scaling, base, rotary_dim, pos)
    theta = torch.tensor(freqs, dtype=torch.float64)
    angle = pos.double()[:, None, :, None] * theta  # [b, 1, s, half]
    rot = factor * torch.polar(torch.ones_like(angle), angle).to(torch.complex128 if x.dtype == torch.float64 else torch.complex64)
    if layout == "interleaved":
        z = torch.complex(x[..., 0:rotary_dim:2], x[..., 1:rotary_dim:2]) * rot
        pairs = torch.stack([z.real, z.imag], dim=-1).flatten(-2)
        return torch.cat([pairs, x[..., rotary_dim:]], dim=-1)
    z = torch.complex(x[..., :half], x[..., half:rotary_dim]) * rot
    return torch.cat([z.real, z.imag, x[..., rotary_dim:]], dim=-1)


def _alibi_slopes(n):
    def geo(k):
        return [2.0 ** (-8.0 * (i + 1) / k) for i in range(k)]
    p = 1
    while p * 2 <= n:
        p *= 2
    extra = geo(2 * p)[::2][: n - p] if p < n else []
    return torch.tensor(geo(p) + extra)


def _mask(attention_mask, s, causal, window):
    """bool [b, 1, s, t] from explicit query/key positions (contract 2; a query always sees
    itself, so no row is empty)."""
    b, t = attention_mask.shape
    qpos = torch.tensor([t - s + i for i in range(s)])
    kpos = torch.tensor(list(range(t)))
    Q, K = qpos[:, None].expand(s, t), kpos[None, :].expand(s, t)
    if causal:
        ok = K <= Q
        if window is not None:
            ok = ok & (K > Q - window)
    else:
        ok = torch.ones(s, t, dtype=torch.bool)
        if window is not None:
            ok = (Q - K).abs() <= window // 2
    ok = ok[None, None] & (attention_mask[:, None, None, :] == 1)
    return ok | (Q == K)[None, None], (Q - K).abs().float()


def _attention(spec, P, p, blk, x, attention_mask, pos, past, record=None):
    a = blk.attention
    b, s, _ = x.shape
    h, kv, hd = a.num_heads, a.kv_heads, a.head_dim
    q, k = _linear(P, f"{p}.q_proj", x), _linear(P, f"{p}.k_proj", x)
    if a.qk_norm and a.qk_norm_scope == "projection":  # over all heads of a position at once
        q, k = _norm(spec, P, f"{p}.q_norm", q), _norm(spec, P, f"{p}.k_norm", k)
    q = q.reshape(b, s, h, hd).permute(0, 2, 1, 3)
    k = k.reshape(b, s, kv, hd).permute(0, 2, 1, 3)
    v = _linear(P, f"{p}.v_proj", x).reshape(b, s, kv, hd).permute(0, 2, 1, 3)
    if a.qk_norm and a.qk_norm_scope == "head":
        q, k = _norm(spec, P, f"{p}.q_norm", q), _norm(spec, P, f"{p}.k_norm", k)
    if spec.positional.kind == "rope" and a.rope:
        pe = spec.positional
        base = a.rope_base if a.rope_base is not None else pe.rope_base
        scaling = a.rope_scaling if a.rope_scaling is not None else pe.scaling
        r = round(hd * pe.rotary_fraction)
        if pos is None:
            pos = torch.arange(s)[None].repeat(b, 1)
        q, k = _rope(q, pos, base, r, pe.layout, scaling), _rope(k, pos, base, r, pe.layout, scaling)
    if past is not None:
        k, v = torch.cat([past[0], k], 2), torch.cat([past[1], v], 2)
    present = (k, v)
    allowed, dist = _mask(attention_mask, s, a.causal, a.window)
    kr, vr = k.repeat_interleave(h // kv, dim=1), v.repeat_interleave(h // kv, dim=1)
    scale = a.softmax_scale if a.softmax_scale is not None else 1.0 / math.sqrt(hd)
    scores = q @ kr.transpose(-1, -2) * scale  # [b, h, s, t]
    if a.softcap is not None:
        scores = a.softcap * torch.tanh(scores / a.softcap)
    if spec.positional.kind == "alibi":
        scores = scores - _alibi_slopes(h).to(scores.dtype)[None, :, None, None] * dist.to(scores.dtype)
    scores = torch.where(allowed, scores, torch.full_like(scores, torch.finfo(scores.dtype).min))
    probs = torch.softmax(scores, dim=-1)  # [b, h, s, t]
    if record is not None:
        record.append(probs)
    out = probs @ vr  # [b, h, s, hd]
    out = out.permute(0, 2, 1, 3).reshape(b, s, h * hd)
    return _linear(P, f"{p}.o_proj", out), present


def _moe(P, p, f, x):
    """Every expert on every token, weighted by its routing weight: softmax over all experts;
    expert e is chosen when fewer than top_k experts have a larger probability (no topk call);
    the chosen weights renormalised when the spec says so."""
    probs = torch.softmax(_linear(P, f"{p}.router.proj", x), dim=-1)  # [b, s, E]
    larger = (probs.unsqueeze(-1) < probs.unsqueeze(-2)).sum(-1)  # [b, s, E]: experts above e
    weights = torch.where(larger < f.top_k, probs, torch.zeros_like(probs))
    if f.router.normalize_top_k:
        weights = weights / weights.sum(-1, keepdim=True)
    out = torch.zeros_like(x)
    for e in range(f.num_experts):
        out = out + weights[..., e:e + 1] * _ffn(P, f"{p}.experts.{e}", f.expert, x)
    if f.shared_expert is not None:
        shared = _ffn(P, f"{p}.shared_expert", f.shared_expert, x)
        if f.shared_expert_gate == "sigmoid":
            shared = torch.sigmoid(x @ P[f"{p}.shared_expert_gate.weight"].T) * shared
        out = out + shared
    return out


def _ffn(P, p, f, x):
    if f.kind == "moe":
        return _moe(P, p, f, x)
    if f.kind == "mlp":
        return _linear(P, f"{p}.down_proj", _act(f.activation, _linear(P, f"{p}.up_proj", x)))
    act = "silu" if f.kind == "swiglu" else f.activation
    return _linear(P, f"{p}.down_proj", _act(act, _linear(P, f"{p}.gate_proj", x)) * _linear(P, f"{p}.up_proj", x))


def _layer(spec, P, i, blk, x, attention_mask, pos, past, record=None):
    """One layer written out per placement; each sublayer output is scaled by the residual
    multiplier m before its residual add."""
    p = f"layers.{i}"
    N = lambda name, y: _norm(spec, P, f"{p}.{name}", y)  # noqa: E731
    attn = lambda y: _attention(spec, P, f"{p}.attn", blk, y, attention_mask, pos, past, record)  # noqa: E731
    ffn = lambda y: _ffn(P, f"{p}.ffn", blk.ffn, y)  # noqa: E731
    m = blk.residual_multiplier
    place = blk.norm_placement
    if place == "post_sublayer":  # x + m * norm(f(x)); no input norms
        if blk.residual == "sequential":
            a, present = attn(x)
            x = x + m * N("attn_out_norm", a)
            return x + m * N("ffn_out_norm", ffn(x)), present
        a, present = attn(x)
        return x + m * N("attn_out_norm", a) + m * N("ffn_out_norm", ffn(x)), present
    if blk.residual == "parallel_shared_norm":
        if place == "post":
            a, present = attn(x)
            y = x + m * a + m * ffn(x)
            return (N("attn_norm", y) if blk.attn_norm else y), present
        h = N("attn_norm", x) if blk.attn_norm else x
        a, present = attn(h)
        f = ffn(h)
        if place == "sandwich":
            a, f = N("attn_out_norm", a), N("ffn_out_norm", f)
        return x + m * a + m * f, present
    if blk.residual == "parallel":
        if place == "post":
            a, present = attn(x)
            y = x + m * a + m * ffn(x)
            if blk.attn_norm:
                y = N("attn_norm", y)
            return N("ffn_norm", y), present
        a, present = attn(N("attn_norm", x) if blk.attn_norm else x)
        f = ffn(N("ffn_norm", x))
        if place == "sandwich":
            a, f = N("attn_out_norm", a), N("ffn_out_norm", f)
        return x + m * a + m * f, present
    if place == "post":
        a, present = attn(x)
        x = x + m * a
        if blk.attn_norm:
            x = N("attn_norm", x)
        return N("ffn_norm", x + m * ffn(x)), present
    a, present = attn(N("attn_norm", x) if blk.attn_norm else x)
    if place == "sandwich":
        a = N("attn_out_norm", a)
    x = x + m * a
    f = ffn(N("ffn_norm", x))
    if place == "sandwich":
        f = N("ffn_out_norm", f)
    return x + m * f, present


def _sinusoid(pos, d, base):
    i = torch.arange(d)
    freq = base ** (-(2 * (i // 2)).double() / d)  # [d]
    angle = pos.double()[..., None] * freq
    return torch.where(i % 2 == 0, torch.sin(angle), torch.cos(angle))


def reference_forward(spec, P, input_ids, attention_mask, position_ids=None, token_type_ids=None,
                      past=None, record=None):
    """The outputs of ``spec`` with parameters ``P`` (canonical names), as a dict like the
    compiled model's (``present.{i}.key/.value`` when ``past`` is a list of (k, v)). A list
    ``record`` receives each layer's attention probabilities [b, H, s, t], in layer order."""
    b, s = input_ids.shape
    x = P["embed.tokens.weight"][input_ids] * spec.embed_multiplier
    enc_pos = torch.arange(s)[None].repeat(b, 1)
    pos = position_ids if position_ids is not None else enc_pos
    if spec.positional.kind == "learned":
        x = x + P["embed.positions.weight"][pos + spec.positional.offset]
    elif spec.positional.kind == "sinusoidal":
        x = x + _sinusoid(pos, spec.embed_dim, spec.positional.base)
    if spec.type_vocab_size:
        x = x + P["embed.token_types.weight"][token_type_ids]
    if spec.embed_norm:
        x = _norm(spec, P, "embed.norm", x)
    out = {}
    for i, blk in enumerate(spec.resolved_layers()):
        x, (k, v) = _layer(spec, P, i, blk, x, attention_mask, position_ids, None if past is None else past[i],
                           record)
        if past is not None:
            out[f"present.{i}.key"], out[f"present.{i}.value"] = k, v
    if spec.final_norm:
        x = _norm(spec, P, "final_norm", x)
    head = spec.head
    tied = P["embed.tokens.weight"]
    if head.kind == "causal_lm":
        w = tied if spec.tie_embeddings else P["head.proj.weight"]
        logits = x @ w.T
        if "head.proj.bias" in P:
            logits = logits + P["head.proj.bias"]
        logits = logits * head.logit_scale
        if head.softcap is not None:  # tanh(z) = (e^2z - 1) / (e^2z + 1), by formula
            z = 2.0 * logits / head.softcap
            logits = head.softcap * torch.expm1(z) / (torch.exp(z) + 1.0)
        return {"logits": logits, **out}
    result = {"last_hidden_state": x}
    if head.kind == "masked_lm":
        y = _norm(spec, P, "head.norm", _act(head.activation, _linear(P, "head.dense", x)))
        w = tied if spec.tie_embeddings else P["head.decoder.weight"]
        logits = y @ w.T
        if "head.decoder.bias" in P:
            logits = logits + P["head.decoder.bias"]
        result["logits"] = logits
        return result
    m = attention_mask.to(x.dtype)
    if head.pooling == "cls":
        pooled = x[:, 0]
    elif head.pooling == "mean":
        pooled = (x * m[..., None]).sum(1) / m.sum(1, keepdim=True).clamp(min=1)
    else:
        last = torch.tensor([max([j for j in range(s) if attention_mask[r, j] == 1] or [0]) for r in range(b)])
        pooled = x[torch.arange(b), last]
    if head.pooler == "dense_tanh":
        pooled = torch.tanh(_linear(P, "head.pooler", pooled))
    if head.kind == "classification":
        result["logits"] = _linear(P, "head.classifier", pooled)
    else:
        if head.normalize:
            pooled = pooled / pooled.norm(dim=-1, keepdim=True).clamp(min=1e-12)
        result["embeddings"] = pooled
    return result
