"""The lock file: complete, readable by YAML 1.1 and 1.2 readers, and a fixed point."""

from __future__ import annotations

import yaml

from blueprint import dump_lock, load_spec_text
from blueprint.spec.schema import ModelSpec

SPEC = """\
name: '1e5'
vocab_size: 256
max_seq_len: 128
embed_dim: 64
num_layers: 3
norm: {kind: rmsnorm, norm_eps: 1e-6}
dropout: {attention: 1e-1}
block:
  attention: {num_heads: 4, num_kv_heads: 2}
layers:
  - {range: [1, 3], set: {ffn: {kind: swiglu}}}
training:
  checkpointing: {every: 2}
tokenizer: {path: 'no', vocab_size: 200}
"""


def test_lock_writes_every_default_and_reads_back_identically():
    spec = load_spec_text(SPEC, "s.yaml").spec
    lock = dump_lock(spec)
    data = yaml.safe_load(lock)
    assert data["block"]["attention"]["head_dim"] == 16  # resolved default, written out
    assert data["block"]["ffn"]["hidden_dim"] == 256
    assert data["init"] == {"kind": "normal", "std": 0.02, "scaled_residual": False, "seed": 0}
    assert data["layers"][0]["range"] == [1, 3]
    assert ModelSpec.model_validate(data) == spec
    assert load_spec_text(lock, "spec.lock.yaml").spec == spec


def test_lock_floats_and_strings_survive_yaml_1_1():
    lock = dump_lock(load_spec_text(SPEC, "s.yaml").spec)
    assert "norm_eps: 1.0e-06" in lock  # 1e-06 would be a string to YAML 1.1
    assert "name: '1e5'" in lock  # would be a float to YAML 1.2
    assert "path: 'no'" in lock  # would be false to YAML 1.1
    assert "attention: 0.1" in lock
    data = yaml.safe_load(lock)
    assert isinstance(data["norm"]["norm_eps"], float) and data["name"] == "1e5"
    assert data["tokenizer"]["path"] == "no"
