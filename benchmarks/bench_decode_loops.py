"""Decode speed of builds and loops side by side, each run in fresh processes, alternated.

Not part of the test suite. Separates the graph from the loop that drives it: ``raw`` runs a
model.onnx in a plain onnxruntime loop (IO binding, one cache buffer per layer that past and
present share, 2 threads, spinning on); ``decoder`` runs a blueprint build through
``blueprint.runtime.Decoder``; ``genai`` runs a folder through onnxruntime-genai. Every job is
a new process (one process's memory placement can hold its speed ~10% off another's for all its
rounds on a 2-vCPU VM), jobs alternate round by round, and the report is the median over
processes of each process's median ms/token (``--rounds`` generations of ``--new`` tokens after a
``--prompt``-token prompt).

    python benchmarks/bench_decode_loops.py --processes 5 \\
        raw:/tmp/bp/genai-fp32/model.onnx genai:/tmp/bp/genai-fp32 \\
        decoder:/tmp/bp/blueprint-fp32 raw:/tmp/bp/blueprint-fp32/model.onnx
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))
from peer_engines import ENGINES, THREADS  # noqa: E402  (bench_peers' engines, the same thread count)


def raw_loop(path: str, prompt: int, new: int, rounds: int) -> list[float]:
    import numpy as np
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = THREADS
    options.log_severity_level = 3
    session = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
    inputs = {i.name: i for i in session.get_inputs()}
    binding = session.io_binding()
    keep = [i.name for i in session.get_overridable_initializers()] + list(inputs)
    held = []

    config = Path(path).parent / "genai_config.json"  # symbolic cache dims (the genai builder's graphs)
    decoder = json.loads(config.read_text())["model"]["decoder"] if config.is_file() else {}

    def bind_caches():
        for name, value in inputs.items():
            if name.startswith("past_key_values."):
                kv, hd = value.shape[1], value.shape[3]
                if not isinstance(kv, int) or not isinstance(hd, int):
                    kv, hd = decoder["num_key_value_heads"], decoder["head_size"]
                cache = ort.OrtValue.ortvalue_from_numpy(np.zeros((1, kv, prompt + new, hd), np.float32))
                held.append(cache)
                binding.bind_ortvalue_input(name, cache)
                binding.bind_ortvalue_output(name.replace("past_key_values.", "present."), cache)

    def step(ids, total):
        arrays = [np.array([ids], np.int64), np.ones((1, total), np.int64),
                  np.arange(total - len(ids), total, dtype=np.int64)[None]]
        binding.bind_cpu_input("input_ids", arrays[0])
        binding.bind_cpu_input("attention_mask", arrays[1])
        if "position_ids" in inputs:
            binding.bind_cpu_input("position_ids", arrays[2])
        binding.bind_output("logits")
        session.run_with_iobinding(binding)
        return int(binding.get_outputs()[0].numpy()[0, -1].argmax())

    if "logits_to_keep" in keep:  # blueprint's fused builds: the last position only, as Decoder
        held.append(ort.OrtValue.ortvalue_from_numpy(np.array(1, np.int64)))
        binding.bind_ortvalue_input("logits_to_keep", held[-1])
    times = []
    for _ in range(rounds + 1):  # the first is a warm-up
        bind_caches()
        token = step(list(range(1, prompt + 1)), prompt)
        start = time.perf_counter()
        for k in range(new):
            token = step([token], prompt + k + 1)
        times.append((time.perf_counter() - start) / new * 1e3)
    return times[1:]


def engine_loop(kind: str):
    """A loop over one of bench_peers' engines (peer_engines.py): Decoder or onnxruntime-genai."""
    def run(path: str, prompt: int, new: int, rounds: int) -> list[float]:
        engine = ENGINES[kind](path)
        ids = list(range(1, prompt + 1))
        times = []
        for _ in range(rounds + 1):  # the first is a warm-up
            stamps = []
            engine.generate(ids, new + 1, lambda token: stamps.append(time.perf_counter()))
            times.append((stamps[-1] - stamps[0]) / new * 1e3)
        return times[1:]
    return run


LOOPS = {"raw": raw_loop, "decoder": engine_loop("blueprint"), "genai": engine_loop("genai")}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("jobs", nargs="*", help="LOOP:PATH with LOOP raw, decoder or genai")
    parser.add_argument("--processes", type=int, default=5, help="fresh processes per job, alternated")
    parser.add_argument("--rounds", type=int, default=3, help="timed generations per process")
    parser.add_argument("--prompt", type=int, default=128)
    parser.add_argument("--new", type=int, default=64)
    parser.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        loop, path = args.child
        times = LOOPS[loop](path, args.prompt, args.new, args.rounds)
        print(json.dumps(statistics.median(times)))
        return 0
    for job in args.jobs:
        if job.split(":", 1)[0] not in LOOPS or ":" not in job:
            parser.error(f"{job}: expected LOOP:PATH with LOOP one of {', '.join(LOOPS)}")
    results: dict[str, list[float]] = {job: [] for job in args.jobs}
    for p in range(args.processes):
        for job in args.jobs:
            loop, path = job.split(":", 1)
            out = subprocess.run([sys.executable, __file__, "--child", loop, path, "--rounds", str(args.rounds),
                                  "--prompt", str(args.prompt), "--new", str(args.new)],
                                 capture_output=True, text=True, check=True)
            results[job].append(json.loads(out.stdout.strip().splitlines()[-1]))
        print(f"process round {p + 1}/{args.processes} done", file=sys.stderr)
    print(f"decode ms/token, {args.new} tokens after {args.prompt}, {THREADS} threads; median over "
          f"{args.processes} processes of each process's median of {args.rounds}")
    print("| job | median ms/token | per process |")
    print("|---|---|---|")
    for job, values in results.items():
        print(f"| {job} | {statistics.median(values):.2f} | {', '.join(f'{v:.2f}' for v in values)} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
