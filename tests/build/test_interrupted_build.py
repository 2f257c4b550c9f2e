"""`blueprint build` stopped by a signal mid-export (Ctrl-C, or SIGTERM from `timeout`, CI
cancellation, `kill`) exits non-zero, leaves no temporary directory and keeps the previous build.

The signal is sent once the progress display shows the export stage, so it lands inside
torch.onnx.export rather than while Python is still importing. The build is ``--portable``: a
fused build emits its graph without the exporter, and is over in well under a second.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time

import pytest
from buildfixtures import SPECS


def _start_build(target, cwd):
    # A background shell starts children with SIGINT ignored; restore the default so Python
    # installs its KeyboardInterrupt handler, as in an interactive terminal.
    return subprocess.Popen(
        [sys.executable, "-m", "blueprint.cli", "build", str(SPECS / "gpt2-tiny.yaml"), "-o", str(target), "--portable"],
        cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )


def _wait_for(proc, marker: bytes, timeout: float = 300.0) -> bytes:
    seen = b""
    deadline = time.monotonic() + timeout
    while marker not in seen:
        chunk = os.read(proc.stderr.fileno(), 4096)
        if not chunk or time.monotonic() > deadline:
            proc.kill()
            pytest.fail(f"build ended before {marker!r}: {seen.decode(errors='replace')}")
        seen += chunk
    return seen


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_signal_during_export_leaves_previous_build(builds, tmp_path, sig):
    target = tmp_path / "out"
    shutil.copytree(builds("gpt2-tiny").directory, target)
    before = {p.name: p.read_bytes() for p in target.iterdir()}
    proc = _start_build(target, tmp_path)
    _wait_for(proc, b"[3/5] export")
    time.sleep(1.0)  # inside torch.onnx.export (it takes several seconds)
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 130, err.decode(errors="replace")
    assert b"interrupted" in err and b"Traceback" not in err
    assert {p.name: p.read_bytes() for p in target.iterdir()} == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]  # no .out.tmp-* left
