"""``blueprint build --quantize int4|int8``: weight-only, block-wise MatMulNBits, checked on real text.

The fp32 model is exported and verified against torch first; then every MatMul with a constant
weight is replaced by onnxruntime's ``MatMulNBits``: ``minmax`` (quant_minmax: per-block minimum
and step, the int4 default, its float offsets folded into the MatMulNBits; ``minmax-exact`` keeps
them as an exact fp32 correction), or onnxruntime's own quantizer (``matmul_nbits_quantizer``: RTN
symmetric/asymmetric, HQQ); ``keep_int8`` / ``keep_fp32`` selectors (quant_select) keep some
MatMuls at higher precision. ``head_rescore`` K (default 8, head_rescore.py) rescores the
quantized LM head's K best candidates in full precision. ``accuracy_level`` 4 = int8 activations
on CPU. Quantization changes the numbers by design, so instead of a tolerance
the build measures what matters for generation: teacher-forced top-1 agreement of the quantized
model with the verified fp32 model on real text (``probe_ids``), and fails below the user's
threshold. The quantized build folder holds what the quantized model runs: model.onnx and its
tensors in model.onnx.data, the weights that stay in float (embeddings, norms) copied in beside
the quantized ones, and tables already on Q8_0's grid as their 8-bit levels (quant_gather). The
fp32 checkpoint (weights.safetensors, which ``export-hf``, ``inspect`` and ``build --weights``
read) is left out unless ``keep_checkpoint`` (``--keep-checkpoint``): it is the unquantized model
again, 538 MB beside SmolLM2-135M's 121 MB int4 folder.
"""

from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from blueprint.errors import BlueprintError

BITS = {"int4": 4, "int8": 8}
METHODS = ("rtn", "minmax", "minmax-exact", "hqq")
# Chosen by measurement on SmolLM2-135M (docs/build-speed.md, "int4 default"): int4 minmax with folded
# offsets and the 4-bit head's 8 best candidates rescored agreed with fp32 on 96.8% of next tokens and
# decoded at 0.85x the onnxruntime-genai builder's int4, where minmax-exact with an 8-bit head (96.9%)
# decoded at 0.73x; symmetric RTN everywhere: 70.8%. int8 RTN 96.1%, with the head rescored 96.5% at
# the same speed (7.54 vs 7.96 ms/token, within the noise).
DEFAULTS = {"int4": {"method": "minmax", "keep_int8": (), "head_rescore": 8},
            "int8": {"method": "rtn", "keep_int8": (), "head_rescore": 8}}
PROBE_TOKENS = 512


@dataclass(frozen=True)
class QuantizeOptions:
    kind: str  # "int4" | "int8"
    block_size: int = 32
    accuracy_level: int = 4
    min_agreement: float = 0.95
    # "rtn" (round-to-nearest), "minmax" (float block offsets, quant_minmax, folded into the MatMulNBits),
    # "minmax-exact" (the offsets as an exact fp32 correction: slower) or "hqq" (4 bits; float zero
    # points miss onnxruntime's fast kernel: 6.7 tok/s against ~200 measured, docs/build-speed.md).
    # None: minmax for int4, rtn for int8 (DEFAULTS)
    method: str | None = None
    symmetric: bool = True  # rtn only: signed levels, no zero point
    keep_int8: tuple[str, ...] | None = None  # quant_select selectors kept at 8 bits; None: DEFAULTS
    keep_fp32: tuple[str, ...] = ()  # quant_select selectors left as fp32 MatMuls
    head_rescore: int | None = None  # K best candidates of the quantized head rescored exactly; None: DEFAULTS
    keep_checkpoint: bool = False  # also keep the fp32 weights.safetensors in the build folder

    def __post_init__(self):
        default = DEFAULTS.get(self.kind, DEFAULTS["int8"])
        for name in ("method", "keep_int8", "head_rescore"):
            if getattr(self, name) is None:
                object.__setattr__(self, name, default[name])

    def describe(self, rescored: bool = True) -> str:
        """One line for the progress display; ``rescored``: whether the head rescoring applied."""
        method = f"rtn {'sym' if self.symmetric else 'asym'}" if self.method == "rtn" else self.method
        parts = [f"{self.kind} {method}", f"block {self.block_size}", f"accuracy level {self.accuracy_level}"]
        if self.keep_int8:
            parts.append("int8: " + ",".join(self.keep_int8))
        if self.keep_fp32:
            parts.append("fp32: " + ",".join(self.keep_fp32))
        if self.head_rescore:
            parts.append(f"head rescored: {self.head_rescore} best" if rescored
                         else "head not rescored (kept in fp32, or no single LM head MatMul)")
        return ", ".join(parts)

    def check(self) -> None:
        from compiler.export.quant_select import check_selectors

        if self.kind not in BITS:
            raise BlueprintError(f"--quantize must be int4 or int8, got '{self.kind}'")
        if self.block_size < 16 or self.block_size & (self.block_size - 1):
            raise BlueprintError(f"--block-size must be a power of two >= 16, got {self.block_size}")
        if self.accuracy_level not in (0, 1, 2, 3, 4):
            raise BlueprintError(f"--accuracy-level must be 0-4, got {self.accuracy_level}",
                                 hint="4 computes with int8 activations (fastest on CPU), 0 leaves it to onnxruntime")
        if self.method not in METHODS:
            raise BlueprintError(f"--quant-method must be one of {', '.join(METHODS)}, got '{self.method}'")
        if not isinstance(self.head_rescore, int) or self.head_rescore < 0:
            raise BlueprintError(f"--head-rescore must be a whole number >= 0, got {self.head_rescore}",
                                 hint="0 turns rescoring off; 8 rescores the head's 8 best candidates")
        if self.kind == "int8" and self.method == "hqq":
            raise BlueprintError("--quant-method hqq quantizes to 4 bits only", hint="use --quant-method rtn with int8")
        if self.method != "rtn" and not self.symmetric:
            raise BlueprintError(f"--quant-scheme applies to --quant-method rtn; {self.method} always has a zero point")
        if self.kind == "int8" and self.keep_int8:
            raise BlueprintError("--keep-int8 only makes sense with --quantize int4",
                                 hint="with --quantize int8 every MatMul is already 8 bits; use --keep-fp32")
        check_selectors(self.keep_int8, "--keep-int8")
        check_selectors(self.keep_fp32, "--keep-fp32")
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


def weight_matmuls(model) -> dict[str, tuple[str, np.ndarray]]:
    """Node name -> (weight initializer name, [K, N] array) of every MatMul whose right-hand side
    is a 2-D initializer (after ``fold_weight_transposes``): the MatMuls a quantizer replaces."""
    found = {}
    for node in model.graph:
        if node.op_type != "MatMul" or node.domain not in ("", "ai.onnx"):
            continue
        weight = node.inputs[1]
        if weight is not None and weight.is_initializer() and weight.const_value is not None \
                and len(weight.const_value.shape) == 2:
            found[node.name] = (weight.name, weight.const_value.numpy())
    return found


def _run_quantizer(proto, bits: int, options: QuantizeOptions, exclude: list[str], hqq: bool):
    from onnxruntime.quantization.matmul_nbits_quantizer import (
        HQQWeightOnlyQuantConfig,
        MatMulNBitsQuantizer,
    )

    algo = HQQWeightOnlyQuantConfig(block_size=options.block_size, bits=bits) if hqq else None
    quantizer = MatMulNBitsQuantizer(proto, bits=bits, block_size=options.block_size,
                                     is_symmetric=True if bits == 8 else options.symmetric,
                                     accuracy_level=options.accuracy_level, nodes_to_exclude=exclude,
                                     algo_config=algo)
    logger = logging.getLogger("onnxruntime.quantization.matmul_nbits_quantizer")
    level = logger.level
    logger.setLevel(logging.WARNING)  # it logs one INFO line per MatMul
    try:
        quantizer.process()
    finally:
        logger.setLevel(level)
    return quantizer.model.model


def _scheme(options: QuantizeOptions) -> str:
    if options.method == "rtn":
        return "sym" if options.symmetric else "asym"
    return "minmax" if options.method.startswith("minmax") else "asym"


def quantize_model(model, options: QuantizeOptions, num_layers: int | None = None):
    """The onnx_ir ``model`` with its constant-weight MatMuls as MatMulNBits: for ``minmax``
    ``model`` itself, changed in place; for rtn/hqq a new model from onnxruntime's quantizer (and
    ``model`` has its weights loaded and transposes folded). MatMuls selected by ``keep_int8``
    become 8-bit symmetric MatMulNBits (llama.cpp's Q8_0 grid with minmax, onnxruntime's RTN
    otherwise), those selected by ``keep_fp32`` stay MatMul. With ``head_rescore`` the quantized
    LM head's best candidates are rescored (head_rescore.py)."""
    import onnx_ir as ir

    from compiler.export import quant_gather, quant_minmax, quant_select

    for value in model.graph.initializers.values():  # the quantizer needs the bytes in memory
        if isinstance(value.const_value, ir.ExternalTensor):
            value.const_value = ir.Tensor(value.const_value.numpy(), name=value.name)
    fold_weight_transposes(model)
    weights = weight_matmuls(model)
    if num_layers is None:
        layers = [quant_select.layer_of(quant_select.param_of(w)) for w, _ in weights.values()]
        num_layers = max([i for i in layers if i is not None], default=-1) + 1
    chosen = quant_select.precisions(weights, kind=options.kind, keep_int8=options.keep_int8,
                                     keep_fp32=options.keep_fp32, num_layers=max(num_layers, 1),
                                     block=options.block_size, scheme=_scheme(options))
    head = _head(model, weights, chosen) if options.head_rescore else None
    eight = {n for n, p in chosen.items() if p == "int8"}
    if options.method.startswith("minmax"):  # all in onnx_ir: no protobuf copy, no onnxruntime quantizer
        quant_minmax.apply(model, [n for n, p in chosen.items() if p == options.kind], bits=BITS[options.kind],
                           block=options.block_size, accuracy_level=options.accuracy_level,
                           fold=options.method == "minmax")
        if eight and options.kind != "int8":  # --keep-int8: Q8_0's symmetric grid, exact for weights on it
            quant_minmax.apply(model, sorted(eight), bits=8, block=options.block_size,
                               accuracy_level=options.accuracy_level, symmetric=True)
        quantized = model
    else:
        proto = ir.serde.serialize_model(model)
        other = [n for n, p in chosen.items() if p != options.kind]
        proto = _run_quantizer(proto, BITS[options.kind], options, other, options.method == "hqq")
        if eight and options.kind != "int8":  # the main pass's nodes are MatMulNBits now: only MatMuls are candidates
            others = [n.name for n in proto.graph.node if n.op_type == "MatMul" and n.name not in eight]
            proto = _run_quantizer(proto, 8, options, others, False)  # not fp32 keeps
        quantized = ir.serde.deserialize_model(proto)
    if head is not None:
        _rescore_head(quantized, head, options.head_rescore)
    quant_gather.compact_tables(quantized)  # row tables already on Q8_0's grid: same values, 1/4 of the bytes
    for name, value in list(quantized.graph.initializers.items()):  # the replaced fp32 weights
        if not value.uses() and value not in quantized.graph.inputs and value not in quantized.graph.outputs:
            quantized.graph.initializers.pop(name)
    return quantized


def _head(model, weights: dict, chosen: dict) -> tuple | None:
    """(input value, output value, rows initializer name, rows [V, H], bias initializer name or
    None) of the LM head, if it is the one MatMul outside the layers and gets quantized; the
    output is the bias Add's where one follows. Names survive the quantizers."""
    from compiler.export import quant_select

    heads = [n for n, (w, _) in weights.items() if quant_select.layer_of(quant_select.param_of(w)) is None]
    if len(heads) != 1 or chosen[heads[0]] == "fp32":
        return None
    node = next(n for n in model.graph if n.name == heads[0])
    weight_name, w = weights[heads[0]]  # [H, V]
    param = quant_select.param_of(weight_name)
    source = model.graph.initializers.get(param)
    if param != weight_name and source is not None and source.const_value is not None \
            and tuple(source.const_value.shape) == w.shape[::-1]:
        rows = source.const_value.numpy()  # [V, H]: the parameter itself (a tied head: the token embedding)
    else:
        param, rows = f"{weight_name}_rows", np.ascontiguousarray(w.T)
    out, bias = node.outputs[0], None
    users = list(out.uses())
    if len(users) == 1 and users[0][0].op_type == "Add" and out not in model.graph.outputs:
        add = users[0][0]
        other = add.inputs[1 - users[0][1]]
        if other is not None and other.is_initializer() and other.const_value is not None \
                and tuple(other.const_value.shape) == (w.shape[1],):
            out, bias = add.outputs[0], other.name  # [V]: the head bias
    return node.inputs[0].name, out.name, param, rows, bias


def _rescore_head(quantized, head: tuple, k: int) -> None:
    import onnx_ir as ir

    from compiler.export import head_rescore

    graph = quantized.graph
    h_name, out_name, rows_name, rows, bias = head
    values = {v.name: v for v in graph.inputs} | {v.name: v for node in graph for v in node.outputs}
    rows_value = graph.initializers.get(rows_name)
    if rows_value is None:
        rows_value = ir.val(rows_name, const_value=ir.tensor(rows, name=rows_name))
        graph.register_initializer(rows_value)
    head_rescore.apply(graph, values[out_name], values[h_name], rows_value, min(k, rows.shape[0]),
                       bias=None if bias is None else graph.initializers[bias])


def probe_ids(spec, tokenizer_json: Path | None, n: int = PROBE_TOKENS) -> tuple[list[int], str]:
    """``n`` ids of real text (Python's own ``inspect.py``): through the build's tokenizer when it
    has one, else its UTF-8 bytes folded into the vocabulary. Returns (ids, what they are)."""
    import inspect

    text = Path(inspect.__file__).read_text()
    n = min(n, spec.max_seq_len)
    if tokenizer_json is not None:
        from blueprint.runtime.tokenizer import Tokenizer

        return Tokenizer(tokenizer_json).encode(text)[:n], f"{n} tokens of inspect.py"
    return [b % spec.token_limit for b in text.encode()[:n]], f"{n} bytes of inspect.py (no tokenizer)"


def probe_tokens(session, spec, ids: list[int], bounded: dict | None = None) -> np.ndarray:
    """Teacher-forced: the argmax token at every position of one forward of ``ids``.
    ``bounded``: layers with a window-sized cache (``blueprint.window_cache``), whose empty past
    is a zeroed buffer of its capacity."""
    from blueprint.window_cache import bounded_feeds
    from compiler.export.io import Shape, make_inputs

    feeds = make_inputs(spec, Shape(1, len(ids), 0), kv_cache=spec.is_decoder, rng=np.random.default_rng(0))
    feeds = bounded_feeds(feeds, bounded or {})
    feeds["input_ids"] = np.array([ids], dtype=np.int64)
    return session.run(["logits"], feeds)[0].argmax(-1)  # [1, s]


def top1_agreement(reference, quantized, spec, ids: list[int], bounded: dict | None = None) -> float:
    """The share of positions whose argmax token is the same in both sessions (``probe_tokens``)."""
    return float((probe_tokens(reference, spec, ids, bounded) == probe_tokens(quantized, spec, ids, bounded)).mean())


def quantize_build(model, tmp: Path, spec, options: QuantizeOptions, *, tokenizer: Path | None, metadata: dict,
                   progress, bounded: dict | None = None) -> tuple[list[str], dict]:
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
    ids, what = probe_ids(spec, tokenizer)

    def reference_tokens():
        reference = ort.InferenceSession(str(tmp / "model.onnx"), options_, providers=["CPUExecutionProvider"])
        return probe_tokens(reference, spec, ids, bounded)

    # the fp32 model's probe (session load ~1 s, a 512-token forward ~1 s for SmolLM2: native code
    # that releases the GIL) runs on a thread while numpy quantizes; both finish before any file changes
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="quantize-reference") as pool:
        reference = pool.submit(reference_tokens)
        quantized_model = quantize_model(model, options)
        expected = reference.result()
    counts = sum(1 for n in quantized_model.graph if n.op_type == "MatMulNBits")
    # the K the graph uses (min(K, vocabulary)), 0 where no head was rescored
    rescored = next((int(n.inputs[1].const_value.numpy()[0]) for n in quantized_model.graph
                     if n.name.endswith("_rescore_topk")), 0)
    tables = sorted({n.inputs[0].name.removesuffix("_Q8") for n in quantized_model.graph
                     if n.op_type == "GatherBlockQuantized"})
    # quantize_model read every weight into memory: without a checkpoint to point into, the float
    # weights the graph still reads are saved beside the quantized ones
    checkpoint = tmp / "weights.safetensors"
    for stale in ("model.onnx", onnx_export.DATA_FILE):
        (tmp / stale).unlink(missing_ok=True)
    # every tensor in model.onnx.data, whatever its size: onnxruntime reads the file itself, so a
    # runtime never holds model.onnx's bytes (SmolLM2 int4: peak RSS 259 MB instead of 424, load
    # 0.44 s instead of 0.65)
    files = onnx_export.save_model(quantized_model, tmp, metadata=metadata, external_threshold=0,
                                   weights_file=checkpoint if options.keep_checkpoint else None)
    if options.keep_checkpoint:
        files.append(checkpoint.name)
    else:
        checkpoint.unlink()
    session = ort.InferenceSession(str(tmp / "model.onnx"), options_, providers=["CPUExecutionProvider"])
    agreement = float((expected == probe_tokens(session, spec, ids, bounded)).mean())
    report = {"kind": options.kind, "method": options.method,
              "symmetric": options.symmetric if options.method == "rtn" else None,
              "block_size": options.block_size, "accuracy_level": options.accuracy_level,
              "keep_int8": list(options.keep_int8), "keep_fp32": list(options.keep_fp32), "matmuls": counts,
              "head_rescore": rescored, "int8_tables": tables, "keep_checkpoint": options.keep_checkpoint,
              "probe": what, "top1_agreement_vs_fp32": agreement, "min_agreement": options.min_agreement}
    progress.info(f"  {options.describe(rescored > 0)}: {counts} MatMuls as MatMulNBits; teacher-forced top-1 agreement "
                  f"with fp32 on {what}: {agreement:.1%} (minimum {options.min_agreement:.0%})")
    if tables:
        progress.info(f"  stored at 8 bits without loss (already on Q8_0's grid): {', '.join(tables)}")
    if agreement < options.min_agreement:
        raise BlueprintError(
            f"quantized model agrees with fp32 on {agreement:.1%} of next-token predictions ({what}); "
            f"the minimum is {options.min_agreement:.0%}",
            hint="keep more MatMuls at 8 bits (--keep-int8 head,first,last or worst:0.2), use --quantize int8, "
                 "or lower --min-agreement if this loss is acceptable")
    return files, report
