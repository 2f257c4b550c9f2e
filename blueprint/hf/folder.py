"""Reading a Hugging Face model folder: config.json, tokenizer.json, sentence-transformers modules.

A sentence-transformers folder (``modules.json``) decides the head: its Pooling module gives the
pooling mode and a Normalize module turns on L2 normalisation. Modules blueprint cannot express
(Dense projections, max pooling, ...) are errors naming the module, not silently skipped.
"""

from __future__ import annotations

import json
import os
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

from blueprint.errors import BlueprintError
from blueprint.hf import config_to_spec, spec_name

_POOLING_MODES = {
    "pooling_mode_mean_tokens": "mean",
    "pooling_mode_cls_token": "cls",
    "pooling_mode_lasttoken": "last",
}
_UNSUPPORTED_POOLING = ("pooling_mode_max_tokens", "pooling_mode_mean_sqrt_len_tokens", "pooling_mode_weightedmean_tokens")


def read_json(path: Path) -> Any:
    """Load a JSON file, refusing duplicate keys (a duplicated key silently loses data)."""

    def pairs(items: list[tuple[str, Any]]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key, value in items:
            if key in out:
                raise BlueprintError(f"{path}: key '{key}' appears twice")
            out[key] = value
        return out

    try:
        return json.loads(path.read_text(encoding="utf-8"), object_pairs_hook=pairs)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise BlueprintError(f"{path}: cannot read JSON ({err})") from None


@contextmanager
def _malformed(path: Path) -> Iterator[None]:
    """A JSON file with an unexpected structure (a list for an object, a string for an id) is a
    user error naming the file, not a traceback."""
    try:
        yield
    except (TypeError, ValueError, AttributeError, KeyError, IndexError) as err:
        raise BlueprintError(f"{path}: unexpected structure ({type(err).__name__}: {err})",
                             hint="compare the file with what transformers / sentence-transformers write") from None


def sentence_transformers_head(folder: Path) -> dict[str, Any] | None:
    """The embeddings head a sentence-transformers folder implies, or None if it is not one."""
    modules_path = folder / "modules.json"
    if not modules_path.is_file():
        return None
    pooling: str | None = None
    normalize = False
    modules = read_json(modules_path)
    if not isinstance(modules, list):
        raise BlueprintError(f"{modules_path}: expected a list of modules")
    for module in modules:
        kind = str(module.get("type", "")).rsplit(".", 1)[-1]
        if kind == "Transformer":
            if module.get("path", "") not in ("", "."):
                raise BlueprintError(f"{modules_path}: the transformer lives in '{module['path']}'; "
                                     "import that folder instead")
        elif kind == "Pooling":
            pooling = _pooling_mode(folder / module.get("path", "") / "config.json")
        elif kind == "Normalize":
            normalize = True
        else:
            raise BlueprintError(f"{modules_path}: sentence-transformers module '{module.get('type')}' "
                                 "is not supported", hint="blueprint models Transformer, Pooling and Normalize")
    if pooling is None:
        raise BlueprintError(f"{modules_path}: no Pooling module; cannot tell how to pool")
    return {"kind": "embeddings", "pooling": pooling, "pooler": "none", "normalize": normalize}


def _pooling_mode(path: Path) -> str:
    config = read_json(path)
    if not isinstance(config, dict):
        raise BlueprintError(f"{path}: not a JSON object")
    for key in _UNSUPPORTED_POOLING:
        if config.get(key):
            raise BlueprintError(f"{path}: {key} is not supported (blueprint pools by mean, cls or last)")
    if config.get("include_prompt") is False:
        raise BlueprintError(f"{path}: include_prompt: false is not supported")
    modes = [mode for key, mode in _POOLING_MODES.items() if config.get(key)]
    if len(modes) != 1:
        raise BlueprintError(f"{path}: expected exactly one pooling mode, found {modes or 'none'}")
    return modes[0]


# Tokenizer files blueprint does not read: their presence without tokenizer.json is worth a note.
_OTHER_TOKENIZER_FILES = ("vocab.txt", "vocab.json", "merges.txt", "tokenizer.model", "spiece.model")


def _path_from(spec_dir: Path, path: Path) -> str:
    """``path`` relative to the spec's folder when they share more than the filesystem root
    (the spec can move with its model), else absolute (``../../../usr/...`` helps nobody)."""
    target, base = path.resolve(), spec_dir.resolve()
    if os.path.commonpath([target, base]) == target.anchor:
        return str(target)
    return os.path.relpath(target, base)


def tokenizer_note(folder: Path) -> str | None:
    """A message when the folder has a tokenizer, but not as tokenizer.json, so none travels."""
    if (Path(folder) / "tokenizer.json").is_file():
        return None
    found = [name for name in _OTHER_TOKENIZER_FILES if (Path(folder) / name).is_file()]
    if not found:
        return None
    return (f"{folder} has tokenizer files ({', '.join(found)}) but no tokenizer.json; the spec gets no "
            "tokenizer.path, so builds carry no tokenizer (`blueprint run --text` needs one). Save a fast "
            "tokenizer with transformers: AutoTokenizer.from_pretrained(DIR).save_pretrained(DIR)")


def tokenizer_fields(folder: Path, spec_dir: Path) -> dict[str, Any]:
    """tokenizer.json's path (relative to the spec) and what it says about vocabulary and ids."""
    path = folder / "tokenizer.json"
    if not path.is_file():
        return {}
    data = read_json(path)
    model = data.get("model") or {}
    vocab = model.get("vocab") or {}
    ids = list(vocab.values()) if isinstance(vocab, dict) else list(range(len(vocab)))
    added = data.get("added_tokens") or []
    ids += [t["id"] for t in added if isinstance(t, dict) and "id" in t]
    out: dict[str, Any] = {"path": _path_from(spec_dir, path)}
    if ids:
        out["vocab_size"] = max(ids) + 1
    for token in added:
        if token.get("content") in ("[MASK]", "<mask>"):
            out["mask_id"] = token["id"]
    padding = data.get("padding") or {}
    if isinstance(padding, dict) and padding.get("pad_id") is not None:
        out["pad_id"] = padding["pad_id"]
    return out


def import_folder(folder: Any, *, spec_dir: Any = None, name: str | None = None,
                  notes: list[str] | None = None) -> dict[str, Any]:
    """The spec mapping for the Hugging Face model in ``folder``.

    Args:
        folder: a folder with config.json (and optionally tokenizer.json, modules.json).
        spec_dir: where the spec will be written (tokenizer.path is relative to it).
        name: the spec name; defaults to the folder's name.
        notes: receives what the import left out (see ``config_to_spec``).
    """
    folder = Path(folder)
    config_path = folder / "config.json"
    if not config_path.is_file():
        raise BlueprintError(f"{folder}: no config.json; not a Hugging Face model folder")
    config = read_json(config_path)
    if not isinstance(config, dict):
        raise BlueprintError(f"{config_path}: not a JSON object")
    with _malformed(folder / "tokenizer.json"):
        tokenizer = tokenizer_fields(folder, Path(spec_dir) if spec_dir is not None else Path.cwd())
    with _malformed(folder / "modules.json"):
        head = sentence_transformers_head(folder)
    return config_to_spec(config, name=name or spec_name(folder.resolve().name), head=head, tokenizer=tokenizer,
                          notes=notes)
