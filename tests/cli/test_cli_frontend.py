"""`blueprint validate / schema / explain`: exit codes, output, and no traceback for bad input."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from blueprint.cli import main

ROOT = Path(__file__).parent.parent.parent
SPECS = ROOT / "specs"
INVALID = ROOT / "tests" / "spec" / "invalid"


def cli(*argv: str) -> tuple[int, str, str]:
    """Run the real console entry point in a subprocess (what users run)."""
    result = subprocess.run([sys.executable, "-m", "blueprint.cli", *argv], cwd=ROOT,
                            capture_output=True, text=True, timeout=300)
    return result.returncode, result.stdout, result.stderr


def test_validate_valid_specs_exits_0_and_prints_warnings(capsys):
    assert main(["validate", str(SPECS / "gpt2.yaml"), str(SPECS / "llama-tiny.yaml")]) == 0
    out, err = capsys.readouterr()
    assert "gpt2.yaml: ok (gpt2: decoder, 12 layers, embed_dim 768, 1 warning(s))" in out
    assert "gpt2.yaml:3:13: vocab_size: warning: vocab_size (50257) is not a multiple of 64" in err


def test_validate_any_invalid_exits_1_and_reports_each_file(capsys):
    code = main(["validate", str(SPECS / "gpt2-tiny.yaml"), str(INVALID / "unknown_key.yaml"),
                 str(INVALID / "duplicate_key.yaml")])
    out, err = capsys.readouterr()
    assert code == 1
    assert "gpt2-tiny.yaml: ok" in out
    assert f"{INVALID / 'unknown_key.yaml'}:9:29: block.attention.windw: unknown key 'windw'" in err
    assert "hint: did you mean 'window'?" in err
    assert "duplicate_key.yaml: invalid (1 error)" in err


def test_validate_prints_every_error_and_warning_of_an_invalid_spec_in_one_run(capsys):
    bad = INVALID / "independent_errors.yaml"
    assert main(["validate", str(bad)]) == 1
    lines = [line for line in capsys.readouterr().err.splitlines() if not line.startswith(" ")]
    assert lines == [
        f"{bad}:5:12: embed_dim: warning: embed_dim (4000) is not a multiple of 64",
        f"{bad}:6:14: norm.kind: unknown kind 'rmsnrom'",
        f"{bad}:8:3: block.attention.head_dim: RoPE needs an even rotary dimension: head_dim (125) "
        "* rotary_fraction (1) = 125",
        f"{bad}:8:44: block.attention.num_kv_heads: num_heads (32) must be a multiple of "
        "num_kv_heads (5); use a divisor of 32 (equal for MHA, 1 for MQA)",
        f"{bad}:8:55: block.attention.window: window (99999) exceeds max_seq_len (4096)",
        f"{bad}:11:12: layers.0.index: index 40 does not exist: num_layers is 32 (layers 0..31)",
        f"{bad}:13:35: training.checkpointing.every: input should be greater than or equal to 1 (got 0)",
        f"{bad}: invalid (6 errors)",
    ]
    assert main(["validate", "-q", str(bad)]) == 1
    assert "warning" not in capsys.readouterr().err


def test_validate_requires_the_tokenizer_file_next_to_the_spec(tmp_path, capsys):
    spec = tmp_path / "s.yaml"
    text = (SPECS / "gpt2-tiny.yaml").read_text()
    spec.write_text(text.replace("tokenizer: {", "tokenizer: {path: tok.json, "))
    line = next(n for n, text in enumerate(spec.read_text().splitlines(), 1) if "tok.json" in text)
    assert main(["validate", str(spec)]) == 1
    err = capsys.readouterr().err
    assert (f"{spec}:{line}:19: tokenizer.path: no tokenizer file at 'tok.json' "
            f"(looked for {str(tmp_path / 'tok.json')!r})") in err
    (tmp_path / "tok.json").write_text("{}")
    assert main(["validate", str(spec)]) == 0


def test_explain_into_a_closed_pipe_exits_quietly(tmp_path):
    """`blueprint explain big.yaml | head -1`: no BrokenPipeError traceback."""
    big = tmp_path / "big.yaml"
    big.write_text("extends: llama\nname: big\nnum_layers: 4096\n")  # ~0.5 MB of table
    proc = subprocess.Popen([sys.executable, "-m", "blueprint.cli", "explain", str(big)], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert proc.stdout.readline().startswith(b"big: ")
    proc.stdout.close()
    err = proc.stderr.read()
    assert proc.wait(timeout=300) == 141 and err == b""


def test_validate_strict_fails_on_warnings_and_quiet_hides_them(capsys):
    assert main(["validate", "--strict", str(SPECS / "gpt2.yaml")]) == 1
    assert main(["validate", "-q", str(SPECS / "gpt2.yaml")]) == 0
    out, err = capsys.readouterr()
    assert "1 warning(s) with --strict" in err


def test_validate_lock_prints_a_loadable_lock(capsys, tmp_path):
    assert main(["validate", "-q", "--lock", str(SPECS / "mistral-tiny.yaml")]) == 0
    lock = tmp_path / "spec.lock.yaml"
    lock.write_text(capsys.readouterr().out)
    from blueprint import load_spec

    assert load_spec(lock) == load_spec(SPECS / "mistral-tiny.yaml")


@pytest.mark.parametrize("argv", [["validate"], ["validate", "--bogus", "x.yaml"], ["explain"],
                                  ["explain", "x.yaml", "--batch", "0"], ["nosuchcommand"]])
def test_usage_errors_exit_2(argv):
    with pytest.raises(SystemExit) as info:
        main(argv)
    assert info.value.code == 2


@pytest.mark.parametrize("bad", ["missing.yaml", str(ROOT / "specs"), str(INVALID / "syntax.yaml"),
                                 str(INVALID / "anchor.yaml"), str(INVALID / "not_mapping.yaml")])
def test_bad_input_never_shows_a_traceback(bad):
    for command in (["validate", bad], ["explain", bad]):
        code, out, err = cli(*command)
        assert code == 1, (command, err)
        assert "Traceback" not in out + err and err.strip()


def test_hostile_yaml_is_refused_without_crash(tmp_path):
    deep = tmp_path / "deep.yaml"
    deep.write_text("[" * 40_000)
    code, _, err = cli("validate", str(deep))
    assert code == 1 and "nesting deeper than" in err and "Traceback" not in err


def test_help_everywhere():
    for argv in (["--help"], ["validate", "--help"], ["schema", "--help"], ["explain", "--help"]):
        code, out, _ = cli(*argv)
        assert code == 0 and "usage: blueprint" in out


def test_schema_prints_draft7_json(capsys, tmp_path):
    assert main(["schema"]) == 0
    schema = json.loads(capsys.readouterr().out)
    assert schema["$schema"] == "http://json-schema.org/draft-07/schema#"
    target = tmp_path / "s.json"
    assert main(["schema", "-o", str(target)]) == 0
    assert json.loads(target.read_text()) == schema
    assert main(["schema", "-o", str(tmp_path / "no" / "dir" / "s.json")]) == 1
    assert main(["schema", "-o", str(target)]) == 0  # its own earlier output is replaced freely
    spec = tmp_path / "my.yaml"
    spec.write_text("name: mine\n")
    assert main(["schema", "-o", str(spec)]) == 1  # a spec given by mistake is not overwritten
    assert "exists and is not a blueprint schema" in capsys.readouterr().err
    assert spec.read_text() == "name: mine\n"
    assert main(["schema", "-o", str(spec), "--force"]) == 0


def test_explain_prints_layers_parameters_and_costs(capsys):
    assert main(["explain", str(SPECS / "modernbert.yaml"), "--seq-len", "512", "--batch", "2"]) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    layer0 = next(line for line in lines if line.lstrip().startswith("0  "))
    assert layer0.split()[:9] == ["0", "MHA", "12/12", "64", "bidi", "global", "160000", "pre,", "no"]
    layer1 = next(line for line in lines if line.lstrip().startswith("1  "))
    assert "128 (±64)" in layer1 and "10000" in layer1 and "geglu 1152" in layer1
    assert "total       149,014,272" in out
    assert "embed        38,683,392" in out


def _row(out: str, layer: int) -> list[str]:
    return next(line.split() for line in out.splitlines() if line.split()[:1] == [str(layer)])


def test_explain_names_attention_kinds(capsys):
    assert main(["explain", str(SPECS / "mistral.yaml")]) == 0
    out = capsys.readouterr().out
    assert _row(out, 31)[:6] == ["31", "GQA", "32/8", "128", "causal", "4096"]
    assert main(["explain", str(SPECS / "gpt2.yaml")]) == 0
    out = capsys.readouterr().out
    assert _row(out, 0)[:6] == ["0", "MHA", "12/12", "64", "causal", "global"]
    assert "output projection tied to embed.tokens" in out


def test_explain_rejects_seq_len_beyond_the_spec(capsys):
    assert main(["explain", str(SPECS / "gpt2-tiny.yaml"), "--seq-len", "65"]) == 1
    assert "--seq-len 65 exceeds the spec's max_seq_len (64)" in capsys.readouterr().err


def test_attention_kind_names():
    from blueprint.commands.explain import attention_kind

    assert [attention_kind(8, 8), attention_kind(8, 2), attention_kind(8, 1), attention_kind(1, 1)] == [
        "MHA", "GQA", "MQA", "MHA"]


def test_explain_formats_the_documented_cost_report(monkeypatch, capsys):
    """The cost report's fields, through a stand-in cost_report (the real one is tested below)."""
    from dataclasses import dataclass, field

    @dataclass(frozen=True)
    class CostReport:
        params_by_component: dict = field(default_factory=dict)
        params_total: int = 0
        flops_per_token_prefill: float = 2.5e9
        flops_per_token_decode: float = 2.4e9
        kv_cache_bytes_per_token: int = 36_864
        kv_cache_bytes_per_token_full: int = 73_728
        activation_bytes: dict = field(default_factory=lambda: {"none": 3 * 2**30, "every_layer": 2**29})

    calls = []

    def cost_report(spec, *, batch=1, seq_len=None):
        calls.append((spec.name, batch, seq_len))
        return CostReport()

    monkeypatch.setattr("compiler.cost.cost_report", cost_report)
    assert main(["explain", str(SPECS / "mistral-tiny.yaml"), "--batch", "4", "--seq-len", "32"]) == 0
    out = capsys.readouterr().out
    assert calls == [("mistral-tiny", 4, 32)]
    assert "costs (batch 4, seq_len 32, float32)" in out
    assert "FLOPs per token: prefill 2.50 GFLOP, decode 2.40 GFLOP" in out
    assert "KV cache per token: 36.0 KiB needed (window-aware), 72.0 KiB held by the exported full cache" in out
    assert "none           3.0 GiB" in out and "every_layer    512.0 MiB" in out


def test_explain_with_the_real_cost_model(capsys):
    assert main(["explain", str(SPECS / "gpt2-tiny.yaml")]) == 0
    out = capsys.readouterr().out
    assert "costs (batch 1, seq_len 64, float32)" in out and "FLOPs per token: prefill" in out
    assert "every_layer" in out


def test_validate_lock_writes_only_the_lock_to_stdout(tmp_path):
    """`blueprint validate --lock s.yaml > s.lock.yaml` gives a loadable lock: status on stderr."""
    code, out, err = cli("validate", "--lock", str(SPECS / "gpt2.yaml"))
    assert code == 0 and out.startswith("# blueprint lock file") and out.endswith("\n")
    assert "gpt2.yaml: ok" in err and "warning" in err and "ok (" not in out
    (tmp_path / "s.lock.yaml").write_text(out)
    from blueprint import load_spec

    assert load_spec(tmp_path / "s.lock.yaml") == load_spec(SPECS / "gpt2.yaml")


def test_validate_and_explain_json(capsys):
    assert main(["validate", "--json", str(SPECS / "gpt2.yaml"), str(INVALID / "unknown_key.yaml")]) == 1
    out, err = capsys.readouterr()
    data = json.loads(out)
    assert err == "" and data["valid"] is False
    ok, bad = data["specs"]
    assert ok["valid"] and ok["name"] == "gpt2" and ok["warnings"][0]["path"] == "vocab_size"
    assert not bad["valid"] and bad["errors"][0] == {
        "file": str(INVALID / "unknown_key.yaml"), "line": 9, "column": 29, "path": "block.attention.windw",
        "severity": "error", "message": "unknown key 'windw'", "hint": "did you mean 'window'?"}
    assert main(["explain", "--json", str(SPECS / "modernbert.yaml")]) == 0
    out, err = capsys.readouterr()
    data = json.loads(out)
    assert data["parameters"]["total"] == 149_014_272  # the reference implementation's count
    assert [layer["attention"]["window"] for layer in data["layers"][:4]] == [None, 128, 128, None]
    assert data["costs"]["dtype"] == "float32" and out.endswith("\n")


def test_explain_warnings_go_to_stderr(capsys):
    assert main(["explain", str(SPECS / "gpt2.yaml")]) == 0
    out, err = capsys.readouterr()
    assert "warning" in err and "warning" not in out and out.startswith("gpt2: ")


def test_version_and_missing_paths():
    code, out, _ = cli("--version")
    assert code == 0 and out == "blueprint 0.1.0\n"
    code, _, err = cli("validate", "missing.yaml")
    assert code == 1 and err.startswith("missing.yaml: does not exist")
