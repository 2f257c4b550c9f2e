"""``blueprint run`` options that would do nothing are refused, and ``tokenizer.bos_id`` is used."""

from __future__ import annotations

import json

import pytest

from blueprint import cli, runtime


def _run(capsys, *argv):
    rc = cli.main(["run", *map(str, argv)])
    out = capsys.readouterr()
    return rc, out.out, out.err


@pytest.mark.parametrize("extra, message", [
    (["--top-k", "5"], "--top-k only apply when sampling, and decoding is greedy"),
    (["--top-p", "0.9", "--seed", "3"], "--top-p, --seed only apply when sampling"),
    (["--temperature", "0", "--top-k", "5"], "--top-k only apply when sampling"),
    (["--k", "3"], "--k only applies to masked-LM encoders; this build is a decoder"),
    (["--temperature", "1", "--seed", "-1"], "--seed must be >= 0, got -1"),
])
def test_decoder_no_op_options_refused(builds, capsys, extra, message):
    rc, out, err = _run(capsys, builds("llama-tiny").directory, "--ids", "1 2 3", *extra)
    assert rc == 1 and message in err and "Traceback" not in err and out == ""


@pytest.mark.parametrize("name, extra, message", [
    ("bert-tiny", ["--temperature", "0.7"], "--temperature only apply to decoders"),
    ("bert-tiny", ["--max-new-tokens", "4", "--eos", "1"], "--max-new-tokens, --eos only apply to decoders"),
])
def test_encoder_no_op_options_refused(builds, capsys, name, extra, message):
    rc, out, err = _run(capsys, builds(name).directory, "--ids", "1 2 3", *extra)
    assert rc == 1 and message in err and out == ""


def test_sampling_options_still_work(builds, capsys):
    d = builds("llama-tiny").directory
    argv = [d, "--ids", "1 2 3", "--max-new-tokens", "6", "--json", "--eos", "", "--temperature", "0.8",
            "--top-k", "20", "--top-p", "0.9", "--seed", "7"]
    rc, out, _ = _run(capsys, *argv)
    assert rc == 0 and len(json.loads(out)["ids"]) == 6
    assert json.loads(_run(capsys, *argv)[1])["ids"] == json.loads(out)["ids"]


def test_an_empty_prompt_starts_from_bos_id(builds, capsys):
    """``tokenizer.bos_id`` is what generation starts from when there is nothing to continue
    (transformers' generate does the same); without one an empty prompt stays an error."""
    llama = runtime.load(builds("llama-tiny").directory)
    assert llama.spec.tokenizer.bos_id == 1
    result = llama.generate([], max_new_tokens=3, stop_ids=[])
    assert result.prompt_ids == [1]
    assert result.ids == llama.generate([1], max_new_tokens=3, stop_ids=[]).ids
    rc, out, _ = _run(capsys, builds("llama-tiny").directory, "--ids", "", "--max-new-tokens", "3", "--json",
                      "--eos", "")
    assert rc == 0 and json.loads(out)["prompt_ids"] == [1]
    gpt2 = builds("gpt2-tiny").directory
    assert runtime.load(gpt2).spec.tokenizer.bos_id is None
    rc, out, err = _run(capsys, gpt2, "--ids", "")
    assert rc == 1 and "the prompt is empty" in err


def test_generated_output_ends_with_a_newline(builds, capsys):
    rc, out, err = _run(capsys, builds("llama-tiny").directory, "--ids", "1 2 3", "--max-new-tokens", "4", "--eos", "")
    assert rc == 0 and out.startswith("1 2 3 | ") and out.endswith("\n") and out.count("\n") == 1
    assert err.startswith("[4 tokens, stop: max_new_tokens")


def test_the_python_api_takes_integer_ids_only(builds):
    from blueprint.errors import BlueprintError

    decoder = runtime.load(builds("llama-tiny").directory)
    for bad in ([1.5, 2], ["3"], [True]):
        with pytest.raises(BlueprintError, match="must be integers"):
            decoder.generate(bad, max_new_tokens=1)
    import numpy as np

    assert decoder.generate(list(np.array([1, 2])), max_new_tokens=1, stop_ids=[]).prompt_ids == [1, 2]
    encoder = runtime.load(builds("bert-tiny").directory)
    with pytest.raises(BlueprintError, match="must be integers"):
        encoder.encode([[2, 7.9, 3]])
