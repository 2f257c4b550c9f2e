"""The per-layer cross-field rules: each takes one group of layers that resolve to the same block
(``sel``: the overrides selecting them, ``layers``: their indices, ``b``: the resolved block) and
reports through ``RuleChecker.report_layers``, blaming the override or ``block`` key that set
the value (``RuleChecker.origin``). A mixin of ``blueprint.spec.rules.RuleChecker``, which
runs them from ``check_layers``; split out so each module stays one job (docs/architecture.md).
"""

from __future__ import annotations

from contextlib import suppress
from typing import Any

from blueprint.spec.partial import Unknown, known
from blueprint.spec.schema import BlockSpec, heads_problem

ALIGN = 64  # matmul tiles, SIMD widths and tensor cores all like multiples of 64


def round_up(n: int) -> int:
    return -(-n // ALIGN) * ALIGN


class LayerRules:
    """Per-layer rules (see the module docstring); the reporting helpers come from RuleChecker."""

    report_layers: Any
    report: Any
    origin: Any
    _changed_last: Any
    spec: Any

    def rule_heads(self, sel: tuple[int, ...], layers: list[int], b: BlockSpec) -> None:
        problem = heads_problem(b.attention.num_heads, b.attention.kv_heads)
        if problem:  # one report per origin: the values in the message tell the layers apart
            heads, kv = (self.origin(sel, ("attention", f)) for f in ("num_heads", "num_kv_heads"))
            self.report(self._changed_last(heads, kv), problem)

    def rule_causal(self, sel: tuple[int, ...], layers: list[int], b: BlockSpec) -> None:
        if not b.attention.causal and self.spec.head.kind == "causal_lm":
            self.report_layers(layers, self.origin(sel, ("attention", "causal")),
                               "bidirectional attention (causal: false) contradicts the "
                               "causal_lm head: a decoder must not see the tokens it predicts",
                               "set causal: true, or use an encoder head (masked_lm, "
                               "embeddings, classification)")

    def rule_window(self, sel: tuple[int, ...], layers: list[int], b: BlockSpec) -> None:
        window, max_seq_len = b.attention.window, self.spec.max_seq_len
        if window is not None and window > max_seq_len:
            self.report_layers(layers, self.origin(sel, ("attention", "window")),
                               f"window ({window}) exceeds max_seq_len ({max_seq_len})",
                               f"use a window <= {max_seq_len}, or null for global attention")

    def rule_rope_base(self, sel: tuple[int, ...], layers: list[int], b: BlockSpec) -> None:
        rope_base, kind = b.attention.rope_base, self.spec.positional.kind
        if rope_base is not None and kind != "rope":
            self.report_layers(layers, self.origin(sel, ("attention", "rope_base")),
                               f"rope_base ({rope_base:g}) is set but positional.kind is "
                               f"{kind!r}; only RoPE has a base",
                               "remove rope_base, or use positional: {kind: rope}")

    def rule_rope_even(self, sel: tuple[int, ...], layers: list[int], b: BlockSpec) -> None:
        pos, head_dim = self.spec.positional, b.attention.head_dim
        if pos.kind != "rope" or not b.attention.rope:
            return
        rotary = head_dim * pos.rotary_fraction
        whole = round(rotary)
        if abs(rotary - whole) > 1e-9 or whole % 2:  # 40 * 0.35 is 14.000000000000002
            where = (("positional", "rotary_fraction") if pos.rotary_fraction != 1
                     else self.origin(sel, ("attention", "head_dim")))
            self.report_layers(layers, where,
                               f"RoPE needs an even rotary dimension: head_dim ({head_dim}) "
                               f"* rotary_fraction ({pos.rotary_fraction:g}) = {rotary:g}",
                               "choose head_dim and rotary_fraction whose product is an even "
                               "integer")

    # attention-position rules (attn): each per-layer RoPE setting needs RoPE, longrope one divisor
    # per rotated frequency, a QK-norm scope a QK-norm

    def rule_rope_layer(self, sel: tuple[int, ...], layers: list[int], b: BlockSpec) -> None:
        kind, a = self.spec.positional.kind, b.attention
        for field, written, text in (("rope", not a.rope, "rope: false"),
                                     ("rope_scaling", a.rope_scaling is not None, "rope_scaling")):
            if written and kind != "rope":
                self.report_layers(layers, self.origin(sel, ("attention", field)),
                                   f"{text} is set but positional.kind is {kind!r}; only RoPE "
                                   f"can be turned off or scaled per layer",
                                   f"remove {field}, or use positional: {{kind: rope}}")
        if not a.rope and (a.rope_base is not None or a.rope_scaling is not None):
            field = "rope_base" if a.rope_base is not None else "rope_scaling"
            self.report_layers(layers, self.origin(sel, ("attention", field)),
                               f"{field} has no effect on a layer with rope: false, which rotates nothing",
                               f"remove {field} from these layers, or set rope: true", warning=True)

    def rule_rope_factors(self, sel: tuple[int, ...], layers: list[int], b: BlockSpec) -> None:
        pos, a = self.spec.positional, b.attention
        if pos.kind != "rope":
            return
        scaling = a.rope_scaling if a.rope_scaling is not None else pos.scaling
        if scaling.kind != "longrope":
            return
        pairs = round(a.head_dim * pos.rotary_fraction) // 2
        if len(scaling.short_factor) != pairs:
            where = (self.origin(sel, ("attention", "rope_scaling", "short_factor"))
                     if a.rope_scaling is not None else ("positional", "scaling", "short_factor"))
            self.report_layers(layers, where,
                               f"longrope needs one factor per rotary frequency: head_dim "
                               f"({a.head_dim}) * rotary_fraction ({pos.rotary_fraction:g}) / 2 = "
                               f"{pairs}, got {len(scaling.short_factor)}",
                               f"give short_factor and long_factor {pairs} entries each")

    def rule_qk_scope(self, sel: tuple[int, ...], layers: list[int], b: BlockSpec) -> None:
        a = b.attention
        if a.qk_norm_scope != "head" and not a.qk_norm:
            self.report_layers(layers, self.origin(sel, ("attention", "qk_norm_scope")),
                               "qk_norm_scope has no effect without qk_norm",
                               "set qk_norm: true, or remove qk_norm_scope", warning=True)

    def rule_hidden(self, sel: tuple[int, ...], layers: list[int], b: BlockSpec) -> None:
        ffns = [(("ffn",), b.ffn)]
        if b.ffn.kind == "moe":  # each expert (and the shared one) is an FFN of its own
            ffns = [(("ffn", part), getattr(b.ffn, part)) for part in ("expert", "shared_expert")
                    if getattr(b.ffn, part) is not None]
        for path, ffn in ffns:
            with suppress(Unknown):
                hidden = known(ffn).hidden_dim
                if hidden % ALIGN:
                    self.report_layers(layers, self.origin(sel, path + ("hidden_dim",)),
                                       f"{'.'.join(path)} hidden_dim ({hidden}) is not a multiple of {ALIGN}",
                                       f"{round_up(hidden)} runs faster on most hardware", warning=True)

    def rule_attn_norm(self, sel: tuple[int, ...], layers: list[int], b: BlockSpec) -> None:
        if not b.attn_norm and b.norm_placement == "post_sublayer":
            where = self._changed_last(self.origin(sel, ("attn_norm",)), self.origin(sel, ("norm_placement",)))
            self.report_layers(layers, where,
                               "attn_norm: false drops an attention input norm, but norm_placement "
                               "post_sublayer has none (it normalises the sublayer outputs only)",
                               "remove attn_norm: false, or use norm_placement pre or sandwich")
