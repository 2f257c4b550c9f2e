"""KV cache and padding semantics of the compiled graph.

- Prefill then step-by-step decode (kv_cache=True) equals one full forward, including past a
  sliding window and with a left-padded row, on real positions.
- A fully padded row gives finite outputs; padding never changes real positions' outputs
  (compared with each row run alone, unpadded).
Tolerance: max |diff| <= 1e-5 * max(1, max |reference|) (fp32, random weights of scale 0.2).
"""

from __future__ import annotations

import pytest
import torch

from compiler import compile_spec
from compiler.signature import input_names, output_names
from blueprint.errors import BlueprintError
from helpers import TINY, assert_close, encoder, load, make_inputs, randomize, variant, without_dropout

DECODERS = [n for n in TINY if load(n).is_decoder]
ENCODERS = [n for n in TINY if not load(n).is_decoder]
DECODER_VARIANTS = {
    "window_gqa": variant(block={"attention": {"window": 3, "num_kv_heads": 2}}),
    "alibi_window": variant(positional={"kind": "alibi"}, block={"attention": {"window": 4}}),
    "sinusoidal": variant(positional={"kind": "sinusoidal"}),
    "no_positions": variant(positional={"kind": "none"}),
    "learned_parallel": variant(positional={"kind": "learned"}, block={"residual": "parallel"}),
    "shared_norm_scaled_capped": variant(block={"residual": "parallel_shared_norm", "residual_multiplier": 0.5},
                                         embed_multiplier=4.0, head={"kind": "causal_lm", "softcap": 3.0}),
    "post_sublayer_offset": variant(norm={"kind": "rmsnorm", "weight_offset": 1.0},
                                    block={"norm_placement": "post_sublayer", "attention": {"window": 3}}),
}


def pair(spec):
    full = compile_spec(spec).eval()
    randomize(full)
    cached = compile_spec(spec, kv_cache=True).eval()
    cached.load_state_dict(full.state_dict())
    return full, cached


def decode_all(spec, cached, feeds, prefill: int):
    """Prefill ``prefill`` tokens, then feed the rest one at a time; concatenated logits."""
    ids, mask = feeds["input_ids"], feeds["attention_mask"]
    pos = feeds.get("position_ids")
    b = ids.shape[0]
    past = []
    for blk in spec.resolved_layers():
        a = blk.attention
        past += [torch.zeros(b, a.kv_heads, 0, a.head_dim)] * 2
    logits, start = [], 0
    for stop in [prefill] + list(range(prefill + 1, ids.shape[1] + 1)):
        args = [ids[:, start:stop], mask[:, :stop]] + ([pos[:, start:stop]] if pos is not None else [])
        out = cached(*args, *past)
        assert list(out) == output_names(spec, True)
        past = [out[f"present.{i}.{w}"] for i in range(spec.num_layers) for w in ("key", "value")]
        assert past[0].shape[2] == stop  # the full past is kept; windows live in the mask
        logits.append(out["logits"])
        start = stop
    return torch.cat(logits, 1)


@pytest.mark.parametrize("name", DECODERS + sorted(DECODER_VARIANTS))
def test_prefill_then_decode_equals_full_forward(name):
    spec = without_dropout(load(name)) if name in DECODERS else DECODER_VARIANTS[name]
    full, cached = pair(spec)
    s = 20  # past mistral-tiny's window of 8
    feeds = make_inputs(spec, 2, s, pad=[0, 3])
    with torch.no_grad():
        want = full(*feeds.values())["logits"]
        got = decode_all(spec, cached, feeds, prefill=5)
    real = feeds["attention_mask"].bool()
    assert_close(got[real], want[real], "cached logits")


def test_cached_graph_io_names():
    spec = load("mistral-tiny")
    gm = compile_spec(spec, kv_cache=True)
    placeholders = [n.name for n in gm.graph.nodes if n.op == "placeholder"]
    assert placeholders == [n.replace(".", "_") for n in input_names(spec, True)]
    assert input_names(spec, True)[3:5] == ["past_key_values.0.key", "past_key_values.0.value"]


def test_kv_cache_for_an_encoder_is_a_user_error():
    with pytest.raises(BlueprintError, match="needs a decoder"):
        compile_spec(load("bert-tiny"), kv_cache=True)


def run_rows_alone(gm, spec, feeds):
    """Each row run by itself without its padding: {output: [per-row real outputs]}."""
    rows = []
    for r in range(feeds["input_ids"].shape[0]):
        keep = feeds["attention_mask"][r].bool()
        single = {k: v[r:r + 1][:, keep] for k, v in feeds.items()}
        if "position_ids" in single:
            single["position_ids"] = torch.arange(int(keep.sum()))[None]
        rows.append(gm(*single.values()))
    return rows


@pytest.mark.parametrize("name", TINY + ["alibi", "window_gqa", "bidi_window", "last_pooling", "classification"])
def test_padding_never_changes_real_outputs(name):
    specs = {
        "alibi": variant(positional={"kind": "alibi"}),
        "window_gqa": DECODER_VARIANTS["window_gqa"],
        "bidi_window": encoder(block={"attention": {"window": 4}}),
        "last_pooling": encoder(head={"kind": "embeddings", "pooling": "last", "normalize": True}),
        "classification": encoder(head={"kind": "classification", "num_labels": 3, "pooling": "mean"}),
    }
    spec = specs[name] if name in specs else without_dropout(load(name))
    gm = compile_spec(spec).eval()
    randomize(gm)
    feeds = make_inputs(spec, 3, 9, pad=[0, 4, 9])  # row 2 is all padding
    with torch.no_grad():
        batch = gm(*feeds.values())
        for key, value in batch.items():
            assert torch.isfinite(value).all(), f"{key} is not finite for a fully padded row"
        alone = run_rows_alone(gm, spec, {k: v[:2] for k, v in feeds.items()})
    for r in range(2):
        keep = feeds["attention_mask"][r].bool()
        for key, value in batch.items():
            ours = value[r][keep] if value.dim() == 3 else value[r]
            want = alone[r][key][0]
            assert_close(ours, want, f"row {r} {key}")
