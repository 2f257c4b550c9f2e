"""Quantization options of ``blueprint build --quantize`` side by side on one fp32 build.

Not part of the test suite. For every option: quantize the fp32 build's graph (the same code the
build runs), then measure

- teacher-forced top-1 agreement with the fp32 model on real text: docstrings of Python's own
  stdlib modules, tokenized with the build's tokenizer, cut into ``--chunk``-token windows
  (``--tokens`` in all);
- the bytes of weights the quantized graph reads (initializers in use);
- decode tok/s of a plain onnxruntime loop (``--prompt`` tokens prefill, then ``--new`` single-token
  steps feeding present -> past), 2 threads, spinning off, median of ``--rounds``.

    python benchmarks/quant_sweep.py --build /tmp/quant/fp32 --options int4 int8 int4+method=rtn+keep_int8=

An option is ``KIND[+key=value[+key=value...]]`` with the keys of ``QuantizeOptions``
(``block_size``, ``accuracy_level``, ``method``, ``symmetric``, ``keep_int8``, ``keep_fp32``;
selector lists comma-separated).
"""

from __future__ import annotations

import argparse
import ast
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

MODULES = ["inspect", "argparse", "textwrap", "functools", "collections", "pathlib", "subprocess", "typing",
           "dataclasses", "json", "logging", "unittest"]


def docstring_text() -> str:
    """Docstrings of a fixed list of stdlib modules (prose), in a fixed order."""
    import importlib

    parts = []
    for name in MODULES:
        module = importlib.import_module(name)
        path = Path(module.__file__)
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
                doc = ast.get_docstring(node)
                if doc and len(doc) > 80:
                    parts.append(doc)
    return "\n\n".join(parts)


def chunks(tokenizer: Path, tokens: int, chunk: int) -> list[list[int]]:
    from tokenizers import Tokenizer

    ids = Tokenizer.from_file(str(tokenizer)).encode(docstring_text()).ids
    if len(ids) < tokens:
        raise SystemExit(f"only {len(ids)} tokens of docstrings, asked for {tokens}")
    count = -(-tokens // chunk)
    starts = np.linspace(0, len(ids) - chunk, count).astype(int)  # spread over all the modules
    return [ids[i:i + chunk] for i in starts]


def session(path: Path):
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = 2
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    options.log_severity_level = 3
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def feeds(sess, ids: list[int], past: dict | None, past_len: int, head_size: int | None = None) -> dict:
    """Contract inputs for one step; ``head_size`` where the graph leaves it symbolic (the genai
    builder's ``kv_cache_dim``)."""
    out = {}
    for inp in sess.get_inputs():
        if inp.name == "input_ids":
            out[inp.name] = np.array([ids], dtype=np.int64)
        elif inp.name == "attention_mask":
            out[inp.name] = np.ones((1, past_len + len(ids)), dtype=np.int64)
        elif inp.name == "position_ids":
            out[inp.name] = np.arange(past_len, past_len + len(ids), dtype=np.int64)[None]
        elif inp.name.startswith("past_key_values."):
            if past is None:
                heads, dim = inp.shape[1], inp.shape[3] if isinstance(inp.shape[3], int) else head_size
                dtype = np.float16 if inp.type == "tensor(float16)" else np.float32
                out[inp.name] = np.zeros((1, heads, 0, dim), dtype=dtype)
            else:
                out[inp.name] = past[inp.name.replace("past_key_values.", "present.")]
        else:
            raise SystemExit(f"unexpected input {inp.name}")
    return out


def argmaxes(sess, texts, head_size: int | None = None) -> list[np.ndarray]:
    return [sess.run(["logits"], feeds(sess, ids, None, 0, head_size))[0][0].argmax(-1) for ids in texts]


def decode_tps(sess, prompt: list[int], new: int, rounds: int) -> float:
    names = [o.name for o in sess.get_outputs()]
    rates = []
    for _ in range(rounds):
        outs = dict(zip(names, sess.run(names, feeds(sess, prompt, None, 0))))
        token, length = int(outs["logits"][0, -1].argmax()), len(prompt)
        start = time.perf_counter()
        for _ in range(new):
            outs = dict(zip(names, sess.run(names, feeds(sess, [token], outs, length))))
            token, length = int(outs["logits"][0, -1].argmax()), length + 1
        rates.append(new / (time.perf_counter() - start))
    return statistics.median(rates)


def weight_bytes(model) -> int:
    """Bytes of the initializers the graph reads (every stored weight the model computes with)."""
    used = set()
    for node in model.graph:
        used.update(v.name for v in node.inputs if v is not None)
    return sum(v.const_value.nbytes for v in model.graph.initializers.values()
               if v.name in used and v.const_value is not None)


def parse_option(text: str):
    from compiler.export.quantize import QuantizeOptions

    kind, *pairs = text.split("+")
    kwargs = {}
    for pair in pairs:
        key, value = pair.split("=", 1)
        if key in ("keep_int8", "keep_fp32"):
            kwargs[key] = tuple(v for v in value.split(",") if v)
        elif key == "symmetric":
            kwargs[key] = value.lower() in ("1", "true", "yes", "sym")
        elif key == "method":
            kwargs[key] = value
        else:
            kwargs[key] = int(value)
    options = QuantizeOptions(kind, min_agreement=0.0, **kwargs)
    options.check()
    return options


def llamacpp_agreement(hf: Path, texts) -> float:
    """An estimate of llama.cpp's own agreement on a model imported from a GGUF: transformers fp32
    on the dequantized weights (= exactly what the GGUF holds) against the same model whose every
    Linear input is rounded as llama.cpp rounds activations for its quantized dot products (Q8_1 /
    Q8_0: blocks of 32 along K, symmetric int8, scale = absmax / 127). Teacher-forced top-1."""
    import torch
    from transformers import AutoModelForCausalLM

    torch.set_num_threads(2)
    model = AutoModelForCausalLM.from_pretrained(str(hf), dtype=torch.float32).eval()

    def q8(module, args):
        x = args[0]
        k = x.shape[-1]
        blocks = x.reshape(*x.shape[:-1], k // 32, 32)  # [..., K/32, 32]
        scale = blocks.abs().amax(-1, keepdim=True).clamp_min(1e-30) / 127
        return ((blocks / scale).round() * scale).reshape(x.shape),

    agree = []
    with torch.inference_mode():
        plain = [model(torch.tensor([ids])).logits[0].argmax(-1) for ids in texts]
        hooks = [m.register_forward_pre_hook(q8) for m in model.modules() if isinstance(m, torch.nn.Linear)]
        rounded = [model(torch.tensor([ids])).logits[0].argmax(-1) for ids in texts]
        for h in hooks:
            h.remove()
    for a, b in zip(plain, rounded):
        agree.append((a == b).numpy())
    return float(np.mean(np.concatenate(agree)))


def interleaved(build: Path, option_texts: list[str], texts, args) -> None:
    """Decode tok/s of fp32 and the options with every session open side by side, one generation
    each in turn per round (rotating the order), so all see the same machine state."""
    import os

    import onnx_ir as ir

    from compiler.export import onnx_export
    from compiler.export.quantize import quantize_model

    sessions = {"fp32": session(build / "model.onnx")}
    with tempfile.TemporaryDirectory() as tmp:
        for i, text in enumerate(option_texts):
            folder = Path(tmp) / str(i)
            folder.mkdir()
            onnx_export.save_model(quantize_model(ir.load(str(build / "model.onnx")), parse_option(text)), folder,
                                   metadata={})
            sessions[text] = session(folder / "model.onnx")
        names, prompt = list(sessions), texts[0][:args.prompt]
        rates = {name: [] for name in names}
        before = os.getloadavg()
        for r in range(args.rounds):
            for name in names[r % len(names):] + names[:r % len(names)]:
                rates[name].append(decode_tps(sessions[name], prompt, args.new, 1))
    print(f"load average {before} -> {os.getloadavg()}; {args.rounds} interleaved rounds, {args.new} tokens")
    print("| option | decode tok/s (median) | rounds |\n|---|---|---|")
    for name in names:
        print(f"| {name} | {statistics.median(rates[name]):.1f} | {' '.join(f'{x:.1f}' for x in rates[name])} |")


def main(argv=None) -> int:
    import onnx_ir as ir

    from compiler.export import onnx_export
    from compiler.export.quantize import quantize_model

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--build", type=Path, required=True, help="an fp32 blueprint build of a decoder")
    parser.add_argument("--options", nargs="+", default=["int4", "int8"])
    parser.add_argument("--tokens", type=int, default=2048)
    parser.add_argument("--chunk", type=int, default=512)
    parser.add_argument("--prompt", type=int, default=128)
    parser.add_argument("--new", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=3, help="decode rounds (0: no decode timing)")
    parser.add_argument("--json", type=Path, help="append one JSON line per option here")
    parser.add_argument("--interleave", action="store_true",
                        help="only time decode, all options side by side in interleaved --rounds")
    parser.add_argument("--llamacpp-sim", type=Path, metavar="HF_DIR",
                        help="only estimate llama.cpp's agreement (int8 block activations) on this transformers folder")
    args = parser.parse_args(argv)

    texts = chunks(args.build / "tokenizer.json", args.tokens, args.chunk)
    if args.llamacpp_sim:
        print(f"| llama.cpp-style Q8 activations on the GGUF weights (transformers) | "
              f"{llamacpp_agreement(args.llamacpp_sim, texts):.1%} | | | |")
        return 0
    if args.interleave:
        interleaved(args.build, args.options, texts, args)
        return 0
    fp32_path = args.build / "model.onnx"
    reference = session(fp32_path)
    ref = argmaxes(reference, texts)
    rows = []
    if args.rounds:
        fp32_model = ir.load(str(fp32_path))
        rows.append(("fp32", 1.0, weight_bytes(fp32_model) / 2**20, decode_tps(reference, texts[0][:args.prompt],
                                                                                args.new, args.rounds), 0.0))
        print(f"| fp32 | 100.0% | {rows[-1][2]:.0f} | {rows[-1][3]:.1f} | — |", flush=True)
    del reference
    for text in args.options:
        options = parse_option(text)
        start = time.perf_counter()
        model = quantize_model(ir.load(str(fp32_path)), options)
        seconds = time.perf_counter() - start
        with tempfile.TemporaryDirectory() as tmp:
            onnx_export.save_model(model, Path(tmp), metadata={})
            sess = session(Path(tmp) / "model.onnx")
            got = argmaxes(sess, texts)
            agree = float(np.mean(np.concatenate([a == b for a, b in zip(ref, got)])))
            tps = decode_tps(sess, texts[0][:args.prompt], args.new, args.rounds) if args.rounds else float("nan")
            del sess
        mb = weight_bytes(model) / 2**20
        rows.append((text, agree, mb, tps, seconds))
        print(f"| {text} | {agree:.1%} | {mb:.0f} | {tps:.1f} | {seconds:.0f} |", flush=True)
        if args.json:
            with args.json.open("a") as f:
                f.write(json.dumps({"option": text, "agreement": agree, "weights_mb": mb, "decode_tps": tps,
                                    "quantize_s": seconds, "tokens": sum(map(len, texts))}) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
