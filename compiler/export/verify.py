"""Check an exported model in onnxruntime against the torch graph it came from.

Every build runs these cases before it is moved into place:

- ``padded batch``: batch 3 with two padded rows (decoders pad on the left, encoders on the
  right); every position of every row is compared, padding included, so the exporter's mask
  handling cannot silently change padded rows;
- ``long sequence``: longer than any sliding window (up to max_seq_len);
- ``decode step`` (decoders): one new token per row over a cache longer than the window, with a
  padded row; compares logits and every ``present.*`` output;
- ``single row``: batch 1, a shape different from the export example.

Tolerances (max abs difference, every output): fp32 ``1e-4``. fp16 builds are compared with the
same torch graph cast to fp32 (the fp16-rounded weights, fp32 arithmetic), which is the value
the fp16 model approximates; the stated fp16 tolerance is ``FP16_TOLERANCE``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from blueprint.errors import BlueprintError
from compiler.export.io import Shape, input_names, make_inputs, max_window, output_names

FP32_TOLERANCE = 1e-4
FP16_TOLERANCE = 2e-2


@dataclass
class CaseResult:
    case: str
    shape: Shape
    max_abs: dict[str, float] = field(default_factory=dict)

    def worst(self) -> tuple[str, float]:
        name = max(self.max_abs, key=self.max_abs.get)
        return name, self.max_abs[name]


@dataclass
class VerifyReport:
    tolerance: float
    cases: list[CaseResult]

    @property
    def ok(self) -> bool:
        return all(c.worst()[1] <= self.tolerance for c in self.cases)

    def format(self) -> str:
        lines = []
        for c in self.cases:
            name, diff = c.worst()
            flag = "ok" if diff <= self.tolerance else "FAIL"
            lines.append(
                f"  {flag:4} {c.case:14} batch={c.shape.batch} seq={c.shape.seq} past={c.shape.past}: "
                f"max |ort - torch| = {diff:.2e} on '{name}' (tolerance {self.tolerance:.0e})"
            )
            if diff > self.tolerance:
                bad = [f"{n}={d:.2e}" for n, d in c.max_abs.items() if d > self.tolerance]
                lines.append(f"       outputs beyond tolerance: {', '.join(bad)}")
        return "\n".join(lines)


def verification_cases(spec, kv_cache: bool) -> list[tuple[str, Shape, list[int]]]:
    """(case name, shape, padding per row) for ``spec``, sized to fit max_seq_len."""
    window = max_window(spec)
    cap = spec.max_seq_len
    padded = min(cap, 12)
    long = min(cap, max(2 * window + 3, 16))
    cases = [
        ("padded batch", Shape(3, padded, 0), [0, min(3, padded - 1), 1]),
        ("long sequence", Shape(1, long, 0), [0]),
    ]
    if spec.is_decoder and kv_cache:
        past = min(cap - 1, max(window + 5, 9))
        cases.append(("decode step", Shape(2, 1, past), [0, min(2, past)]))
        cases.append(("single row", Shape(1, min(cap - past, 3), past), [0]))
    else:
        cases.append(("single row", Shape(1, min(cap, 5), 0), [0]))
    return cases


def _reference(module, spec, feeds: dict[str, np.ndarray], kv_cache: bool) -> dict[str, np.ndarray]:
    import torch

    ins, outs = input_names(spec, kv_cache), output_names(spec, kv_cache)
    dtype = next((p.dtype for p in module.parameters()), torch.float32)
    args = []
    for n in ins:
        t = torch.from_numpy(feeds[n])
        args.append(t.to(dtype) if t.is_floating_point() else t)
    with torch.no_grad():
        out = module(*args)
    return {n: out[n].float().numpy() for n in outs}


def verify(module, spec, onnx_path, *, kv_cache: bool, dtype: str = "fp32", seed: int = 0) -> VerifyReport:
    """Run every verification case; returns the report (``report.ok`` says whether it passed).

    ``module`` is the eval-mode torch graph that was exported (for fp16 builds, the fp16 graph:
    it is cast to fp32 here to compute the reference).
    """
    import onnxruntime as ort

    reference = module
    if dtype == "fp16":
        import copy

        reference = copy.deepcopy(module).float()
    options = ort.SessionOptions()
    options.log_severity_level = 3
    try:
        session = ort.InferenceSession(str(onnx_path), options, providers=["CPUExecutionProvider"])
    except Exception as err:  # onnxruntime raises its own exception types
        raise BlueprintError(f"verification failed: onnxruntime cannot load the exported model: {_first_line(err)}") from err
    rng = np.random.default_rng(seed)
    tolerance = FP16_TOLERANCE if dtype == "fp16" else FP32_TOLERANCE
    results = []
    for case, shape, pad in verification_cases(spec, kv_cache):
        feeds = make_inputs(spec, shape, kv_cache=kv_cache, rng=rng, pad=pad, dtype=dtype)
        expected = _reference(reference, spec, feeds, kv_cache)
        names = output_names(spec, kv_cache)
        try:
            got = dict(zip(names, session.run(names, feeds)))
        except Exception as err:
            raise BlueprintError(
                f"verification failed: case '{case}' (batch={shape.batch} seq={shape.seq} past={shape.past}): "
                f"onnxruntime failed: {_first_line(err)}",
                hint="the exported graph does not run at this shape; a dynamic axis was probably specialised",
            ) from err
        result = CaseResult(case, shape)
        for n in names:
            if got[n].shape != expected[n].shape:
                raise BlueprintError(
                    f"verification failed: case '{case}': output '{n}' has shape {list(got[n].shape)} "
                    f"in onnxruntime but {list(expected[n].shape)} in torch"
                )
            diff = np.abs(got[n].astype(np.float64) - expected[n].astype(np.float64))
            result.max_abs[n] = float(np.nanmax(diff)) if np.isfinite(diff).all() else float("inf")
        results.append(result)
    return VerifyReport(tolerance, results)


def check(report: VerifyReport) -> None:
    """Raise a BlueprintError with the whole report when any case is beyond tolerance."""
    if not report.ok:
        raise BlueprintError(
            "verification failed: onnxruntime disagrees with the torch graph\n" + report.format(),
            hint="the export changed the model's numbers; rebuild with the failing case's shape to "
            "investigate, or report it (--no-verify skips this check but the model is then untrusted)",
        )


def _first_line(err: BaseException) -> str:
    lines = str(err).strip().splitlines()
    return lines[0] if lines else type(err).__name__
