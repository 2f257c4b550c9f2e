"""GGUF files (llama.cpp, ollama) on the spec side: the spec and tokenizer.json they imply.

``import_gguf`` reads only the metadata (memory-mapped; no tensor is dequantized) and maps it
through the same family rules as a Hugging Face folder. The tensors are read by
``compiler.weights.gguf_tensors`` when a build loads ``--weights FILE.gguf``.
Imports no torch.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from blueprint.gguf.metadata import GGUFModel, open_reader, read_model


def is_gguf(path: str | Path) -> bool:
    """Whether ``path`` is a GGUF file (by its magic bytes, not its name)."""
    try:
        with open(path, "rb") as f:
            return f.read(4) == b"GGUF"
    except OSError:
        return False


def import_gguf(path: str | Path, *, name: str | None = None, tokenizer_path: str | None = None,
                notes: list[str] | None = None) -> tuple[dict[str, Any], str | None]:
    """(spec mapping, tokenizer.json text or None) for the GGUF file at ``path``.

    Args:
        path: the .gguf file.
        name: spec name (default: the file's ``general.name``, else its stem).
        tokenizer_path: the ``tokenizer.path`` the spec should carry (where the caller writes
            the returned tokenizer.json); None leaves the path out.
        notes: receives what the import left out or could not be sure of.
    """
    from blueprint.gguf.tokenizer import build_tokenizer_json
    from blueprint.hf import config_to_spec, spec_name

    model = read_model(path)
    tokenizer_text = build_tokenizer_json(model.tokenizer, notes) if model.tokenizer.get("tokens") else None
    tok: dict[str, Any] = {}
    if tokenizer_text is not None:
        tok["vocab_size"] = len(model.tokenizer["tokens"])
        if tokenizer_path is not None:
            tok["path"] = tokenizer_path
    spec = config_to_spec(model.config, name=name or spec_name(Path(path).stem), tokenizer=tok, notes=notes)
    return spec, tokenizer_text


__all__ = ["GGUFModel", "import_gguf", "is_gguf", "open_reader", "read_model"]
