"""Cross-field rules: what no single section can check on its own.

Runs on the ``ModelSpec`` together with the raw mapping and its positions, so every finding
points at the line that caused it: a window set by an override is reported inside that override,
a default block value inside ``block``. Messages carry the values involved.

The spec may be partial (``blueprint.spec.partial``): when the schema rejected a piece, it is
UNKNOWN and each rule that needs it stops quietly; every other rule still runs, so one pass
reports every error. No rule gates another: a bad override index does not hide a bad window.

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
- ``num_heads % num_kv_heads`` is checked here rather than by the schema (the loader asks the
  schema to leave it, ``LOCATED_RULES``) so that it does not reject ``block.attention`` whole.
- ``tokenizer.path`` is checked against the file system only when asked (``blueprint
  validate``); a lock file copied into a build folder no longer sits beside its tokenizer.

Layers are grouped by the overrides that select them, so a 4096-layer spec costs one
validation per distinct layer kind, not per layer.
"""

from __future__ import annotations

import os
from contextlib import suppress
from pathlib import Path as FsPath
from typing import Any

from pydantic import ValidationError

from blueprint.errors import SpecIssue
from blueprint.spec.base import LOCATED_RULES
from blueprint.spec.diagnose import explain_error, sort_issues
from blueprint.spec.partial import UNKNOWN, Unknown, dump, known, salvage, without_unknown
from blueprint.spec.resolve import deep_merge, fill_block_defaults, selected_layers
from blueprint.spec.schema import BlockSpec, ModelSpec
from blueprint.spec.layer_rules import ALIGN, LayerRules, round_up
from blueprint.spec.source import Path, Positions, dotted

CONTEXT = {LOCATED_RULES: True}  # validation context of every spec the loader validates


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


class RuleChecker(LayerRules):
    """Collects errors and warnings for one spec; ``run`` returns both, sorted by position.

    Each finding is checked under ``suppress(Unknown)``: a check whose inputs were rejected by
    the schema stops there and the others go on.
    """

    def __init__(self, spec: ModelSpec, data: dict[str, Any], positions: Positions,
                 files_dir: FsPath | None = None):
        self.spec, self.data, self.positions = spec, data, positions
        self.files_dir = files_dir
        self.errors: list[SpecIssue] = []
        self.warnings: list[SpecIssue] = []
        self._seen: set[tuple[str, str, str]] = set()  # (severity, path, message) reported
        # (path, message, hint, severity) -> layers it applies to
        self._per_layer: dict[tuple[Path, str, str | None, str], list[int]] = {}

    # ------------------------------------------------------------------ reporting

    def report(self, path: Path, message: str, hint: str | None = None, *,
               warning: bool = False, on_key: bool = False) -> None:
        loc = self.positions.locate(path, on_key=on_key)
        issue = SpecIssue(message, dotted(path), loc.file, loc.line, loc.column, hint,
                          "warning" if warning else "error")
        if (issue.severity, issue.path, issue.message) not in self._seen:
            self._seen.add((issue.severity, issue.path, issue.message))
            (self.warnings if warning else self.errors).append(issue)

    def report_layers(self, layers: list[int], path: Path, message: str, hint: str | None = None,
                      *, warning: bool = False) -> None:
        key = (path, message, hint, "warning" if warning else "error")
        self._per_layer.setdefault(key, []).extend(layers)

    def _flush_layers(self) -> None:
        for (path, message, hint, severity), layers in self._per_layer.items():
            if len(layers) < self.spec.num_layers:
                noun = "layer" if len(layers) == 1 else "layers"
                message += f" ({noun} {_layer_list(sorted(set(layers)))})"
            self.report(path, message, hint, warning=severity == "warning")

    # ------------------------------------------------------------------ blame

    def origin(self, selecting: tuple[int, ...], field: Path) -> Path:
        """Where a resolved block field came from: the last override that sets it, else block."""
        for k in reversed(selecting):
            if _has(self.data, ("layers", k, "set") + field):
                return ("layers", k, "set") + field
        return ("block",) + field

    def _blame(self, selecting: tuple[int, ...], path: Path) -> int:
        """The override whose ``set`` holds the longest prefix of ``path`` (last one on ties)."""
        best, best_len = selecting[-1], -1
        for k in selecting:
            set_body = self.spec.layers[k].set
            n = next((n for n in range(len(path), -1, -1) if _has(set_body, path[:n])), 0)
            if n >= best_len and n > 0:
                best, best_len = k, n
        return best

    def _later(self, a: Path, b: Path) -> Path:
        """Of two paths behind one error, the one written in the extending file (else ``b``).

        With ``extends``, the value the user just changed is the likelier culprit.
        """
        entry_a, entry_b = self.positions.get(a), self.positions.get(b)
        root = self.positions.root.file
        if entry_a and entry_a.value.file == root and not (entry_b and entry_b.value.file == root):
            return a
        return b

    def _changed_last(self, a: Path, b: Path) -> Path:
        """Of two origins behind one error: the later override, else ``_later`` (ties: ``b``)."""
        rank_a, rank_b = (p[1] + 1 if p[0] == "layers" else 0 for p in (a, b))
        if rank_a != rank_b:
            return a if rank_a > rank_b else b
        return self._later(a, b) if rank_a == 0 else b

    # ------------------------------------------------------------------ layers

    def layer_groups(self) -> dict[tuple[int, ...], list[int]]:
        """Selecting overrides -> the layers they select (raises Unknown if a selector is)."""
        groups: dict[tuple[int, ...], list[int]] = {}
        overrides = [known(o) for o in self.spec.layers]
        for i in range(self.spec.num_layers):
            selecting = tuple(k for k, o in enumerate(overrides) if o.selects(i))
            groups.setdefault(selecting, []).append(i)
        return groups

    def _resolve(self, selecting: tuple[int, ...], base: BlockSpec) -> BlockSpec:
        """The block of the layers ``selecting`` selects; errors of their ``set`` bodies are
        reported in the override to blame, and the parts they break come back UNKNOWN."""
        if not selecting:
            return base
        merged = dump(base)
        for k in selecting:
            merged = deep_merge(merged, self.spec.layers[k].set)
        clean, unknown = without_unknown(merged)
        try:
            block = BlockSpec.model_validate(clean, context=CONTEXT)
            if not unknown:
                return fill_block_defaults(block, self.spec.embed_dim)
        except ValidationError as err:
            for e in err.errors():
                path, on_key, message, hint = explain_error(e, clean, BlockSpec)
                if any(path[:len(u)] == u for u in unknown):
                    continue  # a part rejected in ``block``: reported there already
                blame = self._blame(selecting, path)
                self.report(("layers", blame, "set") + path, message, hint, on_key=on_key)
        block = salvage(BlockSpec, clean, context=CONTEXT, unknown=frozenset(unknown))
        return fill_block_defaults(block, self.spec.embed_dim)

    def check_layers(self) -> None:
        block = self.spec.block
        with suppress(Unknown):
            if not self.check_default_heads():  # head_dim has no sound default: do not use it
                attention = block.attention.model_copy(update={"head_dim": UNKNOWN})
                block = block.model_copy(update={"attention": attention})
        base = fill_block_defaults(block, self.spec.embed_dim)
        with suppress(Unknown):  # the heads of ``block`` must agree even where overridden
            self.rule_heads((), [], base)
        for selecting, layers in self.layer_groups().items():
            with suppress(Unknown):
                block = self._resolve(selecting, base)
                for rule in (self.rule_heads, self.rule_causal, self.rule_window,
                             self.rule_rope_base, self.rule_rope_even, self.rule_hidden,
                             self.rule_attn_norm,
                             self.rule_rope_layer, self.rule_rope_factors, self.rule_qk_scope):
                    with suppress(Unknown):
                        rule(selecting, layers, block)

    # ------------------------------------------------------------------ model rules

    def check_default_heads(self) -> bool:
        """embed_dim must split evenly into heads unless head_dim is explicit; False if not."""
        embed_dim, num_heads = self.spec.embed_dim, self.spec.block.attention.num_heads
        if not _has(self.data, ("block", "attention", "head_dim")) and embed_dim % num_heads:
            self.report(self._later(("embed_dim",), ("block", "attention", "num_heads")),
                        f"embed_dim ({embed_dim}) is not divisible by num_heads ({num_heads})",
                        f"choose num_heads dividing {embed_dim}, or set head_dim "
                        f"explicitly (then num_heads * head_dim may differ from embed_dim)")
            return False
        return True

    def check_override_heads(self) -> None:
        """An override that changes num_heads re-derives head_dim (``resolve.derive_in_overrides``):
        embed_dim must divide by it, and no earlier override may pin head_dim or num_kv_heads on
        only some of its layers (then no one derived value is right)."""
        from blueprint.spec.resolve import _earlier_writers, _override_heads

        block, layers = self.data.get("block"), self.data.get("layers")
        explicit = block.get("attention") if isinstance(block, dict) else None
        if not isinstance(explicit, dict) or not isinstance(layers, list):
            return
        for k, override in enumerate(layers):
            heads = _override_heads(override)
            if heads is None:
                continue
            embed_dim, patch = self.spec.embed_dim, override["set"]["attention"]
            where = ("layers", k, "set", "attention", "num_heads")
            for field in ("num_kv_heads", "head_dim"):
                if field in patch or field in explicit:
                    continue
                if field == "head_dim" and embed_dim % heads:
                    self.report(where, f"embed_dim ({embed_dim}) is not divisible by num_heads ({heads})",
                                f"choose num_heads dividing {embed_dim}, or set head_dim in this override")
                elif _earlier_writers(self.data, k, field) is None and \
                        selected_layers(override, self.spec.num_layers) is not None:
                    self.report(where, f"an earlier override sets {field} on only some of the layers this "
                                f"one gives num_heads {heads}, so no single derived {field} applies",
                                f"write {field} in this override")

    def check_selectors(self) -> None:
        n = self.spec.num_layers
        for k, o in enumerate(self.spec.layers):
            with suppress(Unknown):
                if o.index is not None and o.index >= n:
                    self.report(("layers", k, "index"), f"index {o.index} does not exist: "
                                f"num_layers is {n} (layers 0..{n - 1})")
            with suppress(Unknown):
                if o.range is not None and o.range[1] > n:
                    self.report(("layers", k, "range"), f"range {list(o.range)} goes past the "
                                f"last layer: num_layers is {n} (stop may be at most {n})")
            with suppress(Unknown):
                if o.every is not None and o.offset >= n:
                    self.report(("layers", k, "offset"), f"every {o.every} from offset "
                                f"{o.offset} selects no layer: num_layers is {n}")

    def check_tokenizer(self) -> None:
        spec, tok = self.spec, self.spec.tokenizer
        if tok is None:
            return
        with suppress(Unknown):
            if tok.vocab_size is not None and tok.vocab_size > spec.vocab_size:
                self.report(("tokenizer", "vocab_size"),
                            f"tokenizer vocab_size ({tok.vocab_size}) exceeds the model's "
                            f"vocab_size ({spec.vocab_size})",
                            f"raise vocab_size to at least {tok.vocab_size}")
        limit = spec.vocab_size if tok.vocab_size is None else min(spec.vocab_size, tok.vocab_size)
        for name in ("bos_id", "eos_id", "pad_id", "mask_id"):
            with suppress(Unknown):
                value = getattr(tok, name)
                values = value if isinstance(value, (list, tuple)) else [value]
                for i, v in enumerate(values):
                    if v is not None and v >= limit:
                        where = ("tokenizer", name) if len(values) == 1 else ("tokenizer", name, i)
                        self.report(where, f"{name} ({v}) is not a token id: the "
                                    f"vocabulary has {limit} ids (0..{limit - 1})")

    def check_tokenizer_file(self) -> None:
        tok = self.spec.tokenizer
        if self.files_dir is None or tok is None or tok.path is None:
            return
        target = FsPath(os.path.abspath(self.files_dir / tok.path))
        try:
            found = target.is_file()
        except (OSError, ValueError):  # a name too long for the file system, a NUL byte
            found = False
        if not found:
            self.report(("tokenizer", "path"), f"no tokenizer file at {tok.path!r} "
                        f"(looked for {str(target)!r})",
                        f"the path is relative to the spec file's folder ({self.files_dir}); "
                        f"fix it or remove tokenizer.path")

    def check_checkpoint_layers(self) -> None:
        n = self.spec.num_layers
        for j, i in enumerate(getattr(self.spec.training.checkpointing, "layers", None) or []):
            with suppress(Unknown):
                if i >= n:
                    self.report(("training", "checkpointing", "layers", j),
                                f"layer {i} does not exist: num_layers is {n}")

    def check_tie(self) -> None:
        kind = self.spec.head.kind
        if self.spec.tie_embeddings and kind in ("embeddings", "classification"):
            self.report(("tie_embeddings",), f"tie_embeddings has no effect: the {kind!r} head "
                        f"has no vocabulary projection to tie",
                        "remove tie_embeddings (or use a causal_lm / masked_lm head)",
                        warning=True)
        with suppress(Unknown):
            if self.spec.type_vocab_size and kind == "causal_lm":
                self.report(("type_vocab_size",), f"type_vocab_size ({self.spec.type_vocab_size}) needs an "
                            "encoder head: a decoder's interface (generation with a KV cache) takes no "
                            "token_type_ids", "remove type_vocab_size, or use an encoder head (masked_lm, "
                            "embeddings, classification)")

    def check_sizes(self) -> None:
        for field in ("vocab_size", "embed_dim"):
            with suppress(Unknown):
                value = getattr(self.spec, field)
                if value % ALIGN:
                    self.report((field,), f"{field} ({value}) is not a multiple of {ALIGN}",
                                f"{round_up(value)} runs faster on most hardware", warning=True)

    def run(self) -> tuple[list[SpecIssue], list[SpecIssue]]:
        for check in (self.check_tokenizer, self.check_tokenizer_file,
                      self.check_checkpoint_layers, self.check_tie, self.check_sizes,
                      self.check_selectors, self.check_override_heads, self.check_layers):
            with suppress(Unknown):
                check()
        self._flush_layers()
        return sort_issues(self.errors), sort_issues(self.warnings)


def check_rules(spec: ModelSpec, data: dict[str, Any], positions: Positions,
                files_dir: FsPath | None = None) -> tuple[list[SpecIssue], list[SpecIssue]]:
    """Cross-field errors and warnings for a (possibly partial) spec, located in its source.

    ``files_dir``: check that files the spec names (``tokenizer.path``) exist, relative to it.
    """
    return RuleChecker(spec, data, positions, files_dir).run()
