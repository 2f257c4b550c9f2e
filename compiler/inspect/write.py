"""Writing an inspection: ``inspect.json``, ``attention.npz``, the PNG pictures and ``report.html``.

Everything is written into a temporary folder beside the target and moved into place only when
complete, so a failure leaves no half-written output; an existing folder is replaced only when
it is an earlier inspection (it has ``inspect.json``) or empty.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, Callable

import numpy as np

from blueprint.errors import BlueprintError
from compiler.inspect.analyse import Inspection

JSON_NAME, NPZ_NAME, REPORT_NAME = "inspect.json", "attention.npz", "report.html"
SCORES_PNG, LENS_PNG = "head_scores.png", "logit_lens.png"


def attention_png_name(layer: int) -> str:
    return f"attention_layer{layer}.png"


def to_json(result: Inspection, *, spec, weights: str, source: str, token_text: Callable[[int], str],
            notes: list[str]) -> dict[str, Any]:
    """The inspect.json object (``--json`` prints the same)."""
    return {
        "model": spec.name,
        "weights": weights,
        "input": source,
        "ids": result.ids,
        "tokens": result.tokens,
        "layers": result.layers,
        "heads": result.heads,
        "head_scores": result.scores,
        "entropy": result.entropy,
        "logit_lens": result.lens_json(token_text),
        "notes": notes + ([result.lens_note] if result.lens_note else []),
    }


def _check_target(out: Path) -> None:
    if out.exists() and not out.is_dir():
        raise BlueprintError(f"-o {out} is a file; name a folder for the inspection")
    if out.is_dir() and any(out.iterdir()) and not (out / JSON_NAME).is_file():
        raise BlueprintError(f"{out} exists and is not an inspection folder (no {JSON_NAME}); refusing to replace it",
                             hint="choose another -o DIR, or remove it first")


def write_inspection(result: Inspection, obj: dict[str, Any], out: str | Path, *, spec, explain: list[str],
                     summary: list[str], token_text: Callable[[int], str], pictures: bool = True) -> list[str]:
    """Write every file into ``out``; returns the file names written."""
    out = Path(out)
    _check_target(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-", dir=out.parent))
    try:
        files = _write_all(result, obj, tmp, spec=spec, explain=explain, summary=summary, token_text=token_text,
                           pictures=pictures)
        os.chmod(tmp, 0o755)
        if out.exists():
            shutil.rmtree(out)
        os.replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return files


def _write_all(result: Inspection, obj: dict[str, Any], folder: Path, *, spec, explain, summary, token_text,
               pictures: bool) -> list[str]:
    np.savez_compressed(folder / NPZ_NAME, **{f"layer{i}": a.astype(np.float32) for i, a in result.attention.items()})
    (folder / JSON_NAME).write_text(json.dumps(obj, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    files = [JSON_NAME, NPZ_NAME]
    if not pictures:
        return files
    from compiler.inspect import pictures as pic
    from compiler.inspect.report import render

    scores_png = pic.head_scores_png(result.scores, result.entropy, result.layers, result.heads)
    lens_png = None
    if result.lens_ids is not None:
        lens_png = pic.logit_lens_png(result.lens_ids, result.lens_probs, result.layers, result.tokens, token_text,
                                      next_token=spec.is_decoder)
    attention_pngs = {i: pic.attention_png(result.attention[i], result.tokens, i, result.heads) for i in result.layers}
    named = {SCORES_PNG: scores_png, LENS_PNG: lens_png,
             **{attention_png_name(i): png for i, png in attention_pngs.items()}}
    for name, png in named.items():
        if png is not None:
            (folder / name).write_bytes(png)
            files.append(name)
    page = render(spec=spec, summary=summary, notes=obj["notes"], explain=explain, scores_png=scores_png,
                  lens_png=lens_png, attention_pngs=attention_pngs)
    (folder / REPORT_NAME).write_text(page, encoding="utf-8")
    files.append(REPORT_NAME)
    return files
