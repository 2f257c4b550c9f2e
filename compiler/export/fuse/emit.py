"""The fused decoder stack, emitted directly as onnxruntime contrib ops (onnx_ir).

Per layer (pre-norm, sequential residual), with ``x`` the residual stream:

    x      = x + prev_ffn_out                                     (RMSNorm: Add, then
    h      = SimplifiedLayerNormalization(x)                       SimplifiedLayerNormalization;
                                                                   LayerNorm: one
                                                                   SkipLayerNormalization)
    qkv    = MatMul(h, [Wq; Wk; Wv]^T) (+ packed bias)            one packed QKV MatMul
    a, K, V = GroupQueryAttention(qkv, past K, past V, cos, sin, position_ids, ...)
                                                                  packed input; RoPE (do_rotary),
                                                                  causality, window, cache append
                                                                  (or a window-sized cache it evicts
                                                                  from: --window-cache)
    h, x   = norm(x + MatMul(a, Wo^T))                            (same two forms)
    f      = MatMul(act(gate) * up, Wd^T), gate|up = Split(MatMul(h, [Wg; Wu]^T))   (GLU; MLP unpacked)

The last layer's FFN output is added to ``x`` with a plain Add (the tail piece holds the final
norm). Packed weights are ``Transpose(Concat(W1, W2, ...))`` of the parameters that live in
weights.safetensors: onnxruntime folds them once when it loads the model, and the weights stay
stored once on disk (``fold_packed_weights`` materialises them for the quantizer).

RoPE inside GroupQueryAttention (``do_rotary`` with the cos/sin caches and ``position_ids``):
with ``query_seqlens`` given, GQA rotates every query and key at its own position id, a
left-padded row included (measured equal to RotaryEmbedding bit for bit; without
``query_seqlens`` it rotates a prompt from its first position id, which would be wrong for
padding). A rotary width its kernel refuses (rotary_dim / 2 not a multiple of 8) keeps the
older form: Split of the packed projection, RotaryEmbedding on q and k, GQA on the three
(``eligible.rotary_inside``). Packing saves three nodes per layer (docs/build-speed.md).

Masking: GQA applies causality and the window itself; padding comes in as ``attention_bias``
[b, 1, s, t] built once per call from ``attention_mask``: a key is visible when it is a real
token or the query's own position (the mask contract in ``compiler.components.attention``), so
a padding query sees only itself, as in torch.
"""

from __future__ import annotations

import numpy as np

from compiler.export.fuse.eligible import activation, rope_base, rotary_dim, rotary_inside

MS = "com.microsoft"


class _Emitter:
    """Appends nodes to the stitched model (``compiler.export.stitch.Stitcher``)."""

    def __init__(self, stitch, prefix: str):
        import onnx_ir as ir

        self.ir, self.stitch, self.prefix, self.count = ir, stitch, prefix, 0
        self.memo: dict = {}  # values computed once per model (RoPE caches)

    def op(self, op_type: str, inputs: list, outputs: int = 1, domain: str = "", **attrs):
        ir = self.ir
        self.count += 1
        name = f"{self.prefix}{op_type}_{self.count}"
        node = ir.Node(domain, op_type, inputs, ir.convenience.convert_attributes(attrs), num_outputs=outputs,
                       name=name)
        for k, value in enumerate(node.outputs):
            value.name = f"{name}/out{k}"
        self.stitch.nodes.append(node)
        return node.outputs[0] if outputs == 1 else list(node.outputs)

    def const(self, name: str, array: np.ndarray):
        """A model-wide constant initializer (created once per name)."""
        ir = self.ir
        if name not in self.stitch.initializers:
            tensor = ir.tensor(array, name=name)
            self.stitch.initializers[name] = ir.Value(name=name, shape=tensor.shape,
                                                      type=ir.TensorType(tensor.dtype), const_value=tensor)
        return self.stitch.initializers[name]

    def param(self, name: str):
        """The initializer of parameter ``name`` (weights.safetensors-backed, tied names once)."""
        return self.stitch.initializer(name, None)


def _ints(*values) -> np.ndarray:
    return np.array(values, dtype=np.int64)


class MaskInputs:
    """What every layer's attention reads, computed once per call from ``attention_mask``."""

    def __init__(self, e: _Emitter, attention_mask, input_ids, float_dtype=np.float32):
        total = e.op("Shape", [attention_mask], start=1, end=2)  # [1]: t
        batch = e.op("Shape", [attention_mask], start=0, end=1)  # [1]: b
        seq = e.op("Shape", [input_ids], start=1, end=2)  # [1]: s
        total32 = e.op("Cast", [total], to=6)  # int32 [1]
        self.total = e.op("Squeeze", [total32])  # int32 scalar
        last = e.op("Sub", [total32, e.const("fuse.one_i32", np.array([1], dtype=np.int32))])  # [1]
        # every row's cache ends at t - 1: left padding keeps the contract's layout (key j at slot j)
        self.seqlens_k = e.op("Expand", [last, batch])  # int32 [b]
        # every row's new chunk is s tokens long; given explicitly, GQA also takes chunks of
        # several tokens after a past at batch > 1 (it refuses those without it)
        self.query_seqlens = e.op("Expand", [e.op("Cast", [seq], to=6), batch])  # int32 [b]
        start = e.op("Sub", [total, seq])  # [1]: t - s, the first query's position
        zero, one = e.const("fuse.zero_s", np.array(0, dtype=np.int64)), e.const("fuse.one_s", np.array(1, dtype=np.int64))
        t_scalar, start_scalar = e.op("Squeeze", [total]), e.op("Squeeze", [start])
        q_pos = e.op("Range", [start_scalar, t_scalar, one])  # [s]
        k_pos = e.op("Range", [zero, t_scalar, one])  # [t]
        own = e.op("Equal", [e.op("Unsqueeze", [q_pos, e.const("fuse.axis1", _ints(1))]),
                             e.op("Unsqueeze", [k_pos, e.const("fuse.axis0", _ints(0))])])  # bool [s, t]
        real = e.op("Cast", [e.op("Unsqueeze", [attention_mask, e.const("fuse.axes12", _ints(1, 2))])], to=9)
        visible = e.op("Or", [real, own])  # bool [b, 1, s, t]
        lowest = np.array(np.finfo(float_dtype).min, dtype=float_dtype)
        self.bias = e.op("Where", [visible, e.const("fuse.zero_f", np.array(0, dtype=float_dtype)),
                                   e.const("fuse.lowest", lowest)])  # [b, 1, s, t] additive


def rope_caches(max_positions: int, dim: int, base: float) -> tuple[np.ndarray, np.ndarray]:
    """cos and sin [max_positions, dim / 2] as ``Rope`` computes them (float32), for tests."""
    import torch

    exponent = torch.arange(0, dim, 2).to(torch.float32) / dim  # [dim/2]
    inv_freq = 1.0 / base ** exponent  # [dim/2]
    freqs = torch.arange(max_positions).to(torch.float32)[:, None] * inv_freq  # [P, dim/2]
    return freqs.cos().numpy(), freqs.sin().numpy()


def _rope_cache_values(e: _Emitter, max_positions: int, dim: int, base: float):
    """The cos/sin caches as graph values computed from constants (positions x inverse
    frequencies, as ``Rope``): onnxruntime folds them once at load, and model.onnx holds 3
    scalars and dim/2 floats instead of 2 x max_positions x dim/2 (2 MB for SmolLM2)."""
    import torch

    key = f"fuse.rope_{dim}_{base!r}"
    if key in e.memo:
        return e.memo[key]
    exponent = torch.arange(0, dim, 2).to(torch.float32) / dim  # [dim/2]
    inv_freq = e.const(key, (1.0 / base ** exponent).numpy())  # [dim/2], float32 as Rope
    scalar = lambda name, v: e.const(name, np.array(v, dtype=np.int64))  # noqa: E731 - Range takes scalars
    positions = e.op("Cast", [e.op("Range", [scalar("fuse.zero_s", 0), scalar(f"fuse.positions_{max_positions}",
                                                                          max_positions),
                                              scalar("fuse.one_s", 1)])], to=1)  # [P] float32
    freqs = e.op("Mul", [e.op("Unsqueeze", [positions, e.const("fuse.axis1", _ints(1))]), inv_freq])  # [P, dim/2]
    values = (e.op("Cos", [freqs]), e.op("Sin", [freqs]))
    e.memo[key] = values
    return values


def emit_norm(e: _Emitter, spec, name: str, x, skip=None):
    """(normed, new residual): the spec's norm (parameters ``<name>.weight`` / ``.bias``) of x,
    or of x + skip fused with the add when ``skip`` is given (the new residual is then x + skip)."""
    w = e.param(name + ".weight")
    eps = float(spec.norm.norm_eps)
    if spec.norm.kind == "rmsnorm":
        # Add + SimplifiedLayerNormalization, not SkipSimplifiedLayerNormalization: the skip
        # op's fp32 rounding doubled the gate's error on SmolLM2 (decode case 3.9e-5 of 4.9e-5
        # allowed; 2.0e-5 with these two ops, as the plain export), docs/build-speed.md
        if skip is not None:
            x = e.op("Add", [x, skip])
        return e.op("SimplifiedLayerNormalization", [x, w], axis=-1, epsilon=eps, stash_type=1), x
    b = [e.param(name + ".bias")] if spec.norm.bias else []
    if skip is None:
        return e.op("LayerNormalization", [x, w] + b, axis=-1, epsilon=eps, stash_type=1), x
    out = e.op("SkipLayerNormalization", [x, skip, w] + b, outputs=4, domain=MS, epsilon=eps)
    return out[0], out[3]


class _Layer:
    def __init__(self, e: _Emitter, spec, i: int):
        self.e, self.spec, self.i = e, spec, i
        self.block = spec.layer(i) if hasattr(spec, "layer") else spec.resolved_layers()[i]
        self.p = f"layers.{i}."

    def caches(self, dim: int, base: float):
        return _rope_cache_values(self.e, self.spec.max_seq_len, dim, base)

    def weight_t(self, names: list[str], key: str):
        """[in, sum(out)]: the packed, transposed weights of ``names`` (nn.Linear [out, in])."""
        e = self.e
        ws = [e.param(self.p + n + ".weight") for n in names]
        packed = ws[0] if len(ws) == 1 else e.op("Concat", ws, axis=0)  # [sum(out), in]
        return e.op("Transpose", [packed], perm=[1, 0])

    def linear(self, h, names: list[str], key: str, bias: bool):
        e = self.e
        y = e.op("MatMul", [h, self.weight_t(names, key)])
        if bias:
            bs = [e.param(self.p + n + ".bias") for n in names]
            y = e.op("Add", [y, bs[0] if len(bs) == 1 else e.op("Concat", bs, axis=0)])
        return y

    def norm(self, which: str, x, skip=None):
        return emit_norm(self.e, self.spec, self.p + which, x, skip)

    def attention(self, h, masks: MaskInputs, positions, past_k, past_v, bounded: bool = False):
        e, spec, a = self.e, self.spec, self.block.attention
        H, KV, hd = a.num_heads, a.kv_heads, a.head_dim
        qkv = self.linear(h, ["attn.q_proj", "attn.k_proj", "attn.v_proj"], "qkv", a.qkv_bias)  # [b, s, (H+2KV)hd]
        scale = a.softmax_scale if a.softmax_scale is not None else hd ** -0.5
        attrs = {"num_heads": H, "kv_num_heads": KV, "scale": float(scale)}
        if a.window is not None:
            attrs["local_window_size"] = a.window  # measured: W keys, the query included, as Attention
        rotary = [None, None, None]  # GQA's cos/sin caches and position ids, when it rotates itself
        q, k, v = qkv, None, None  # packed QKV goes into GQA whole
        if spec.positional.kind == "rope":
            r = rotary_dim(spec, a)
            cos, sin = self.caches(r, rope_base(spec, a))
            if rotary_inside(spec, a, positions):
                rotary = [cos, sin, positions]
                attrs.update(do_rotary=1, rotary_interleaved=0)
            else:  # a rotary width GQA's kernel refuses
                q, k, v = e.op("Split", [qkv, e.const(f"fuse.split_{H}_{KV}_{hd}", _ints(H * hd, KV * hd, KV * hd))],
                               outputs=3, axis=-1)
                q = e.op("RotaryEmbedding", [q, positions, cos, sin], domain=MS, num_heads=H,
                         rotary_embedding_dim=r, interleaved=0)
                k = e.op("RotaryEmbedding", [k, positions, cos, sin], domain=MS, num_heads=KV,
                         rotary_embedding_dim=r, interleaved=0)
        if bounded:  # a window-sized cache the op evicts from (blueprint/window_cache.py)
            attrs["sliding_window_cache"] = 1
        out, present_k, present_v = e.op(
            "GroupQueryAttention",
            [q, k, v, past_k, past_v, masks.seqlens_k, masks.total, *rotary, masks.bias,
             None, None, None, None, None, masks.query_seqlens],
            outputs=3, domain=MS, **attrs)
        return self.linear(out, ["attn.o_proj"], "o", a.out_bias), present_k, present_v

    def ffn(self, h):
        e, f = self.e, self.block.ffn
        act = activation(f)
        if f.kind == "mlp":
            return self.linear(self._act(self.linear(h, ["ffn.up_proj"], "up", f.bias), act),
                               ["ffn.down_proj"], "down", f.bias)
        gu = self.linear(h, ["ffn.gate_proj", "ffn.up_proj"], "gate_up", f.bias)  # [b, s, 2F]
        gate, up = e.op("Split", [gu], outputs=2, axis=-1, num_outputs=2)
        return self.linear(e.op("Mul", [self._act(gate, act), up]), ["ffn.down_proj"], "down", f.bias)

    def _act(self, x, act: str):
        e = self.e
        if act == "silu":
            return e.op("Mul", [x, e.op("Sigmoid", [x])])
        if act == "relu":
            return e.op("Relu", [x])
        return e.op("Gelu" if act == "gelu" else "FastGelu", [x], domain=MS)  # gelu_tanh: FastGelu


def emit_stack(stitch, spec, x, inputs: dict, bounded: frozenset[int] = frozenset()) -> tuple[object, dict]:
    """Emit every layer after the embeddings' output ``x``; returns (the residual stream after
    the last layer [b, s, D], {present.<i>.key/value: value}). Layers in ``bounded`` (windowed
    layers, ``blueprint.window_cache.plan``) keep a window-sized cache."""
    e = _Emitter(stitch, "fused/")
    masks = MaskInputs(e, inputs["attention_mask"], inputs["input_ids"])
    positions = inputs.get("position_ids")
    presents, pending = {}, None
    for i in range(spec.num_layers):
        layer = _Layer(e, spec, i)
        e.prefix = f"layers.{i}/"
        h, x = layer.norm("attn_norm", pending if pending is not None else x, x if pending is not None else None)
        a, presents[f"present.{i}.key"], presents[f"present.{i}.value"] = layer.attention(
            h, masks, positions, inputs[f"past_key_values.{i}.key"], inputs[f"past_key_values.{i}.value"],
            bounded=i in bounded)
        h, x = layer.norm("ffn_norm", a, x)
        pending = layer.ffn(h)
    return e.op("Add", [pending, x]), presents


def keep_last(stitch, x, keep):
    """x[:, -keep:] ([b, s, D] -> [b, k, D]); ``keep`` 0 keeps every position."""
    e = _Emitter(stitch, "fused/keep/")
    start = e.op("Neg", [e.op("Reshape", [keep, e.const("fuse.shape1", _ints(1))])])  # [1]
    return e.op("Slice", [x, start, e.const("fuse.int64_max", _ints(np.iinfo(np.int64).max)),
                          e.const("fuse.axis1", _ints(1))])
