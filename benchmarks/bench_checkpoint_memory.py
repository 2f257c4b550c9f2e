"""Activation memory saved for backward, per checkpoint policy: measured vs the cost model.

Not part of the test suite (tests/compiler/test_checkpointing.py asserts the same facts with
bounds). Measures with ``torch.autograd.graph.saved_tensors_hooks`` (tests/compiler/memory.py)
on the compiled graph of a spec, then prints ``compiler.cost.activation_bytes`` beside it.

    python benchmarks/bench_checkpoint_memory.py --spec gpt2 --vocab 256 --seq 512
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spec", default="gpt2", help="a spec name under specs/ (default gpt2)")
    parser.add_argument("--vocab", type=int, default=256, help="vocabulary cut so the head does not dominate")
    parser.add_argument("--seq", type=int, default=512)
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--policies", nargs="+", default=["none", "every_layer", "every:2", "every:4"],
                        help="none, every_layer, every:K")
    args = parser.parse_args()

    import torch

    import blueprint
    from compiler import compile_spec
    from compiler.cost import activation_bytes
    from blueprint.spec.schema import EveryK
    from compiler.passes.checkpointing import apply_checkpointing

    sys.path.insert(0, str(REPO / "tests" / "compiler"))
    from memory import saved_bytes

    spec = blueprint.load_spec(REPO / "specs" / f"{args.spec}.yaml").model_copy(update={"vocab_size": args.vocab})
    torch.manual_seed(0)
    b, s = args.batch, args.seq
    feeds = (torch.randint(0, args.vocab, (b, s)), torch.ones(b, s, dtype=torch.int64),
             torch.arange(s).expand(b, s))
    print(f"{args.spec} (vocab {args.vocab}), batch {b}, seq {s}: bytes saved for backward")
    print(f"  {'policy':<12} {'measured':>14} {'cost model':>14} {'error':>8} {'vs none':>8}")
    baseline = None
    for label in args.policies:
        policy = EveryK(every=int(label.split(":")[1])) if label.startswith("every:") else label
        gm = compile_spec(spec, checkpointing=False).train()
        apply_checkpointing(gm, policy)  # in place
        measured, _ = saved_bytes(gm, feeds)
        baseline = baseline or measured
        estimate = activation_bytes(spec, policy, batch=b, seq_len=s)
        print(f"  {label:<12} {measured:>14,} {estimate:>14,} {(estimate - measured) / measured:>+8.2%}"
              f" {baseline / measured:>7.1f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
