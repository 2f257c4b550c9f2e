"""Property tests: generated valid specs round-trip through the lock file unchanged; mutated
specs (structure and raw text) never raise anything but SpecError.

Budgets are set so this file runs in well under a minute on 2 cores.
"""

from __future__ import annotations

import copy
import os

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from blueprint.errors import SpecError
from blueprint.spec.load import load_spec_text
from blueprint.spec.lock import dump_lock, dump_yaml
from blueprint.spec.schema import ModelSpec
from blueprint.spec.source import iter_paths
from compiler.naming import parameter_count

# Random exploration locally; a fixed example sequence under CI (CI=true) so a landing never
# depends on luck. Failures found locally are replayed from .hypothesis/.
FAST = settings(deadline=None, derandomize=bool(os.environ.get("CI")),
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

names = st.from_regex(r"[A-Za-z0-9][A-Za-z0-9._-]{0,12}", fullmatch=True)
eps = st.floats(min_value=1e-12, max_value=1.0, allow_nan=False, allow_infinity=False)
rates = st.floats(min_value=0.0, max_value=0.9, allow_nan=False) | st.sampled_from([0.0, 0.1, 1e-3])


def _divisors(n: int) -> list[int]:
    return [d for d in range(1, n + 1) if n % d == 0]


@st.composite
def dense_ffns(draw, max_hidden: int = 300) -> dict:
    ffn_kind = draw(st.sampled_from(["mlp", "swiglu", "geglu"]))
    ffn: dict = {"kind": ffn_kind}
    if draw(st.booleans()):
        ffn["hidden_dim"] = draw(st.integers(1, max_hidden))
    if ffn_kind == "mlp":
        ffn["activation"] = draw(st.sampled_from(["gelu", "gelu_tanh", "relu", "relu2", "silu"]))
    elif ffn_kind == "geglu" and draw(st.booleans()):
        ffn["activation"] = draw(st.sampled_from(["gelu", "gelu_tanh"]))
    if draw(st.booleans()):
        ffn["bias"] = draw(st.booleans())
    return ffn


@st.composite
def moe_ffns(draw) -> dict:
    """A mixture of experts: 1-6 experts of one dense kind, any top_k, router options, an
    optional shared expert (gated or not)."""
    num_experts = draw(st.integers(1, 6))
    ffn: dict = {"kind": "moe", "num_experts": num_experts, "top_k": draw(st.integers(1, num_experts)),
                 "expert": draw(dense_ffns(max_hidden=96))}
    router = {k: draw(st.booleans()) for k in ("normalize_top_k", "bias") if draw(st.booleans())}
    if router:
        ffn["router"] = router
    if draw(st.booleans()):
        ffn["shared_expert"] = draw(dense_ffns(max_hidden=96))
        if draw(st.booleans()):
            ffn["shared_expert_gate"] = draw(st.sampled_from(["none", "sigmoid"]))
    return ffn


@st.composite
def valid_specs(draw) -> dict:
    """A raw spec mapping that satisfies the schema and every cross-field rule."""
    num_heads = draw(st.sampled_from([1, 2, 3, 4, 6, 8]))
    head_dim = draw(st.sampled_from([2, 4, 8, 16]))
    embed_dim = num_heads * head_dim
    num_layers = draw(st.integers(1, 6))
    max_seq_len = draw(st.integers(1, 512))
    vocab_size = draw(st.integers(2, 1000))
    pos_kind = draw(st.sampled_from(["learned", "sinusoidal", "rope", "alibi", "none"]))
    positional: dict = {"kind": pos_kind}
    if pos_kind == "sinusoidal" and draw(st.booleans()):
        positional["base"] = draw(st.sampled_from([100.0, 10000.0, 1e6]))
    if pos_kind == "rope":
        positional["rope_base"] = draw(st.sampled_from([10000.0, 500000.0, 1e6]))
        if head_dim % 4 == 0:
            positional["rotary_fraction"] = draw(st.sampled_from([1.0, 0.5]))
        if draw(st.booleans()):
            positional["layout"] = draw(st.sampled_from(["half_split", "interleaved"]))
        if draw(st.booleans()):
            pairs = round(head_dim * positional.get("rotary_fraction", 1.0)) // 2
            positional["scaling"] = draw(rope_scalings(pairs))
    if pos_kind == "learned" and draw(st.booleans()):
        positional["offset"] = draw(st.integers(0, 4))
    head_kind = draw(st.sampled_from(["causal_lm", "masked_lm", "embeddings", "classification"]))
    head: dict = {"kind": head_kind}
    if head_kind == "classification":
        head["num_labels"] = draw(st.integers(1, 10))
    if head_kind in ("embeddings", "classification"):
        head["pooling"] = draw(st.sampled_from(["cls", "mean", "last"]))
        if draw(st.booleans()):
            head["pooler"] = draw(st.sampled_from(["none", "dense_tanh"]))
    if head_kind == "embeddings" and draw(st.booleans()):
        head["normalize"] = draw(st.booleans())
    if head_kind == "causal_lm" and draw(st.booleans()):
        head["bias"] = draw(st.booleans())
    if head_kind == "causal_lm" and draw(st.booleans()):
        head["logit_scale"] = draw(st.floats(1e-3, 30.0))
    if head_kind == "causal_lm" and draw(st.booleans()):
        head["softcap"] = draw(st.sampled_from([None, 1.0, 30.0]) | st.floats(1e-2, 100.0))
    if head_kind == "masked_lm":
        for key in ("dense_bias", "decoder_bias"):
            if draw(st.booleans()):
                head[key] = draw(st.booleans())
        if draw(st.booleans()):
            head["activation"] = draw(st.sampled_from(["gelu", "gelu_tanh", "relu", "relu2", "silu"]))
    attention: dict = {"num_heads": num_heads}
    if draw(st.booleans()):
        attention["num_kv_heads"] = draw(st.sampled_from(_divisors(num_heads)))
    if draw(st.booleans()):
        attention["head_dim"] = head_dim
        if draw(st.booleans()):  # explicit head_dim: num_heads * head_dim may differ from embed_dim
            embed_dim += draw(st.sampled_from([8, 16]))
    attention["causal"] = True if head_kind == "causal_lm" else draw(st.booleans())
    if draw(st.booleans()):
        attention["window"] = draw(st.integers(1, max_seq_len))
    if pos_kind == "rope" and draw(st.booleans()):
        attention["rope_base"] = draw(st.sampled_from([10000.0, 160000.0]))
    for flag in ("qkv_bias", "out_bias", "qk_norm"):
        if draw(st.booleans()):
            attention[flag] = draw(st.booleans())
    if attention.get("qk_norm") and draw(st.booleans()):
        attention["qk_norm_scope"] = draw(st.sampled_from(["head", "projection"]))
    if draw(st.booleans()):
        attention["softcap"] = draw(st.floats(0.5, 100.0))
    if pos_kind == "rope" and draw(st.booleans()):
        attention["rope"] = draw(st.booleans())
    ffn = draw(moe_ffns()) if draw(st.integers(0, 3)) == 0 else draw(dense_ffns())
    if draw(st.booleans()):
        attention["softmax_scale"] = draw(st.floats(1e-3, 4.0))
    norm = draw(st.sampled_from([{"kind": "layernorm"}, {"kind": "rmsnorm"},
                                 {"kind": "layernorm", "bias": False},
                                 {"kind": "layernorm", "weight": False, "bias": False},
                                 {"kind": "layernorm", "weight": False}]))
    norm["norm_eps"] = draw(eps)
    if norm.get("weight", True) and draw(st.booleans()):
        norm["weight_offset"] = draw(st.sampled_from([1.0, 0.0, -0.5]))
    spec: dict = {
        "name": draw(names), "vocab_size": vocab_size, "max_seq_len": max_seq_len,
        "embed_dim": embed_dim, "num_layers": num_layers, "positional": positional, "norm": norm,
        "block": {"attention": attention, "ffn": ffn,
                  "norm_placement": draw(st.sampled_from(["pre", "post", "sandwich", "post_sublayer"])),
                  "residual": draw(st.sampled_from(["sequential", "parallel", "parallel_shared_norm"]))},
        "head": head,
        "dropout": {"embed": draw(rates), "attention": draw(rates), "residual": draw(rates)},
        "tie_embeddings": draw(st.booleans()) if head_kind in ("causal_lm", "masked_lm") else False,
        "embed_norm": draw(st.booleans()), "final_norm": draw(st.booleans()),
        "init": {"std": draw(st.floats(1e-4, 1.0)), "scaled_residual": draw(st.booleans()),
                 "seed": draw(st.integers(0, 2**64 - 1))},
        "dtype": draw(st.sampled_from(["float32", "float16", "bfloat16"])),
    }
    if head_kind != "causal_lm" and draw(st.booleans()):
        spec["type_vocab_size"] = draw(st.integers(0, 3))
    if draw(st.booleans()) and spec["block"]["norm_placement"] != "post_sublayer":
        spec["block"]["attn_norm"] = draw(st.booleans())
    if draw(st.booleans()):
        spec["block"]["residual_multiplier"] = draw(st.floats(1e-2, 4.0))
    if draw(st.booleans()):
        spec["embed_multiplier"] = draw(st.sampled_from([8.0, 45.254833995939045]) | st.floats(1e-2, 50.0))
    layers = []
    moe_seen = ffn["kind"] == "moe"  # some layer may have a mixture: later ffn patches name their kind
    for k in range(draw(st.integers(0, 3))):
        selector = draw(st.sampled_from(["index", "range", "every"]))
        override: dict = {}
        if selector == "index":
            override["index"] = draw(st.integers(0, num_layers - 1))
        elif selector == "range":
            start = draw(st.integers(0, num_layers - 1))
            override["range"] = [start, draw(st.integers(start + 1, num_layers))]
        else:
            override["every"] = draw(st.integers(1, 4))
            override["offset"] = draw(st.integers(0, num_layers - 1))
        post_sublayer = spec["block"]["norm_placement"] == "post_sublayer"  # it has no attn_norm to drop
        body = draw(st.sampled_from([
            {"norm_placement": "post"} if post_sublayer else {"attn_norm": False},
            {"norm_placement": "post"}, {"residual": "parallel"},
            {"residual": "parallel_shared_norm"}, {"residual_multiplier": 0.5},
            {"attention": {"window": None}}, {"ffn": {"kind": "swiglu"}},
            {"attention": {"num_kv_heads": 1}}, {"ffn": {"hidden_dim": 64}},
            {"attention": {"softcap": None}}, {"attention": {"softcap": 30.0, "window": None}},
            {"ffn": {"kind": "moe", "num_experts": 3, "top_k": 2, "expert": {"kind": "swiglu", "hidden_dim": 32}}},
        ]))
        if moe_seen and body == {"ffn": {"hidden_dim": 64}}:  # would merge into a mixture: give the kind
            body = {"ffn": {"kind": "swiglu", "hidden_dim": 64}}
        moe_seen = moe_seen or body.get("ffn", {}).get("kind") == "moe"
        if pos_kind == "rope" and draw(st.booleans()):  # a no-RoPE layer, or its own scaling
            body = {**body, "attention": {**body.get("attention", {}), **draw(st.sampled_from([
                {"rope": False}, {"rope": True, "rope_scaling": {"kind": "linear", "factor": 4.0}}]))}}
        heads = _override_heads(embed_dim, attention, positional)
        if k == 0 and heads and draw(st.booleans()):  # num_kv_heads and head_dim re-derive from it
            body = {"attention": {"num_heads": draw(st.sampled_from(heads))}}
        if pos_kind == "rope" and body.get("attention", {}).get("rope", attention.get("rope", True)) \
                and draw(st.booleans()):
            body = {**body, "attention": {**body.get("attention", {}), "rope_base": 160000.0}}
        layers.append({**override, "set": body})
    if layers:
        spec["layers"] = layers
        if positional.get("scaling", {}).get("kind") == "longrope" and any(
                "num_heads" in o["set"].get("attention", {}) for o in layers):
            positional["scaling"] = {"kind": "linear", "factor": 2.0}  # one factor per pair: heads fixed
    policy = draw(st.sampled_from(["none", "every_layer", "every", "layers", "memory_budget"]))
    if policy == "memory_budget":
        size = draw(st.one_of(st.integers(1, 2**40), st.sampled_from(["2GiB", "512 MB", "1.5MiB", "4096"])))
        spec["training"] = {"checkpointing": {"memory_budget": size}}
    elif policy == "every":
        spec["training"] = {"checkpointing": {"every": draw(st.integers(1, 4))}}
    elif policy == "layers":
        spec["training"] = {"checkpointing": {"layers": draw(
            st.lists(st.integers(0, num_layers - 1), min_size=1, max_size=3))}}
    else:
        spec["training"] = {"checkpointing": policy}
    if draw(st.booleans()):
        tok_vocab = draw(st.integers(1, vocab_size))
        eos = st.integers(0, tok_vocab - 1)
        spec["tokenizer"] = {"vocab_size": tok_vocab, "eos_id": draw(eos | st.lists(eos, min_size=1, max_size=3))}
        for key in ("bos_id", "pad_id", "mask_id"):
            if draw(st.booleans()):
                spec["tokenizer"][key] = draw(st.integers(0, tok_vocab - 1))
    return spec


@st.composite
def rope_scalings(draw, pairs: int) -> dict:
    """A valid RoPE scaling of every kind; longrope with one factor per rotary pair."""
    kind = draw(st.sampled_from(["none", "linear", "llama3", "yarn", "longrope"]))
    factor = draw(st.floats(1.0, 64.0))
    original = draw(st.integers(2, 8192))
    if kind == "none":
        return {"kind": "none"}
    if kind == "linear":
        return {"kind": "linear", "factor": factor}
    if kind == "llama3":
        low = draw(st.floats(0.5, 2.0))
        return {"kind": "llama3", "factor": factor, "low_freq_factor": low,
                "high_freq_factor": low + draw(st.floats(0.5, 4.0)), "original_max_seq_len": original}
    if kind == "yarn":
        out = {"kind": "yarn", "factor": factor, "original_max_seq_len": original}
        if draw(st.booleans()):
            out.update(mscale=draw(st.floats(0.1, 2.0)), mscale_all_dim=draw(st.floats(0.1, 2.0)))
        if draw(st.booleans()):
            out["truncate"] = draw(st.booleans())
        return out
    factors = st.lists(st.floats(1.0, 100.0), min_size=pairs, max_size=pairs)
    return {"kind": "longrope", "short_factor": draw(factors), "long_factor": draw(factors),
            "original_max_seq_len": original, "factor": factor}


def _override_heads(embed_dim: int, attention: dict, positional: dict) -> list[int]:
    """num_heads values an override may set alone and stay valid: the block's explicit
    num_kv_heads must divide them, and a re-derived head_dim must divide embed_dim and keep
    RoPE's rotary dimension even."""
    kv = attention.get("num_kv_heads", 1)
    out = []
    for h in _divisors(embed_dim):
        if h % kv:
            continue
        head_dim = attention.get("head_dim", embed_dim // h)
        if positional["kind"] == "rope":
            rotary = head_dim * positional.get("rotary_fraction", 1.0)
            if rotary != int(rotary) or int(rotary) % 2:
                continue
        out.append(h)
    return out


def check_loaded(text: str) -> ModelSpec:
    spec = load_spec_text(text, "gen.yaml").spec
    lock = dump_lock(spec)
    assert load_spec_text(lock, "spec.lock.yaml").spec == spec
    assert ModelSpec.model_validate(yaml.safe_load(lock)) == spec
    assert len(spec.resolved_layers()) == spec.num_layers
    assert parameter_count(spec) > 0
    return spec


@settings(FAST, max_examples=600)
@given(valid_specs())
def test_valid_specs_round_trip_through_the_lock_file(raw):
    spec = check_loaded(dump_yaml(raw))
    assert spec.name == raw["name"] and spec.norm.norm_eps == raw["norm"]["norm_eps"]


scalars = (st.none() | st.booleans() | st.integers(-5, 10**6) | st.sampled_from([0, -1, 10**12])
           | st.floats(allow_nan=True, allow_infinity=True)
           | st.text(max_size=8) | st.sampled_from(["rmsnorm", "none", "no", "1e-6", "every_layer"]))
values = scalars | st.lists(scalars, max_size=3) | st.dictionaries(st.text(max_size=6), scalars, max_size=2)


@st.composite
def mutated_specs(draw) -> dict:
    spec = copy.deepcopy(draw(valid_specs()))
    for _ in range(draw(st.integers(1, 4))):
        paths = list(iter_paths(spec))
        path = draw(st.sampled_from(paths))
        parent = spec
        for item in path[:-1]:
            parent = parent[item]
        key = path[-1]
        action = draw(st.sampled_from(["delete", "rename", "replace", "numeric"]))
        if action == "delete":
            parent.pop(key) if isinstance(parent, dict) else parent.pop(key)
        elif action == "rename" and isinstance(parent, dict):
            new = draw(st.sampled_from([key[:-1], key + "s", key.upper(), "kind", "extends", ""]))
            parent[new] = parent.pop(key)
        elif action == "numeric" and isinstance(parent[key], (int, float)) and not isinstance(parent[key], bool):
            parent[key] = draw(st.sampled_from([0, -1, 1, parent[key] * 3 + 1, 10**9, 0.5]))
        else:
            parent[key] = draw(values)
    return spec


def _load_or_spec_error(text: str) -> None:
    try:
        check_loaded(text)
    except SpecError as err:
        assert err.issues and all(i.message for i in err.issues)
        err.format()


@settings(FAST, max_examples=900)
@given(mutated_specs())
def test_mutated_specs_raise_only_spec_errors(raw):
    _load_or_spec_error(dump_yaml(raw))


@settings(FAST, max_examples=600)
@given(valid_specs(), st.data())
def test_mutated_text_raises_only_spec_errors(raw, data):
    text = dump_yaml(raw)
    for _ in range(data.draw(st.integers(1, 3))):
        i = data.draw(st.integers(0, len(text)))
        j = data.draw(st.integers(i, min(len(text), i + 8)))
        junk = data.draw(st.sampled_from(["", ":", "- ", "[", "{", "&a ", "*a", "\t", "\n  ", "!!x ", "'", "#", "\x00", "é"]))
        text = text[:i] + junk + text[j:]
    _load_or_spec_error(text)


# Sections no cross-field rule reads, each with a value the schema rejects.
UNRELATED = {"name": "", "dtype": "float8", "final_norm": "maybe", "norm": {"kind": "rmsnrom"},
             "dropout": {"embed": 2.0}, "init": {"std": -1.0}}


def _errors_outside(text: str, section: str) -> set[tuple[str, str]]:
    try:
        load_spec_text(text, "gen.yaml")
    except SpecError as err:
        return {(i.path, i.message) for i in err.issues if i.path.split(".")[0] != section}
    return set()


@settings(FAST, max_examples=300)
@given(mutated_specs(), st.sampled_from(sorted(UNRELATED)))
def test_a_schema_error_in_one_section_hides_no_other_error(raw, section):
    """Every error at once: breaking a section leaves every finding about the others as it was."""
    broken = {**raw, section: UNRELATED[section]}
    assert _errors_outside(dump_yaml(broken), section) == _errors_outside(dump_yaml(raw), section)
