"""`blueprint export-hf`: sentence-transformers folders, refusals, and re-import."""

from __future__ import annotations

import json
import shutil

import pytest
import torch

from blueprint import dump_lock
from blueprint.cli import main
from blueprint.errors import BlueprintError
from blueprint.hf import import_folder
from blueprint.spec.schema import ModelSpec
from compiler.weights import load_weights, save_weights

from .conftest import random_state, tiny_spec
from .hf_models import FAMILIES, built
from .parity import padded_batch


def _fake_build(tmp_path, spec, weights, tokenizer=None):
    """A folder with what export-hf reads from a build: spec.lock.yaml, weights, tokenizer."""
    build = tmp_path / "build"
    build.mkdir()
    (build / "spec.lock.yaml").write_text(dump_lock(spec))
    save_weights(weights, build / "weights.safetensors")
    if tokenizer is not None:
        shutil.copyfile(tokenizer, build / "tokenizer.json")
    return build


def test_minilm_exports_as_sentence_transformers(tmp_path, minilm_dir):
    from transformers import BertModel

    spec = ModelSpec.model_validate(import_folder(minilm_dir, spec_dir=minilm_dir))
    weights = load_weights(minilm_dir, spec, on_note=lambda m: None)
    build = _fake_build(tmp_path, spec, weights, minilm_dir / "tokenizer.json")
    out = tmp_path / "hf"
    assert main(["export-hf", str(build), "-o", str(out)]) == 0
    modules = json.loads((out / "modules.json").read_text())
    assert [m["type"].rsplit(".", 1)[-1] for m in modules] == ["Transformer", "Pooling", "Normalize"]
    assert json.loads((out / "1_Pooling" / "config.json").read_text())["pooling_mode_mean_tokens"] is True
    assert (out / "tokenizer.json").read_bytes() == (minilm_dir / "tokenizer.json").read_bytes()
    # re-import gives the same architecture and head
    again = ModelSpec.model_validate(import_folder(out, spec_dir=out, name=spec.name))
    assert again.model_dump(exclude={"tokenizer"}) == spec.model_dump(exclude={"tokenizer"})
    ids = torch.tensor([[101, 1037, 2158, 2003, 102]])
    with torch.no_grad():
        a = BertModel.from_pretrained(minilm_dir).eval()(input_ids=ids).last_hidden_state
        b = BertModel.from_pretrained(out).eval()(input_ids=ids).last_hidden_state
    assert torch.equal(a, b)


def _same_logits_in_transformers(ref, exported) -> None:
    """``exported`` loads as the reference's own class and gives its logits on a padded batch,
    bit for bit at every position (the weights travel unchanged)."""
    import transformers as T

    auto = T.AutoModelForCausalLM if ref.spec.is_decoder else T.AutoModelForMaskedLM
    loaded = auto.from_pretrained(exported, attn_implementation="eager").eval()
    assert type(loaded) is type(ref.model)
    ids, mask, _ = padded_batch(14, pad_right=4, seed=5)
    with torch.no_grad():
        expected = ref.model(input_ids=ids, attention_mask=mask).logits
        got = loaded(input_ids=ids, attention_mask=mask).logits
    assert torch.equal(got, expected)


@pytest.mark.parametrize("family", FAMILIES)
def test_export_hf_round_trip(references, family, tmp_path):
    """HF folder -> canonical weights in a build-shaped folder -> export-hf -> transformers."""
    ref = references[family]
    build = _fake_build(tmp_path, ref.spec, load_weights(ref.folder, ref.spec))
    assert main(["export-hf", str(build), "-o", str(tmp_path / "hf")]) == 0
    _same_logits_in_transformers(ref, tmp_path / "hf")


@pytest.mark.parametrize("family", built(FAMILIES))
def test_real_build_exports_to_transformers(references, builds, family, tmp_path):
    """HF folder -> import-hf -> build --weights -> export-hf -> transformers: same logits."""
    ref = references[family]
    assert main(["export-hf", str(builds[family]), "-o", str(tmp_path / "hf")]) == 0
    _same_logits_in_transformers(ref, tmp_path / "hf")


def test_phi_with_untied_input_norms_refused(references, tmp_path):
    """Phi's one input norm fills both norms of the parallel block; once they differ (trained
    apart), no phi config can hold them, and export-hf says which tensors differ."""
    ref = references["phi"]
    weights = load_weights(ref.folder, ref.spec)
    weights["layers.1.ffn_norm.bias"] = weights["layers.1.ffn_norm.bias"] + 0.01
    build = _fake_build(tmp_path, ref.spec, weights)
    with pytest.raises(BlueprintError, match="'layers.1.attn_norm.bias' and 'layers.1.ffn_norm.bias' differ"):
        main_raise(["export-hf", str(build), "-o", str(tmp_path / "out")])
    assert not (tmp_path / "out").exists()


def test_spec_without_hf_layout_refused(tmp_path):
    spec = tiny_spec("gpt-tiny")  # a post-norm GPT: no transformers class computes it
    build = _fake_build(tmp_path, spec, random_state(spec))
    with pytest.raises(BlueprintError, match="cannot be written as a gpt2 config: final_norm is False"):
        main_raise(["export-hf", str(build), "-o", str(tmp_path / "out")])


def test_output_not_overwritten_without_force(tmp_path):
    spec = tiny_spec("llama-tiny")
    build = _fake_build(tmp_path, spec, random_state(spec))
    out = tmp_path / "out"
    assert main(["export-hf", str(build), "-o", str(out)]) == 0
    (out / "keep.txt").write_text("x")
    with pytest.raises(BlueprintError, match="not empty"):
        main_raise(["export-hf", str(build), "-o", str(out)])
    assert (out / "keep.txt").exists()
    # --force replaces only what export-hf wrote, unchanged: a file added since is the user's
    with pytest.raises(BlueprintError, match="holds files export-hf did not write: keep.txt"):
        main_raise(["export-hf", str(build), "-o", str(out), "--force"])
    assert (out / "keep.txt").exists()
    (out / "keep.txt").unlink()
    (out / "config.json").write_text((out / "config.json").read_text() + " ")  # edited by hand
    with pytest.raises(BlueprintError, match="changed since export-hf wrote it: config.json"):
        main_raise(["export-hf", str(build), "-o", str(out), "--force"])
    (out / "config.json").write_text((out / "config.json").read_text()[:-1])
    assert main(["export-hf", str(build), "-o", str(out), "--force"]) == 0
    assert (out / "model.safetensors").is_file()
    again = ModelSpec.model_validate(import_folder(out, name=spec.name))
    assert again.resolved_layers() == spec.resolved_layers()


@pytest.mark.parametrize("where, message", [
    ("build", "overlaps the build folder"),  # --force would delete the build being read
    ("build/sub", "overlaps the build folder"),
    (".", "overlaps the build folder"),
    ("file", "exists and is not a folder"),
    ("other", "not written by export-hf"),  # --force never deletes an arbitrary folder
    ("hf", "not written by export-hf .no blueprint-export.json"),  # nor someone's HF checkpoint
])
def test_unsafe_outputs_refused_even_with_force(tmp_path, where, message):
    spec = tiny_spec("llama-tiny")
    build = _fake_build(tmp_path, spec, random_state(spec))
    (tmp_path / "file").write_text("x")
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "notes.txt").write_text("x")
    (tmp_path / "hf").mkdir()
    (tmp_path / "hf" / "config.json").write_text("{}")
    (tmp_path / "hf" / "model.safetensors").write_bytes(b"weights someone downloaded")
    before = sorted(str(p) for p in tmp_path.rglob("*"))
    with pytest.raises(BlueprintError, match=message):
        main_raise(["export-hf", str(build), "-o", str(tmp_path / where), "--force"])
    assert sorted(str(p) for p in tmp_path.rglob("*")) == before


def main_raise(argv):
    """Run a command's run() directly so the BlueprintError itself reaches the test."""
    import argparse
    import importlib

    from blueprint.cli import COMMANDS

    module = importlib.import_module(f"blueprint.commands.{COMMANDS[argv[0]][0]}")
    parser = argparse.ArgumentParser()
    module.add_arguments(parser)
    return module.run(parser.parse_args(argv[1:]))


def test_a_build_changed_after_building_is_not_exported(tmp_path):
    """export-hf writes what the build verified: weights edited since are refused by their hash."""
    from blueprint.buildinfo import sha256_file

    spec = tiny_spec("llama-tiny")
    build = _fake_build(tmp_path, spec, random_state(spec))
    files = {n: sha256_file(build / n) for n in ("spec.lock.yaml", "weights.safetensors")}
    (build / "manifest.json").write_text(json.dumps({"files": {**files, "model.onnx": "0" * 64},
                                                     "spec_sha256": files["spec.lock.yaml"],
                                                     "versions": {"blueprint": "0.1.0"}}))
    assert main(["export-hf", str(build), "-o", str(tmp_path / "ok")]) == 0
    save_weights(random_state(spec, seed=1), build / "weights.safetensors")
    with pytest.raises(BlueprintError, match="weights.safetensors does not match the hash in"):
        main_raise(["export-hf", str(build), "-o", str(tmp_path / "changed")])
    assert not (tmp_path / "changed").exists()
