"""The build gate: onnxruntime and torch measured against a float64 run of the same graph.

A fixed absolute tolerance cannot be right for every model: a 30-layer pretrained decoder's
fp32 logits differ from its own float64 logits by ~1e-4, as much as any correct export does,
while a tiny random model agrees to ~1e-7. So every case runs three engines on the same inputs:

- ``f64``: the exported torch graph with its weights widened to float64 (exact) and every
  computation in float64 (``compiler.components.precision``): the reference;
- ``torch``: the same graph in the build's dtype: how far the arithmetic of that dtype itself
  strays from the reference on this input;
- ``ort``: the exported model in onnxruntime.

(How each engine runs a case: ``compiler.export.verify_engines``.)

An output passes when ``max |ort - f64| <= FACTOR * max |torch - f64| + FLOOR[dtype]``: the
export may be a small factor less exact than torch itself, never more. Both numbers are
reported. Non-finite values are named as such (fp16 overflow says so). See
docs/architecture.md, "Verification".

Cases (``verification_cases``): a padded batch compared at every position, padding included
(decoders pad on the left, encoders on the right); a sequence longer than any sliding window;
and for decoders with a KV cache, decode trajectories: prefill a prompt, feed each engine's own
``present.*`` back as its ``past_key_values.*``, decode several single tokens (chosen greedily
by the float64 reference, so all engines follow one token path) and a multi-token chunk, over a
cache longer than any window. Each step's logits and every cache output are compared.

A build with window-sized caches (``--window-cache``, ``blueprint.window_cache``) is fed and
compared in its own layout: onnxruntime gets the bounded buffers, and a windowed layer's
``present.*`` is compared on its resident rows [0, L(T)) against the torch engines' last L(T)
positions. Its decode case starts just below the largest capacity C, so single-token steps
cross C (an eviction), and ends with a chunk of G tokens that crosses the next one.
"""

from __future__ import annotations

import threading
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np

from blueprint.errors import BlueprintError
from blueprint.window_cache import WindowLayer, last_rows, resident_rows
from compiler.export.io import Shape, make_inputs, max_window, output_names
from compiler.export.verify_engines import (float64, greedy, open_session, ort_trajectories, replay, torch_engine,
                                            trajectory)

FACTOR = 4.0
FLOOR = {"fp32": 1e-5, "fp16": 1e-3}



@dataclass(frozen=True)
class Case:
    """A verification case: the first call's shape and padding, then ``steps`` later calls of
    that many new tokens each (decoders with a cache; empty for a single call)."""

    name: str
    shape: Shape
    pad: list[int]
    steps: tuple[int, ...] = ()


@dataclass
class OutputError:
    ort: float  # max |ort - f64| over every step and element
    torch: float  # max |torch - f64|, same elements
    nonfinite: str | None = None  # which engine produced inf/nan, when one did

    def allowed(self, floor: float) -> float:
        return FACTOR * self.torch + floor

    def ok(self, floor: float) -> bool:
        return self.nonfinite is None and self.ort <= self.allowed(floor)


@dataclass
class CaseResult:
    case: str
    shape: Shape
    steps: int
    errors: dict[str, OutputError] = field(default_factory=dict)

    def worst(self, floor: float) -> tuple[str, OutputError]:
        """The output closest to (or furthest beyond) what it is allowed."""
        def badness(item):
            err = item[1]
            return float("inf") if err.nonfinite else err.ort / err.allowed(floor)

        return max(self.errors.items(), key=badness)


@dataclass
class VerifyReport:
    dtype: str
    cases: list[CaseResult]

    @property
    def floor(self) -> float:
        return FLOOR[self.dtype]

    @property
    def rule(self) -> str:
        return f"max |ort - f64| <= {FACTOR:g} * max |torch {self.dtype} - f64| + {self.floor:.0e}"

    @property
    def ok(self) -> bool:
        return all(err.ok(self.floor) for c in self.cases for err in c.errors.values())

    def format(self) -> str:
        lines = []
        for c in self.cases:
            name, err = c.worst(self.floor)
            flag = "ok" if err.ok(self.floor) else "FAIL"
            steps = f" +{c.steps} steps" if c.steps else ""
            where = f"batch={c.shape.batch} seq={c.shape.seq}{steps}"
            if err.nonfinite:
                lines.append(f"  {flag:4} {c.case:14} {where}: {err.nonfinite} in '{name}'")
            else:
                lines.append(f"  {flag:4} {c.case:14} {where}: max |ort - f64| = {err.ort:.2e} on '{name}', "
                             f"torch {self.dtype} itself {err.torch:.2e} (allowed {err.allowed(self.floor):.2e})")
            bad = [f"{n}: ort {e.ort:.2e} vs torch {e.torch:.2e}" for n, e in c.errors.items()
                   if not e.ok(self.floor) and n != name]
            if bad:
                lines.append(f"       also beyond: {'; '.join(bad[:6])}" + (" ..." if len(bad) > 6 else ""))
        return "\n".join(lines)

    def as_dict(self) -> dict:
        """The manifest's record of the gate: its rule and both errors of every output."""
        return {
            "rule": self.rule, "factor": FACTOR, "floor": self.floor,
            "cases": [{"case": c.case, "batch": c.shape.batch, "seq": c.shape.seq, "steps": c.steps,
                       "outputs": {n: {"ort": e.ort, "torch": e.torch} for n, e in c.errors.items()}}
                      for c in self.cases],
        }


def verification_cases(spec, kv_cache: bool, bounded: dict[int, WindowLayer] | None = None) -> list[Case]:
    """The cases for ``spec``, sized to fit max_seq_len (``bounded``: window-sized caches)."""
    window = max_window(spec)
    cap = spec.max_seq_len
    padded = min(cap, 12)
    widest = max(bounded.values(), key=lambda layer: layer.capacity) if bounded else None
    long = min(cap, max(2 * window + 3, 16, widest.capacity + 3 if widest else 0))
    cases = [
        Case("padded batch", Shape(3, padded), [0, min(3, padded - 1), 1]),
        Case("long sequence", Shape(1, long), [0]),
    ]
    if spec.is_decoder and kv_cache:
        # 4 single tokens then a 3-token chunk, over a prompt that already fills the window
        steps = (1, 1, 1, 1, 3)
        prompt = max(1, min(cap - sum(steps), max(window + 5, 9)))
        if widest is not None:  # the second step evicts (T = C + 1), the last chunk evicts again
            steps += (widest.capacity - widest.window + 1,)
            prompt = max(1, min(cap - sum(steps), widest.capacity - 1))
        steps = _fit(steps, cap - prompt)
        cases.append(Case("decode", Shape(2, prompt), [0, min(2, prompt - 1)], steps))
        short = max(1, min(cap - 2, 4))
        cases.append(Case("single row", Shape(1, short), [0], _fit((1, 2), cap - short)))
    else:
        cases.append(Case("single row", Shape(1, min(cap, 5)), [0]))
    return cases


def _fit(steps: tuple[int, ...], room: int) -> tuple[int, ...]:
    """The leading steps that fit in ``room`` more positions."""
    out, used = [], 0
    for n in steps:
        if used + n > room:
            break
        out.append(n)
        used += n
    return tuple(out)


def verify(module, spec, onnx_path, *, kv_cache: bool, dtype: str = "fp32", seed: int = 0,
           written: Future | None = None, bounded: dict[int, WindowLayer] | None = None) -> VerifyReport:
    """Run every case through float64 torch, ``dtype`` torch and onnxruntime; the report says
    whether each output passed (``report.ok``). ``module`` is the eval-mode graph that was
    exported, in the build's dtype; it is widened to float64 in place for the reference and
    restored exactly afterwards. ``bounded``: the layers whose cache is window-sized in the
    exported model (``blueprint.window_cache.plan``).

    onnxruntime works on a thread of its own: it loads the model (constant folding, weight
    prepacking: ~1 s for GPT-2 small, native code that releases the GIL) while torch computes
    the float64 reference, and runs its trajectories while torch runs the ``dtype`` ones. Each
    engine still computes every case in full; only the waiting overlaps. ``written``: the
    future of the thread writing the model's files (``compiler.export.build``), awaited before
    onnxruntime opens them."""
    import torch

    bounded = bounded or {}
    rng = np.random.default_rng(seed)
    cases = verification_cases(spec, kv_cache, bounded)
    firsts = [make_inputs(spec, c.shape, kv_cache=kv_cache, rng=rng, pad=c.pad, dtype=dtype) for c in cases]
    extras = [[rng.integers(0, spec.token_limit, (c.shape.batch, n - 1)) for n in c.steps] for c in cases]
    pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="verify-onnxruntime")
    threads = torch.get_num_threads()
    # torch on one core, onnxruntime beside it. Measured on the 2-core machine (GPT-2 small):
    # torch's two threads, beside onnxruntime's or other processes', wait for each other at
    # every small matmul; one thread made the gate 2x faster and halved its CPU time under
    # load (docs/build-speed.md). Any thread count is fp32 torch: the rule keeps its meaning.
    torch.set_num_threads(1)
    stop = threading.Event()  # set on an error or Ctrl-C: the thread starts no more work
    try:
        session = pool.submit(open_session, onnx_path, written, stop)
        with float64(module):
            reference, paths = [], []
            for c, first, extra in zip(cases, firsts, extras):
                chosen: list[np.ndarray] = []
                reference.append(trajectory(torch_engine(module, spec, kv_cache), spec, first, c.steps,
                                             greedy(spec, extra, chosen)))
                paths.append(chosen)
                if session.done():  # a model onnxruntime cannot load fails now, not after all the torch work
                    session.result()
        ort_runs = pool.submit(ort_trajectories, session, spec, kv_cache, cases, firsts, paths, stop, bounded)
        native = [trajectory(torch_engine(module, spec, kv_cache), spec, first, c.steps, replay(path))
                  for c, first, path in zip(cases, firsts, paths)]
        ort = ort_runs.result()
    except BaseException:
        stop.set()
        raise
    finally:  # on an error or Ctrl-C the running onnxruntime call is waited for (it cannot be interrupted)
        pool.shutdown(wait=True, cancel_futures=True)
        torch.set_num_threads(threads)
    results = []
    names = output_names(spec, kv_cache)
    for c, first, o, t, r in zip(cases, firsts, ort, native, reference):
        result = CaseResult(c.name, c.shape, len(c.steps))
        totals = first["attention_mask"].shape[1] + np.cumsum((0,) + c.steps)  # T after each call
        for n in names:
            o_, t_, r_ = [s[n] for s in o], [s[n] for s in t], [s[n] for s in r]
            layer = bounded.get(int(n.split(".")[1])) if n.startswith("present.") else None
            if layer is not None:  # resident rows against the positions a full cache holds last
                o_ = [resident_rows(a, total, layer) for a, total in zip(o_, totals)]
                t_ = [last_rows(a, total, layer) for a, total in zip(t_, totals)]
                r_ = [last_rows(a, total, layer) for a, total in zip(r_, totals)]
            result.errors[n] = _compare(n, o_, t_, r_, dtype)
        results.append(result)
    return VerifyReport(dtype, results)


def check(report: VerifyReport) -> None:
    """Raise a BlueprintError with the whole report when any output fails the rule."""
    if report.ok:
        return
    overflow = any(e.nonfinite for c in report.cases for e in c.errors.values())
    hint = ("the export changed the model's numbers; rebuild with the failing case's shape to investigate, "
            "or report it (--no-verify skips this check but the model is then untrusted)")
    if overflow and report.dtype == "fp16":
        hint = "values overflow float16's range (65504); build with --dtype fp32"
    raise BlueprintError(
        f"verification failed: onnxruntime disagrees with the torch graph ({report.rule})\n" + report.format(),
        hint=hint)


def _compare(name: str, ort: list[np.ndarray], native: list[np.ndarray], ref: list[np.ndarray],
             dtype: str) -> OutputError:
    """Max errors over every step; non-finite values are named (never compared as numbers)."""
    err = OutputError(0.0, 0.0)
    for step, (o, t, r) in enumerate(zip(ort, native, ref)):
        if o.shape != r.shape:
            raise BlueprintError(f"verification failed: output '{name}' has shape {list(o.shape)} in onnxruntime "
                                 f"but {list(r.shape)} in torch")
        r = r.astype(np.float64)
        at = f" (step {step})" if len(ref) > 1 else ""
        for engine, values in (("the float64 reference", r), (f"torch {dtype}", t), ("onnxruntime", o)):
            bad = int(np.size(values) - np.isfinite(values).sum())
            if bad and err.nonfinite is None:
                err.nonfinite = f"{engine} produced {bad:,} non-finite values (inf/nan) of {np.size(values):,}{at}"
        if err.nonfinite is None:
            err.ort = max(err.ort, float(np.max(np.abs(o.astype(np.float64) - r), initial=0.0)))
            err.torch = max(err.torch, float(np.max(np.abs(t.astype(np.float64) - r), initial=0.0)))
    return err
