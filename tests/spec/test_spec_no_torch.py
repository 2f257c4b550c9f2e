"""The spec package and `blueprint validate` never import torch (fast, usable anywhere)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).parent.parent.parent


def run(code: str) -> str:
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def test_importing_the_spec_package_does_not_import_torch():
    out = run("import sys, blueprint, blueprint.spec, blueprint.spec.json_schema; "
              "blueprint.load_spec('specs/modernbert.yaml'); print('torch' in sys.modules)")
    assert out == "False"


def test_validate_and_schema_commands_do_not_import_torch():
    out = run("import sys, io, contextlib\n"
              "from blueprint.cli import main\n"
              "with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):\n"
              "    codes = [main(['validate', 'specs/gpt2.yaml', 'specs/llama-tiny.yaml']), main(['schema'])]\n"
              "print(codes, 'torch' in sys.modules)")
    assert out == "[0, 0] False"
