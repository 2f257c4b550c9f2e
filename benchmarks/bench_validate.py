"""Validation time on hostile or very large specs (the speed targets unit tests must not time).

Not part of the test suite. Times ``blueprint.spec.load.load_spec_text`` on: a 4096-layer spec
with 199 overlapping per-layer overrides, a list of 20,000 values (refused at the node bound),
40,000 nested brackets (refused at the depth bound) and an alias bomb (refused at the first
anchor). Prints the median of --runs runs for each; targets: every case well under a second.

    python benchmarks/bench_validate.py --runs 7
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time

BASE = """\
name: t
vocab_size: 256
max_seq_len: 128
embed_dim: 64
num_layers: 4096
positional: {kind: rope}
norm: {kind: rmsnorm}
block:
  attention: {num_heads: 4}
  ffn: {kind: swiglu, hidden_dim: 128}
"""

CASES = {
    "4096 layers, 199 overrides": BASE + "layers:\n" + "".join(
        f"  - {{every: {k}, set: {{attn_norm: false}}}}\n" for k in range(1, 200)),
    "20,000 values": "[" + "1, " * 20_000 + "]",
    "40,000 nested brackets": ("[" * 40_000)[:64 * 1024],
    "alias bomb": "a: &a [x, x, x, x, x, x, x, x, x]\n" + "".join(
        f"{c}: &{c} [*{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}]\n" for p, c in zip("abcdefgh", "bcdefghi")),
}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args()

    from blueprint.errors import SpecError
    from blueprint.spec.load import load_spec_text

    for name, text in CASES.items():
        times = []
        for _ in range(args.runs):
            start = time.perf_counter()
            try:
                load_spec_text(text, "bench.yaml")
                outcome = "valid"
            except SpecError as err:
                outcome = f"refused: {err.issues[0].message[:50]}"
            times.append(time.perf_counter() - start)
        print(f"{name:<28} median {statistics.median(times) * 1000:8.1f} ms  ({outcome})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
