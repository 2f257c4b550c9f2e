"""``extends:`` presets and files, deep-merge semantics, cycles, and errors in the right file."""

from __future__ import annotations

from pathlib import Path

import pytest

from blueprint import load_spec
from blueprint.errors import SpecError
from blueprint.spec.load import load_spec_file, load_spec_text

SPECS = Path(__file__).parent.parent.parent / "specs"


def write(tmp: Path, name: str, text: str) -> Path:
    path = tmp / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def test_preset_with_overrides_merges_deeply():
    spec = load_spec_text("extends: llama\nname: llama-small\nnum_layers: 4\n"
                          "block:\n  attention: {num_kv_heads: 8}\n").spec
    llama = load_spec(SPECS / "llama.yaml")
    assert spec.name == "llama-small" and spec.num_layers == 4
    assert spec.block.attention.num_kv_heads == 8
    # Untouched siblings of the overridden key survive the merge.
    assert spec.block.attention.num_heads == 32 and spec.block.ffn == llama.block.ffn
    assert spec.positional == llama.positional and spec.tokenizer == llama.tokenizer


def test_kind_change_replaces_the_mapping():
    spec = load_spec_text("extends: gpt2\nname: g\nblock:\n  ffn: {kind: swiglu}\n").spec
    # gpt2's MLP had activation/bias/hidden 3072; none of it leaks into the SwiGLU.
    assert spec.block.ffn.kind == "swiglu" and spec.block.ffn.bias is False
    assert spec.block.ffn.hidden_dim == 4 * 768


def test_extending_a_tiny_variant_reproduces_it_exactly(tmp_path):
    # A spec may be written as a delta against a published one and give the same ModelSpec.
    base = write(tmp_path, "base/llama.yaml", (SPECS / "llama.yaml").read_text())
    child = write(tmp_path, "llama-tiny.yaml", f"""extends: {base.relative_to(tmp_path)}
name: llama-tiny
vocab_size: 256
max_seq_len: 128
embed_dim: 64
num_layers: 2
block:
  attention: {{num_heads: 4, num_kv_heads: 4}}
  ffn: {{hidden_dim: 176}}
tokenizer: {{vocab_size: 250}}
""")
    assert load_spec(child) == load_spec(SPECS / "llama-tiny.yaml")


def test_chained_files_and_relative_paths(tmp_path):
    write(tmp_path, "a/base.yaml", "extends: gpt2\nname: base\nnum_layers: 6\n")
    write(tmp_path, "a/mid.yaml", "extends: base.yaml\nname: mid\nembed_dim: 512\n"
          "block: {attention: {num_heads: 8}}\n")
    top = write(tmp_path, "top.yaml", "extends: a/mid.yaml\nname: top\n")
    spec = load_spec(top)
    assert (spec.name, spec.num_layers, spec.embed_dim, spec.block.attention.head_dim) == ("top", 6, 512, 64)


def test_cycle_is_an_error_naming_the_chain(tmp_path):
    write(tmp_path, "a.yaml", "extends: b.yaml\nname: a\n")
    write(tmp_path, "b.yaml", "extends: ./a.yaml\nname: b\n")
    with pytest.raises(SpecError) as info:
        load_spec_file(tmp_path / "a.yaml")
    (issue,) = info.value.issues
    assert issue.file.endswith("b.yaml") and (issue.line, issue.column) == (1, 10)
    assert issue.message == "extends cycle: a.yaml -> b.yaml -> a.yaml"


def test_self_extension_is_a_cycle(tmp_path):
    path = write(tmp_path, "self.yaml", "extends: self.yaml\nname: s\n")
    with pytest.raises(SpecError, match="extends cycle: self.yaml -> self.yaml"):
        load_spec_file(path)


def test_errors_are_located_in_the_file_that_holds_the_value(tmp_path):
    write(tmp_path, "base.yaml", "extends: gpt2\nname: base\nblock:\n  attention: {num_heads: 12, windw: 4}\n")
    child = write(tmp_path, "child.yaml", "extends: base.yaml\nname: child\nnorm: {kind: rmsnrom}\n")
    with pytest.raises(SpecError) as info:
        load_spec_file(child)
    by_path = {i.path: i for i in info.value.issues}
    assert by_path["norm.kind"].file == str(child) and by_path["norm.kind"].line == 3
    windw = by_path["block.attention.windw"]
    assert windw.file == str(tmp_path / "base.yaml") and (windw.line, windw.column) == (4, 30)


def test_rule_error_prefers_the_value_the_extending_file_changed(tmp_path):
    child = write(tmp_path, "c.yaml", "extends: llama\nname: c\nembed_dim: 100\n")
    with pytest.raises(SpecError) as info:
        load_spec_file(child)
    (issue,) = info.value.issues
    assert (issue.file, issue.line, issue.path) == (str(child), 3, "embed_dim")
    assert issue.message == "embed_dim (100) is not divisible by num_heads (32)"


@pytest.mark.parametrize(("text", "fragment"), [
    ("extends: lama\n", "no preset named 'lama'"),
    ("extends: nothere.yaml\n", "no spec file 'nothere.yaml'"),
    ("extends: [gpt2]\n", "extends must be a preset name"),
])
def test_bad_extends_values(text, fragment, tmp_path):
    with pytest.raises(SpecError) as info:
        load_spec_text(text, "x.yaml", tmp_path)
    assert fragment in info.value.issues[0].message
    assert (info.value.issues[0].line, info.value.issues[0].path) == (1, "extends")


def test_preset_hint_suggests_the_near_miss():
    with pytest.raises(SpecError) as info:
        load_spec_text("extends: modernbrt\n")
    assert info.value.issues[0].hint.startswith("did you mean 'modernbert'?")
