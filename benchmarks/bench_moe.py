"""Mixture of experts: what the dense ONNX export costs against active-only compute.

One MoE block (D embed_dim, SwiGLU experts of hidden H, top_k 2) for E in 4..32, over T tokens
(1 = a decode step, 128 = a prefill), four engines on the same weights and input:

- ``torch active``: blueprint's eager path, each expert on the tokens that chose it;
- ``torch dense``: blueprint's export path run eagerly, every expert on every token;
- ``ort dense``: the block exported by torch.onnx (what ``blueprint build`` ships today);
- ``ort MoE op``: onnxruntime's contrib ``com.microsoft.MoE`` (CPU kernel: interleaved SwiGLU
  weights), fed the router logits; checked against torch before it is timed.

Runs are interleaved engine by engine; each figure is the median of ``--reps`` calls (ORT with
spinning off, 2 intra-op threads). Prints one row per (E, T) with the FLOP ratio E / k.

    python benchmarks/bench_moe.py [--reps 30] [--dim 256] [--hidden 512]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from blueprint.spec.schema import MoESpec
from compiler.lower import build_moe


def _session(model_or_path):
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = 2
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    options.log_severity_level = 3
    data = model_or_path if isinstance(model_or_path, (bytes, str)) else str(model_or_path)
    return ort.InferenceSession(data, options, providers=["CPUExecutionProvider"])


def _export_dense(moe, d: int, folder: Path):
    from torch.export import Dim

    path = folder / "dense.onnx"
    with torch.no_grad():
        torch.onnx.export(moe, (torch.randn(2, 5, d),), str(path), dynamo=True, input_names=["x"],
                          output_names=["y"], dynamic_shapes=({0: Dim.DYNAMIC, 1: Dim.DYNAMIC},), verbose=False)
    return _session(path)


def _contrib_moe(moe, d: int, e: int, h: int, k: int):
    """router MatMul + com.microsoft.MoE (softmax, top-k, renormalise inside the op)."""
    from onnx import TensorProto, helper, numpy_helper

    gate = torch.stack([x.gate_proj.weight.detach() for x in moe.experts])  # [E, H, D]
    up = torch.stack([x.up_proj.weight.detach() for x in moe.experts])
    fc1 = torch.stack([gate, up], dim=2).reshape(e, 2 * h, d).numpy()  # rows g0, u0, g1, u1, ...
    fc2 = torch.stack([x.down_proj.weight.detach() for x in moe.experts]).numpy()  # [E, D, H]
    router = moe.router.proj.weight.detach().t().contiguous().numpy()  # [D, E]
    nodes = [helper.make_node("MatMul", ["x", "router"], ["logits"]),
             helper.make_node("MoE", ["x", "logits", "fc1", "", "fc2"], ["y"], domain="com.microsoft", k=k,
                              activation_type="swiglu", swiglu_fusion=1, activation_alpha=1.0, activation_beta=0.0,
                              normalize_routing_weights=int(moe.router.normalize_top_k))]
    graph = helper.make_graph(nodes, "moe", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["T", d])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["T", d])],
                              initializer=[numpy_helper.from_array(a, n) for a, n in
                                           ((router, "router"), (fc1, "fc1"), (fc2, "fc2"))])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 23), helper.make_opsetid("com.microsoft", 1)])
    return _session(model.SerializeToString())


def _median_ms(fn, reps: int) -> float:
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1e3)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--reps", type=int, default=30)
    parser.add_argument("--dim", type=int, default=256)
    parser.add_argument("--hidden", type=int, default=512)
    parser.add_argument("--experts", type=int, nargs="+", default=[4, 8, 16, 32])
    args = parser.parse_args()
    torch.set_num_threads(2)
    d, h, k = args.dim, args.hidden, 2
    print(f"D {d}, H {h}, top_k {k}; medians in ms of {args.reps} calls")
    print(f"{'E':>3} {'T':>4} {'E/k':>4} {'torch active':>13} {'torch dense':>12} {'ort dense':>10} "
          f"{'ort MoE op':>11} {'dense/active(ort)':>18} {'max|op-torch|':>14}")
    with tempfile.TemporaryDirectory() as tmp:
        for e in args.experts:
            torch.manual_seed(e)
            moe = build_moe(d, MoESpec(kind="moe", num_experts=e, top_k=k,
                                       expert={"kind": "swiglu", "hidden_dim": h})).eval()
            with torch.no_grad():
                for p in moe.parameters():
                    p.normal_(0.0, 0.05)
            dense_ort = _export_dense(moe, d, Path(tmp))
            op = _contrib_moe(moe, d, e, h, k)
            for t in (1, 128):
                x = torch.randn(1, t, d)
                feed = x.numpy()
                with torch.no_grad():
                    ref = moe(x).numpy()
                    tokens = x.reshape(t, d)
                    w, c = moe.router(tokens)
                got_op = op.run(None, {"x": feed.reshape(t, d)})[0]
                got_dense = dense_ort.run(None, {"x": feed})[0]
                err_op = float(np.abs(got_op - ref.reshape(t, d)).max())
                assert np.abs(got_dense - ref).max() < 1e-4
                runs = {
                    "active": lambda: moe(x),
                    "dense": lambda: moe._dense(tokens, w, c),
                    "ort_dense": lambda: dense_ort.run(None, {"x": feed}),
                    "ort_op": lambda: op.run(None, {"x": feed.reshape(t, d)}),
                }
                samples = {n: [] for n in runs}
                with torch.no_grad():
                    for _ in range(3):  # interleave engines in rounds
                        for n, fn in runs.items():
                            samples[n].append(_median_ms(fn, max(1, args.reps // 3)))
                med = {n: statistics.median(v) for n, v in samples.items()}
                print(f"{e:>3} {t:>4} {e // k:>4} {med['active']:>13.3f} {med['dense']:>12.3f} {med['ort_dense']:>10.3f} "
                      f"{med['ort_op']:>11.3f} {med['ort_dense'] / med['ort_op']:>18.2f} {err_op:>14.2e}")


if __name__ == "__main__":
    main()
