"""A scripted tour of every command with broken arguments, as a new user would try them:
each one exits with a plain message (1 for bad input, 2 for usage), never a traceback, and
leaves nothing half-written behind.

Runs in-process (``cli.main``): any exception other than argparse's SystemExit escaping ``main``
is what the user would have seen as a traceback, and fails the case.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from blueprint import cli

ROOT = Path(__file__).resolve().parents[2]
SPECS = ROOT / "specs"


@pytest.fixture(scope="module")
def place(tmp_path_factory, builds):
    """A folder of broken things to point commands at (built once for the tour)."""
    d = tmp_path_factory.mktemp("tour")
    (d / "afile").write_text("x")
    (d / "empty.yaml").write_text("")
    (d / "binary.yaml").write_bytes(b"\xff\xfe\x00garbage")
    (d / "emptydir").mkdir()
    (d / "badconfig").mkdir()
    (d / "badconfig" / "config.json").write_text("{not json")
    (d / "extension").mkdir()
    (d / "extension" / "manifest.json").write_text('{"manifest_version": 3}')
    (d / "extension" / "popup.js").write_text("// mine")
    tiny = (SPECS / "llama-tiny.yaml").read_text()
    (d / "seed.yaml").write_text(tiny.replace("vocab_size: 256\n", "vocab_size: 256\ninit: {seed: 18446744073709551616}\n"))
    (d / "bf16.yaml").write_text(tiny.replace("vocab_size: 256\n", "vocab_size: 256\ndtype: bfloat16\n"))
    (d / "huge.yaml").write_text("extends: llama\nname: huge\nvocab_size: 1000000\nembed_dim: 16384\nnum_layers: 64\n"
                                 "block: {attention: {num_heads: 128}, ffn: {hidden_dim: 65536}}\n")
    (d / "garbage.json").write_text("not a tokenizer")
    (d / "weights.safetensors").write_text("not safetensors")
    decoder = d / "decoder"
    shutil.copytree(builds("llama-tiny").directory, decoder)
    shutil.copytree(builds("bert-tiny").directory, d / "encoder")
    shutil.copytree(builds("gpt-tiny").directory, d / "postnorm")
    listed = d / "listmanifest"
    shutil.copytree(builds("llama-tiny").directory, listed)
    (listed / "manifest.json").write_text("[]")
    return d


def _cases(d: Path) -> list[tuple[list[str], int, str]]:
    spec, dec, enc = str(SPECS / "llama-tiny.yaml"), str(d / "decoder"), str(d / "encoder")
    return [
        ([], 2, "the following arguments are required"),
        (["nosuchcommand"], 2, "invalid choice"),
        (["validate", str(d / "missing.yaml")], 1, "does not exist"),
        (["validate", str(d / "emptydir")], 1, "is a directory"),
        (["validate", str(d / "empty.yaml")], 1, "got an empty file"),
        (["validate", str(d / "binary.yaml")], 1, "not UTF-8"),
        (["validate", "--lock", str(d / "seed.yaml")], 1, "init.seed: input should be less than 18446744073709551616"),
        (["explain", str(d / "missing.yaml")], 1, "does not exist"),
        (["explain", spec, "--seq-len", "999999"], 1, "exceeds the spec's max_seq_len"),
        (["explain", spec, "--batch", "x"], 2, "is not an integer"),
        (["schema", "-o", str(d / "nodir" / "s.json")], 1, "cannot write"),
        (["schema", "-o", str(d / "emptydir")], 1, "cannot write"),
        (["build", str(d / "missing.yaml")], 1, "does not exist"),
        (["build", spec, "--opset", "5"], 1, "--opset 5 is not supported"),
        (["build", spec, "--opset", "99"], 1, "--opset 99 is not supported"),
        (["build", spec, "--opset", "26"], 1, "--opset 26 is not supported: use 18 to 25"),
        (["build", spec, "--opset", "x"], 2, "invalid int value"),
        (["build", spec, "--dtype", "int8"], 2, "invalid choice"),
        (["build", spec, "-o", str(d / "afile" / "out")], 1, "is a file, not a folder"),
        (["build", spec, "-o", str(d / "extension")], 1, "not a previous build"),
        (["build", spec, "-o", str(d / ("n" * 250))], 1, "is too long"),
        (["build", str(d / "seed.yaml"), "-o", str(d / "o1")], 1, "init.seed"),
        (["build", str(d / "bf16.yaml"), "-o", str(d / "o2")], 1, "no bfloat16 kernels"),
        (["build", str(d / "huge.yaml"), "-o", str(d / "o3")], 1, "parameters: building it in fp32 needs about"),
        (["build", spec, "-o", str(d / "o4"), "--weights", str(d / "missing.safetensors")], 1, "missing.safetensors"),
        (["build", spec, "-o", str(d / "o5"), "--weights", str(d / "weights.safetensors")], 1, "weights.safetensors"),
        (["run", str(d / "missing")], 1, "does not exist"),
        (["run", spec, "--ids", "1"], 1, "is a file, not a build directory"),
        (["run", str(d / "extension"), "--ids", "1"], 1, "not a blueprint build manifest"),
        (["run", str(d / "listmanifest"), "--ids", "1"], 1, "a JSON list, not an object"),
        (["run", dec], 1, "no input"),
        (["run", dec, "--ids", "a b"], 1, "--ids takes integers"),
        (["run", dec, "--ids", "99999"], 1, "outside the model's vocabulary"),
        (["run", dec, "--text", "hello"], 1, "--text needs a tokenizer"),
        (["run", dec, "--ids", "1", "--tokenizer", str(d / "missing.json")], 1, "missing.json does not exist"),
        (["run", dec, "--ids", "1", "--tokenizer", str(d / "emptydir")], 1, "is a folder, not a file"),
        (["run", dec, "--ids", "1", "--tokenizer", str(d / "garbage.json")], 1, "garbage.json"),
        (["run", dec, "--ids", "1", "--max-new-tokens", "-1"], 1, "must be >= 0"),
        (["run", dec, "--ids", "1", "--temperature", "nan"], 1, "temperature must be >= 0 and finite"),
        (["run", dec, "--ids", "1", "--temperature", "1", "--seed", "-1"], 1, "--seed must be >= 0"),
        (["run", dec, "--ids", "1", "--top-k", "3"], 1, "only apply when sampling"),
        (["run", dec, "--ids", "1", "--eos", "x"], 1, "--eos takes integers"),
        (["run", dec, "--ids", "1", "--ids", "2"], 1, "generation takes one prompt"),
        (["run", enc, "--ids", "1 2", "--k", "3"], 1, "--k only applies to a masked_lm head"),
        (["run", enc, "--ids", "1 2", "--temperature", "1"], 1, "only apply to decoders"),
        (["run", enc, "--ids", ""], 1, "at least one id"),
        (["import-hf", str(d / "missing")], 1, "does not exist"),
        (["import-hf", str(d / "afile")], 1, "afile"),
        (["import-hf", str(d / "emptydir")], 1, "config.json"),
        (["import-hf", str(d / "badconfig")], 1, "config.json"),
        (["export-hf", str(d / "missing"), "-o", str(d / "hf1")], 1, "does not exist"),
        (["export-hf", str(d / "emptydir"), "-o", str(d / "hf2")], 1, "not a blueprint build folder"),
        (["export-hf", dec, "-o", dec], 1, "overlaps the build folder"),
        (["export-hf", dec, "-o", str(d / "extension"), "--force"], 1, "not written by export-hf"),
        (["export-hf", str(d / "postnorm"), "-o", str(d / "hf3")], 1, "cannot be written as a"),
        (["export-hf", dec], 2, "-o/--output"),
    ]


def _tree(d: Path) -> dict[str, bytes]:
    return {str(p.relative_to(d)): p.read_bytes() for p in sorted(d.rglob("*")) if p.is_file()}


def test_every_command_with_broken_arguments_fails_plainly(place, capsys):
    before = _tree(place)
    failures = []
    for argv, code, message in _cases(place):
        try:
            got = cli.main(argv)
        except SystemExit as exit_:
            got = exit_.code
        except BaseException as err:  # noqa: BLE001 - this is the traceback the user would see
            failures.append(f"{argv}: raised {type(err).__name__}: {err}")
            continue
        out, err = capsys.readouterr()
        if got != code or message not in out + err or "Traceback" in out + err:
            failures.append(f"{argv}: exit {got} (want {code}), wanted {message!r} in:\n{(out + err)[-600:]}")
    assert not failures, "\n\n".join(failures)
    assert _tree(place) == before  # nothing written, nothing removed
    assert sorted(p.name for p in place.iterdir() if p.name.startswith(".")) == []


def test_the_real_entry_point_has_version_and_no_traceback(place):
    """The same through ``python -m blueprint`` (what users run), for a few cases."""
    def run(*argv):
        r = subprocess.run([sys.executable, "-m", "blueprint", *argv], capture_output=True, text=True, timeout=300,
                           cwd=ROOT)
        return r.returncode, r.stdout, r.stderr

    code, out, _ = run("--version")
    assert code == 0 and out.startswith("blueprint ") and out.endswith("\n")
    code, out, err = run("run", str(place / "missing"))
    assert code == 1 and "does not exist" in err and "Traceback" not in err
    code, out, err = run("validate", "--json", str(place / "empty.yaml"))
    assert code == 1 and json.loads(out)["specs"][0]["valid"] is False and "Traceback" not in err


def test_a_symlink_loop_and_an_unexpected_error_are_plain(tmp_path, capsys, monkeypatch):
    """A spec that extends a symlink loop gave a RuntimeError traceback from pathlib; and any
    bug left is one line with exit 70, not a traceback (BLUEPRINT_TRACEBACK=1 shows it)."""
    (tmp_path / "loop.yaml").symlink_to("loop.yaml")
    (tmp_path / "child.yaml").write_text("extends: loop.yaml\nname: x\n")
    assert cli.main(["validate", str(tmp_path / "child.yaml")]) == 1
    assert "extends: no spec file 'loop.yaml'" in capsys.readouterr().err
    assert cli.main(["validate", str(tmp_path / "loop.yaml")]) == 1
    assert "Too many levels of symbolic links" in capsys.readouterr().err

    from blueprint.commands import schema

    def broken(args):
        raise ZeroDivisionError("a bug")

    monkeypatch.setattr(schema, "run", broken)
    assert cli.main(["schema"]) == 70
    err = capsys.readouterr().err
    assert err.startswith("internal error: ZeroDivisionError: a bug") and "this is a bug in blueprint" in err
    monkeypatch.setenv("BLUEPRINT_TRACEBACK", "1")
    with pytest.raises(ZeroDivisionError):
        cli.main(["schema"])
    monkeypatch.delenv("BLUEPRINT_TRACEBACK")

    def full_disk(args):
        raise OSError(28, "No space left on device", "/full/out.json")

    monkeypatch.setattr(schema, "run", full_disk)
    assert cli.main(["schema"]) == 1
    assert capsys.readouterr().err == "/full/out.json: No space left on device\n"
