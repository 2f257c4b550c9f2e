"""Text generation with a KV cache: one prefill, then one decode step per new token.

The session's ``present.{i}.*`` outputs become the next step's ``past_key_values.{i}.*`` inputs;
the attention mask grows by one each step and ``position_ids`` is the token's absolute position.
Sliding windows need nothing here: the exported graph enforces them through the mask, so the
cache keeps the full past.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from blueprint.errors import BlueprintError
from blueprint.runtime.sampling import Sampling, next_token
from blueprint.runtime.session import Build


@dataclass
class Generation:
    prompt_ids: list[int]
    ids: list[int] = field(default_factory=list)  # generated ids only
    stop_reason: str = "max_new_tokens"  # or "eos", "max_seq_len"
    prefill_seconds: float = 0.0
    decode_seconds: float = 0.0

    @property
    def tokens_per_second(self) -> float:
        steps = max(len(self.ids) - 1, 0)  # the first id comes from the prefill
        return steps / self.decode_seconds if self.decode_seconds > 0 else 0.0


class Decoder:
    """A causal LM build. ``generate`` for ids in, ids out; ``generate_text`` with a tokenizer."""

    def __init__(self, build: Build):
        self.build = build
        self.spec = build.spec
        if not self.spec.is_decoder:
            raise BlueprintError(f"{build.directory} holds an encoder, not a decoder")
        inputs = {i.name: i for i in build.session.get_inputs()}
        self._past_names = [n for n in inputs if n.startswith("past_key_values.")]
        self._past_dtype = np.float16 if self._past_names and "float16" in inputs[self._past_names[0]].type else np.float32
        self._past_dims = {n: (inputs[n].shape[1], inputs[n].shape[3]) for n in self._past_names}
        self._has_positions = "position_ids" in inputs
        self._outputs = build.output_names

    @property
    def tokenizer(self):
        return self.build.tokenizer

    @property
    def vocab_limit(self) -> int:
        return self.build.vocab_limit

    def default_stop_ids(self) -> list[int]:
        tok = self.spec.tokenizer
        return tok.eos_ids if tok is not None else []

    def forward(self, input_ids: np.ndarray, attention_mask: np.ndarray, position_ids: np.ndarray | None = None,
                past: dict[str, np.ndarray] | None = None) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        """One session call. Returns (logits [b, s, vocab], next past keyed by input name)."""
        b = input_ids.shape[0]
        feeds = {"input_ids": input_ids.astype(np.int64), "attention_mask": attention_mask.astype(np.int64)}
        if self._has_positions:
            if position_ids is None:
                total = attention_mask.shape[1]
                position_ids = np.clip(np.cumsum(attention_mask, axis=1) - 1, 0, None)[:, total - input_ids.shape[1]:]
            feeds["position_ids"] = position_ids.astype(np.int64)
        for name in self._past_names:
            if past is not None:
                feeds[name] = past[name]
            else:
                kv, hd = self._past_dims[name]
                feeds[name] = np.zeros((b, kv, 0, hd), dtype=self._past_dtype)  # [b, kv, 0, hd]: prefill
        out = dict(zip(self._outputs, self.build.session.run(self._outputs, feeds)))
        present = {n: out[n.replace("past_key_values.", "present.")] for n in self._past_names}
        return out["logits"], present

    def check_prompt(self, ids: list[int]) -> list[int]:
        """The prompt as ints, or a BlueprintError saying why it cannot be generated from."""
        if not all(isinstance(i, (int, np.integer)) and not isinstance(i, bool) for i in ids):
            raise BlueprintError(f"prompt ids must be integers, got {list(ids)[:5]}")  # no silent int(1.5)
        ids = [int(i) for i in ids]
        bos = self.spec.tokenizer.bos_id if self.spec.tokenizer is not None else None
        if not ids and bos is not None:
            ids = [bos]  # nothing to continue: start a sequence, as transformers' generate does
        if not ids:
            raise BlueprintError("the prompt is empty", hint="pass at least one id, e.g. --ids '1 2 3' "
                                 "(or set tokenizer.bos_id in the spec to start from it)")
        bad = [i for i in ids if not 0 <= i < self.spec.vocab_size]
        if bad:
            raise BlueprintError(f"prompt ids {bad[:5]} are outside the model's vocabulary [0, {self.spec.vocab_size})")
        if len(ids) > self.spec.max_seq_len:
            raise BlueprintError(f"the prompt has {len(ids)} tokens; the model's max_seq_len is {self.spec.max_seq_len}",
                                 hint="shorten the prompt")
        return ids

    def generate(self, prompt_ids: list[int], *, max_new_tokens: int = 32, sampling: Sampling | None = None,
                 seed: int | None = None, stop_ids: list[int] | None = None,
                 on_token: Callable[[int], None] | None = None) -> Generation:
        """Generate up to ``max_new_tokens`` ids after ``prompt_ids`` (batch 1).

        ``stop_ids`` defaults to the spec's ``tokenizer.eos_id`` (every id of a list); the stop id itself is included
        in the result. ``on_token`` is called with each id as soon as it is chosen (streaming).
        """
        sampling = sampling or Sampling()
        stop = set(self.default_stop_ids() if stop_ids is None else stop_ids)
        if max_new_tokens < 0:
            raise BlueprintError(f"max-new-tokens must be >= 0, got {max_new_tokens}")
        ids = self.check_prompt(prompt_ids)
        rng = np.random.default_rng(seed)
        result = Generation(prompt_ids=ids)
        if max_new_tokens == 0:
            return result
        start = time.perf_counter()
        length = len(ids)
        logits, past = self.forward(np.array([ids]), np.ones((1, length), dtype=np.int64))
        result.prefill_seconds = time.perf_counter() - start
        start = time.perf_counter()
        while True:
            token = next_token(logits[0, -1], sampling, rng, self.vocab_limit)
            result.ids.append(token)
            if on_token is not None:
                on_token(token)
            if token in stop:
                result.stop_reason = "eos"
                break
            if len(result.ids) >= max_new_tokens:
                break
            if length >= self.spec.max_seq_len:  # no position left to feed the new token at
                result.stop_reason = "max_seq_len"
                break
            logits, past = self.forward(np.array([[token]]), np.ones((1, length + 1), dtype=np.int64),
                                        np.array([[length]]), past)
            length += 1
        result.decode_seconds = time.perf_counter() - start
        return result

    def generate_text(self, text: str, **kwargs) -> tuple[str, Generation]:
        """Tokenize ``text``, generate, and decode the new ids (requires a tokenizer)."""
        if self.tokenizer is None:
            raise BlueprintError("no tokenizer: the build has no tokenizer.json",
                                 hint="pass --tokenizer PATH, or use --ids")
        result = self.generate(self.tokenizer.encode(text), **kwargs)
        return self.tokenizer.decode(result.ids), result
