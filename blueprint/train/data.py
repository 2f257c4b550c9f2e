"""Training data: text files -> tokenizer -> one packed, memory-mapped token file -> batches.

Documents are concatenated with the EOS id after each one (packing) and cut into sequences of
``seq_len + 1`` tokens that overlap by one (inputs and next-token targets); the last partial
sequence is dropped. Which sequences form step t's global batch depends only on the seed and t
(a fresh permutation per epoch), so a resumed run and a run on any number of processes see the
same data in the same order. The token file is written once per (files, tokenizer) and reused.
"""

from __future__ import annotations

import glob
import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from blueprint.errors import BlueprintError

EOS_TOKEN = "<|endoftext|>"
_EOS_NAMES = (EOS_TOKEN, "</s>", "<eos>", "<|end_of_text|>", "[SEP]")
_GLOB = set("*?[")


def expand_paths(patterns: list[str], flag: str = "--data") -> list[Path]:
    """Files named by ``patterns``: files, folders (recursively; hidden entries and
    __pycache__ skipped) and globs, sorted and without repeats."""
    files: list[Path] = []
    for pattern in patterns:
        if _GLOB & set(pattern):
            matches = [Path(p) for p in sorted(glob.glob(pattern, recursive=True))]
            found = [p for p in matches if p.is_file()]
        else:
            path = Path(pattern)
            if not path.exists():
                raise BlueprintError(f"{flag} {pattern}: no such file or folder")
            found = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file() and not _hidden(p, path))
        if not found:
            raise BlueprintError(f"{flag} {pattern}: matches no files")
        files.extend(found)
    seen: set[Path] = set()
    unique = []
    for f in files:
        key = f.resolve()
        if key not in seen:
            seen.add(key)
            unique.append(f)
    return unique


def _hidden(path: Path, root: Path) -> bool:
    return any(part.startswith(".") or part == "__pycache__" for part in path.relative_to(root).parts)


def read_documents(files: list[Path]) -> tuple[list[str], int]:
    """(UTF-8 text of every file that is text, number of files skipped as binary)."""
    docs, skipped = [], 0
    for f in files:
        raw = f.read_bytes()
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            skipped += 1
            continue
        if "\x00" in text:
            skipped += 1
            continue
        if text:
            docs.append(text)
    return docs, skipped


def fingerprint(files: list[Path]) -> str:
    """Identity of the data: each file's path, size and modification time."""
    h = hashlib.sha256()
    for f in files:
        st = f.stat()
        h.update(f"{f.resolve()}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    return h.hexdigest()


# ---------------------------------------------------------------------------- tokenizer


def train_tokenizer(docs: list[str], vocab: int, out: Path) -> None:
    """Train a byte-level BPE of ``vocab`` ids (EOS_TOKEN is id 0) on ``docs``; write ``out``."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab, special_tokens=[EOS_TOKEN], show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(docs, trainer=trainer, length=len(docs))
    tmp = out.with_name(out.name + f".tmp-{os.getpid()}")
    tok.save(str(tmp))
    os.replace(tmp, out)


def load_tokenizer(path: Path):
    from tokenizers import Tokenizer

    try:
        return Tokenizer.from_file(str(path))
    except Exception as err:  # the library raises a bare Exception on malformed files
        raise BlueprintError(f"{path}: not a valid tokenizer.json ({err})") from None


def eos_id(tokenizer, spec) -> int:
    """The id that ends each document: the spec's tokenizer.eos_id (the first, when it lists
    several), else a known EOS token."""
    if spec.tokenizer is not None and spec.tokenizer.eos_ids:
        return spec.tokenizer.eos_ids[0]
    for name in _EOS_NAMES:
        i = tokenizer.token_to_id(name)
        if i is not None:
            return i
    raise BlueprintError("the tokenizer has no end-of-text token to separate documents with",
                         hint=f"set tokenizer.eos_id in the spec, or use --train-tokenizer (adds {EOS_TOKEN})")


def sha256_file(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


# --------------------------------------------------------------------------- token file


def token_file(docs: list[str], tokenizer, eos: int, folder: Path, key: str) -> Path:
    """Tokenize ``docs`` into ``folder/tokens-{key}.bin`` (uint16 or uint32, documents each
    followed by ``eos``), unless that file exists; returns its path."""
    folder.mkdir(parents=True, exist_ok=True)
    dtype = _dtype(tokenizer.get_vocab_size(with_added_tokens=True))
    path = folder / f"tokens-{key[:16]}.{np.dtype(dtype).name}"
    if path.is_file():
        return path
    tmp = path.with_name(path.name + f".tmp-{os.getpid()}")
    with open(tmp, "wb") as f:
        for start in range(0, len(docs), 256):
            for enc in tokenizer.encode_batch(docs[start:start + 256], add_special_tokens=False):
                np.asarray(enc.ids + [eos], dtype=dtype).tofile(f)
    os.replace(tmp, path)
    return path


def _dtype(vocab: int):
    return np.uint16 if vocab <= 2**16 else np.uint32


def open_tokens(path: Path) -> np.ndarray:
    return np.memmap(path, dtype=np.dtype(path.suffix[1:]), mode="r")


def cache_key(tokenizer_sha: str, data_fingerprint: str, eos: int) -> str:
    return hashlib.sha256(json.dumps([tokenizer_sha, data_fingerprint, eos]).encode()).hexdigest()


# ------------------------------------------------------------------------------ batches


@dataclass
class Sequences:
    """Fixed-length training sequences over a packed token array."""

    tokens: np.ndarray
    seq_len: int

    @property
    def count(self) -> int:
        return max(0, (len(self.tokens) - 1) // self.seq_len)

    def get(self, indices: list[int]) -> tuple[torch.Tensor, torch.Tensor]:
        """(inputs, targets), each [len(indices), seq_len] int64."""
        s = self.seq_len
        rows = np.stack([np.asarray(self.tokens[i * s:i * s + s + 1], dtype=np.int64) for i in indices])
        rows = torch.from_numpy(rows)  # [n, s + 1]
        return rows[:, :-1], rows[:, 1:]


class Order:
    """Which sequence is global sample g: epoch g // n, a seeded permutation of 0..n-1 per epoch."""

    def __init__(self, count: int, seed: int):
        self.count, self.seed = count, seed
        self._perms: dict[int, torch.Tensor] = {}

    def __call__(self, g: int) -> int:
        epoch, pos = divmod(g, self.count)
        if epoch not in self._perms:
            self._perms = {epoch: torch.randperm(self.count, generator=torch.Generator().manual_seed(
                self.seed * 1_000_003 + epoch))}
        return int(self._perms[epoch][pos])


def step_indices(order: Order, step: int, batch: int, rank: int, world: int, grad_accum: int) -> list[list[int]]:
    """This process's micro-batches for optimizer step ``step`` (0-based): the global batch is
    samples [step * batch, (step + 1) * batch); process r takes the r-th of ``world`` equal
    slices and splits it into ``grad_accum`` micro-batches."""
    per = batch // world
    micro = per // grad_accum
    first = step * batch + rank * per
    mine = [order(g) for g in range(first, first + per)]
    return [mine[m * micro:(m + 1) * micro] for m in range(grad_accum)]
