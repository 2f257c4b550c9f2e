"""`blueprint train SPEC --data PATH... --out DIR`: train the compiled graph on text.

Also runs under ``torchrun --nproc-per-node N -m blueprint train ... --parallel ddp|fsdp``.
See docs/train.md for the data pipeline, checkpoints, exact resume and scale-out.
"""

from __future__ import annotations

import argparse


def _int(minimum: int):
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"{value} must be at least {minimum}")
        return value
    return parse


def _float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not value >= 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"{text} must be a finite number >= 0")
    return value


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("spec", metavar="SPEC", help="the spec YAML file (a causal_lm decoder)")
    parser.add_argument("--data", nargs="+", required=True, metavar="PATH",
                        help="training text: files, folders (recursive) or globs")
    parser.add_argument("--out", required=True, metavar="DIR",
                        help="run folder: metrics.jsonl, checkpoint-N/, final/, loss.png, token cache")
    tok = parser.add_mutually_exclusive_group()
    tok.add_argument("--tokenizer", metavar="PATH", help="tokenizer.json (default: the spec's tokenizer.path)")
    tok.add_argument("--train-tokenizer", type=_int(1), metavar="VOCAB",
                     help="train a byte-level BPE with VOCAB ids on --data (at most the spec's vocab_size)")
    parser.add_argument("--steps", type=_int(1), default=1000, help="optimizer steps (default 1000)")
    parser.add_argument("--batch-size", type=_int(1), default=8, metavar="B",
                        help="global batch in sequences per step, split over processes (default 8)")
    parser.add_argument("--seq-len", type=_int(1), default=None, metavar="S",
                        help="tokens per sequence (default: the spec's max_seq_len)")
    parser.add_argument("--grad-accum", type=_int(1), default=1, metavar="K",
                        help="micro-batches per step on each process (default 1)")
    parser.add_argument("--lr", type=_float, default=3e-4, help="peak learning rate (default 3e-4)")
    parser.add_argument("--warmup", type=_int(0), default=0, metavar="W", help="linear warm-up steps (default 0)")
    parser.add_argument("--schedule", choices=["cosine", "constant"], default="cosine",
                        help="after warm-up: cosine decay to 10%% of --lr, or constant (default cosine)")
    parser.add_argument("--weight-decay", type=_float, default=0.1, metavar="WD",
                        help="AdamW weight decay on weight matrices (default 0.1)")
    parser.add_argument("--clip", type=_float, default=1.0, metavar="C",
                        help="clip the gradient norm to C; 0 turns clipping off (default 1.0)")
    parser.add_argument("--seed", type=_int(0), default=0, help="data order and dropout seed (default 0)")
    parser.add_argument("--save-every", type=_int(0), default=0, metavar="N",
                        help="write checkpoint-N/ every N steps (default 0: only final/)")
    parser.add_argument("--resume", nargs="?", const="latest", default=None, metavar="CHECKPOINT",
                        help="continue exactly from CHECKPOINT (default: the latest in --out)")
    parser.add_argument("--init-weights", metavar="PATH",
                        help="start from these weights (any --weights source of blueprint build) to fine-tune")
    parser.add_argument("--eval-data", nargs="+", metavar="PATH", help="held-out text for evaluation")
    parser.add_argument("--eval-every", type=_int(0), default=0, metavar="N",
                        help="evaluate on --eval-data every N steps and at the end")
    parser.add_argument("--parallel", choices=["none", "ddp", "fsdp"], default="none",
                        help="under torchrun: DistributedDataParallel or FSDP2 (default none)")
    parser.add_argument("--checkpointing", metavar="POLICY",
                        help="activation checkpointing, overriding the spec's: none, every_layer, every:K, "
                             "layers:0,3 or memory_budget:2GiB")
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress bar")


def _need_extras() -> None:
    """Training needs the 'train' extra; say so before any work."""
    import importlib.util

    from blueprint.errors import BlueprintError

    missing = [m for m in ("tokenizers", "matplotlib", "numpy") if importlib.util.find_spec(m) is None]
    if missing:
        raise BlueprintError(f"blueprint train needs {', '.join(missing)}, which is not installed",
                             hint="pip install 'blueprint[train]'")


def run(args: argparse.Namespace) -> int:
    _need_extras()
    from blueprint.train import parallel
    from blueprint.train.loop import train
    from blueprint.train.setup import prepare

    try:
        prepared = prepare(args)
        final = train(prepared, quiet=args.quiet)
    finally:
        parallel.shutdown()
    if prepared.world.main:
        print(f"trained {args.out}: final weights in {final} "
              f"(blueprint build {args.spec} --weights {final})")
    return 0
