"""The exported graphs run at shapes other than the export example (batch 1 and 3, past 0 and
> 0) and agree with the torch graph; a left-padded row gives what it gives alone."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from buildfixtures import ENCODERS

from blueprint import runtime
from compiler.export.io import Shape, input_names, make_inputs, output_names

TOL = 1e-4


def _torch(module, spec, feeds, kv):
    with torch.no_grad():
        out = module(*[torch.from_numpy(feeds[n]) for n in input_names(spec, kv)])
    return {k: v.numpy() for k, v in out.items()}


@pytest.mark.parametrize("name", ["llama-tiny", "mistral-tiny"])
@pytest.mark.parametrize("batch,seq,past", [(1, 1, 0), (1, 6, 0), (3, 4, 0), (1, 1, 11), (3, 1, 11), (3, 5, 20)])
def test_decoder_shapes_match_torch(builds, torch_model, name, batch, seq, past):
    build = builds(name)
    model = runtime.load(build.directory)
    spec = model.spec
    module = torch_model(build, kv_cache=True)
    pad = [0, 2, 1][:batch]
    feeds = make_inputs(spec, Shape(batch, seq, past), kv_cache=True, rng=np.random.default_rng(batch * 100 + past), pad=pad)
    names = output_names(spec, True)
    got = dict(zip(names, model.build.session.run(names, feeds)))
    ref = _torch(module, spec, feeds, True)
    for n in names:
        assert got[n].shape == ref[n].shape, n
        assert np.abs(got[n] - ref[n]).max() <= TOL, n
    assert got["present.0.key"].shape[2] == past + seq


@pytest.mark.parametrize("name", ["gpt2-tiny", "mistral-tiny"])
def test_left_padded_batch_equals_rows_alone(builds, name):
    model = runtime.load(builds(name).directory)
    prompts = [[3, 8, 20, 7, 11, 2, 9, 30, 4, 5, 6], [40, 41, 42], [7, 7, 9, 100, 101]]
    width = max(map(len, prompts))
    ids = np.zeros((3, width), dtype=np.int64)
    mask = np.zeros((3, width), dtype=np.int64)
    for r, p in enumerate(prompts):
        ids[r, width - len(p):] = p  # left padding
        mask[r, width - len(p):] = 1
    batched, past = model.forward(ids, mask)
    for r, p in enumerate(prompts):
        alone, _ = model.forward(np.array([p]), np.ones((1, len(p)), dtype=np.int64))
        np.testing.assert_allclose(batched[r, width - len(p):], alone[0], atol=TOL, rtol=0)
    # one cached decode step for the whole padded batch still matches each row alone
    nxt = np.array([[1], [2], [3]])
    step, _ = model.forward(nxt, np.concatenate([mask, np.ones((3, 1), dtype=np.int64)], 1), None, past)
    for r, p in enumerate(prompts):
        alone, _ = model.forward(np.array([p + [r + 1]]), np.ones((1, len(p) + 1), dtype=np.int64))
        np.testing.assert_allclose(step[r, -1], alone[0, -1], atol=TOL, rtol=0)


@pytest.mark.parametrize("name", ENCODERS)
def test_encoder_embeddings_equal_torch_on_padded_batch(builds, torch_model, name):
    build = builds(name)
    model = runtime.load(build.directory)
    spec = model.spec
    module = torch_model(build, kv_cache=False)
    batch = [[2, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 3], [2, 30, 31, 3], [2, 50, 3]]
    emb = model.encode(batch)
    out = model.run(batch)
    feeds = {"input_ids": np.zeros((3, 18), dtype=np.int64), "attention_mask": out["attention_mask"]}
    for r, row in enumerate(batch):
        feeds["input_ids"][r, : len(row)] = row
    feeds["token_type_ids"] = np.zeros((3, 18), dtype=np.int64)
    ref = _torch(module, spec, feeds, False)
    want = ref["embeddings"] if "embeddings" in ref else None
    if want is None:  # no embeddings head: masked mean of the hidden states
        m = feeds["attention_mask"][..., None]
        want = (ref["last_hidden_state"] * m).sum(1) / m.sum(1)
    assert emb.shape == (3, spec.embed_dim)
    np.testing.assert_allclose(emb, want, atol=TOL, rtol=0)
    for r, row in enumerate(batch):  # padding does not change a row's embedding
        np.testing.assert_allclose(model.encode([row])[0], emb[r], atol=TOL, rtol=0)
