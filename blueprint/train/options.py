"""The settings of a training run, and every check that can fail before any work is done.

``check`` refuses bad flag combinations (batch not divisible by processes x accumulation,
sequence longer than the spec allows, two tokenizer sources, a head that is not a causal LM,
a vocabulary larger than the spec's) with a message naming the flag and a hint.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from blueprint.errors import BlueprintError

# Settings a resumed run must share with its checkpoint for the losses to continue exactly.
RESUME_KEYS = ("batch_size", "seq_len", "grad_accum", "lr", "warmup", "schedule", "weight_decay",
               "clip", "seed", "steps")


@dataclass(frozen=True)
class Options:
    steps: int
    batch_size: int
    seq_len: int
    grad_accum: int
    lr: float
    warmup: int
    schedule: str
    weight_decay: float
    clip: float
    seed: int
    save_every: int
    eval_every: int
    parallel: str

    def resume_view(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if k in RESUME_KEYS}


def parse_policy(text: str) -> Any:
    """``--checkpointing``: none | every_layer | every:K | layers:0,3 | memory_budget:2GiB, as
    the spec's own validator reads it (so the flag and the YAML accept exactly the same)."""
    from pydantic import ValidationError

    from blueprint.spec.sections import TrainingSpec

    def whole(v: str) -> Any:  # the spec's types are strict: a command line gives text
        return int(v) if v.strip().isdigit() else v

    name, _, value = text.partition(":")
    raw: Any = text
    if name == "every":
        raw = {"every": whole(value)}
    elif name == "layers":
        raw = {"layers": [whole(v) for v in value.split(",") if v.strip()]}
    elif name == "memory_budget":
        raw = {"memory_budget": value}
    try:
        return TrainingSpec.model_validate({"checkpointing": raw}).checkpointing
    except ValidationError as err:
        problem = err.errors()[0]["msg"]
        raise BlueprintError(f"--checkpointing {text!r}: {problem}",
                             hint="use none, every_layer, every:K, layers:0,3 or memory_budget:2GiB") from None


def check(spec, opts: Options, *, world: int, tokenizer: str | None, train_vocab: int | None,
          resuming: bool = False) -> None:
    """Every check on the spec and the flags alone."""
    if spec.head.kind != "causal_lm":
        raise BlueprintError(f"blueprint train trains next-token prediction, but {spec.name!r} has a "
                             f"{spec.head.kind!r} head", hint="train a spec whose head is {kind: causal_lm}")
    if opts.seq_len > spec.max_seq_len:
        raise BlueprintError(f"--seq-len {opts.seq_len} exceeds the spec's max_seq_len ({spec.max_seq_len})")
    if opts.batch_size % (world * opts.grad_accum):
        raise BlueprintError(
            f"--batch-size {opts.batch_size} is not divisible by {world} process(es) x --grad-accum "
            f"{opts.grad_accum}", hint=f"use a multiple of {world * opts.grad_accum}")
    if opts.warmup >= opts.steps and opts.warmup > 0:
        raise BlueprintError(f"--warmup {opts.warmup} leaves no training after warm-up (--steps {opts.steps})")
    if tokenizer and train_vocab:
        raise BlueprintError("--tokenizer and --train-tokenizer both given", hint="use one of them")
    if train_vocab is not None:
        if train_vocab > spec.vocab_size:
            raise BlueprintError(f"--train-tokenizer {train_vocab} is larger than the spec's vocab_size "
                                 f"({spec.vocab_size})", hint=f"use at most {spec.vocab_size}")
        if train_vocab < 257:
            raise BlueprintError(f"--train-tokenizer {train_vocab} is too small: a byte-level BPE needs "
                                 "256 byte ids and the end-of-text id", hint="use at least 257")
    if not (tokenizer or train_vocab or resuming or (spec.tokenizer and spec.tokenizer.path)):
        raise BlueprintError("no tokenizer: the spec has no tokenizer.path",
                             hint="pass --tokenizer tokenizer.json or --train-tokenizer VOCAB")


def check_vocab(spec, vocab: int, source: str) -> None:
    if vocab > spec.vocab_size:
        raise BlueprintError(f"the tokenizer {source} has {vocab} ids, more than the spec's vocab_size "
                             f"({spec.vocab_size})", hint="use a smaller tokenizer or a larger vocab_size")
