"""The compiled GraphModule, loaded with imported Hugging Face weights, computes what
transformers computes: outputs on padded batches, gradients, and a KV-cached decode step.

Tolerance (fp32): 1e-4 max abs on logits / hidden states / gradients at real positions.
Sequences are longer than the sliding windows (mistral 5, qwen2 4 on layer 1, modernbert 6 = 3 each side).
"""

from __future__ import annotations

import pytest
import torch

from .hf_models import DECODERS, ENCODERS
from .parity import canonical_grads, compare_grads, compile_with_weights, max_abs_on, our_grads, padded_batch

TOL = 1e-4


def _decoder_inputs(ref, seq=14):
    return padded_batch(seq, pad_left=4, seed=3)


@pytest.mark.parametrize("family", DECODERS)
def test_decoder_logits_and_grads(references, family):
    ref = references[family]
    gm = compile_with_weights(ref)
    ids, mask, pos = _decoder_inputs(ref)
    ref.model.zero_grad()
    expected = ref.model(input_ids=ids, attention_mask=mask, position_ids=pos).logits
    got = gm(ids, mask, pos)["logits"]
    assert got.shape == expected.shape
    assert max_abs_on(mask, got, expected) < TOL
    weights = torch.randn(expected.shape, generator=torch.Generator().manual_seed(7)) * mask[..., None]
    (expected * weights).sum().backward()
    (got * weights).sum().backward()
    compare_grads(canonical_grads(ref, ref.model), our_grads(ref, gm), TOL)


@pytest.mark.parametrize("family", DECODERS)
def test_decoder_kv_cache_step(references, family):
    ref = references[family]
    spec = ref.spec
    gm = compile_with_weights(ref, kv_cache=True)
    ids, mask, pos = _decoder_inputs(ref)
    empty = []
    for i in range(spec.num_layers):
        a = spec.layer(i).attention
        shape = (2, a.kv_heads, 0, a.head_dim)
        empty += [torch.zeros(shape), torch.zeros(shape)]
    with torch.no_grad():
        out = gm(ids, mask, pos, *empty)
        hf = ref.model(input_ids=ids, attention_mask=mask, position_ids=pos, use_cache=True)
        assert max_abs_on(mask, out["logits"], hf.logits) < TOL
        present = [out[f"present.{i}.{kv}"] for i in range(spec.num_layers) for kv in ("key", "value")]
        new_ids = torch.tensor([[5], [7]])
        full_mask = torch.cat([mask, torch.ones(2, 1, dtype=torch.int64)], dim=1)
        new_pos = pos[:, -1:] + 1
        step = gm(new_ids, full_mask, new_pos, *present)
        hf_step = ref.model(input_ids=new_ids, attention_mask=full_mask, position_ids=new_pos,
                            past_key_values=hf.past_key_values, use_cache=True)
    assert step["present.0.key"].shape[2] == ids.shape[1] + 1
    assert float((step["logits"] - hf_step.logits).abs().max()) < TOL


def _encoder_reference(ref, ids, mask, types):
    kwargs = dict(input_ids=ids, attention_mask=mask)
    if types is not None:
        kwargs["token_type_ids"] = types
    out = ref.model(**kwargs, output_hidden_states=True)
    base = ref.model.base_model  # BertModel / ModernBertModel inside the masked-LM class
    hidden = base(**kwargs).last_hidden_state
    return out.logits, hidden


@pytest.mark.parametrize("family", ENCODERS)
def test_encoder_outputs_and_grads(references, family):
    ref = references[family]
    gm = compile_with_weights(ref)
    ids, mask, _ = padded_batch(16, pad_right=5, seed=4)
    types = None
    args = [ids, mask]
    if ref.spec.type_vocab_size:
        types = ((torch.arange(16) >= 8) & (ref.spec.type_vocab_size > 1)).long().expand(2, 16).contiguous()  # RoBERTa has one type
        args.append(types)
    ref.model.zero_grad()
    logits, hidden = _encoder_reference(ref, ids, mask, types)
    out = gm(*args)
    assert max_abs_on(mask, out["last_hidden_state"], hidden) < TOL
    assert max_abs_on(mask, out["logits"], logits) < TOL
    weights = torch.randn(logits.shape, generator=torch.Generator().manual_seed(8)) * mask[..., None]
    (logits * weights).sum().backward()
    (out["logits"] * weights).sum().backward()
    compare_grads(canonical_grads(ref, ref.model), our_grads(ref, gm), TOL)
