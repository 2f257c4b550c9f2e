"""GGUF metadata -> the Hugging Face ``config.json`` of the same model. Imports no torch.

A GGUF file (llama.cpp, ollama) holds the architecture as ``{arch}.*`` keys, the tokenizer as
``tokenizer.ggml.*`` keys, and the tensors under llama.cpp's names. Blueprint translates the
architecture keys into the config transformers would write for that model and hands it to the
same family mapping ``import-hf`` uses for folders (``blueprint.hf.config_to_spec``), so one
set of rules decides what a model is. Like config.json, every ``{arch}.*`` key is either read,
known not to change the computation, or an error naming it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from blueprint.errors import BlueprintError

# The GGUF architectures each family module reads are in its ``gguf`` layout (blueprint/families/).
# Architectures llama.cpp writes that no family module reads yet, with what is missing (named in
# the error: a mechanism the spec language lacks, or the family's GGUF layout); a family module
# that reads one takes precedence.
_NOT_YET = {
    "gemma": "a GGUF layout in the gemma family module (import the Hugging Face folder instead)",
    "gemma2": "soft-capped attention and logits",
    "gemma3": "per-layer RoPE bases with soft-capping and QK-norm",
    "phi3": "Phi-3's fused qkv / gate-up layout",
    "qwen2moe": "mixture-of-experts FFNs",
    "qwen3moe": "mixture-of-experts FFNs",
    "olmo2": "QK-norm over the whole projection, and an olmo2 family module",
}
# {arch}.<key>s that do not change what the network computes.
_IRRELEVANT = frozenset({"vocab_size", "rope.dimension_count"})  # both checked against the tensors


@dataclass
class GGUFModel:
    """What import needs from a GGUF file: its config, tokenizer keys and tensor shapes."""

    path: Path
    architecture: str
    config: dict[str, Any]
    tokenizer: dict[str, Any] = field(default_factory=dict)  # tokenizer.ggml.* without the prefix
    name: str | None = None


def open_reader(path: Path):
    """A ``gguf.GGUFReader`` for ``path`` (memory-mapped), or a BlueprintError saying why not."""
    try:
        from gguf import GGUFReader
    except ImportError:
        raise BlueprintError("reading GGUF files needs the 'gguf' package",
                             hint="pip install 'blueprint[gguf]' (or: pip install gguf)") from None
    if not path.is_file():
        raise BlueprintError(f"{path} does not exist" if not path.exists() else f"{path} is not a file")
    try:
        return GGUFReader(str(path))
    except (ValueError, OSError, KeyError, IndexError, EOFError) as err:
        raise BlueprintError(f"{path}: not a readable GGUF file ({type(err).__name__}: {err})") from None


def _float32(value: Any) -> float:
    """GGUF stores these as float32: 1e-5 reads back as 9.99999974e-06. The shortest decimal
    with the same float32 value (1e-05) is what the model's authors wrote, and computes alike."""
    import numpy as np

    return float(str(np.float32(value)))


def _value(reader, key: str) -> Any:
    f = reader.fields.get(key)
    if f is None:
        return None
    try:
        return f.contents()
    except (ValueError, IndexError, TypeError) as err:
        raise BlueprintError(f"GGUF key '{key}' is malformed ({err})") from None


class Keys:
    """The ``{arch}.*`` keys of a GGUF file, remembering which were read (the rest must be
    known irrelevant, or they are refused naming them)."""

    def __init__(self, reader, arch: str, path: Path):
        self.reader, self.arch, self.path = reader, arch, path
        self.keys = {k[len(arch) + 1:]: k for k in reader.fields if k.startswith(arch + ".")}
        self.used: set[str] = set()

    def get(self, key: str, default: Any = None) -> Any:
        self.used.add(key)
        value = _value(self.reader, f"{self.arch}.{key}") if key in self.keys else None
        return default if value is None else value

    def require(self, key: str) -> Any:
        value = self.get(key)
        if value is None:
            raise BlueprintError(f"{self.path}: GGUF key '{self.arch}.{key}' is missing")
        return value

    def float32(self, key: str, default: Any = None) -> float:
        """A float key as its authors wrote it (``_float32``); required when ``default`` is None."""
        return _float32(self.require(key) if default is None else self.get(key, default))

    def unknown(self) -> list[str]:
        return sorted(set(self.keys) - self.used - _IRRELEVANT)


def gguf_family(arch: Any, path: Path | str = "GGUF file"):
    """The family whose ``gguf`` layout reads architecture ``arch``, or an error saying why none."""
    from blueprint import families

    family = families.for_gguf(arch)
    if family is not None:
        return family
    if arch in _NOT_YET:
        raise BlueprintError(f"{path}: GGUF architecture '{arch}' needs {_NOT_YET[arch]}, which blueprint "
                             "does not have yet")
    raise BlueprintError(f"{path}: GGUF architecture {arch!r} is not supported",
                         hint=f"supported: {', '.join(families.gguf_architectures())}")


def read_model(path: str | Path, reader=None) -> GGUFModel:
    """The Hugging Face config equivalent to the GGUF file at ``path``.

    Raises:
        BlueprintError: not a GGUF file, an architecture the spec language cannot express
            (saying which mechanism is missing), or an ``{arch}.*`` key not understood.
    """
    path = Path(path)
    reader = reader or open_reader(path)
    arch = _value(reader, "general.architecture")
    family = gguf_family(arch, path)
    keys = Keys(reader, arch, path)
    shapes = {t.name: [int(d) for d in t.shape] for t in reader.tensors}  # GGUF order: [in, out]
    if "token_embd.weight" not in shapes:
        raise BlueprintError(f"{path}: no token_embd.weight tensor")
    config = family.gguf.to_config(arch, keys, shapes)
    unknown = keys.unknown()
    if unknown:
        raise BlueprintError(f"{path}: GGUF key(s) {', '.join(f'{arch}.{k}' for k in unknown)} not understood",
                             hint="these keys may change the architecture; blueprint refuses rather than guess")
    tok = {k[len("tokenizer.ggml."):]: k for k in reader.fields if k.startswith("tokenizer.ggml.")}
    tokenizer = {short: _value(reader, key) for short, key in tok.items()}
    for key, hf in (("bos_token_id", "bos_token_id"), ("eos_token_id", "eos_token_id"),
                    ("padding_token_id", "pad_token_id")):
        if tokenizer.get(key) is not None:
            config[hf] = int(tokenizer[key])
    if tokenizer.get("eot_token_id") is not None and tokenizer.get("eot_token_id") != config.get("eos_token_id"):
        # end-of-turn (chat models): generation stops on it as on eos
        config["eos_token_id"] = [i for i in (config.get("eos_token_id"), int(tokenizer["eot_token_id"]))
                                  if i is not None]
    return GGUFModel(path, arch, config, tokenizer, name=_value(reader, "general.name"))
