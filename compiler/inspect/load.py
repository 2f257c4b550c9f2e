"""What ``blueprint inspect`` looks at: a spec or a build, its weights and its tokenizer, compiled
with the analysis attention; and the induction probe's input.

A build folder (``spec.lock.yaml`` + ``weights.safetensors``) brings its own weights and
``tokenizer.json``; a spec file brings the tokenizer its ``tokenizer.path`` names and, without
``--weights``, the spec's seeded initialisation (random weights: head scores then describe an
untrained model, which the CLI says).
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from blueprint.errors import BlueprintError

LOCK = "spec.lock.yaml"


@dataclass
class Subject:
    spec: Any  # ModelSpec
    gm: torch.fx.GraphModule  # analysis attention, eval mode, weights loaded
    tokenizer: Any | None  # blueprint.runtime.tokenizer.Tokenizer
    weights: str  # where the weights came from, for the report


def is_build(path: Path) -> bool:
    return path.is_dir() and (path / LOCK).is_file()


def _load_state(gm: torch.fx.GraphModule, spec, weights: Path) -> None:
    """Load validated weights; the tied output projection is stored once (under
    ``embed.tokens.weight``) and is legitimately absent from the state dict."""
    from compiler.weights import load_weights

    state = load_weights(weights, spec)
    missing, unexpected = gm.load_state_dict(state, strict=False)
    params = dict(gm.named_parameters(remove_duplicate=False))
    tied = params.get("embed.tokens.weight")
    missing = [k for k in missing if params.get(k) is not tied]
    if missing or unexpected:
        raise BlueprintError(f"weights {weights} do not fit the model: missing {missing[:5]}, "
                             f"unexpected {list(unexpected)[:5]}")


def _tokenizer(path: Path | None):
    if path is None:
        return None
    from blueprint.runtime.tokenizer import Tokenizer

    return Tokenizer(path)


def load_subject(target: str | Path, *, weights: str | Path | None = None,
                 tokenizer: str | Path | None = None) -> Subject:
    """Compile ``target`` (a spec file or a build folder) with analysis attention and load weights.

    Raises:
        BlueprintError: a missing or invalid spec, weights that do not fit, a bad tokenizer.
    """
    import blueprint
    from compiler import compile_spec

    target = Path(target)
    if not target.exists():
        raise BlueprintError(f"{target} does not exist", hint="pass a spec file or a build folder")
    if target.is_dir() and not is_build(target):
        raise BlueprintError(f"{target} is a folder without {LOCK}: not a build",
                             hint="pass a spec file, or a folder written by `blueprint build`")
    build = is_build(target)
    spec = blueprint.load_spec(target / LOCK if build else target)
    tok_path = Path(tokenizer) if tokenizer else None
    if tok_path is None and build and (target / "tokenizer.json").is_file():
        tok_path = target / "tokenizer.json"
    elif tok_path is None and not build and spec.tokenizer is not None and spec.tokenizer.path:
        tok_path = (target.parent / spec.tokenizer.path).resolve()
        if not tok_path.is_file():
            raise BlueprintError(f"{target}: tokenizer.path '{spec.tokenizer.path}' not found (looked for {tok_path})",
                                 hint="the path is relative to the spec file; fix it, or pass --tokenizer")
    torch.manual_seed(spec.init.seed)
    gm = compile_spec(spec, attention="analysis", checkpointing=False)
    source = weights if weights is not None else (target if build else None)
    if source is not None:
        _load_state(gm, spec, Path(source))
        described = str(source)
    else:
        described = f"random (the spec's seeded initialisation, seed {spec.init.seed})"
    return Subject(spec=spec, gm=gm.float().eval(), tokenizer=_tokenizer(tok_path), weights=described)


def special_ids(spec, tokenizer) -> set[int]:
    """Ids a probe should not use: the spec's bos/eos/pad and the tokenizer's special tokens."""
    out = set()
    if spec.tokenizer is not None:
        out |= {t for t in (spec.tokenizer.bos_id, spec.tokenizer.eos_id, spec.tokenizer.pad_id) if t is not None}
    if tokenizer is not None:
        out |= set(tokenizer.special_ids())
    return out


def ordinary_ids(spec, tokenizer) -> list[int]:
    """Ids a probe draws from: not special and, with a tokenizer, ones it would produce for their
    own text (an id whose text encodes back to it), which leaves out byte fragments and merges
    that ordinary text never yields."""
    limit = spec.vocab_size if tokenizer is None else min(spec.vocab_size, tokenizer.vocab_size)
    special = special_ids(spec, tokenizer)
    pool = [i for i in range(limit) if i not in special]
    if tokenizer is None:
        return pool

    def ordinary(i: int) -> bool:
        text = tokenizer.token_text(i)
        return bool(text.strip()) and text.isprintable() and tokenizer.encode(text, add_special_tokens=False) == [i]

    return [i for i in pool if ordinary(i)]


def induction_probe(spec, tokenizer, length: int, seed: int = 0) -> list[int]:
    """The standard induction probe: ``length`` distinct random tokens (``ordinary_ids``), then
    the same tokens again, after the spec's bos_id when it has one. In the second half every token's earlier
    occurrence is known, so a head that attends from each token to the one that followed its
    earlier copy (an induction head) scores close to 1.

    Raises:
        BlueprintError: a probe longer than max_seq_len or a vocabulary too small for it.
    """
    bos = spec.tokenizer.bos_id if spec.tokenizer is not None else None
    total = 2 * length + (bos is not None)
    if length < 1:
        raise BlueprintError(f"--induction needs a length of at least 1, got {length}")
    if total > spec.max_seq_len:
        raise BlueprintError(f"an induction probe of {length} tokens is {total} tokens long, "
                             f"more than the model's max_seq_len ({spec.max_seq_len})",
                             hint=f"use --induction {(spec.max_seq_len - (bos is not None)) // 2} or less")
    pool = ordinary_ids(spec, tokenizer)
    if len(pool) < length:
        raise BlueprintError(f"the vocabulary has {len(pool)} ordinary tokens, fewer than the {length} "
                             f"distinct tokens the probe needs", hint=f"use --induction {len(pool)} or less")
    half = random.Random(seed).sample(pool, length)
    return ([bos] if bos is not None else []) + half + half
