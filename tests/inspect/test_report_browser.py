"""report.html in a real headless browser (Debian's chromium): every picture decodes, at the
width of the PNG file written beside the report. Skipped, with the reason, without chromium."""

from __future__ import annotations

import re
import shutil
import struct
import subprocess
from pathlib import Path

import pytest

from blueprint.cli import main

SPECS = Path(__file__).resolve().parents[2] / "specs"
BROWSER = shutil.which("chromium") or shutil.which("chromium-browser")
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run"]


def png_width(path: Path) -> int:
    data = path.read_bytes()
    assert data[12:16] == b"IHDR"
    return struct.unpack(">I", data[16:20])[0]


@pytest.mark.skipif(BROWSER is None, reason="chromium is not installed (Debian: apt-get install -y chromium)")
def test_report_pictures_load_in_chromium(tmp_path):
    out = tmp_path / "inspection"
    assert main(["inspect", str(SPECS / "gpt2-tiny.yaml"), "--induction", "10", "-o", str(out)]) == 0
    page = (out / "report.html").read_text()
    # the report inlines exactly the PNG files written beside it, in this order
    names = ["head_scores.png", "logit_lens.png", "attention_layer0.png", "attention_layer1.png"]
    assert page.count("<img ") == len(names)
    # a copy alone in another folder: nothing outside the file may be needed
    alone = tmp_path / "alone"
    alone.mkdir()
    shutil.copy(out / "report.html", alone / "report.html")
    run = subprocess.run(
        [BROWSER, *FLAGS, f"--user-data-dir={tmp_path / 'profile'}", "--virtual-time-budget=10000",
         "--dump-dom", (alone / "report.html").as_uri()],
        capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr[-2000:]
    body = re.search(r"<body([^>]*)>", run.stdout)
    assert body, run.stdout[:500]
    attrs = dict(re.findall(r'([\w-]+)="([^"]*)"', body.group(1)))
    assert attrs.get("data-images") == str(len(names)), attrs
    assert attrs.get("data-images-loaded") == str(len(names)), attrs
    widths = [int(w) for w in attrs["data-image-widths"].split()]
    assert widths == [png_width(out / n) for n in names]
