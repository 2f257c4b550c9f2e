"""Fine-tuning: --init-weights takes any `blueprint build --weights` source. From a Hugging
Face LLaMA folder (spec written by import-hf), the first step's loss equals the loss
transformers' own LlamaForCausalLM computes on the same batch, so the weights really arrived;
a blueprint safetensors file (a previous run's final/) works the same way."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from blueprint.cli import main
from blueprint.train import data
from trainhelpers import SMALL_DATA, metrics, train

ARGS = ["--steps", "2", "--batch-size", "4", "--seq-len", "32", "--lr", "1e-3", "--seed", "5"]


@pytest.fixture(scope="module")
def hf_llama(tmp_path_factory):
    import transformers as T

    folder = tmp_path_factory.mktemp("hf") / "tiny-llama"
    config = T.LlamaConfig(vocab_size=512, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                           num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=128,
                           rms_norm_eps=1e-5, tie_word_embeddings=False, bos_token_id=1, eos_token_id=2)
    torch.manual_seed(0)
    model = T.LlamaForCausalLM(config)
    with torch.no_grad():
        for p in model.parameters():  # larger than the 0.02 init, so every weight matters
            p.add_(torch.randn_like(p) * 0.1)
    model.save_pretrained(folder)
    return folder, model.eval()


def _first_batch(out, tokenizer_path, seq_len=32, batch=4, seed=5):
    tok = data.load_tokenizer(tokenizer_path)
    files = data.expand_paths(SMALL_DATA)
    key = data.cache_key(data.sha256_file(tokenizer_path), data.fingerprint(files), 2)
    tokens = data.open_tokens(next((out / "data").glob(f"tokens-{key[:16]}.*")))
    seqs = data.Sequences(tokens, seq_len)
    (indices,) = data.step_indices(data.Order(seqs.count, seed), 0, batch, 0, 1, 1)
    assert tok.get_vocab_size() == 512
    return seqs.get(indices)


def test_fine_tune_from_a_hugging_face_folder(hf_llama, tmp_path, tokenizer, capsys):
    folder, reference = hf_llama
    spec = tmp_path / "spec.yaml"
    assert main(["import-hf", str(folder), "-o", str(spec)]) == 0
    # the tokenizer's EOS is id 0 ('<|endoftext|>'); the spec's eos_id (2) separates documents
    train(spec, "--data", *SMALL_DATA, "--tokenizer", tokenizer, "--init-weights", folder,
          "--out", tmp_path / "out", *ARGS, capsys=capsys)
    ids, targets = _first_batch(tmp_path / "out", tokenizer)
    with torch.no_grad():
        logits = reference(input_ids=ids).logits  # [b, s, V]
    want = F.cross_entropy(logits.reshape(-1, 512), targets.reshape(-1)).item()
    got = metrics(tmp_path / "out")[0]["loss"]
    assert got == pytest.approx(want, abs=1e-4), (got, want)
    assert abs(got - 6.238) > 0.1  # not a fresh model's chance loss (ln 512 = 6.238)


def test_fine_tune_from_a_previous_run(tmp_path, tokenizer):
    from trainhelpers import write_spec

    spec = write_spec(tmp_path)
    train(spec, "--data", *SMALL_DATA, "--tokenizer", tokenizer, "--out", tmp_path / "a", *ARGS, "--lr", "5e-3")
    train(spec, "--data", *SMALL_DATA, "--tokenizer", tokenizer, "--out", tmp_path / "b", *ARGS,
          "--init-weights", tmp_path / "a" / "final" / "model.safetensors")
    train(spec, "--data", *SMALL_DATA, "--tokenizer", tokenizer, "--out", tmp_path / "c", *ARGS)
    first_a, first_b = metrics(tmp_path / "a")[0]["loss"], metrics(tmp_path / "b")[0]["loss"]
    assert metrics(tmp_path / "c")[0]["loss"] == first_a  # same seed and data: the init is what differs
    assert first_b < first_a - 0.01
