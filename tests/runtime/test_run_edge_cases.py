"""`blueprint run` at its edges: damaged builds, odd settings and tokenizers, streaming of
characters that span several ids, prompts at max_seq_len. Each user error is one plain message
with exit code 1, printed before any output."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from tokenizers import Tokenizer, decoders, models, pre_tokenizers

from blueprint import cli, runtime
from blueprint.runtime import Decoder, Generation
from blueprint.runtime.sampling import Sampling, next_token


def _run(capsys, *argv):
    rc = cli.main(["run", *map(str, argv)])
    out = capsys.readouterr()
    return rc, out.out, out.err


def _byte_tokenizer(path):
    """A byte-level BPE without merges: one id per byte, so 'é' is two ids, '中' three."""
    vocab = {c: i for i, c in enumerate(sorted(pre_tokenizers.ByteLevel.alphabet()))}
    tok = Tokenizer(models.BPE(vocab, []))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.save(str(path))
    return tok


def test_streamed_text_never_shows_half_a_character(builds, capsys, tmp_path, monkeypatch):
    tok = _byte_tokenizer(tmp_path / "bytes.json")
    continuation = tok.encode("é 中!").ids
    assert len(continuation) == 7  # é: 2 ids, space, 中: 3 ids, !

    def fake_generate(self, prompt_ids, *, max_new_tokens, sampling, seed, stop_ids, on_token):
        for i in continuation:
            on_token(i)
        return Generation(prompt_ids=list(prompt_ids), ids=list(continuation))

    monkeypatch.setattr(Decoder, "generate", fake_generate)
    rc, out, err = _run(capsys, builds("gpt2-tiny").directory, "--text", "hi ", "--tokenizer", tmp_path / "bytes.json")
    assert rc == 0, err
    assert out == "hi é 中!\n"  # a line of its own (the summary line goes to stderr)


@pytest.mark.parametrize("value", ["nan", "inf"])
def test_non_finite_temperature_is_a_user_error(builds, capsys, value):
    rc, out, err = _run(capsys, builds("gpt2-tiny").directory, "--ids", "1 2", "--temperature", value)
    assert rc == 1 and "temperature must be >= 0 and finite" in err and "Traceback" not in err
    assert out == ""


def test_tiny_temperature_samples_like_greedy():
    logits = np.array([1.0, 3.0, 2.0, 3.0 - 1e-9])
    for t in (1e-300, 1e-320):
        ids = {next_token(logits, Sampling(temperature=t), np.random.default_rng(s), 4) for s in range(20)}
        assert ids == {1}


def test_prompt_errors_come_before_any_output(builds, capsys):
    d = builds("gpt2-tiny").directory
    for argv, message in [(["--ids", "1 999"], "outside the model's vocabulary"),
                          (["--ids", " "], "the prompt is empty"),
                          (["--ids", "1", "--max-new-tokens", "-2"], "max-new-tokens must be >= 0")]:
        rc, out, err = _run(capsys, d, *argv)
        assert rc == 1 and message in err and out == "", (argv, out, err)


def test_prompt_of_exactly_max_seq_len_still_predicts_one_token(builds):
    model = runtime.load(builds("gpt2-tiny").directory)
    result = model.generate([7] * model.spec.max_seq_len, max_new_tokens=5, stop_ids=[])
    assert len(result.ids) == 1 and result.stop_reason == "max_seq_len"


def test_a_smaller_tokenizer_bounds_the_generated_ids(builds, tmp_path):
    """--tokenizer with 100 words on a model whose spec says 250: ids stay below 100."""
    tok = Tokenizer(models.WordLevel({f"w{i}": i for i in range(100)}, unk_token="w0"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.save(str(tmp_path / "small.json"))
    model = runtime.load(builds("gpt2-tiny").directory, tokenizer=tmp_path / "small.json")
    assert model.vocab_limit == 100
    hot = Sampling(temperature=50.0)  # near uniform over whatever is allowed
    ids = [i for s in range(3) for i in model.generate([5, 6], max_new_tokens=40, sampling=hot, seed=s, stop_ids=[]).ids]
    assert max(ids) < 100 and len(set(ids)) > 20


def _damaged(builds, tmp_path, name, content: bytes):
    d = tmp_path / "damaged"
    shutil.copytree(builds("gpt2-tiny").directory, d)
    (d / name).write_bytes(content)
    return d


@pytest.mark.parametrize("name,content,message", [
    ("manifest.json", b"{not json", "unreadable manifest"),
    ("model.onnx", b"\x08\x07garbage", "model.onnx does not match the hash in"),
    ("manifest.json", b"[1, 2]", "not a blueprint build manifest: a JSON list, not an object"),
    ("manifest.json", b'{"files": {"../../etc/passwd": "x"}}', "lists files a build never writes"),
    ("spec.lock.yaml", b"name: edited-by-hand\n", "spec.lock.yaml does not match the hash in"),
])
def test_a_damaged_build_is_a_user_error(builds, capsys, tmp_path, name, content, message):
    rc, _, err = _run(capsys, _damaged(builds, tmp_path, name, content), "--ids", "1 2")
    assert rc == 1 and message in err and "Traceback" not in err, err


def test_masked_lm_k_must_be_positive(tmp_path, capsys):
    from compiler.export.build import build

    from buildfixtures import SPECS

    text = (SPECS / "bert-tiny.yaml").read_text()
    spec = tmp_path / "mlm.yaml"
    spec.write_text(text.replace("head: {kind: embeddings, pooling: cls, pooler: dense_tanh}", "head: {kind: masked_lm}"))
    d = build(spec, tmp_path / "mlm").directory
    for k in ("0", "-1"):
        rc, out, err = _run(capsys, d, "--ids", "2 10 4 3", "--k", k, "--json")
        assert rc == 1 and "must be >= 1" in err and out == ""
    rc, out, _ = _run(capsys, d, "--ids", "2 10 4 3", "--k", "3", "--json")
    top = json.loads(out)["predictions"][0][0]["top"]
    assert rc == 0 and len(top) == 3


def test_a_model_changed_after_the_build_is_refused(builds, capsys, tmp_path):
    """One flipped bit in a weight still loads in onnxruntime and silently changes every
    number; the manifest's hashes catch it, in model.onnx and in weights.safetensors (where
    model.onnx's initializers live, by offset)."""
    for name in ("model.onnx", "weights.safetensors"):
        d = tmp_path / f"edited-{name}"
        shutil.copytree(builds("gpt2-tiny").directory, d)
        data = bytearray((d / name).read_bytes())
        data[-1000] ^= 0x01
        (d / name).write_bytes(bytes(data))
        rc, out, err = _run(capsys, d, "--ids", "1 2")
        assert rc == 1 and out == "" and f"{name} does not match the hash in" in err and "rebuild" in err, err


@pytest.mark.parametrize("bad", [-1, 10**6])
def test_decoder_forward_refuses_ids_outside_the_vocabulary(builds, bad):
    """onnxruntime's Gather would raise its own error; a quantized build's GatherBlockQuantized
    would read a row of zeros (compiler/export/quant_gather.py): both are refused first."""
    from blueprint.errors import BlueprintError

    decoder = Decoder(runtime.open_build(builds("gpt2-tiny").directory))
    ids = np.array([[1, bad, 2]])
    with pytest.raises(BlueprintError, match=r"input ids \[-?\d+\] are outside the model's vocabulary"):
        decoder.forward(ids, np.ones_like(ids))
