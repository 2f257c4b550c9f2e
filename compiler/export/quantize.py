"""``blueprint build --quantize int4|int8``: weight-only, block-wise MatMulNBits, checked on real text.

The fp32 model is exported and verified against torch first; then every MatMul with a constant
weight is replaced by onnxruntime's ``MatMulNBits`` (``onnxruntime.quantization.
matmul_nbits_quantizer``; symmetric, ``block_size`` weights per scale, ``accuracy_level`` 4 =
int8 activations on CPU). Quantization changes the numbers by design, so instead of a tolerance
the build measures what matters for generation: teacher-forced top-1 agreement of the quantized
model with the verified fp32 model on real text (``probe_ids``), and fails below the user's
threshold. Weights that stay in float (embeddings, norms) keep pointing into weights.safetensors,
which stays the full-precision checkpoint that ``export-hf`` and ``build --weights`` read.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from blueprint.errors import BlueprintError

BITS = {"int4": 4, "int8": 8}
PROBE_TOKENS = 256


@dataclass(frozen=True)
class QuantizeOptions:
    kind: str  # "int4" | "int8"
    block_size: int = 32
    accuracy_level: int = 4
    min_agreement: float = 0.95
    method: str = "rtn"  # "rtn" (symmetric round-to-nearest) or "hqq" (4 bits)

    @property
    def resolved_method(self) -> str:
        """RTN by default. HQQ agrees better with fp32 on SmolLM2-135M (82.8% of next tokens vs
        72.3%) but its float zero points miss onnxruntime's fast int4 kernel: decode measured
        6.7 tok/s against ~200 (docs/build-speed.md)."""
        return self.method

    def check(self) -> None:
        if self.kind not in BITS:
            raise BlueprintError(f"--quantize must be int4 or int8, got '{self.kind}'")
        if self.block_size < 16 or self.block_size & (self.block_size - 1):
            raise BlueprintError(f"--block-size must be a power of two >= 16, got {self.block_size}")
        if self.accuracy_level not in (0, 1, 2, 3, 4):
            raise BlueprintError(f"--accuracy-level must be 0-4, got {self.accuracy_level}",
                                 hint="4 computes with int8 activations (fastest on CPU), 0 leaves it to onnxruntime")
        if self.method not in ("rtn", "hqq"):
            raise BlueprintError(f"--quant-method must be rtn or hqq, got '{self.method}'")
        if self.kind == "int8" and self.method == "hqq":
            raise BlueprintError("--quant-method hqq quantizes to 4 bits only", hint="use --quant-method rtn with int8")
        if not 0.0 <= self.min_agreement <= 1.0:
            raise BlueprintError(f"--min-agreement must be within [0, 1], got {self.min_agreement}")


def fold_weight_transposes(model) -> int:
    """Replace ``Transpose(W)`` of a 2-D initializer by the transposed initializer, so the
    quantizer sees ``MatMul(x, W^T)`` with a constant right-hand side. Returns how many."""
    import onnx_ir as ir

    count = 0
    for node in list(model.graph):
        if node.op_type != "Transpose" or node.domain not in ("", "ai.onnx"):
            continue
        source = node.inputs[0]
        if source is None or not source.is_initializer() or source.const_value is None:
            continue
        array = source.const_value.numpy()
        perm = node.attributes.get_ints("perm", None)
        if array.ndim != 2 or (perm is not None and list(perm) != [1, 0]):
            continue
        name = f"{source.name}.T"
        value = model.graph.initializers.get(name)
        if value is None:
            value = ir.Value(name=name, shape=ir.Shape(array.shape[::-1]), type=source.type,
                             const_value=ir.Tensor(np.ascontiguousarray(array.T), name=name))
            model.graph.register_initializer(value)
        node.outputs[0].replace_all_uses_with(value)
        model.graph.remove(node, safe=True)
        count += 1
    return count


def quantize_model(model, options: QuantizeOptions):
    """The onnx_ir ``model`` with its constant-weight MatMuls as MatMulNBits (a new model)."""
    import onnx_ir as ir
    from onnxruntime.quantization.matmul_nbits_quantizer import HQQWeightOnlyQuantConfig, MatMulNBitsQuantizer

    for value in model.graph.initializers.values():  # the quantizer needs the bytes in memory
        if isinstance(value.const_value, ir.ExternalTensor):
            value.const_value = ir.Tensor(value.const_value.numpy(), name=value.name)
    fold_weight_transposes(model)
    proto = ir.serde.serialize_model(model)
    algo = None
    if options.resolved_method == "hqq":  # asymmetric, scale and zero point fitted per block
        algo = HQQWeightOnlyQuantConfig(block_size=options.block_size, bits=BITS[options.kind])
    quantizer = MatMulNBitsQuantizer(proto, bits=BITS[options.kind], block_size=options.block_size,
                                     is_symmetric=algo is None, accuracy_level=options.accuracy_level,
                                     algo_config=algo)
    logger = logging.getLogger("onnxruntime.quantization.matmul_nbits_quantizer")
    level = logger.level
    logger.setLevel(logging.WARNING)  # it logs one INFO line per MatMul
    try:
        quantizer.process()
    finally:
        logger.setLevel(level)
    return ir.serde.deserialize_model(quantizer.model.model)


def probe_ids(spec, tokenizer_json: Path | None, n: int = PROBE_TOKENS) -> tuple[list[int], str]:
    """``n`` ids of real text (Python's own ``inspect.py``): through the build's tokenizer when it
    has one, else its UTF-8 bytes folded into the vocabulary. Returns (ids, what they are)."""
    import inspect

    text = Path(inspect.__file__).read_text()
    n = min(n, spec.max_seq_len)
    if tokenizer_json is not None:
        from blueprint.runtime.tokenizer import Tokenizer

        return Tokenizer(tokenizer_json).encode(text)[:n], f"{n} tokens of inspect.py"
    limit = min(spec.vocab_size, spec.tokenizer.vocab_size if spec.tokenizer and spec.tokenizer.vocab_size else spec.vocab_size)
    return [b % limit for b in text.encode()[:n]], f"{n} bytes of inspect.py (no tokenizer)"


def top1_agreement(reference, quantized, spec, ids: list[int]) -> float:
    """Teacher-forced: one forward of the same ids through both sessions; the share of positions
    whose argmax token is the same."""
    from compiler.export.io import Shape, make_inputs

    feeds = make_inputs(spec, Shape(1, len(ids), 0), kv_cache=spec.is_decoder, rng=np.random.default_rng(0))
    feeds["input_ids"] = np.array([ids], dtype=np.int64)
    a = reference.run(["logits"], feeds)[0]  # [1, s, vocab]
    b = quantized.run(["logits"], feeds)[0]
    return float((a.argmax(-1) == b.argmax(-1)).mean())


def quantize_build(model, tmp: Path, spec, options: QuantizeOptions, *, tokenizer: Path | None, metadata: dict,
                   external_threshold: int, progress) -> tuple[list[str], dict]:
    """Quantize the verified fp32 ``model`` saved in ``tmp``, probe it, overwrite model.onnx.

    Returns (files written, the manifest's ``quantization`` entry).

    Raises:
        BlueprintError: agreement with fp32 below ``options.min_agreement``.
    """
    import onnxruntime as ort

    from compiler.export import onnx_export

    if not spec.is_decoder:
        raise BlueprintError("--quantize is for decoders (the probe compares next-token predictions)")
    options_ = ort.SessionOptions()
    options_.log_severity_level = 3
    reference = ort.InferenceSession(str(tmp / "model.onnx"), options_, providers=["CPUExecutionProvider"])
    quantized_model = quantize_model(model, options)
    counts = sum(1 for n in quantized_model.graph if n.op_type == "MatMulNBits")
    for stale in ("model.onnx", onnx_export.DATA_FILE):
        (tmp / stale).unlink(missing_ok=True)
    files = onnx_export.save_model(quantized_model, tmp, metadata=metadata, external_threshold=external_threshold,
                                   weights_file=tmp / "weights.safetensors")
    session = ort.InferenceSession(str(tmp / "model.onnx"), options_, providers=["CPUExecutionProvider"])
    ids, what = probe_ids(spec, tokenizer)
    agreement = top1_agreement(reference, session, spec, ids)
    report = {"kind": options.kind, "method": options.resolved_method, "block_size": options.block_size,
              "accuracy_level": options.accuracy_level, "matmuls": counts, "probe": what, "top1_agreement_vs_fp32": agreement,
              "min_agreement": options.min_agreement}
    progress.info(f"  {options.kind} ({options.resolved_method}): {counts} MatMuls as MatMulNBits (block {options.block_size}, accuracy level "
                  f"{options.accuracy_level}); teacher-forced top-1 agreement with fp32 on {what}: "
                  f"{agreement:.1%} (minimum {options.min_agreement:.0%})")
    if agreement < options.min_agreement:
        raise BlueprintError(
            f"quantized model agrees with fp32 on {agreement:.1%} of next-token predictions ({what}); "
            f"the minimum is {options.min_agreement:.0%}",
            hint="use --quantize int8, or lower --min-agreement if this loss is acceptable")
    return files, report
