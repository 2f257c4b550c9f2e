"""The fused export's two ends, emitted directly: the embeddings and the causal LM tail.

Why: once the layers were emitted (``emit``), ``torch.onnx.export`` still ran for the token and
position lookups and the final norm + head, six nodes for GPT-2 small, at a cost of ~3 s of
tracing and exporter set-up plus ~1.3 s importing ``torch.export`` and onnxscript's torchlib:
about 40% of a 12 s ``blueprint build``. docs/build-speed.md has the measurements.

    embed: x = Gather(embed.tokens.weight, input_ids) (* embed_multiplier)
               (+ Gather(embed.positions.weight, position_ids))   learned positions
               (-> the spec's norm, embed.norm.*)                   embed_norm
    tail:  logits = MatMul(final norm(x), Transpose(W)) (+ head.proj.bias) (* logit_scale)
                    (-> softcap * Tanh(logits / softcap))
           W = head.proj.weight, or embed.tokens.weight when tied (stored once)

Each line is what the torch component computes (``compiler.components.embeddings``,
``heads.CausalLMHead``), in the same float32 order of operations; the build's float64 gate
checks the result like any export. An end with anything else (sinusoidal positions, a
position offset, token types, another head) is still exported from the torch components:
``why_not_embed`` / ``why_not_tail`` say why.
"""

from __future__ import annotations

import numpy as np

from compiler.export.fuse.emit import _Emitter, emit_norm


def emitted_ends(spec, input_names: list[str]) -> set[str]:
    """Which ends of a fused export ("embed", "tail") are emitted here rather than exported."""
    return {end for end, reason in (("embed", why_not_embed(spec, input_names)), ("tail", why_not_tail(spec)))
            if reason is None}


def why_not_embed(spec, input_names: list[str]) -> str | None:
    """None when ``emit_embed`` computes exactly what the spec's Embeddings do."""
    kind = spec.positional.kind
    if kind not in ("rope", "none", "learned"):
        return f"positional.kind {kind}"
    if kind == "learned" and (getattr(spec.positional, "offset", 0) or "position_ids" not in input_names):
        return "learned positions with an offset or without position_ids"
    if spec.type_vocab_size:
        return "token type embeddings"
    return None


def why_not_tail(spec) -> str | None:
    """None when ``emit_tail`` computes exactly what the final norm and the head do."""
    if spec.head.kind != "causal_lm":
        return f"head.kind {spec.head.kind}"
    return None


def emit_embed(stitch, spec, inputs: dict):
    """The embeddings' output x [b, s, D] from the graph inputs (``why_not_embed`` is None)."""
    e = _Emitter(stitch, "embed/")
    x = e.op("Gather", [e.param("embed.tokens.weight"), inputs["input_ids"]], axis=0)  # [b, s, D]
    if spec.embed_multiplier != 1.0:
        x = e.op("Mul", [x, e.const("embed.multiplier", np.array(spec.embed_multiplier, dtype=np.float32))])
    if spec.positional.kind == "learned":
        x = e.op("Add", [x, e.op("Gather", [e.param("embed.positions.weight"), inputs["position_ids"]],
                                 axis=0)])  # [b, s, D]
    if spec.embed_norm:
        x, _ = emit_norm(e, spec, "embed.norm", x)
    return x


def emit_tail(stitch, spec, x):
    """logits [b, s, V] from the last layer's residual stream x [b, s, D] (``why_not_tail`` is None)."""
    e = _Emitter(stitch, "tail/")
    if spec.final_norm:
        x, _ = emit_norm(e, spec, "final_norm", x)
    weight = e.param("head.proj.weight")  # [V, D]; the tied name resolves to embed.tokens.weight
    logits = e.op("MatMul", [x, e.op("Transpose", [weight], perm=[1, 0])])  # [b, s, V]
    if spec.head.bias:
        logits = e.op("Add", [logits, e.param("head.proj.bias")])
    if spec.head.logit_scale != 1.0:
        logits = e.op("Mul", [logits, e.const("head.logit_scale", np.array(spec.head.logit_scale, dtype=np.float32))])
    if spec.head.softcap is not None:  # divide, tanh, multiply: the component's (Gemma 2's) order
        cap = e.const("head.softcap", np.array(spec.head.softcap, dtype=np.float32))
        logits = e.op("Mul", [e.op("Tanh", [e.op("Div", [logits, cap])]), cap])
    return logits
