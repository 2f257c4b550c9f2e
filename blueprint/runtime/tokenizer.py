"""Tokenizer handling: a Hugging Face ``tokenizer.json`` through the ``tokenizers`` library."""

from __future__ import annotations

from pathlib import Path

from blueprint.errors import BlueprintError


class Tokenizer:
    """Thin wrapper: ids <-> text, and the tokenizer's real vocabulary size."""

    def __init__(self, path: str | Path):
        try:
            from tokenizers import Tokenizer as HFTokenizer
        except ImportError:
            raise BlueprintError("text input needs the 'tokenizers' package",
                                 hint="pip install 'blueprint[text]', or pass --ids") from None
        path = Path(path)
        if not path.exists():
            raise BlueprintError(f"tokenizer {path} does not exist", hint="pass a tokenizer.json file")
        if path.is_dir():
            raise BlueprintError(f"tokenizer {path} is a folder, not a file", hint="pass its tokenizer.json")
        if not path.is_file():
            raise BlueprintError(f"tokenizer {path} is not a regular file", hint="pass a tokenizer.json file")
        try:
            self._tok = HFTokenizer.from_file(str(path))
        except Exception as err:  # the library raises a bare Exception on malformed files
            raise BlueprintError(f"{path}: not a valid tokenizer.json ({err})") from None
        # A tokenizer.json may carry its own padding (all-MiniLM-L6-v2 pads every encoding to 128
        # [PAD] ids, which would then count as real tokens); the runtime pads batches itself and
        # builds the attention mask, so the file's padding is turned off.
        self._tok.no_padding()
        self.path = path

    @property
    def vocab_size(self) -> int:
        return self._tok.get_vocab_size(with_added_tokens=True)

    def encode(self, text: str, add_special_tokens: bool = True) -> list[int]:
        return list(self._tok.encode(text, add_special_tokens=add_special_tokens).ids)

    def decode(self, ids: list[int]) -> str:
        return self._tok.decode(list(ids), skip_special_tokens=False)

    def token_to_id(self, token: str) -> int | None:
        return self._tok.token_to_id(token)

    def special_ids(self) -> list[int]:
        """Ids of the tokenizer's special tokens ([CLS], <|endoftext|>, ...)."""
        return sorted(i for i, tok in self._tok.get_added_tokens_decoder().items() if tok.special)

    def token_text(self, token_id: int) -> str:
        """One token as text for labels: decoded alone (byte-level tokens become the characters
        they stand for), falling back to the vocabulary entry when that decodes to nothing."""
        text = self._tok.decode([token_id], skip_special_tokens=False)
        return text if text else (self._tok.id_to_token(token_id) or str(token_id))
