"""Full cache vs window-sized cache (``blueprint build --window-cache``) at a long context.

Not part of the test suite. Builds one windowed spec (``--preset``) twice, the default fused
build and ``--window-cache`` (both verified by the build's float64 gate), then decodes greedily
in one process. A round: every configuration prefills the same ``--prompt`` real-text tokens
(the UTF-8 bytes of Python's own ``inspect.py``; the vocabularies cover bytes; timed: time to
first token), then all of them decode ``--new`` tokens in blocks of 32 steps, the
configurations taking turns block by block (rotated each round), so every configuration sees
the same machine state at the same context length. Decode tok/s of a round = steps / the sum of
its blocks' times. Reported: medians over rounds, the median of the per-round decode ratios
against the full cache, the KV cache bytes each configuration allocated (every layer's key
and value buffers), and whether its greedy ids equal the full cache's. Configurations: ``full``
(the default fused build: one buffer of prompt + new rows a layer, shared by past and present)
and ``C=<n>`` (the window-cache build, its windowed layers given capacity n; the build's own
default first, ``blueprint.window_cache.default_capacity``). onnxruntime: 2 threads, spinning off.

    python benchmarks/bench_window_cache.py --work /tmp/wc-bench --rounds 5
    python benchmarks/bench_window_cache.py --work /tmp/wc-heavy --preset attention-heavy \
        --prompt 1536 --new 512 --capacities 1024 1040 1152 1536 2048
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
BLOCK = 32  # decode steps a configuration runs before the next takes its turn

PRESETS = {
    # Mistral-like: GQA 8/2, every layer windowed; weights (~90 MB) dominate a decode step
    "mistral-like": dict(vocab=8192, embed=512, layers=8, heads=8, kv_heads=2, head_dim=64, ffn=1408, window=128),
    # the cache dominates: 8 KV heads of 64 over a window of 1024, small weights (~20 MB)
    "attention-heavy": dict(vocab=4096, embed=256, layers=2, heads=8, kv_heads=8, head_dim=64, ffn=512, window=1024),
}

SPEC = """name: window-bench
vocab_size: {vocab}
max_seq_len: 8192
embed_dim: {embed}
num_layers: {layers}
positional: {{kind: rope, rope_base: 10000.0}}
norm: {{kind: rmsnorm, norm_eps: 1.0e-5}}
block:
  norm_placement: pre
  attention: {{num_heads: {heads}, num_kv_heads: {kv_heads}, head_dim: {head_dim}, causal: true, window: {window}}}
  ffn: {{kind: swiglu, hidden_dim: {ffn}}}
head: {{kind: causal_lm}}
"""


def real_text_ids(n: int) -> list[int]:
    import inspect

    data = Path(inspect.__file__).read_bytes()
    return list(data[:n])


def build_pair(work: Path, preset: dict) -> tuple[Path, Path]:
    from compiler.export.build import Progress, build

    spec = work / "window-bench.yaml"
    spec.write_text(SPEC.format(**preset))
    out = []
    for tag, flag in (("full", False), ("window", True)):
        start = time.perf_counter()
        result = build(spec, work / tag, window_cache=flag, progress=Progress(enabled=False))
        print(f"built {tag} in {time.perf_counter() - start:.1f}s (verified: {result.report.ok})", file=sys.stderr)
        out.append(result.directory)
    return out[0], out[1]


class Config:
    """One way to decode: a loaded decoder, optionally with another capacity for its windowed layers."""

    def __init__(self, name: str, directory: Path, capacity: int | None):
        from blueprint import runtime
        from blueprint.window_cache import WindowLayer

        self.name = name
        self.decoder = runtime.load(directory, threads=2, spinning=False)
        if capacity is not None:
            self.decoder.bounded = {i: WindowLayer(layer.window, capacity) for i, layer in self.decoder.bounded.items()}
        self.ttft, self.tps, self.ids, self.cache_bytes = [], [], [], 0

    def prefill(self, prompt: list[int], new: int) -> None:
        import numpy as np

        self.stepper = self.decoder.stepper(1, len(prompt) + new)
        self.cache_bytes = sum(int(np.prod(c.shape())) * 4 for c in self.stepper.caches)
        self.mask = np.ones((1, len(prompt)), dtype=np.int64)
        start = time.perf_counter()
        logits = self.stepper.step(np.array([prompt]), self.mask, np.arange(len(prompt))[None])
        self.ttft.append(time.perf_counter() - start)
        self.ids, self.seconds = [int(np.argmax(logits[0]))], 0.0

    def decode(self, steps: int) -> None:
        import numpy as np

        start = time.perf_counter()
        for _ in range(steps):
            self.mask = np.concatenate([self.mask, np.ones((1, 1), dtype=np.int64)], axis=1)  # [1, t + 1]
            logits = self.stepper.step(np.array([[self.ids[-1]]]), self.mask, np.array([[self.mask.shape[1] - 1]]))
            self.ids.append(int(np.argmax(logits[0])))
        self.seconds += time.perf_counter() - start


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, required=True, help="folder for the spec and the two builds")
    parser.add_argument("--preset", choices=sorted(PRESETS), default="mistral-like")
    parser.add_argument("--prompt", type=int, default=1792, help="prompt tokens (default 1792)")
    parser.add_argument("--new", type=int, default=256, help="decoded tokens (default 256: up to 2048 positions)")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--capacities", type=int, nargs="*", default=None,
                        help="capacities to try besides the build's default (e.g. 128 256)")
    args = parser.parse_args(argv)
    sys.path.insert(0, str(REPO))
    from blueprint.window_cache import default_capacity

    preset = PRESETS[args.preset]
    args.work.mkdir(parents=True, exist_ok=True)
    full, window = build_pair(args.work, preset)
    default = default_capacity(preset["window"])
    capacities = [default] + [c for c in (args.capacities or []) if c != default]
    configs = [Config("full", full, None)] + [Config(f"C={c}", window, c) for c in capacities]
    prompt = real_text_ids(args.prompt)
    for config in configs:  # warm-up: session initialisation, first allocations (not counted)
        config.prefill(prompt[:64], BLOCK)
        config.decode(BLOCK)
        config.ttft.clear()
    ratios = {c.name: [] for c in configs}
    same = {c.name: True for c in configs}
    for r in range(args.rounds):
        order = configs[r % len(configs):] + configs[:r % len(configs)]
        for config in order:
            config.prefill(prompt, args.new)
        for done in range(1, args.new, BLOCK):  # the prefill chose the first id
            for config in order:
                config.decode(min(BLOCK, args.new - done))
        for config in configs:
            config.tps.append((args.new - 1) / config.seconds)
            ratios[config.name].append(config.tps[-1] / configs[0].tps[-1])
            same[config.name] &= config.ids == configs[0].ids
        print(f"round {r + 1}/{args.rounds}: " + ", ".join(f"{c.name} {c.tps[-1]:.1f} tok/s" for c in configs),
              file=sys.stderr)
    print(f"\n{args.preset} (window {preset['window']}), prompt {args.prompt} + {args.new} tokens (positions "
          f"up to {args.prompt + args.new}), batch 1, {args.rounds} rounds, medians\n")
    print("| cache | KV cache MB | TTFT ms | decode tok/s | decode ratio vs full | ids = full |")
    print("|---|---|---|---|---|---|")
    for c in configs:
        print(f"| {c.name} | {c.cache_bytes / 2**20:.2f} | {statistics.median(c.ttft) * 1e3:.0f} | "
              f"{statistics.median(c.tps):.1f} | {statistics.median(ratios[c.name]):.2f} | "
              f"{'yes' if same[c.name] else 'NO'} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
