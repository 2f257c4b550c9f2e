"""`blueprint explain SPEC`: the resolved spec as a per-layer table, parameter counts and costs.

Parameter counts come from ``compiler.naming.parameter_shapes`` (the same table the compiled
model's state_dict must match), so they are exact. FLOPs, KV-cache and activation memory come
from ``compiler.cost.cost_report``; parameter counts per component from its grouping.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("spec", metavar="SPEC", help="spec file to explain")
    parser.add_argument("--batch", type=_positive, default=1, metavar="B",
                        help="batch size for the memory estimates (default 1)")
    parser.add_argument("--seq-len", type=_positive, default=None, metavar="S",
                        help="sequence length for the estimates (default: the spec's max_seq_len)")
    parser.add_argument("--json", action="store_true",
                        help="print one JSON object: the resolved layers, parameter counts and costs")


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} must be at least 1")
    return value


# ----------------------------------------------------------------------------- formatting


def human_bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    raise AssertionError("unreachable")


def human_flops(n: float) -> str:
    for unit, scale in (("TFLOP", 1e12), ("GFLOP", 1e9), ("MFLOP", 1e6), ("kFLOP", 1e3)):
        if n >= scale:
            return f"{n / scale:.2f} {unit}"
    return f"{n:.0f} FLOP"


def table(headers: list[str], rows: list[list[str]], right: set[int]) -> list[str]:
    """Left/right-aligned plain-text columns."""
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(headers)]

    def line(cells: list[str]) -> str:
        return "  ".join(c.rjust(w) if i in right else c.ljust(w)
                         for i, (c, w) in enumerate(zip(cells, widths))).rstrip()

    return [line(headers), line(["-" * w for w in widths])] + [line(r) for r in rows]


# ----------------------------------------------------------------------------- content


def attention_kind(num_heads: int, num_kv_heads: int) -> str:
    if num_kv_heads == num_heads:
        return "MHA"
    return "MQA" if num_kv_heads == 1 else "GQA"


def layer_row(spec: Any, i: int, block: Any, params: int) -> list[str]:
    a, f = block.attention, block.ffn
    if a.window is None:
        window = "global"
    else:
        window = str(a.window) if a.causal else f"{a.window} (±{a.window // 2})"
    rope = "-"
    if spec.positional.kind == "rope":
        rope = f"{a.rope_base if a.rope_base is not None else spec.positional.rope_base:g}" if a.rope else "off"
        if a.rope and a.rope_scaling is not None:
            rope += f" ({scaling_text(a.rope_scaling)})"
    norms = block.norm_placement + ("" if block.attn_norm else ", no attn_norm")
    if block.residual == "parallel":
        norms += ", parallel"
    elif block.residual == "parallel_shared_norm":
        norms += ", parallel (one norm)"
    if block.residual_multiplier != 1:
        norms += f", residual x{block.residual_multiplier:g}"
    ffn = ffn_text(f)
    extras = [x for x, on in (("qk_norm" + ("(proj)" if a.qk_norm_scope == "projection" else ""), a.qk_norm),
                              ("qkv_bias", a.qkv_bias)) if on]
    if a.softcap is not None:
        extras.append(f"softcap {a.softcap:g}")
    return [str(i), attention_kind(a.num_heads, a.kv_heads), f"{a.num_heads}/{a.kv_heads}",
            str(a.head_dim), "causal" if a.causal else "bidi", window, rope, norms,
            ffn + (" +" + ",".join(extras) if extras else ""), f"{params:,}"]


def ffn_text(f: Any) -> str:
    """'swiglu 176', 'mlp gelu 256', 'moe 2/8 swiglu 128 +shared swiglu 64 (sigmoid)'."""
    if f.kind == "moe":
        text = f"moe {f.top_k}/{f.num_experts} {ffn_text(f.expert)}"
        if not f.router.normalize_top_k:
            text += " unnormalized"
        if f.shared_expert is not None:
            gate = " (sigmoid)" if f.shared_expert_gate == "sigmoid" else ""
            text += f" +shared {ffn_text(f.shared_expert)}{gate}"
        return text
    act = getattr(f, "activation", None)
    if f.kind == "geglu" and act == "gelu_tanh":
        return f"geglu(tanh) {f.hidden_dim}"
    return f"{f.kind}{' ' + act if act and f.kind == 'mlp' else ''} {f.hidden_dim}"


def scaling_text(scaling: Any) -> str:
    """'yarn x4' for a RoPE scaling, 'none' for none."""
    if scaling.kind == "none":
        return "none"
    return f"{scaling.kind} x{scaling.factor:g}"


def positional_text(pos: Any) -> str:
    text = pos.kind
    if pos.kind == "rope":
        text += f" (base {pos.rope_base:g}, rotary_fraction {pos.rotary_fraction:g}"
        text += ", interleaved" if pos.layout == "interleaved" else ""
        if pos.scaling.kind != "none":
            s = pos.scaling
            text += f", scaling {scaling_text(s)}"
            if getattr(s, "original_max_seq_len", None):
                text += f" from {s.original_max_seq_len}"
            if getattr(s, "attention_factor", None) not in (None, 1.0):
                text += f", attention_factor {s.attention_factor:.4g}"
        text += ")"
    elif pos.kind == "learned" and pos.offset:
        text += f" (offset {pos.offset})"
    return text


def component_params(spec: Any) -> dict[str, int]:
    """Parameter count per component ('embed', 'layers.0', ..., 'final_norm', 'head'): the cost
    model's grouping, so explain, inspect and the memory checks count the same way."""
    from compiler.cost import params_by_component

    return params_by_component(spec)


def layer_table(spec: Any, per: dict[str, int] | None = None) -> list[str]:
    """The per-layer table: two header lines, then one line per layer."""
    per = component_params(spec) if per is None else per
    rows = [layer_row(spec, i, b, per.get(f"layers.{i}", 0)) for i, b in enumerate(spec.resolved_layers())]
    return table(["layer", "attn", "heads q/kv", "head_dim", "mask", "window", "rope_base",
                  "norm", "ffn", "params"], rows, right={0, 2, 3, 9})


def describe(spec: Any, batch: int, seq_len: int | None) -> list[str]:
    from compiler.naming import parameter_shapes
    from compiler.policy import policy_label

    shapes = parameter_shapes(spec)
    per = component_params(spec)
    pos_text = positional_text(spec.positional)
    out = [
        f"{spec.name}: {_head_text(spec)}, {spec.num_layers} layers, embed_dim {spec.embed_dim}, "
        f"vocab_size {spec.vocab_size}, max_seq_len {spec.max_seq_len}, {spec.dtype}",
        f"positional: {pos_text}; norm: {_norm_text(spec.norm)}; embed_norm: {spec.embed_norm}; "
        + (f"embed_multiplier: {spec.embed_multiplier:g}; " if spec.embed_multiplier != 1 else "")
        + f"final_norm: {spec.final_norm}; tie_embeddings: {spec.tie_embeddings}; "
        f"checkpointing: {policy_label(spec.training.checkpointing)}",
        "",
    ]
    out += layer_table(spec, per)
    layer_total = sum(v for k, v in per.items() if k.startswith("layers."))
    comp_rows = [["embed", f"{per.get('embed', 0):,}", ""],
                 ["layers", f"{layer_total:,}", f"{spec.num_layers} layers"],
                 ["final_norm", f"{per.get('final_norm', 0):,}", ""],
                 ["head", f"{per.get('head', 0):,}",
                  "output projection tied to embed.tokens" if spec.tie_embeddings and
                  spec.head.kind in ("causal_lm", "masked_lm") else ""],
                 ["total", f"{sum(per.values()):,}", f"{len(shapes)} tensors"]]
    if any(b.ffn.kind == "moe" for b in spec.resolved_layers()):
        from compiler.cost import params_active

        comp_rows.append(["active", f"{params_active(spec):,}", "per token (top_k of num_experts experts)"])
    out += ["", "parameters"] + ["  " + line for line in
                                 table(["component", "count", ""], comp_rows, right={1})]
    out += [""] + cost_lines(spec, batch, seq_len)
    return out


def _norm_text(norm: Any) -> str:
    """'rmsnorm (eps 1e-06, scale 1 + weight)', 'layernorm (eps 1e-05, no weight, no bias)'."""
    parts = [f"eps {norm.norm_eps:g}"]
    if getattr(norm, "weight", True) is False:
        parts.append("no weight")
    elif norm.weight_offset != 0:
        parts.append(f"scale {norm.weight_offset:g} + weight")
    if getattr(norm, "bias", True) is False:
        parts.append("no bias")
    return f"{norm.kind} ({', '.join(parts)})"


def _head_text(spec: Any) -> str:
    """'causal_lm', 'causal_lm (logits x0.125, softcap 30)', 'masked_lm (encoder)'."""
    head = spec.head
    if not spec.is_decoder:
        return f"{head.kind} (encoder)"
    extras = [f"logits x{head.logit_scale:g}"] if head.logit_scale != 1 else []
    extras += [f"softcap {head.softcap:g}"] if head.softcap is not None else []
    return head.kind + (f" ({', '.join(extras)})" if extras else "")


def budget_lines(spec: Any, batch: int, s: int) -> list[str]:
    """What a ``{memory_budget: SIZE}`` policy recomputes at batch x s, or why it cannot."""
    budget = getattr(spec.training.checkpointing, "memory_budget", None)
    if budget is None:
        return []
    from blueprint.errors import BlueprintError
    from compiler.memory_budget import choose_layers

    try:
        chosen = choose_layers(spec, budget, batch=batch, seq_len=s)
    except BlueprintError as err:
        return [f"  memory_budget {human_bytes(budget)}: cannot be met ({err.message})"]
    layers = ",".join(map(str, chosen.layers)) or "none"
    return [f"  memory_budget {human_bytes(budget)}: recompute layers {layers} "
            f"({len(chosen.layers)} of {spec.num_layers}), keeps {human_bytes(chosen.saved_bytes)} for backward, "
            f"recompute {human_flops(chosen.recompute_flops)} per step"]


def cost_lines(spec: Any, batch: int, seq_len: int | None) -> list[str]:
    """Cost lines from ``compiler.cost.cost_report``."""
    from compiler.cost import cost_report

    report = cost_report(spec, batch=batch, seq_len=seq_len)
    s = seq_len or spec.max_seq_len
    lines = [f"costs (batch {batch}, seq_len {s}, {spec.dtype})",
             f"  FLOPs per token: prefill {human_flops(report.flops_per_token_prefill)}, "
             f"decode {human_flops(report.flops_per_token_decode)}"]
    if spec.is_decoder:
        lines.append(f"  KV cache per token: {human_bytes(report.kv_cache_bytes_per_token)} "
                     f"needed (window-aware), {human_bytes(report.kv_cache_bytes_per_token_full)}"
                     f" held by the exported full cache")
    if report.activation_bytes:
        lines.append("  activations saved for backward per training step:")
        for label, size in report.activation_bytes.items():
            lines.append(f"    {label:<14} {human_bytes(size)}")
    return lines + budget_lines(spec, batch, s)


def run(args: argparse.Namespace) -> int:
    from blueprint.spec.load import load_spec_file

    loaded = load_spec_file(args.spec)
    if args.seq_len is not None and args.seq_len > loaded.spec.max_seq_len:
        from blueprint.errors import BlueprintError

        raise BlueprintError(f"--seq-len {args.seq_len} exceeds the spec's max_seq_len "
                             f"({loaded.spec.max_seq_len})")
    for warning in loaded.warnings:  # diagnostics go to stderr; stdout is the explanation
        print(warning.format(), file=sys.stderr)
    if args.json:
        print(json.dumps(explain_json(loaded.spec, loaded.warnings, args.batch, args.seq_len), indent=2))
    else:
        print("\n".join(describe(loaded.spec, args.batch, args.seq_len)))
    return 0


def explain_json(spec: Any, warnings: list, batch: int, seq_len: int | None) -> dict:
    """What ``describe`` prints, as data: every layer resolved, parameters per component, costs."""
    per = component_params(spec)
    layers = []
    for i, block in enumerate(spec.resolved_layers()):
        layers.append({"index": i, **block.model_dump(mode="json"), "params": per.get(f"layers.{i}", 0)})
    out = {"name": spec.name, "kind": "decoder" if spec.is_decoder else "encoder", "head": spec.head.kind,
           "spec": spec.model_dump(mode="json", exclude={"layers", "block"}), "layers": layers,
           "parameters": {**{k: v for k, v in per.items() if not k.startswith("layers.")},
                          "layers": sum(v for k, v in per.items() if k.startswith("layers.")),
                          "total": sum(per.values())},
           "warnings": [{"path": w.path, "line": w.line, "column": w.column, "message": w.message,
                         "hint": w.hint} for w in warnings]}
    from compiler.cost import cost_report

    report = cost_report(spec, batch=batch, seq_len=seq_len)
    out["costs"] = {"batch": batch, "seq_len": seq_len or spec.max_seq_len, "dtype": spec.dtype,
                    "params_active": report.params_active,
                    "flops_per_token_prefill": report.flops_per_token_prefill,
                    "flops_per_token_decode": report.flops_per_token_decode,
                    "kv_cache_bytes_per_token": report.kv_cache_bytes_per_token,
                    "kv_cache_bytes_per_token_full": report.kv_cache_bytes_per_token_full,
                    "activation_bytes": report.activation_bytes}
    return out
