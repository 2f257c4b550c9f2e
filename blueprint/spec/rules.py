"""Cross-field rules: what no single section can check on its own.

Runs on a schema-valid ``ModelSpec`` together with the raw mapping and its positions, so every
finding points at the line that caused it: a window set by an override is reported inside that
override, a default block value inside ``block``. Messages carry the values involved.

Decisions worth knowing:

- ``head_dim`` given explicitly: the query width ``num_heads * head_dim`` may differ from
  ``embed_dim`` (LLaMA-style projections allow it). ``head_dim`` not given: ``embed_dim`` must be
  divisible by ``num_heads``, otherwise the default ``embed_dim // num_heads`` would silently
  drop dimensions.
- Bidirectional attention under a ``causal_lm`` head is an error (the model would see the
  tokens it must predict, and no KV cache is possible); a causal layer under an encoder head is
  allowed.
- ``tie_embeddings`` with a head that has no output projection (embeddings, classification) is a
  warning: it changes nothing, but published BERT configs carry it.
- Hardware-unfriendly sizes (not a multiple of 64) are warnings, never errors.

Layers are grouped by the overrides that select them, so a 4096-layer spec costs one
validation per distinct layer kind, not per layer.
"""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError

from blueprint.errors import SpecIssue
from blueprint.spec.diagnose import explain_error, sort_issues
from blueprint.spec.resolve import deep_merge, fill_block_defaults
from blueprint.spec.schema import BlockSpec, ModelSpec
from blueprint.spec.source import Path, Positions, dotted

ALIGN = 64  # matmul tiles, SIMD widths and tensor cores all like multiples of 64


def _has(data: Any, path: Path) -> bool:
    for item in path:
        if isinstance(data, dict) and item in data:
            data = data[item]
        elif isinstance(data, list) and isinstance(item, int) and 0 <= item < len(data):
            data = data[item]
        else:
            return False
    return True


def _layer_list(layers: list[int]) -> str:
    """[0, 1, 2, 5] -> '0-2, 5' (long lists are cut after six runs)."""
    parts: list[str] = []
    start = prev = layers[0]
    for cur in layers[1:] + [-1]:
        if cur == prev + 1:
            prev = cur
            continue
        parts.append(str(start) if start == prev else f"{start}-{prev}")
        start = prev = cur
    if len(parts) > 8:  # keep one message one line: 4096-layer specs exist
        return ", ".join(parts[:6]) + f", ... ({len(layers)} layers in all)"
    return ", ".join(parts)


class RuleChecker:
    """Collects errors and warnings for one spec; ``run`` returns both, sorted by position."""

    def __init__(self, spec: ModelSpec, data: dict[str, Any], positions: Positions):
        self.spec, self.data, self.positions = spec, data, positions
        self.errors: list[SpecIssue] = []
        self.warnings: list[SpecIssue] = []
        # (path, message, hint, severity) -> layers it applies to
        self._per_layer: dict[tuple[Path, str, str | None, str], list[int]] = {}

    # ------------------------------------------------------------------ reporting

    def report(self, path: Path, message: str, hint: str | None = None, *,
               warning: bool = False, on_key: bool = False) -> None:
        loc = self.positions.locate(path, on_key=on_key)
        issue = SpecIssue(message, dotted(path), loc.file, loc.line, loc.column, hint,
                          "warning" if warning else "error")
        bucket = self.warnings if warning else self.errors
        if all((i.path, i.message) != (issue.path, issue.message) for i in bucket):
            bucket.append(issue)

    def report_layer(self, layer: int, path: Path, message: str, hint: str | None = None,
                     *, warning: bool = False) -> None:
        key = (path, message, hint, "warning" if warning else "error")
        self._per_layer.setdefault(key, []).append(layer)

    def _flush_layers(self) -> None:
        for (path, message, hint, severity), layers in self._per_layer.items():
            if len(layers) < self.spec.num_layers:
                noun = "layer" if len(layers) == 1 else "layers"
                message += f" ({noun} {_layer_list(sorted(set(layers)))})"
            self.report(path, message, hint, warning=severity == "warning")

    # ------------------------------------------------------------------ layers

    def origin(self, selecting: tuple[int, ...], field: Path) -> Path:
        """Where a resolved block field came from: the last override that sets it, else block."""
        for k in reversed(selecting):
            if _has(self.data, ("layers", k, "set") + field):
                return ("layers", k, "set") + field
        return ("block",) + field

    def resolve_groups(self) -> list[tuple[tuple[int, ...], list[int], BlockSpec | None]]:
        """(selecting overrides, layers, resolved block or None if the overrides are invalid)."""
        groups: dict[tuple[int, ...], list[int]] = {}
        for i in range(self.spec.num_layers):
            selecting = tuple(k for k, o in enumerate(self.spec.layers) if o.selects(i))
            groups.setdefault(selecting, []).append(i)
        out = []
        for selecting, layers in groups.items():
            out.append((selecting, layers, self._resolve(selecting)))
        return out

    def _resolve(self, selecting: tuple[int, ...]) -> BlockSpec | None:
        if not selecting:
            return self.spec.block
        merged = self.spec.block.model_dump(mode="python")
        for k in selecting:
            merged = deep_merge(merged, self.spec.layers[k].set)
        try:
            return fill_block_defaults(BlockSpec.model_validate(merged), self.spec.embed_dim)
        except ValidationError as err:
            for e in err.errors():
                path, on_key, message, hint = explain_error(e, merged, BlockSpec)
                blame = self._blame(selecting, path)
                self.report(("layers", blame, "set") + path, message, hint, on_key=on_key)
            return None

    def _blame(self, selecting: tuple[int, ...], path: Path) -> int:
        """The override whose ``set`` holds the longest prefix of ``path`` (last one on ties)."""
        best, best_len = selecting[-1], -1
        for k in selecting:
            set_body = self.spec.layers[k].set
            n = next((n for n in range(len(path), -1, -1) if _has(set_body, path[:n])), 0)
            if n >= best_len and n > 0:
                best, best_len = k, n
        return best

    # ------------------------------------------------------------------ rules

    def check_selectors(self) -> bool:
        n, ok = self.spec.num_layers, True
        for k, o in enumerate(self.spec.layers):
            if o.index is not None and o.index >= n:
                self.report(("layers", k, "index"), f"index {o.index} does not exist: "
                            f"num_layers is {n} (layers 0..{n - 1})")
                ok = False
            if o.range is not None and o.range[1] > n:
                self.report(("layers", k, "range"), f"range {list(o.range)} goes past the last "
                            f"layer: num_layers is {n} (stop may be at most {n})")
                ok = False
            if o.every is not None and o.offset >= n:
                self.report(("layers", k, "offset"), f"every {o.every} from offset {o.offset} "
                            f"selects no layer: num_layers is {n}")
                ok = False
        return ok

    def check_default_heads(self) -> bool:
        """embed_dim must split evenly into heads unless head_dim is explicit; False if not."""
        attn = self.spec.block.attention
        if not _has(self.data, ("block", "attention", "head_dim")) and self.spec.embed_dim % attn.num_heads:
            self.report(self._later(("embed_dim",), ("block", "attention", "num_heads")),
                        f"embed_dim ({self.spec.embed_dim}) is not divisible by num_heads "
                        f"({attn.num_heads})",
                        f"choose num_heads dividing {self.spec.embed_dim}, or set head_dim "
                        f"explicitly (then num_heads * head_dim may differ from embed_dim)")
            return False
        return True

    def _later(self, a: Path, b: Path) -> Path:
        """Of two paths behind one error, the one written in the extending file (else ``b``).

        With ``extends``, the value the user just changed is the likelier culprit.
        """
        entry_a, entry_b = self.positions.get(a), self.positions.get(b)
        root = self.positions.root.file
        if entry_a and entry_a.value.file == root and not (entry_b and entry_b.value.file == root):
            return a
        return b

    def check_layer(self, sel: tuple[int, ...], i: int, b: BlockSpec) -> None:
        spec, a = self.spec, b.attention
        if not a.causal and spec.head.kind == "causal_lm":
            self.report_layer(i, self.origin(sel, ("attention", "causal")),
                              "bidirectional attention (causal: false) contradicts the "
                              "causal_lm head: a decoder must not see the tokens it predicts",
                              "set causal: true, or use an encoder head (masked_lm, "
                              "embeddings, classification)")
        if a.window is not None and a.window > spec.max_seq_len:
            self.report_layer(i, self.origin(sel, ("attention", "window")),
                              f"window ({a.window}) exceeds max_seq_len ({spec.max_seq_len})",
                              f"use a window <= {spec.max_seq_len}, or null for global attention")
        pos = spec.positional
        if a.rope_base is not None and pos.kind != "rope":
            self.report_layer(i, self.origin(sel, ("attention", "rope_base")),
                              f"rope_base ({a.rope_base:g}) is set but positional.kind is "
                              f"{pos.kind!r}; only RoPE has a base",
                              "remove rope_base, or use positional: {kind: rope}")
        if pos.kind == "rope":
            rotary = a.head_dim * pos.rotary_fraction
            whole = round(rotary)
            if abs(rotary - whole) > 1e-9 or whole % 2:  # 40 * 0.35 is 14.000000000000002
                where = (("positional", "rotary_fraction") if pos.rotary_fraction != 1
                         else self.origin(sel, ("attention", "head_dim")))
                self.report_layer(i, where,
                                  f"RoPE needs an even rotary dimension: head_dim ({a.head_dim}) "
                                  f"* rotary_fraction ({pos.rotary_fraction:g}) = {rotary:g}",
                                  "choose head_dim and rotary_fraction whose product is an even "
                                  "integer")
        hidden = b.ffn.hidden_dim
        if hidden % ALIGN:
            self.report_layer(i, self.origin(sel, ("ffn", "hidden_dim")),
                              f"ffn hidden_dim ({hidden}) is not a multiple of {ALIGN}",
                              f"{_round_up(hidden)} runs faster on most hardware", warning=True)

    def check_model(self) -> None:
        spec = self.spec
        tok = spec.tokenizer
        if tok is not None:
            limit = spec.vocab_size
            if tok.vocab_size is not None:
                if tok.vocab_size > spec.vocab_size:
                    self.report(("tokenizer", "vocab_size"),
                                f"tokenizer vocab_size ({tok.vocab_size}) exceeds the model's "
                                f"vocab_size ({spec.vocab_size})",
                                f"raise vocab_size to at least {tok.vocab_size}")
                limit = min(limit, tok.vocab_size)
            for name in ("bos_id", "eos_id", "pad_id", "mask_id"):
                value = getattr(tok, name)
                if value is not None and value >= limit:
                    self.report(("tokenizer", name), f"{name} ({value}) is not a token id: the "
                                f"vocabulary has {limit} ids (0..{limit - 1})")
        policy = spec.training.checkpointing
        layers = getattr(policy, "layers", None)
        if layers is not None:
            for j, i in enumerate(layers):
                if i >= spec.num_layers:
                    self.report(("training", "checkpointing", "layers", j),
                                f"layer {i} does not exist: num_layers is {spec.num_layers}")
        if spec.tie_embeddings and spec.head.kind in ("embeddings", "classification"):
            self.report(("tie_embeddings",), f"tie_embeddings has no effect: the "
                        f"{spec.head.kind!r} head has no vocabulary projection to tie",
                        "remove tie_embeddings (or use a causal_lm / masked_lm head)",
                        warning=True)
        for field in ("vocab_size", "embed_dim"):
            value = getattr(spec, field)
            if value % ALIGN:
                self.report((field,), f"{field} ({value}) is not a multiple of {ALIGN}",
                            f"{_round_up(value)} runs faster on most hardware", warning=True)

    def run(self) -> tuple[list[SpecIssue], list[SpecIssue]]:
        self.check_model()
        heads_ok = self.check_default_heads()
        if self.check_selectors():
            for sel, layers, block in self.resolve_groups():
                if block is not None and (heads_ok or sel):
                    for i in layers:
                        self.check_layer(sel, i, block)
            self._flush_layers()
        return sort_issues(self.errors), sort_issues(self.warnings)


def _round_up(n: int) -> int:
    return -(-n // ALIGN) * ALIGN


def check_rules(spec: ModelSpec, data: dict[str, Any], positions: Positions
                ) -> tuple[list[SpecIssue], list[SpecIssue]]:
    """Cross-field errors and warnings for a schema-valid spec, located in its source."""
    return RuleChecker(spec, data, positions).run()
