"""Training on real text: Python's own standard library. A tokenizer trained by blueprint
train on the email package, a small LLaMA-like model trained for 200 steps; its loss on
held-out modules (json.decoder, textwrap) must be far below the unigram entropy of those
held-out tokens, computed here independently (the best any model that ignores context could
do, even one fitted to the held-out text itself). The trained model then builds, verified,
and generates text with run --text."""

from __future__ import annotations

import json
import math
from collections import Counter

import pytest
from tokenizers import Tokenizer

from blueprint.cli import main
from trainhelpers import LLAMA, STDLIB, metrics, train, write_spec

HELD_OUT = [STDLIB / "json" / "decoder.py", STDLIB / "textwrap.py"]


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    import torch

    folder = tmp_path_factory.mktemp("corpus")
    spec = write_spec(folder, LLAMA)
    torch.set_num_threads(1)
    train(spec, "--data", STDLIB / "email", "--eval-data", *HELD_OUT, "--eval-every", "100",
          "--train-tokenizer", "512", "--out", folder / "out", "--steps", "200", "--batch-size", "8",
          "--seq-len", "64", "--lr", "5e-3", "--warmup", "10", "--checkpointing", "none")
    return spec, folder / "out"


def unigram_entropy(tokenizer_path, files) -> float:
    """Entropy (nats) of the empirical token distribution of ``files``, each followed by EOS."""
    tok = Tokenizer.from_file(str(tokenizer_path))
    eos = tok.token_to_id("<|endoftext|>")
    ids = []
    for f in files:
        ids += tok.encode(f.read_text(), add_special_tokens=False).ids + [eos]
    counts, n = Counter(ids), len(ids)
    return -sum(c / n * math.log(c / n) for c in counts.values())


def test_held_out_loss_is_far_below_the_unigram_entropy(run):
    _, out = run
    rows = metrics(out)
    assert [r["step"] for r in rows] == list(range(1, 201))
    entropy = unigram_entropy(out / "tokenizer.json", HELD_OUT)
    final = rows[-1]["eval_loss"]
    assert rows[99]["eval_loss"] > final  # still improving at step 100
    assert final < entropy - 0.75, (final, entropy)  # measured: 4.08 vs 5.08 nats
    assert rows[-1]["eval_perplexity"] == pytest.approx(math.exp(final))
    assert rows[0]["loss"] > math.log(512) - 0.5  # it started from chance
    assert (out / "loss.png").stat().st_size > 10_000


def test_trained_model_builds_and_generates(run, tmp_path, capsys):
    spec, out = run
    assert main(["build", str(spec), "--weights", str(out / "final"), "-o", str(tmp_path / "b"), "-q"]) == 0
    assert (tmp_path / "b" / "tokenizer.json").read_bytes() == (out / "tokenizer.json").read_bytes()
    capsys.readouterr()
    assert main(["run", str(tmp_path / "b"), "--text", "def parse(self, text):\n    ", "--max-new-tokens", "24",
                 "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert len(result["ids"]) == 24 and result["text"].strip()
