"""The engines ``bench_peers.py`` compares, each served from a worker process of its own.

A worker (``python benchmarks/peer_engines.py KIND PATH``) loads one engine, says how long that
took and its peak RSS on one JSON line, then answers one greedy generation per JSON request line
on stdin with its time to first token, decode tokens/s and ids. ``Worker`` is the parent's side.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
THREADS = 2


# --------------------------------------------------------------------------- prompt

def prompt_ids(tokenizer_json: Path, length: int) -> list[int]:
    """``length`` ids of real text: the start of Python's own ``inspect.py``."""
    import inspect

    from tokenizers import Tokenizer

    text = Path(inspect.__file__).read_text()
    ids = Tokenizer.from_file(str(tokenizer_json)).encode(text).ids
    return list(ids[:length])


# --------------------------------------------------------------------------- engines (workers)

class TransformersEngine:
    def __init__(self, path: str):
        import torch
        from transformers import AutoModelForCausalLM

        torch.set_num_threads(THREADS)
        self.torch = torch
        self.model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32).eval()

    def generate(self, ids, new, on_token):
        torch = self.torch
        with torch.inference_mode():
            out = self.model(torch.tensor([ids]), use_cache=True)
            for _ in range(new):
                token = int(out.logits[0, -1].argmax())
                on_token(token)
                out = self.model(torch.tensor([[token]]), cache=out.past_key_values, use_cache=True)


class BlueprintEngine:
    def __init__(self, path: str):
        sys.path.insert(0, str(REPO))
        from blueprint.runtime.decoder import Decoder
        from blueprint.runtime.session import open_build

        self.decoder = Decoder(open_build(path, threads=THREADS))  # spinning on, as genai's sessions

    def generate(self, ids, new, on_token):
        self.decoder.generate(ids, max_new_tokens=new, stop_ids=[], on_token=on_token)


class GenaiEngine:
    def __init__(self, path: str):
        import onnxruntime_genai as og

        self.og = og
        config = og.Config(path)
        config.overlay(json.dumps({"model": {"decoder": {"session_options": {"intra_op_num_threads": THREADS}}}}))
        self.model = og.Model(config)

    def generate(self, ids, new, on_token):
        og = self.og
        params = og.GeneratorParams(self.model)
        params.set_search_options(max_length=len(ids) + new, do_sample=False)
        generator = og.Generator(self.model, params)
        generator.append_tokens(ids)
        for _ in range(new):
            generator.generate_next_token()
            on_token(int(generator.get_next_tokens()[0]))


class LlamaCppEngine:
    """llama-cpp-python on the GGUF file itself (only when it is installed)."""

    def __init__(self, path: str):
        from llama_cpp import Llama

        self.model = Llama(model_path=path, n_threads=THREADS, n_ctx=1024, verbose=False)

    def generate(self, ids, new, on_token):
        for i, token in enumerate(self.model.generate(ids, top_k=1, temp=0.0, reset=True)):
            on_token(int(token))
            if i + 1 == new:
                break


ENGINES = {"transformers": TransformersEngine, "blueprint": BlueprintEngine, "genai": GenaiEngine,
           "llamacpp": LlamaCppEngine}


def peak_rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def worker(kind: str, path: str) -> None:
    """Serve generation requests (one JSON line each) on stdin; answer on stdout."""
    out = sys.stdout
    sys.stdout = sys.stderr  # libraries' prints must not corrupt the protocol
    start = time.perf_counter()
    engine = ENGINES[kind](path)
    out.write(json.dumps({"load_s": time.perf_counter() - start, "rss_mb": peak_rss_mb()}) + "\n")
    out.flush()
    for line in sys.stdin:
        request = json.loads(line)
        stamps, ids = [], []

        def on_token(token):
            stamps.append(time.perf_counter())
            ids.append(token)

        begin = time.perf_counter()
        engine.generate(request["ids"], request["new"], on_token)
        ttft = stamps[0] - begin
        decode = (len(stamps) - 1) / (stamps[-1] - stamps[0]) if len(stamps) > 1 else float("nan")
        out.write(json.dumps({"ttft_s": ttft, "decode_tps": decode, "ids": ids, "rss_mb": peak_rss_mb()}) + "\n")
        out.flush()


class Worker:
    def __init__(self, kind: str, path: Path):
        self.proc = subprocess.Popen([sys.executable, __file__, kind, str(path)], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, text=True, env={**os.environ, "PYTHONPATH": str(REPO)})
        self.hello = self._read()

    def _read(self) -> dict:
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"worker {self.proc.args[2:]} died")
        return json.loads(line)

    def run(self, ids, new) -> dict:
        self.proc.stdin.write(json.dumps({"ids": ids, "new": new}) + "\n")
        self.proc.stdin.flush()
        return self._read()

    def close(self) -> None:
        self.proc.stdin.close()
        self.proc.wait()


if __name__ == "__main__":
    worker(*sys.argv[1:3])
