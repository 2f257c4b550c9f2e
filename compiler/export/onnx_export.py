"""GraphModule -> ONNX through the torch dynamo exporter, made deterministic.

Why the post-processing: the exporter names dynamic dimensions ``s0, s1, ...`` and embeds
absolute source paths (stack traces) in every node's metadata, so the same export from another
directory gives a different file. We rename the dimensions to the contract's names
(``batch, seq, past_seq, total_seq``), drop node metadata and doc strings, record the spec and
tool versions in ``metadata_props``, and save through onnx_ir, which streams tensors to external
data so models over protobuf's 2 GB limit work.
"""

from __future__ import annotations

import contextlib
import logging
import re
import warnings
from pathlib import Path

import numpy as np

from compiler.export.io import Shape, input_names, make_inputs, output_names, symbolic_dims

DEFAULT_OPSET = 23
MIN_OPSET = 18  # the torch exporter's own opset; older ones go through a lossy version converter
# Above this many bytes of initializers the weights go to model.onnx.data (protobuf caps a
# single file at 2 GB; staying well below it leaves room for the graph itself).
EXTERNAL_DATA_THRESHOLD = 1 << 30
DATA_FILE = "model.onnx.data"


def example_shape(spec, kv_cache: bool) -> Shape:
    """Export example sizes: batch >= 2 (batch 1 specialises the batch axis), seq >= 2,
    past >= 1, and all different so the tracer cannot unify two dynamic axes."""
    cap = spec.max_seq_len  # positions must stay inside a learned table
    past = min(7, max(1, cap - 3)) if kv_cache else 0
    seq = max(2, min(5, cap - past))
    return Shape(batch=3, seq=seq, past=past)


def check_opset(opset: int) -> None:
    """Raise a BlueprintError unless ``opset`` is one the exporter and the installed onnx know."""
    if MIN_OPSET <= opset <= DEFAULT_OPSET:
        return  # always reachable; asking onnxscript's converter for its maximum imports it (~0.3 s)
    import onnx

    from blueprint.errors import BlueprintError

    newest = min(onnx.defs.onnx_opset_version(), _converter_max_opset())
    if not MIN_OPSET <= opset <= newest:
        raise BlueprintError(f"--opset {opset} is not supported: use {MIN_OPSET} to {newest}",
                             hint=f"the default is {DEFAULT_OPSET}")


def _converter_max_opset() -> int:
    """The newest opset the exporter reaches: it exports at opset 18 and converts upwards with
    onnxscript's version converter, which stops at its own maximum (25 in onnxscript 0.7; onnx
    1.23 knows 28, and asking for 26 used to fail only after the whole export)."""
    try:
        from onnxscript.version_converter import _version_converter
    except ImportError:  # a different layout: check_exported_opset still catches a miss
        return 10**6
    return int(getattr(_version_converter, "SUPPORTED_MAX_ONNX_OPSET", 10**6))


def check_exported_opset(model, opset: int) -> None:
    """The exporter falls back to the unconverted model when it cannot convert to the requested
    opset (logging a traceback and carrying on); a build must not claim an opset it lacks."""
    from blueprint.errors import BlueprintError

    actual = model.opset_imports.get("")
    if actual != opset:
        raise BlueprintError(f"ONNX export could not produce opset {opset} (the exporter gave opset {actual})",
                             hint=f"use --opset {DEFAULT_OPSET} (the default)")


def _ordered(module, names: list[str]):
    """Wrap a contract-4 module so the exporter sees its outputs as a tuple in contract order
    (the output names are then attached positionally, never by dict iteration order)."""
    import torch

    class Ordered(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.inner = module

        def forward(self, *args):
            out = self.inner(*args)
            return tuple(out[n] for n in names)

    return Ordered()


def export_model(module, spec, *, kv_cache: bool, opset: int = DEFAULT_OPSET, dtype: str = "fp32",
                 staged: bool = True, fused: bool = False, bounded: frozenset[int] = frozenset()):
    """Export ``module`` (an eval-mode contract-4 module) and return the onnx_ir Model.

    ``staged`` (the default) exports each distinct layer structure once and stamps it per layer
    (``compiler.export.stamp``; about 8x faster on 30 layers); otherwise the whole module goes
    through the exporter in one piece (also when ``module`` is not a plain compiled GraphModule).
    ``bounded`` (fused exports only): the layers given a window-sized cache (``blueprint.window_cache``).

    Raises:
        RuntimeError from the exporter when the graph cannot be exported.
    """
    from compiler.export.stamp import can_stage, export_staged

    if bounded and not (fused and can_stage(module, spec)):
        raise ValueError("a window-sized cache needs the fused export of a compiled GraphModule")
    if (staged or fused) and can_stage(module, spec):
        model = export_staged(module, spec, kv_cache=kv_cache, opset=opset, dtype=dtype, fused=fused,
                              shape=example_shape(spec, kv_cache), bounded=bounded)
        strip_metadata(model)
        return model
    import torch
    from torch.export import Dim

    ins, outs = input_names(spec, kv_cache), output_names(spec, kv_cache)
    shape = example_shape(spec, kv_cache)
    feeds = make_inputs(spec, shape, kv_cache=kv_cache, rng=np.random.default_rng(0), pad=[0, 2, 0], dtype=dtype)
    args = tuple(torch.from_numpy(feeds[n]) for n in ins)
    # One entry: the wrapper takes *args, which torch.export sees as a single tuple argument.
    dynamic = (tuple({axis: Dim.DYNAMIC for axis in symbolic_dims(n)} for n in ins),)
    wrapper = _ordered(module, outs).eval()
    # "torchvision is not installed" notices and the version converter's logged tracebacks are
    # noise here; a failed conversion is caught by check_exported_opset.
    loggers = [logging.getLogger(name) for name in ("torch.onnx", "onnxscript")]
    with warnings.catch_warnings(), torch.no_grad(), _quiet(loggers):
        warnings.simplefilter("ignore")
        program = torch.onnx.export(
            wrapper,
            args,
            dynamo=True,
            input_names=ins,
            output_names=outs,
            dynamic_shapes=dynamic,
            opset_version=opset,
            optimize=True,
            verbose=False,
        )
    model = program.model
    _rename_dims(model)
    strip_metadata(model)
    return model


@contextlib.contextmanager
def _quiet(loggers):
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        for logger, level in zip(loggers, levels):
            logger.setLevel(level)


def _rename_dims(model) -> None:
    """Replace the exporter's symbols (s0, s1 ...) with the contract's dimension names."""
    mapping: dict[str, str] = {}
    for value in model.graph.inputs:
        for axis, name in symbolic_dims(value.name).items():
            dim = value.shape[axis]
            if not isinstance(dim, int) and dim.value is not None:
                mapping.setdefault(dim.value, name)
    if not mapping:
        return
    pattern = re.compile(r"\b(" + "|".join(re.escape(k) for k in sorted(mapping, key=len, reverse=True)) + r")\b")

    def rename(value) -> None:
        if value.shape is None:
            return
        dims = []
        changed = False
        for dim in value.shape:
            if isinstance(dim, int) or dim.value is None:
                dims.append(dim if isinstance(dim, int) else None)
                continue
            new = pattern.sub(lambda m: mapping[m.group(1)], dim.value)
            changed |= new != dim.value
            dims.append(new)
        if changed:
            import onnx_ir as ir

            value.shape = ir.Shape(dims)

    for value in list(model.graph.inputs) + list(model.graph.outputs):
        rename(value)
    for node in model.graph.all_nodes():
        for value in node.outputs:
            rename(value)


def strip_metadata(model) -> None:
    """Drop node metadata and doc strings (they hold absolute source paths and stack traces)."""
    for graph in [model.graph, *model.functions.values()]:
        graph.doc_string = None
        graph.metadata_props.clear()
        for node in graph.all_nodes():  # recursive: nodes of subgraphs too
            node.metadata_props.clear()
            node.doc_string = None
            for value in node.outputs:
                value.metadata_props.clear()
                value.doc_string = None
    for value in list(model.graph.inputs) + list(model.graph.outputs) + list(model.graph.initializers.values()):
        value.metadata_props.clear()
        value.doc_string = None
    model.doc_string = None
    model.metadata_props.clear()


def initializer_bytes(model, *, inline_only: bool = False) -> int:
    """Bytes of the initializers (``inline_only``: those not already stored in another file)."""
    import onnx_ir as ir

    total = 0
    for value in model.graph.initializers.values():
        tensor = value.const_value
        if tensor is not None and not (inline_only and isinstance(tensor, ir.ExternalTensor)):
            total += tensor.nbytes
    return total


def save_model(model, directory: Path, *, metadata: dict[str, str], external_threshold: int = EXTERNAL_DATA_THRESHOLD,
               weights_file: Path | None = None) -> list[str]:
    """Write ``model.onnx`` (and ``model.onnx.data`` when the inline weights exceed the threshold).

    ``weights_file``: a safetensors file in ``directory`` whose tensors the model references
    instead of holding a copy (``compiler.export.weights_ref``); it is not listed in the result.

    Returns the file names written, relative to ``directory``.
    """
    import onnx_ir as ir

    model.metadata_props.clear()
    for key in sorted(metadata):
        model.metadata_props[key] = metadata[key]
    path = Path(directory) / "model.onnx"
    if weights_file is not None:
        from compiler.export.weights_ref import reference_weights

        reference_weights(model, weights_file)
    if initializer_bytes(model, inline_only=True) > external_threshold and _externalize(
            model, Path(directory), DATA_FILE, size_threshold=1024):
        ir.save(model, path)
        return ["model.onnx", DATA_FILE]
    ir.save(model, path)
    return ["model.onnx"]


def _externalize(model, directory: Path, name: str, *, size_threshold: int) -> bool:
    """Move inline initializers over ``size_threshold`` bytes into ``directory/name``, streaming
    (a tensor is written in slices, never copied whole). Small tensors (shape constants, axes)
    stay inline: onnxruntime's shape inference reads them while loading, before external data is
    attached. Tensors already stored in another file are left where they are. Returns whether
    any tensor moved (no file is written otherwise)."""
    import numpy as np
    import onnx_ir as ir

    values = [v for v in model.graph.initializers.values() if v.const_value is not None
              and not isinstance(v.const_value, ir.ExternalTensor) and v.const_value.nbytes > size_threshold]
    if not values:
        return False
    offset = 0
    with open(directory / name, "wb") as fh:
        for value in values:
            tensor = value.const_value
            array = tensor.numpy()
            flat = array.reshape(-1) if array.flags.c_contiguous or array.ndim <= 1 else np.ascontiguousarray(array).reshape(-1)
            step = max(1, (64 << 20) // max(array.itemsize, 1))
            for i in range(0, flat.size, step):
                fh.write(np.ascontiguousarray(flat[i:i + step]).astype(array.dtype.newbyteorder("<"), copy=False).tobytes())
            value.const_value = ir.ExternalTensor(name, offset, tensor.nbytes, tensor.dtype, shape=tensor.shape,
                                                  name=value.name, base_dir=str(directory))
            offset += tensor.nbytes
    return True
