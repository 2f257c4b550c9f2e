"""Prefill and decode latency: onnxruntime (the build) vs the torch graph it came from.

Not part of the test suite. For each spec: build it (or reuse --build-root/<name> when it was
built from the same spec: the manifest's spec hash must match), load the same weights into the
torch graph, then time, interleaved run by run so both engines see the same machine state:

- prefill: batch 1 x --seq tokens, empty cache;
- decode: one token over a cache of --seq tokens.

ORT runs with thread spinning off (``session.intra_op.allow_spinning = 0``) and the same thread
count as torch. Reports medians per engine and the median of the per-run ratios torch/ORT.

    python benchmarks/bench_ort_vs_torch.py --specs gpt2-tiny gpt2 --seq 128 --runs 15
"""

from __future__ import annotations

import argparse
import hashlib
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]


def _feeds(spec, names, batch, seq, past, rng):
    from compiler.export.io import Shape, make_inputs

    feeds = make_inputs(spec, Shape(batch, seq, past), kv_cache=True, rng=rng)
    return {n: feeds[n] for n in names}


def _time(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def _is_current(directory: Path, spec_path: Path) -> bool:
    """A reusable build: it exists and was built from this spec (a stale build would time a
    different model than the torch graph compiled here)."""
    import blueprint
    from compiler.export.build import build_lock

    manifest = directory / "manifest.json"
    if not manifest.is_file():
        return False
    lock = build_lock(blueprint.load_spec(spec_path))
    return json.loads(manifest.read_text()).get("spec_sha256") == hashlib.sha256(lock.encode()).hexdigest()


def bench_spec(name: str, args) -> dict:
    import torch

    from blueprint import runtime
    from compiler.export.build import Progress, build, default_compile
    from compiler.export.io import input_names
    from compiler.weights import load_weights

    directory = Path(args.build_root) / name
    spec_path = REPO / "specs" / f"{name}.yaml"
    if not _is_current(directory, spec_path):
        build(spec_path, directory, progress=Progress(sys.stderr))
    decoder = runtime.load(directory, threads=args.threads, spinning=False)
    spec = decoder.spec
    module = default_compile(spec, kv_cache=True)
    _, unexpected = module.load_state_dict(load_weights(directory / "weights.safetensors", spec), strict=False)
    assert not unexpected, unexpected  # tied duplicates may be missing, nothing may be unknown
    module.eval()
    torch.set_num_threads(args.threads)

    names = input_names(spec, True)
    rng = np.random.default_rng(0)
    seq = min(args.seq, spec.max_seq_len - 1)
    cases = {"prefill": _feeds(spec, names, 1, seq, 0, rng), "decode": _feeds(spec, names, 1, 1, seq, rng)}
    session = decoder.build.session
    results = {}
    for case, feeds in cases.items():
        targs = [torch.from_numpy(feeds[n]) for n in names]

        def run_torch():
            with torch.inference_mode():
                module(*targs)

        def run_ort():
            session.run(["logits"], feeds)

        for _ in range(args.warmup):
            run_torch()
            run_ort()
        t_torch, t_ort = [], []
        for r in range(args.runs):  # interleaved, alternating which engine goes first
            order = [(run_torch, t_torch), (run_ort, t_ort)]
            for fn, sink in order if r % 2 == 0 else reversed(order):
                sink.append(_time(fn))
        ratios = [a / b for a, b in zip(t_torch, t_ort)]
        results[case] = (statistics.median(t_torch), statistics.median(t_ort), statistics.median(ratios))
    return {"seq": seq, **results}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--specs", nargs="+", default=["gpt2-tiny", "gpt2"], help="spec names under specs/")
    parser.add_argument("--seq", type=int, default=128, help="prefill length and decode cache length")
    parser.add_argument("--runs", type=int, default=15, help="timed runs per engine and case")
    parser.add_argument("--warmup", type=int, default=3, help="untimed runs per engine and case")
    parser.add_argument("--threads", type=int, default=2, help="threads for both engines")
    parser.add_argument("--build-root", default=str(REPO / "build" / "bench"), help="where builds are kept and reused")
    args = parser.parse_args(argv)
    print(f"{'spec':12} {'case':8} {'seq':>4} {'torch ms':>10} {'ort ms':>10} {'torch/ort':>10}")
    for name in args.specs:
        res = bench_spec(name, args)
        for case in ("prefill", "decode"):
            t, o, ratio = res[case]
            print(f"{name:12} {case:8} {res['seq']:4d} {t * 1e3:10.3f} {o * 1e3:10.3f} {ratio:10.2f}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
