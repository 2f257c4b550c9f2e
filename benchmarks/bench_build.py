"""Build time: blueprint's staged export vs its whole-model export vs a plain torch.onnx.export.

Not part of the test suite. Each job runs as a child process (wall time and peak RSS from
``wait4``), in interleaved rounds; reports medians and the median per-round ratio against the
plain export of transformers' model of the same family (the issue's yardstick: a
``torch.onnx.export(dynamo=True)`` of ``GPT2LMHeadModel`` for GPT-2 small, with a KV cache).

    python benchmarks/bench_build.py --spec specs/gpt2.yaml --hf-family gpt2 --rounds 3
    python benchmarks/bench_build.py --spec /tmp/smollm2.yaml --weights /tmp/smollm2-hf --rounds 3
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

# A plain export of transformers' GPT-2 small (random weights, same sizes as specs/gpt2.yaml),
# input_ids only, no cache (a cache object as output and the attention mask fail to export);
# blueprint's build exports more (mask, positions, cache) and verifies.
PLAIN_GPT2 = r"""
import sys, warnings, torch
from transformers import GPT2Config, GPT2LMHeadModel, DynamicCache
warnings.simplefilter("ignore")
torch.manual_seed(0)
model = GPT2LMHeadModel(GPT2Config(use_cache=False)).eval()
ids = torch.randint(0, 50257, (3, 5))
with torch.no_grad():
    torch.onnx.export(model, (ids,), sys.argv[1], dynamo=True, input_names=["input_ids"],
                      dynamic_shapes={"input_ids": {0: "batch", 1: "seq"}}, opset_version=23)
"""


def run(cmd: list[str]) -> tuple[float, float]:
    from bench_peers import run_build  # the same child-process timing as the peers benchmark

    result = run_build(cmd)
    return result["build_s"], result["build_rss_mb"]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spec", required=True)
    parser.add_argument("--weights", help="--weights for blueprint build")
    parser.add_argument("--hf-family", choices=["gpt2"], help="add a plain torch.onnx.export of this transformers model")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--no-whole", action="store_true", help="skip blueprint's whole-model export")
    parser.add_argument("--no-verify", action="store_true")
    args = parser.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="bench-build-"))
    base = [sys.executable, "-m", "blueprint", "build", args.spec, "-q"]
    base += ["--weights", args.weights] if args.weights else []
    base += ["--no-verify"] if args.no_verify else []
    jobs = {"blueprint staged": base + ["-o", str(work / "staged")]}
    if not args.no_whole:
        jobs["blueprint whole"] = base + ["-o", str(work / "whole"), "--export", "whole"]
    if args.hf_family == "gpt2":
        script = work / "plain.py"
        script.write_text(PLAIN_GPT2)
        jobs["torch.onnx.export (transformers)"] = [sys.executable, str(script), str(work / "plain.onnx")]
    times: dict[str, list[tuple[float, float]]] = {name: [] for name in jobs}
    print(f"load average before: {os.getloadavg()}", file=sys.stderr)
    for r in range(args.rounds):
        names = list(jobs)[r % len(jobs):] + list(jobs)[:r % len(jobs)]
        for name in names:
            times[name].append(run(jobs[name]))
            print(f"round {r + 1}: {name} {times[name][-1][0]:.1f}s", file=sys.stderr)
    print(f"load average after: {os.getloadavg()}", file=sys.stderr)
    reference = "torch.onnx.export (transformers)" if args.hf_family else "blueprint whole"
    print(f"build time, {args.spec}, {args.rounds} interleaved rounds (medians)")
    print("| job | seconds | peak MB | ratio vs " + reference + " |")
    print("|---|---|---|---|")
    for name, values in times.items():
        ratio = "—"
        if reference in times and name != reference:
            ratio = f"{statistics.median(a[0] / b[0] for a, b in zip(values, times[reference])):.2f}"
        print(f"| {name} | {statistics.median(v[0] for v in values):.1f} | {max(v[1] for v in values):.0f} | {ratio} |")
    shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
