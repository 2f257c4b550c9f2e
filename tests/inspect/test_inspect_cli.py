"""`blueprint inspect` end to end on real builds and specs: the files it writes, their contents
against independent computations, selections, and every bad input as a plain error."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

import blueprint
from blueprint.cli import main
from compiler import compile_spec
from compiler.weights import load_weights
from test_head_scores import independent_entropy, independent_scores

REPO = Path(__file__).resolve().parents[2]
SPECS = REPO / "specs"
IDS = [1, 5, 6, 7, 8, 5, 6, 7, 8, 9]


@pytest.fixture(scope="module")
def llama_build(tmp_path_factory) -> Path:
    """A real build (blueprint build, onnxruntime-verified) of llama-tiny."""
    out = tmp_path_factory.mktemp("inspect-build") / "llama-tiny"
    assert main(["build", str(SPECS / "llama-tiny.yaml"), "-o", str(out), "-q"]) == 0
    return out


def run_cli(args, capsys) -> tuple[int, str, str]:
    code = main(["inspect", *args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def fused_logits(build: Path, ids: list[int]) -> torch.Tensor:
    """The model's own logits: the fused-attention graph with the build's weights."""
    spec = blueprint.load_spec(build / "spec.lock.yaml")
    gm = compile_spec(spec).eval()
    gm.load_state_dict(load_weights(build, spec), strict=False)
    x = torch.tensor([ids])
    with torch.no_grad():
        return gm(x, torch.ones_like(x), torch.arange(len(ids))[None])["logits"][0]  # [s, vocab]


def test_build_outputs(llama_build, tmp_path, capsys):
    out = tmp_path / "insp"
    code, stdout, err = run_cli([str(llama_build), "--ids", " ".join(map(str, IDS)), "-o", str(out), "--json"], capsys)
    assert code == 0, err
    obj = json.loads(stdout)
    assert obj == json.loads((out / "inspect.json").read_text())
    assert obj["tokens"] == [str(t) for t in IDS] and obj["ids"] == IDS  # no tokenizer: ids as labels
    assert obj["layers"] == [0, 1] and obj["heads"] == [0, 1, 2, 3]
    npz = np.load(out / "attention.npz")
    assert sorted(npz.files) == ["layer0", "layer1"]
    for layer in (0, 1):
        probs = npz[f"layer{layer}"]
        assert probs.shape == (4, len(IDS), len(IDS)) and probs.dtype == np.float32  # [heads, query, key]
        np.testing.assert_allclose(probs.sum(-1), 1.0, atol=1e-6)
        assert np.triu(probs, 1).max() == 0.0
        ref = independent_scores(probs.astype(np.float64), IDS)
        for name, values in ref.items():
            np.testing.assert_allclose(obj["head_scores"][name][layer], values, atol=1e-9, err_msg=name)
        np.testing.assert_allclose(obj["entropy"][layer], independent_entropy(probs.astype(np.float64)), atol=1e-6)
    lens = obj["logit_lens"]
    assert lens["top_k"] == 5 and [entry["layer"] for entry in lens["layers"]] == [0, 1]
    top1 = [p["ids"][0] for p in lens["layers"][-1]["positions"]]
    assert top1 == fused_logits(llama_build, IDS).argmax(-1).tolist()
    for p in lens["layers"][0]["positions"]:
        assert p["probs"] == sorted(p["probs"], reverse=True) and 0 < sum(p["probs"]) <= 1 + 1e-6
    names = {p.name for p in out.iterdir()}
    assert {"inspect.json", "attention.npz", "head_scores.png", "logit_lens.png", "attention_layer0.png",
            "attention_layer1.png", "report.html"} == names
    for png in out.glob("*.png"):
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    page = (out / "report.html").read_text()
    assert page.count("<img ") == 4 and page.count('src="data:image/png;base64,') == 4
    assert "http://" not in page and "https://" not in page  # self-contained
    assert "rope_base" in page and "swiglu 176" in page  # the explain table beside the pictures


def test_selection_and_rerun(llama_build, tmp_path, capsys):
    out = tmp_path / "insp"
    ids = " ".join(map(str, IDS))
    assert run_cli([str(llama_build), "--ids", ids, "-o", str(out), "--no-pictures"], capsys)[0] == 0
    assert {p.name for p in out.iterdir()} == {"inspect.json", "attention.npz"}
    full = np.load(out / "attention.npz")["layer1"]
    code, _, err = run_cli([str(llama_build), "--ids", ids, "-o", str(out), "--layers", "1", "--heads", "0,2-3",
                            "--top-k", "2"], capsys)
    assert code == 0, err  # an earlier inspection is replaced
    obj = json.loads((out / "inspect.json").read_text())
    assert obj["layers"] == [1] and obj["heads"] == [0, 2, 3]
    assert np.array(obj["head_scores"]["induction"]).shape == (1, 3)
    npz = np.load(out / "attention.npz")
    assert npz.files == ["layer1"]
    np.testing.assert_array_equal(npz["layer1"], full[[0, 2, 3]])
    assert len(obj["logit_lens"]["layers"][0]["positions"][0]["ids"]) == 2
    assert (out / "attention_layer1.png").is_file() and not (out / "attention_layer0.png").exists()


def test_spec_with_induction_probe(tmp_path, capsys):
    out = tmp_path / "probe"
    code, _, err = run_cli([str(SPECS / "llama-tiny.yaml"), "--induction", "20", "--seed", "3", "-o", str(out)], capsys)
    assert code == 0, err
    assert "random weights" in err
    obj = json.loads((out / "inspect.json").read_text())
    ids = obj["ids"]
    assert len(ids) == 41 and ids[0] == 1 and ids[1:21] == ids[21:]  # bos + 20 + the same 20
    assert len(set(ids[1:21])) == 20 and not {1, 2} & set(ids[1:])  # distinct, no bos/eos
    assert "induction probe" in obj["input"] and obj["notes"]


@pytest.mark.parametrize("name", sorted(p.stem for p in SPECS.glob("*-tiny.yaml")))
def test_every_tiny_spec(name, tmp_path, capsys):
    code, stdout, err = run_cli([str(SPECS / f"{name}.yaml"), "--ids", "3 4 5 3 4 5 6", "-o", str(tmp_path / "o"),
                                 "--json", "--no-pictures"], capsys)
    assert code == 0, err
    obj = json.loads(stdout)
    spec = blueprint.load_spec(SPECS / f"{name}.yaml")
    assert len(obj["head_scores"]["previous_token"]) == spec.num_layers
    if spec.head.kind in ("causal_lm", "masked_lm"):
        assert obj["logit_lens"] is not None
    else:
        assert obj["logit_lens"] is None and any("no logit lens" in n for n in obj["notes"])


FULL_SIZE = sorted(p.stem for p in SPECS.glob("*.yaml") if not p.stem.endswith("-tiny"))
TOO_BIG = {"llama", "mistral"}  # ~7B parameters: 27-29 GB in fp32, more than this machine's 24 GB


@pytest.mark.slow
@pytest.mark.parametrize("name", FULL_SIZE)
def test_every_full_size_spec(name, tmp_path, capsys):
    if name in TOO_BIG:
        pytest.skip(f"{name}: ~7B parameters do not fit in memory here; its mechanisms run in {name}-tiny")
    code, stdout, err = run_cli([str(SPECS / f"{name}.yaml"), "--induction", "8", "-o", str(tmp_path / "o"),
                                 "--json", "--layers", "0,1"], capsys)
    assert code == 0, err
    obj = json.loads(stdout)
    assert len(obj["head_scores"]["induction"]) == 2 and (tmp_path / "o" / "report.html").is_file()


@pytest.mark.parametrize("args, message", [
    (["--ids", "1 2", "--heads", "4"], "head 4 does not exist in layer 0, which has heads 0..3"),
    (["--ids", "1 2", "--layers", "2"], "layer 2 does not exist: the model has layers 0..1"),
    (["--ids", "1 2", "--layers", "a-b"], "--layers takes indices and ranges like '0,3,8-11'"),
    (["--ids", "1 2", "--top-k", "0"], "--top-k must be at least 1"),
    (["--ids", "1 x"], "--ids takes integers"),
    (["--ids", "1 256"], "token id 256 is outside the vocabulary (0..255)"),
    (["--ids", " ".join(["1"] * 129)], "129 tokens exceed the model's max_seq_len (128)"),
    (["--text", "hello"], "--text needs a tokenizer"),
    (["--induction", "64"], "more than the model's max_seq_len (128)"),
    (["--induction", "0"], "--induction needs a length of at least 1"),
])
def test_bad_input_is_a_plain_error(args, message, tmp_path, capsys):
    out = tmp_path / "o"
    code, _, err = run_cli([str(SPECS / "llama-tiny.yaml"), *args, "-o", str(out)], capsys)
    assert code == 1 and message in err and "Traceback" not in err
    assert not out.exists()  # nothing half-written


def test_bad_targets_and_outputs(tmp_path, capsys):
    keep = tmp_path / "src"
    keep.mkdir()
    (keep / "precious.txt").write_text("x")
    code, _, err = run_cli([str(SPECS / "llama-tiny.yaml"), "--ids", "1 2", "-o", str(keep)], capsys)
    assert code == 1 and "not an inspection folder" in err and (keep / "precious.txt").read_text() == "x"
    code, _, err = run_cli([str(tmp_path / "nope.yaml"), "--ids", "1", "-o", str(tmp_path / "o")], capsys)
    assert code == 1 and "does not exist" in err
    code, _, err = run_cli([str(keep), "--ids", "1", "-o", str(tmp_path / "o")], capsys)
    assert code == 1 and "not a build" in err
    code, _, err = run_cli([str(SPECS / "llama-tiny.yaml"), "--ids", "1", "--weights", str(SPECS / "gpt2-tiny.yaml"),
                            "-o", str(tmp_path / "o")], capsys)
    assert code == 1 and "Traceback" not in err and not (tmp_path / "o").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporary folder left


def test_attention_too_large_to_hold_is_refused(monkeypatch, tmp_path, capsys):
    import compiler.inspect.analyse as analyse

    monkeypatch.setattr(analyse, "MAX_ATTENTION_BYTES", 2 * 4 * 10 * 10 * 4)  # 2 layers x 4 heads x 10^2
    args = [str(SPECS / "llama-tiny.yaml"), "--ids", " ".join(["3"] * 11), "-o", str(tmp_path / "o")]
    code, _, err = run_cli(args, capsys)
    assert code == 1 and "select fewer layers with --layers" in err and not (tmp_path / "o").exists()
    code, _, err = run_cli([*args, "--layers", "1"], capsys)
    assert code == 0, err


def word_tokenizer(path: Path) -> Path:
    """A real tokenizer.json (the tokenizers library, word level) over a few words."""
    from tokenizers import Tokenizer, models, pre_tokenizers

    words = ["[UNK]", "the", "cat", "sat", "on", "mat", "a", "dog"]
    tok = Tokenizer(models.WordLevel({w: i for i, w in enumerate(words)}, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.save(str(path))
    return path


def test_build_tokenizer_labels_tokens(llama_build, tmp_path, capsys):
    build = tmp_path / "with-tokenizer"
    shutil.copytree(llama_build, build)
    word_tokenizer(build / "tokenizer.json")
    code, stdout, err = run_cli([str(build), "--text", "the cat sat on the mat", "-o", str(tmp_path / "o"), "--json"],
                                capsys)
    assert code == 0, err
    obj = json.loads(stdout)
    assert obj["ids"] == [1, 2, 3, 4, 1, 5] and obj["tokens"] == ["the", "cat", "sat", "on", "the", "mat"]
    assert obj["logit_lens"]["layers"][0]["positions"][0]["tokens"][0]  # lens tokens are text too
    # --tokenizer overrides the build's; the induction probe draws only ids the tokenizer produces
    other = word_tokenizer(tmp_path / "other.json")
    code, stdout, err = run_cli([str(llama_build), "--tokenizer", str(other), "--induction", "3", "-o",
                                 str(tmp_path / "p"), "--json", "--no-pictures"], capsys)
    assert code == 0, err
    ids = json.loads(stdout)["ids"]
    assert ids[0] == 1 and set(ids[1:]) <= set(range(1, 8)) and ids[1:4] == ids[4:]  # bos_id 1, words, repeat
