"""A ``tokenizer.json`` rebuilt from a GGUF file's ``tokenizer.ggml.*`` keys, with ``tokenizers``.

Byte-level BPE (``tokenizer.ggml.model = gpt2``: GPT-2, SmolLM, Qwen, Llama 3) is rebuilt from
the token list and merges; how text is split before BPE comes from ``tokenizer.ggml.pre``, for
which llama.cpp (src/llama-vocab.cpp) keeps one regex list per name, mirrored in
``_PRE_TOKENIZERS``. SentencePiece-style BPE (``llama``: Llama 2, Mistral 7B) is rebuilt as a
BPE with byte fallback whose merges follow the token scores, as llama.cpp applies them.
Control and user-defined tokens become special added tokens, matched before any splitting.
"""

from __future__ import annotations

from typing import Any

from blueprint.errors import BlueprintError

_GPT2 = r"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"
_LLAMA3 = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*"
           r"|\s*[\r\n]+|\s+(?!\S)|\s+")
_QWEN2 = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*"
          r"|\s*[\r\n]+|\s+(?!\S)|\s+")
# tokenizer.ggml.pre -> the regexes applied in order (each splits the pieces of the previous one).
_PRE_TOKENIZERS: dict[str, list[str]] = {
    "default": [_GPT2], "gpt2": [_GPT2], "gpt-2": [_GPT2],
    "smollm": [r"\p{N}", _GPT2], "starcoder": [r"\p{N}", _GPT2], "refact": [r"\p{N}", _GPT2],
    "llama-bpe": [_LLAMA3], "llama3": [_LLAMA3], "smaug-bpe": [_LLAMA3],
    "qwen2": [_QWEN2], "deepseek-r1-qwen": [_QWEN2],
}
_CONTROL, _USER_DEFINED = 3, 4  # llama.cpp token types


def build_tokenizer_json(ggml: dict[str, Any], notes: list[str] | None = None) -> str:
    """The tokenizer.json text for the ``tokenizer.ggml.*`` values in ``ggml`` (prefix removed).

    Raises:
        BlueprintError: no token list, an unknown tokenizer model, or ``tokenizers`` missing.
    """
    try:
        import tokenizers  # noqa: F401
    except ImportError:
        raise BlueprintError("rebuilding the tokenizer needs the 'tokenizers' package",
                             hint="pip install 'blueprint[gguf]'") from None
    tokens = ggml.get("tokens")
    if not tokens:
        raise BlueprintError("the GGUF file has no tokenizer.ggml.tokens")
    model = ggml.get("model")
    if model == "gpt2":
        tok = _byte_level_bpe(ggml, notes)
    elif model == "llama":
        tok = _sentencepiece_bpe(ggml)
    else:
        raise BlueprintError(f"GGUF tokenizer model {model!r} is not supported (supported: gpt2, llama)")
    _add_special_tokens(tok, ggml)
    return tok.to_str(pretty=False)


def _byte_level_bpe(ggml: dict[str, Any], notes: list[str] | None):
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers

    tokens = ggml["tokens"]
    vocab = {t: i for i, t in enumerate(tokens)}
    merges = [tuple(m.split(" ", 1)) for m in ggml.get("merges") or []]
    tok = Tokenizer(models.BPE(vocab=vocab, merges=merges, fuse_unk=False, byte_fallback=False))
    pre = ggml.get("pre") or "default"
    regexes = _PRE_TOKENIZERS.get(pre)
    if regexes is None:
        regexes = _PRE_TOKENIZERS["default"]
        if notes is not None:
            notes.append(f"GGUF pre-tokenizer {pre!r} is not known to blueprint; text is split as GPT-2 splits "
                         "it, which may differ from llama.cpp on digits and whitespace")
    splits = [pre_tokenizers.Split(Regex(r), behavior="isolated") for r in regexes]
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [*splits, pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)])
    tok.decoder = decoders.ByteLevel()
    return tok


def _sentencepiece_bpe(ggml: dict[str, Any]):
    """SentencePiece BPE as llama.cpp runs it: merge the pair whose result has the best score."""
    from tokenizers import Tokenizer, decoders, models, normalizers

    tokens, scores = ggml["tokens"], ggml.get("scores") or [0.0] * len(ggml["tokens"])
    vocab = {t: i for i, t in enumerate(tokens)}
    merges = []
    for piece, score in zip(tokens, scores):
        for split in range(1, len(piece)):
            left, right = piece[:split], piece[split:]
            if left in vocab and right in vocab:
                merges.append((score, vocab[left], vocab[right], left, right))
    merges.sort(key=lambda m: (-m[0], m[1], m[2]))
    unk = ggml.get("unknown_token_id")
    tok = Tokenizer(models.BPE(vocab=vocab, merges=[(m[3], m[4]) for m in merges], fuse_unk=True,
                               byte_fallback=True, unk_token=tokens[unk] if unk is not None else None))
    steps = [normalizers.Replace(" ", "\u2581")]
    if ggml.get("add_space_prefix", True):
        steps.insert(0, normalizers.Prepend("\u2581"))
    tok.normalizer = normalizers.Sequence(steps)
    tok.decoder = decoders.Sequence([decoders.Replace("\u2581", " "), decoders.ByteFallback(), decoders.Fuse(),
                                     *( [decoders.Strip(" ", 1, 0)] if ggml.get("add_space_prefix", True) else [])])
    return tok


def _add_special_tokens(tok, ggml: dict[str, Any]) -> None:
    from tokenizers import AddedToken

    types = ggml.get("token_type") or []
    tokens = ggml["tokens"]
    special = [AddedToken(tokens[i], special=True, normalized=False)
               for i, t in enumerate(types) if t in (_CONTROL, _USER_DEFINED)]
    if special:
        tok.add_special_tokens(special)
