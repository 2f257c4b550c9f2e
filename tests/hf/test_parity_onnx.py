"""onnxruntime parity with transformers: `import-hf` -> `build --weights` -> ORT session.

The same padded batches as the torch parity tests, compared at real positions within 1e-4; for
decoders also one KV-cached decode step fed with the session's own ``present.*`` outputs.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from .hf_models import DECODERS, ENCODERS, built
from .parity import max_abs_on, padded_batch

TOL = 1e-4


def _session(build):
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    return ort.InferenceSession(str(build / "model.onnx"), opts, providers=["CPUExecutionProvider"])


def _run(sess, feeds):
    names = [o.name for o in sess.get_outputs()]
    return dict(zip(names, sess.run(names, {k: np.ascontiguousarray(v) for k, v in feeds.items()})))


@pytest.mark.parametrize("family", built(DECODERS))
def test_decoder_onnx(references, builds, family):
    ref = references[family]
    sess = _session(builds[family])
    ids, mask, pos = padded_batch(14, pad_left=4, seed=3)
    feeds = {"input_ids": ids.numpy(), "attention_mask": mask.numpy(), "position_ids": pos.numpy()}
    past_names = [i.name for i in sess.get_inputs() if i.name.startswith("past_key_values.")]
    assert len(past_names) == 2 * ref.spec.num_layers, past_names  # decoders export with the KV cache
    for name in past_names:
        a = ref.spec.layer(int(name.split(".")[1])).attention
        feeds[name] = np.zeros((2, a.kv_heads, 0, a.head_dim), dtype=np.float32)
    out = _run(sess, feeds)
    with torch.no_grad():
        hf = ref.model(input_ids=ids, attention_mask=mask, position_ids=pos, use_cache=True)
    assert max_abs_on(mask, torch.from_numpy(out["logits"]), hf.logits) < TOL
    new_ids = torch.tensor([[5], [7]])
    full_mask = torch.cat([mask, torch.ones(2, 1, dtype=torch.int64)], dim=1)
    new_pos = pos[:, -1:] + 1
    step_feeds = {"input_ids": new_ids.numpy(), "attention_mask": full_mask.numpy(), "position_ids": new_pos.numpy()}
    for name in past_names:
        step_feeds[name] = out[name.replace("past_key_values.", "present.")]
    step = _run(sess, step_feeds)
    with torch.no_grad():
        hf_step = ref.model(input_ids=new_ids, attention_mask=full_mask, position_ids=new_pos,
                            past_key_values=hf.past_key_values, use_cache=True)
    assert float(np.abs(step["logits"] - hf_step.logits.numpy()).max()) < TOL


@pytest.mark.parametrize("family", built(ENCODERS))
def test_encoder_onnx(references, builds, family):
    ref = references[family]
    sess = _session(builds[family])
    ids, mask, _ = padded_batch(16, pad_right=5, seed=4)
    feeds = {"input_ids": ids.numpy(), "attention_mask": mask.numpy()}
    kwargs = dict(input_ids=ids, attention_mask=mask)
    if ref.spec.type_vocab_size:
        types = ((torch.arange(16) >= 8) & (ref.spec.type_vocab_size > 1)).long().expand(2, 16).contiguous()  # RoBERTa has one type
        feeds["token_type_ids"] = types.numpy()
        kwargs["token_type_ids"] = types
    out = _run(sess, feeds)
    with torch.no_grad():
        logits = ref.model(**kwargs).logits
        base = ref.model.base_model
        hidden = base(**kwargs).last_hidden_state
    assert max_abs_on(mask, torch.from_numpy(out["last_hidden_state"]), hidden) < TOL
    assert max_abs_on(mask, torch.from_numpy(out["logits"]), logits) < TOL
