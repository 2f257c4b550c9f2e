"""A hand-written stand-in for the compiled model (contract 4), used only while the real
compiler is missing, so the export/verify/run pipeline can be tested on its own.

It follows the same I/O contract (positional inputs in contract order, a dict of outputs keyed by
the ONNX names, an additive finfo.min mask with causal window semantics) but is deliberately
simple: no norms, learned absolute positions even for RoPE specs, one attention + MLP per layer.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class _Layer(nn.Module):
    def __init__(self, d: int, h: int, kv: int, hd: int, window: int | None, causal: bool):
        super().__init__()
        self.h, self.kv, self.hd, self.window, self.causal = h, kv, hd, window, causal
        self.q = nn.Linear(d, h * hd)
        self.k = nn.Linear(d, kv * hd)
        self.v = nn.Linear(d, kv * hd)
        self.o = nn.Linear(h * hd, d)
        self.up = nn.Linear(d, 2 * d)
        self.down = nn.Linear(2 * d, d)

    def forward(self, x, key_mask, past_k=None, past_v=None):
        b, s, _ = x.shape
        q = self.q(x).view(b, s, self.h, self.hd).transpose(1, 2)  # [b, h, s, hd]
        k = self.k(x).view(b, s, self.kv, self.hd).transpose(1, 2)  # [b, kv, s, hd]
        v = self.v(x).view(b, s, self.kv, self.hd).transpose(1, 2)  # [b, kv, s, hd]
        if past_k is not None:
            k = torch.cat([past_k, k], dim=2)  # [b, kv, past+s, hd]
            v = torch.cat([past_v, v], dim=2)
        total = k.shape[2]
        qi = torch.arange(s, device=x.device) + (total - s)
        ki = torch.arange(total, device=x.device)
        diff = qi[:, None] - ki[None, :]  # [s, total]
        allowed = key_mask[:, None, None, :].bool()  # [b, 1, 1, total]
        if self.causal:
            ok = diff >= 0
            if self.window is not None:
                ok = ok & (diff < self.window)
        else:
            ok = torch.ones_like(diff, dtype=torch.bool)
            if self.window is not None:
                ok = diff.abs() <= self.window // 2
        # A padded query sees itself, so no row is fully masked (ORT's opset-23 Attention gives 0
        # for a fully masked row where torch gives mean(V)).
        allowed = (allowed & ok[None, None]) | (diff == 0)[None, None]
        mask = torch.where(allowed, 0.0, torch.finfo(x.dtype).min).to(x.dtype)
        a = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, enable_gqa=self.h != self.kv)
        x = x + self.o(a.transpose(1, 2).reshape(b, s, self.h * self.hd))  # [b, s, d]
        x = x + self.down(F.gelu(self.up(x)))
        return x, k, v


class StandIn(nn.Module):
    """Contract-4 I/O over a toy network; see the module docstring."""

    def __init__(self, spec, kv_cache: bool = False):
        super().__init__()
        torch.manual_seed(spec.init.seed)
        self.spec, self.kv_cache = spec, kv_cache
        d = spec.embed_dim
        self.tokens = nn.Embedding(spec.vocab_size, d)
        self.positions = nn.Embedding(spec.max_seq_len, d)
        self.types = nn.Embedding(spec.type_vocab_size, d) if spec.type_vocab_size else None
        self.layers = nn.ModuleList()
        for blk in spec.resolved_layers():
            a = blk.attention
            self.layers.append(_Layer(d, a.num_heads, a.kv_heads, a.head_dim, a.window, a.causal))
        head = spec.head
        out = {"causal_lm": spec.vocab_size, "masked_lm": spec.vocab_size,
               "classification": getattr(head, "num_labels", 0), "embeddings": d}[head.kind]
        self.head = nn.Linear(d, out)

    def forward(self, *args):
        spec = self.spec
        if spec.is_decoder:
            input_ids, attention_mask = args[0], args[1]
            rest = list(args[2:])
            pos = rest.pop(0) if spec.positional.kind != "none" else None
            x = self.tokens(input_ids)
            if pos is not None:
                x = x + self.positions(pos)
            out = {}
            for i, layer in enumerate(self.layers):
                pk, pv = (rest[2 * i], rest[2 * i + 1]) if self.kv_cache else (None, None)
                x, k, v = layer(x, attention_mask, pk, pv)
                if self.kv_cache:
                    out[f"present.{i}.key"], out[f"present.{i}.value"] = k, v
            return {"logits": self.head(x), **out}
        input_ids, attention_mask = args[0], args[1]
        s = input_ids.shape[1]
        x = self.tokens(input_ids) + self.positions(torch.arange(s, device=input_ids.device))[None]
        if self.types is not None:
            x = x + self.types(args[2])
        for layer in self.layers:
            x, _, _ = layer(x, attention_mask)
        out = {"last_hidden_state": x}
        if spec.head.kind == "embeddings":
            out["embeddings"] = torch.tanh(self.head(x[:, 0]))
        elif spec.head.kind == "classification":
            out["logits"] = self.head(x[:, 0])
        else:
            out["logits"] = self.head(x)
        return out


def compile_standin(spec, *, kv_cache: bool = False) -> nn.Module:
    return StandIn(spec, kv_cache=kv_cache).eval()
