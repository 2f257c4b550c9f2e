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

# GGUF architecture -> the transformers model_type it is converted from, for the families whose
# mechanisms the spec language covers.
ARCHITECTURES = {"llama": "llama", "mistral": "mistral", "qwen2": "qwen2", "qwen3": "qwen3"}
# Families llama.cpp writes that need a mechanism the spec language lacks (named in the error).
_NOT_YET = {
    "gemma": "RMSNorm with a (1 + w) weight and an embedding multiplier",
    "gemma2": "soft-capped attention and logits",
    "gemma3": "per-layer RoPE bases with soft-capping and QK-norm",
    "phi3": "Phi-3's fused qkv / gate-up layout",
    "qwen2moe": "mixture-of-experts FFNs",
    "qwen3moe": "mixture-of-experts FFNs",
    "olmo2": "norms after each sublayer",
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


def read_model(path: str | Path, reader=None) -> GGUFModel:
    """The Hugging Face config equivalent to the GGUF file at ``path``.

    Raises:
        BlueprintError: not a GGUF file, an architecture the spec language cannot express
            (saying which mechanism is missing), or an ``{arch}.*`` key not understood.
    """
    path = Path(path)
    reader = reader or open_reader(path)
    arch = _value(reader, "general.architecture")
    if arch in _NOT_YET:
        raise BlueprintError(f"{path}: GGUF architecture '{arch}' needs {_NOT_YET[arch]}, which the spec "
                             "language does not express yet")
    if arch not in ARCHITECTURES:
        raise BlueprintError(f"{path}: GGUF architecture {arch!r} is not supported",
                             hint=f"supported: {', '.join(sorted(ARCHITECTURES))}")
    keys = {k[len(arch) + 1:]: k for k in reader.fields if k.startswith(arch + ".")}
    used: set[str] = set()

    def get(key: str, default: Any = None) -> Any:
        used.add(key)
        value = _value(reader, f"{arch}.{key}") if key in keys else None
        return default if value is None else value

    def require(key: str) -> Any:
        value = get(key)
        if value is None:
            raise BlueprintError(f"{path}: GGUF key '{arch}.{key}' is missing")
        return value

    shapes = {t.name: [int(d) for d in t.shape] for t in reader.tensors}  # GGUF order: [in, out]
    if "token_embd.weight" not in shapes:
        raise BlueprintError(f"{path}: no token_embd.weight tensor")
    hidden, heads = int(require("embedding_length")), int(require("attention.head_count"))
    head_dim = int(get("attention.key_length", hidden // heads))
    if int(get("attention.value_length", head_dim)) != head_dim:
        raise BlueprintError(f"{path}: key and value head sizes differ; not modelled")
    rotary = get("rope.dimension_count", head_dim)
    if int(rotary) != head_dim:
        raise BlueprintError(f"{path}: '{arch}.rope.dimension_count' = {rotary} rotates part of each "
                             f"{head_dim}-wide head; {arch} rotates all of it")
    scaling = get("rope.scaling.type", "none")
    if scaling not in ("none", None) or "rope_freqs.weight" in shapes:
        raise BlueprintError(f"{path}: RoPE scaling ({scaling if scaling != 'none' else 'rope_freqs'}) "
                             "is not supported", hint="blueprint models plain RoPE only")
    config: dict[str, Any] = {
        "model_type": ARCHITECTURES[arch],
        "vocab_size": shapes["token_embd.weight"][1],
        "hidden_size": hidden,
        "intermediate_size": int(require("feed_forward_length")),
        "num_hidden_layers": int(require("block_count")),
        "num_attention_heads": heads,
        "num_key_value_heads": int(get("attention.head_count_kv", heads)),
        "head_dim": head_dim,
        "max_position_embeddings": int(require("context_length")),
        "rms_norm_eps": _float32(require("attention.layer_norm_rms_epsilon")),
        "rope_theta": _float32(get("rope.freq_base", 10000.0)),
        "tie_word_embeddings": "output.weight" not in shapes,
        "hidden_act": "silu",
    }
    window = get("attention.sliding_window")
    if window:
        config["sliding_window"] = int(window)
        if arch == "llama":
            config["model_type"] = "mistral"
    if arch in ("qwen2", "qwen3"):
        config["use_sliding_window"] = False
    if arch == "llama" and "blk.0.attn_q.bias" in shapes:
        config["attention_bias"] = True
    if arch == "qwen3" and "blk.0.attn_q.bias" in shapes:
        config["attention_bias"] = True
    unknown = sorted(set(keys) - used - _IRRELEVANT)
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
