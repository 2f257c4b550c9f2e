"""Shared, session-scoped builds of the tiny specs (exports take seconds: build each once).

Imported by tests/build/conftest.py and tests/runtime/conftest.py; both directories get the same
``builds`` cache because it lives under the session's base temp directory.
"""

from __future__ import annotations

from pathlib import Path

import pytest

import blueprint

REPO = Path(__file__).resolve().parents[2]
SPECS = REPO / "specs"
TINY = sorted(p.stem for p in SPECS.glob("*-tiny.yaml"))
DECODERS = [n for n in TINY if blueprint.load_spec(SPECS / f"{n}.yaml").is_decoder]
ENCODERS = [n for n in TINY if n not in DECODERS]


def vary_norms_and_biases(module, scale: float = 0.3) -> None:
    """Move every norm weight and bias off its init (ones, zeros), in place: an export that
    swapped or dropped one would otherwise compute the same numbers."""
    import torch

    with torch.no_grad():
        for name, p in module.named_parameters():
            if name.endswith("norm.weight") or name.endswith(".bias"):
                p.add_(torch.randn_like(p) * scale)


def load_tiny(name: str):
    return blueprint.load_spec(SPECS / f"{name}.yaml")


class Builds:
    """Builds each tiny spec at most once per test session; ``name+window`` is the spec built
    with ``--window-cache``."""

    def __init__(self, root: Path):
        self.root = root
        self._done: dict[str, object] = {}

    def __call__(self, name: str):
        if name not in self._done:
            from compiler.export.build import build

            spec, _, flag = name.partition("+")
            self._done[name] = build(SPECS / f"{spec}.yaml", self.root / name, window_cache=flag == "window")
        return self._done[name]


@pytest.fixture(scope="session")
def builds(tmp_path_factory) -> Builds:
    return Builds(tmp_path_factory.mktemp("builds"))


@pytest.fixture(scope="session")
def torch_model():
    """torch_model(name, kv_cache) -> the eval-mode torch graph holding the build's weights."""
    cache: dict = {}

    def get(build_result, kv_cache: bool):
        key = (str(build_result.directory), kv_cache)
        if key not in cache:
            from blueprint import runtime
            from compiler.export.build import default_compile
            from compiler.weights import load_weights

            spec = runtime.open_build(build_result.directory).spec
            module = default_compile(spec, kv_cache=kv_cache)
            state = load_weights(build_result.directory / "weights.safetensors", spec)
            _, unexpected = module.load_state_dict(state, strict=False)
            assert not unexpected, unexpected
            cache[key] = module.eval()
        return cache[key]

    return get


def quantizer_input(proto):
    """The fp32 model (an onnx ModelProto) as ``quantize.quantize_model`` sees it: weights in
    memory, weight transposes folded."""
    import onnx_ir as ir

    from compiler.export import quantize

    model = ir.serde.deserialize_model(proto)
    for value in model.graph.initializers.values():
        value.const_value = ir.Tensor(value.const_value.numpy(), name=value.name)
    quantize.fold_weight_transposes(model)
    return model


def saved_session(model, folder):
    """Save the onnx_ir ``model`` into the new ``folder`` and open it in onnxruntime."""
    import onnxruntime as ort

    from compiler.export import onnx_export

    folder.mkdir()
    onnx_export.save_model(model, folder, metadata={})
    return ort.InferenceSession(str(folder / "model.onnx"), providers=["CPUExecutionProvider"])


def decoder_feeds(spec):
    """The quantization tests' inputs: a padded prefill of 3 rows and a decode step of 2 rows
    after 11 cached positions (one padded), from a fixed seed."""
    import numpy as np

    from compiler.export.io import Shape, make_inputs

    rng = np.random.default_rng(0)
    for shape, pad in [(Shape(3, 9, 0), [0, 4, 1]), (Shape(2, 1, 11), [0, 3])]:
        yield make_inputs(spec, shape, kv_cache=True, rng=rng, pad=pad)


def assert_same_logits(spec, quantized, reference, tmp_path) -> None:
    """onnxruntime's kernels in ``quantized`` against ``reference`` (fp32 MatMuls holding the
    weights the quantized graph stores, unpacked by the test): 1e-4 at accuracy level 0."""
    import numpy as np

    a, b = saved_session(quantized, tmp_path / "q"), saved_session(reference, tmp_path / "r")
    for feeds in decoder_feeds(spec):
        (la,), (lb,) = a.run(["logits"], feeds), b.run(["logits"], feeds)
        assert np.abs(la - lb).max() <= 1e-4


def unpack4(packed, n: int, blocks: int, block: int):
    """[N, blocks, block/2] bytes -> [N, blocks, block] levels, low nibble first (written here,
    not with quant_minmax's packing)."""
    import numpy as np

    levels = np.empty((n, blocks, block), dtype=np.int64)
    levels[..., 0::2] = packed.reshape(n, blocks, block // 2) & 0x0F
    levels[..., 1::2] = packed.reshape(n, blocks, block // 2) >> 4
    return levels
