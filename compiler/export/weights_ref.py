"""Weights stored once: the ONNX model's parameters point into the build's weights.safetensors.

A safetensors file is an 8-byte little-endian header length, a JSON header, then every tensor's
raw bytes, contiguous and little-endian, at ``data_offsets`` relative to the end of the header.
That is exactly ONNX's raw external-data layout, so each parameter initializer becomes an
external tensor (location ``weights.safetensors``, offset, length) and the same bytes serve
onnxruntime, ``export-hf`` and ``build --weights``. Before this, a build held every weight twice
(538 MB inside model.onnx and again in weights.safetensors for SmolLM2-135M).
"""

from __future__ import annotations

from pathlib import Path

# safetensors dtype -> onnx_ir DataType name
_DTYPES = {"F32": "FLOAT", "F16": "FLOAT16", "BF16": "BFLOAT16", "F64": "DOUBLE", "I64": "INT64", "I32": "INT32",
           "I8": "INT8", "U8": "UINT8", "BOOL": "BOOL"}


def reference_weights(model, weights_file: Path) -> int:
    """Point every initializer of ``model`` that ``weights_file`` holds (same name, dtype and
    shape) at its bytes there. Returns how many initializers now reference the file.

    The file must sit beside the model: the location written is its bare name.
    """
    import onnx_ir as ir

    from compiler.weights.safetensors_io import read_header

    weights_file = Path(weights_file)
    header = read_header(weights_file)
    with open(weights_file, "rb") as fh:
        start = 8 + int.from_bytes(fh.read(8), "little")  # data begins after the JSON header
    count = 0
    for name, value in model.graph.initializers.items():
        entry = header.get(name)
        tensor = value.const_value
        if entry is None or tensor is None:
            continue
        dtype = getattr(ir.DataType, _DTYPES.get(entry["dtype"], ""), None)
        if dtype != tensor.dtype or list(entry["shape"]) != [int(d) for d in tensor.shape]:
            continue  # not the same tensor (e.g. an exporter constant that shares a name)
        begin, end = entry["data_offsets"]
        value.const_value = ir.ExternalTensor(weights_file.name, start + begin, end - begin, dtype,
                                              shape=ir.Shape(list(entry["shape"])), name=name,
                                              base_dir=str(weights_file.parent))
        count += 1
    return count
