"""`build --weights`: the given weights end up in the ONNX model and in weights.safetensors."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from buildfixtures import SPECS
from safetensors.torch import load_file, save_file

from blueprint import cli, runtime
from blueprint.errors import BlueprintError
from compiler.export import build as build_mod


def test_build_with_weights_uses_them(builds, tmp_path, capsys):
    base = builds("gpt2-tiny").directory
    state = load_file(str(base / "weights.safetensors"))
    gen = torch.Generator().manual_seed(0)
    changed = {k: (v + 0.05 * torch.randn(v.shape, generator=gen)).contiguous() for k, v in state.items()}
    save_file(changed, str(tmp_path / "w.safetensors"))
    out = tmp_path / "out"
    assert cli.main(["build", str(SPECS / "gpt2-tiny.yaml"), "--weights", str(tmp_path / "w.safetensors"),
                     "-o", str(out), "-q"]) == 0
    written = load_file(str(out / "weights.safetensors"))
    assert written.keys() == changed.keys()
    for k in changed:
        assert torch.equal(written[k], changed[k]), k
    a = runtime.load(base).forward(np.array([[1, 2, 3]]), np.ones((1, 3), dtype=np.int64))[0]
    b = runtime.load(out).forward(np.array([[1, 2, 3]]), np.ones((1, 3), dtype=np.int64))[0]
    assert np.abs(a - b).max() > 1e-2  # the new weights changed the model (verification checked the rest)


def test_weights_that_do_not_fit_fail_before_export(builds, tmp_path, monkeypatch):
    state = load_file(str(builds("gpt2-tiny").directory / "weights.safetensors"))
    state.pop(next(iter(state)))
    save_file(state, str(tmp_path / "w.safetensors"))
    monkeypatch.setattr(build_mod.onnx_export, "export_model", lambda *a, **k: pytest.fail("exported"))
    with pytest.raises(BlueprintError):
        build_mod.build(SPECS / "gpt2-tiny.yaml", tmp_path / "out", weights=tmp_path / "w.safetensors")
    assert not (tmp_path / "out").exists()
