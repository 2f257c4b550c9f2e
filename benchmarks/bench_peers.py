"""Blueprint against its peers on the same weights: build time, time to first token, decode speed.

Not part of the test suite. Engines (each one only when it is available):

- ``transformers``: eager fp32, the Hugging Face folder itself (manual greedy loop with a cache);
- ``blueprint-fp32`` / ``-fp16`` / ``-int8`` / ``-int4``: ``blueprint build`` of the imported spec
  (``--dtype fp16``, ``--quantize int8|int4`` with the build's defaults; ``-rtn-int4``: the genai
  builder's scheme, symmetric RTN on every MatMul, agreement reported, not gated), run by blueprint's own
  generation loop (``blueprint.runtime.Decoder``);
- ``llama.cpp``: not run. It is reported only if ``llama_cpp`` imports (llama-cpp-python compiles
  from source for ~8 min; nothing here builds it), as the GGUF file itself;
- ``genai-fp32`` / ``genai-int4``: onnxruntime-genai's model builder
  (``python -m onnxruntime_genai.models.builder -p fp32|int4 -e cpu``), run by onnxruntime-genai.

Method. Builds run as child processes (time and peak RSS from ``wait4``), in interleaved rounds.
Each engine runs in its own worker process (so its peak RSS is its own), a new one per engine and
round (``--persistent-workers``: one for all rounds): one process's memory placement can hold its
decode speed ~10% off another's for all its rounds, so the rounds sample that too. The parent has
each engine generate in turn, rotating the order every round, so every engine sees the same machine
state; the decode ratio's range over the rounds is reported beside its median. One generation = a 128-token real-text prompt (Python's
stdlib source, tokenized with the model's tokenizer), then ``--new`` tokens: time to first token
(prompt in -> first id out) and decode tok/s over the remaining tokens. Reported: medians, and the
median of the per-round ratios against the reference engine (the genai builder at the same
precision when present). Every onnxruntime session uses 2 threads and onnxruntime's default thread
policy, spinning on: onnxruntime-genai 0.18 has no setting to turn spinning off (its
``session_options`` reject ``config_entries``), so blueprint's sessions spin too — the same policy
on both sides, which is also ``blueprint run``'s default. (Earlier runs turned spinning off for
blueprint only, as FIELD-NOTES advises for ORT-vs-ORT comparisons; against the genai builder
that handicapped blueprint by ~25% in decode: 34.2 vs 43.4 tok/s on the same fp32 build, measured
side by side in plain onnxruntime, docs/build-speed.md.) Spinning suffers more than blocking from
other load: run this on an otherwise idle machine. torch uses 2 threads.

    python benchmarks/bench_peers.py --hf /tmp/smollm2-hf --work /tmp/peers --rounds 7

``--hf`` is a transformers-saved folder; make one from the SmolLM2 GGUF with
``AutoModelForCausalLM.from_pretrained(dir, gguf_file=..., quantization_config=GgufConfig(...,
dequantize=True)).save_pretrained(out)`` (and the tokenizer likewise).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))
from peer_engines import THREADS, Worker, prompt_ids  # noqa: E402  (the engines and their worker processes)


# --------------------------------------------------------------------------- builds

def run_build(cmd: list[str], out: Path | None = None) -> dict:
    """Run one build as a child; wall time and the child's peak RSS (``wait4``). ``out`` (a
    folder) is removed first so every round builds from scratch."""
    if out is not None and out.exists():
        shutil.rmtree(out)
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env={**os.environ, "PYTHONPATH": str(REPO)})
    log = proc.stdout.read()
    _, status, usage = os.wait4(proc.pid, 0)
    seconds = time.perf_counter() - start
    if os.waitstatus_to_exitcode(status) != 0:
        raise RuntimeError(f"build failed: {' '.join(cmd)}\n{log[-3000:]}")
    return {"build_s": seconds, "build_rss_mb": usage.ru_maxrss / 1024, "log": log}


def build_commands(args, spec: Path) -> dict[str, tuple[list[str], Path]]:
    work = Path(args.work)
    cmds = {}
    for variant in args.blueprint:  # fp32, int8, int4; "portable-fp32" etc.: the plain ONNX export
        out = work / f"blueprint-{variant}"
        precision = variant.split("-")[-1]
        cmd = [sys.executable, "-m", "blueprint", "build", str(spec), "--weights", str(args.hf), "-o", str(out), "-q"]
        if variant.startswith("portable-"):
            cmd += ["--portable"]
        if precision == "fp16":
            cmd += ["--dtype", "fp16"]
        elif variant.startswith("rtn-"):  # the genai builder's own scheme: symmetric RTN on every MatMul,
            # the head included; its agreement is reported, not gated (about 70% on SmolLM2)
            cmd += ["--quantize", precision, "--quant-method", "rtn", "--keep-int8", "none", "--head-rescore", "0",
                    "--min-agreement", "0"]
        elif variant.startswith("exact-"):  # the int4 default before 2026-12-01 afternoon: exact fp32 offset
            # correction, LM head at 8 bits, no rescoring (docs/build-speed.md, "int4 default")
            cmd += ["--quantize", precision, "--quant-method", "minmax-exact", "--keep-int8", "head",
                    "--head-rescore", "0", "--min-agreement", str(args.min_agreement)]
        elif precision != "fp32":
            cmd += ["--quantize", precision, "--min-agreement", str(args.min_agreement)]
        cmds[f"blueprint-{variant}"] = (cmd + args.blueprint_args, out)
    if args.genai:
        try:
            import onnxruntime_genai  # noqa: F401
        except ImportError:
            print("onnxruntime-genai is not installed: its builder is skipped", file=sys.stderr)
        else:
            for precision in args.genai:
                out = work / f"genai-{precision}"
                cmds[f"genai-{precision}"] = ([sys.executable, "-m", "onnxruntime_genai.models.builder", "-i",
                                               str(args.hf), "-o", str(out), "-p", precision, "-e", "cpu",
                                               "-c", str(work / "genai-cache")], out)
    return cmds


def engine_paths(args, cmds) -> dict[str, tuple[str, Path]]:
    """Engine name -> (worker kind, model path) for every engine that is available."""
    engines = {}
    if not args.no_transformers:
        engines["transformers"] = ("transformers", args.hf)
    for name, (_, out) in cmds.items():
        if (out / "model.onnx").is_file():
            engines[name] = (name.split("-")[0], out)
    if args.gguf is not None:
        try:
            import llama_cpp  # noqa: F401
        except ImportError:
            print("llama-cpp-python is not installed: llama.cpp is skipped (it is not built here)", file=sys.stderr)
        else:
            engines["llamacpp-gguf"] = ("llamacpp", args.gguf)
    return engines


def rotated(names: list[str], r: int) -> list[str]:
    """Round ``r``'s order: every engine goes first in turn."""
    return names[r % len(names):] + names[:r % len(names)]


def import_spec(args) -> Path:
    spec = Path(args.work) / "model.yaml"
    subprocess.run([sys.executable, "-m", "blueprint", "import-hf", str(args.hf), "-o", str(spec), "--force"], check=True,
                   env={**os.environ, "PYTHONPATH": str(REPO)}, stdout=subprocess.DEVNULL)
    return spec


# --------------------------------------------------------------------------- report

def median(values):
    values = [v for v in values if v == v]
    return statistics.median(values) if values else float("nan")


def reference_for(name: str, names: list[str]) -> str | None:
    """The peer a row is compared with: the genai builder at the same precision, else its fp32."""
    precision = name.split("-")[-1]
    for candidate in (f"genai-{precision}", "genai-fp32"):
        if candidate in names and candidate != name:
            return candidate
    return None


def agreements(args, cmds) -> dict[str, float]:
    """Teacher-forced top-1 agreement with transformers fp32 (the issue's accuracy measure) of every
    ONNX engine, on ``--agreement-tokens`` tokens of stdlib docstrings (benchmarks/quant_sweep.py's
    text and windows); the genai builder's model.onnx runs in plain onnxruntime the same way."""
    import numpy as np
    import torch
    from transformers import AutoModelForCausalLM

    sys.path.insert(0, str(REPO / "benchmarks"))
    import quant_sweep

    texts = quant_sweep.chunks(args.hf / "tokenizer.json", args.agreement_tokens, 512)
    torch.set_num_threads(THREADS)
    model = AutoModelForCausalLM.from_pretrained(str(args.hf), dtype=torch.float32).eval()
    with torch.inference_mode():
        ref = [model(torch.tensor([ids])).logits[0].argmax(-1).numpy() for ids in texts]
    del model
    out = {}
    for name, (_, folder) in cmds.items():
        if not (folder / "model.onnx").is_file():
            continue
        head_size = None
        if (folder / "genai_config.json").is_file():
            head_size = json.loads((folder / "genai_config.json").read_text())["model"]["decoder"].get("head_size")
        try:
            got = quant_sweep.argmaxes(quant_sweep.session(folder / "model.onnx"), texts, head_size)
        except Exception as error:  # one engine's graph this loop cannot feed must not lose the others
            print(f"agreement of {name} not measured: {error}", file=sys.stderr)
            continue
        out[name] = float(np.mean(np.concatenate([a == b for a, b in zip(ref, got)])))
    return out


def model_mb(folder: Path) -> tuple[float, float]:
    """(MiB of initializers the engine's graph reads, MiB of the whole folder as shipped: model,
    weights, tokenizer, configs, and a --keep-checkpoint build's fp32 weights.safetensors)."""
    import onnx_ir as ir

    sys.path.insert(0, str(REPO / "benchmarks"))
    import quant_sweep

    folder_bytes = sum(p.stat().st_size for p in folder.iterdir() if p.is_file())
    return quant_sweep.weight_bytes(ir.load(str(folder / "model.onnx"))) / 2**20, folder_bytes / 2**20


def table(results: dict, builds: dict, args, agree: dict | None = None, sizes: dict | None = None) -> str:
    names = list(results)
    agree, sizes = agree or {}, sizes or {}
    lines = [f"| engine | build s | build peak MB | weights / folder MB | TTFT ms ({args.prompt} tok) | decode tok/s | run peak MB "
             f"| TTFT ratio | decode ratio (range) | vs | greedy ids = transformers | top-1 agreement |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for name in names:
        rounds = results[name]
        ttft = median([r["ttft_s"] for r in rounds]) * 1000
        tps = median([r["decode_tps"] for r in rounds])
        rss = max(r["rss_mb"] for r in rounds)
        b = builds.get(name, [])
        build_s = f"{median([x['build_s'] for x in b]):.1f}" if b else "—"
        build_mb = f"{max(x['build_rss_mb'] for x in b):.0f}" if b else "—"
        ref = reference_for(name, names)
        if ref:
            ttft_ratio = median([a["ttft_s"] / b_["ttft_s"] for a, b_ in zip(rounds, results[ref])])
            per_round = [a["decode_tps"] / b_["decode_tps"] for a, b_ in zip(rounds, results[ref])]
            ratios = f"{ttft_ratio:.2f} | {median(per_round):.2f} ({min(per_round):.2f}-{max(per_round):.2f}) | {ref}"
        else:
            ratios = "— | — | —"
        same = "—"
        if "transformers" in results and name != "transformers":
            a, b_ = rounds[0]["ids"], results["transformers"][0]["ids"]
            n = next((i for i, (x, y) in enumerate(zip(a, b_)) if x != y), len(a))
            same = f"{n}/{len(a)}"
        files = "{:.0f} / {:.0f}".format(*sizes[name]) if name in sizes else "—"
        agreement = f"{agree[name]:.1%}" if name in agree else "—"
        lines.append(f"| {name} | {build_s} | {build_mb} | {files} | {ttft:.0f} | {tps:.1f} | {rss:.0f} | {ratios} "
                     f"| {same} | {agreement} |")
    build_ratio = []
    for name in names:
        ref = reference_for(name, names)
        if name in builds and ref in builds:
            r = median([x["build_s"] for x in builds[name]]) / median([x["build_s"] for x in builds[ref]])
            build_ratio.append(f"{name} build = {r:.2f} x {ref}")
    return "\n".join(lines + ([""] + build_ratio if build_ratio else []))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hf", type=Path, help="a transformers-saved folder (config.json, safetensors, tokenizer.json)")
    parser.add_argument("--work", default="/tmp/bench-peers", help="where builds go")
    parser.add_argument("--rounds", type=int, default=7, help="interleaved generation rounds")
    parser.add_argument("--build-rounds", type=int, default=1, help="interleaved build rounds (0: reuse builds)")
    parser.add_argument("--prompt", type=int, default=128, help="prompt tokens")
    parser.add_argument("--new", type=int, default=64, help="generated tokens per round")
    parser.add_argument("--blueprint", nargs="*", default=["fp32", "int8", "int4"],
                        help="blueprint precisions to build: fp32, fp16 (--dtype), int8, int4 (--quantize); "
                             "portable-fp32 etc.: the plain ONNX export (--portable); rtn-int4: the genai "
                             "builder's scheme (--quant-method rtn --keep-int8 none); exact-int4: minmax-exact "
                             "with the head at 8 bits (the earlier default)")
    parser.add_argument("--min-agreement", type=float, default=0.95,
                        help="--min-agreement for quantized blueprint builds (the build's default)")
    parser.add_argument("--blueprint-args", nargs=argparse.REMAINDER, default=[],
                        help="extra arguments for every blueprint build (last on the line)")
    parser.add_argument("--genai", nargs="*", default=["fp32", "int4"], help="genai builder precisions")
    parser.add_argument("--no-transformers", action="store_true")
    parser.add_argument("--persistent-workers", dest="fresh_workers", action="store_false",
                        help="one worker process per engine for all rounds (default: a new process per engine "
                             "and round, so the per-process variation of memory placement is sampled too)")
    parser.add_argument("--gguf", type=Path, help="the GGUF file, for llama.cpp when llama-cpp-python is installed")
    parser.add_argument("--agreement-tokens", type=int, default=2048,
                        help="teacher-forced top-1 agreement with transformers fp32 on this many tokens (0: skip)")
    args = parser.parse_args(argv)
    if args.hf is None:
        parser.error("--hf is required")
    Path(args.work).mkdir(parents=True, exist_ok=True)
    print(f"load average before: {os.getloadavg()}", file=sys.stderr)
    spec = import_spec(args)
    cmds = build_commands(args, spec)
    builds: dict[str, list[dict]] = {name: [] for name in cmds}
    for r in range(args.build_rounds):
        for name in rotated(list(cmds), r):
            result = run_build(*cmds[name])
            print(f"build {name}: {result['build_s']:.1f}s, peak {result['build_rss_mb']:.0f} MB", file=sys.stderr)
            builds[name].append(result)
    builds = {k: v for k, v in builds.items() if v}

    ids = prompt_ids(args.hf / "tokenizer.json", args.prompt)
    engines = engine_paths(args, cmds)
    results: dict[str, list[dict]] = {name: [] for name in engines}
    if args.fresh_workers:
        # A new process per engine and round: one process's memory placement can hold its decode speed
        # ~10% above or below another's for all its rounds (measured: the same build 16.1 / 17.9 / 18.0
        # ms/token in three processes, each steady within itself), so rounds must not share one draw.
        for r in range(args.rounds):
            for name in rotated(list(engines), r):
                fresh = Worker(*engines[name])
                fresh.run(ids, 4)  # warm-up: first-run allocations and lazy initialisation
                results[name].append(fresh.run(ids, args.new))
                fresh.close()
            print(f"round {r + 1}/{args.rounds} done", file=sys.stderr)
    else:
        workers = {name: Worker(*engines[name]) for name in engines}
        for w in workers.values():
            w.run(ids, 4)
        for r in range(args.rounds):
            for name in rotated(list(workers), r):
                results[name].append(workers[name].run(ids, args.new))
            print(f"round {r + 1}/{args.rounds} done", file=sys.stderr)
        for w in workers.values():
            w.close()
    print(f"load average after: {os.getloadavg()}", file=sys.stderr)
    sizes = {name: model_mb(out) for name, (_, out) in cmds.items() if (out / "model.onnx").is_file()}
    print(table(results, builds, args, {}, sizes), file=sys.stderr, flush=True)  # kept if agreement fails
    agree = agreements(args, cmds) if args.agreement_tokens else {}
    print(f"SmolLM2 peers: {args.rounds} rounds, prompt {args.prompt} tokens, {args.new} new tokens, batch 1, "
          f"{THREADS} threads; cpu: {os.cpu_count()} logical")
    print(table(results, builds, args, agree, sizes))
    if agree:
        print(f"\ntop-1 agreement: teacher-forced, with transformers fp32, {args.agreement_tokens} tokens of stdlib "
              f"docstrings (benchmarks/quant_sweep.py)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
