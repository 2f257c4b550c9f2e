"""Text generation with a KV cache: one prefill, then one decode step per new token.

A fused build steps through onnxruntime's IO binding with one preallocated cache per layer that
past and present share, computing logits for the last position only; a plain build feeds each
step's ``present.{i}.*`` back as ``past_key_values.{i}.*`` (``blueprint.runtime.steppers``).
The attention mask grows by one each step and ``position_ids`` is the token's position among
real tokens. Several prompts generate together, left-padded (``generate_batch``). Sliding
windows are enforced by the graph; by default the cache keeps the full past. A build made with
``--window-cache`` gives its windowed layers a cache of fixed capacity (the manifest's
``window_cache``, ``blueprint.window_cache``) that the graph evicts from: here it is only
allocated at that size; the mask and position ids stay absolute.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from blueprint.errors import BlueprintError
from blueprint.position_ids import position_ids_for
from blueprint.runtime.sampling import Sampling, next_token
from blueprint.runtime.session import Build
from blueprint.runtime.steppers import ArrayStepper, BoundStepper, can_bind
from blueprint.window_cache import from_manifest


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
        self.bounded = from_manifest(build.manifest)  # layer -> WindowLayer: window-sized caches
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
        """One session call. Returns (logits [b, s, vocab], next past keyed by input name).

        ``past`` is the previous call's returned past (None: a prefill). For a layer with a
        window-sized cache (``self.bounded``) that is its whole buffer [b, KV, C, hd], of which
        rows [0, L(T)) are the last L(T) positions (``blueprint.window_cache.resident``);
        other layers return every position [b, KV, T, hd]."""
        b = input_ids.shape[0]
        if input_ids.size and (input_ids.min() < 0 or input_ids.max() >= self.spec.vocab_size):
            # onnxruntime's Gather raises, a quantized build's GatherBlockQuantized would read zeros
            bad = input_ids[(input_ids < 0) | (input_ids >= self.spec.vocab_size)]
            raise BlueprintError(f"input ids {bad[:5].tolist()} are outside the model's vocabulary "
                                 f"[0, {self.spec.vocab_size})")
        feeds = {"input_ids": input_ids.astype(np.int64), "attention_mask": attention_mask.astype(np.int64)}
        if self._has_positions:
            if position_ids is None:
                position_ids = position_ids_for(attention_mask, input_ids.shape[1])
            feeds["position_ids"] = position_ids.astype(np.int64)
        for name in self._past_names:
            if past is not None:
                feeds[name] = past[name]
            else:
                kv, hd = self._past_dims[name]
                feeds[name] = np.zeros((b, kv, self.past_rows(name, 0), hd), dtype=self._past_dtype)  # prefill
        out = dict(zip(self._outputs, self.build.session.run(self._outputs, feeds)))
        present = {n: out[n.replace("past_key_values.", "present.")] for n in self._past_names}
        return out["logits"], present

    def past_rows(self, name: str, capacity: int) -> int:
        """Rows of the cache buffer of input ``name``: a bounded layer's capacity, else ``capacity``
        (what a full cache needs: 0 for a prefill's past, every position for a shared buffer)."""
        layer = self.bounded.get(int(name.split(".")[1]))
        return capacity if layer is None else layer.capacity

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
        stream = None if on_token is None else (lambda row, token: on_token(token))
        return self._generate([prompt_ids], max_new_tokens, sampling, seed, stop_ids, stream)[0]

    def generate_batch(self, prompts: list[list[int]], *, max_new_tokens: int = 32, sampling: Sampling | None = None,
                       seed: int | None = None, stop_ids: list[int] | None = None) -> list[Generation]:
        """Generate after several prompts at once: left-padded to one length (padding masked out,
        positions counted over real tokens), one row per prompt; a row that stops keeps its
        result while the others go on. Greedy results equal ``generate`` on each prompt alone."""
        if not prompts:
            raise BlueprintError("no prompts given")
        return self._generate(prompts, max_new_tokens, sampling, seed, stop_ids, None)

    def stepper(self, batch: int, capacity: int):
        """The fastest way this build can step (``blueprint.runtime.steppers``)."""
        if can_bind(self.build.session):
            return BoundStepper(self, batch, capacity)
        return ArrayStepper(self)

    def _generate(self, prompts, max_new_tokens, sampling, seed, stop_ids, on_token) -> list[Generation]:
        sampling = sampling or Sampling()
        stop = set(self.default_stop_ids() if stop_ids is None else stop_ids)
        if max_new_tokens < 0:
            raise BlueprintError(f"max-new-tokens must be >= 0, got {max_new_tokens}")
        rows = [self.check_prompt(p) for p in prompts]
        rng = np.random.default_rng(seed)
        results = [Generation(prompt_ids=ids) for ids in rows]
        if max_new_tokens == 0:
            return results
        b, width = len(rows), max(len(ids) for ids in rows)
        pad = self.spec.tokenizer.pad_id if self.spec.tokenizer is not None and self.spec.tokenizer.pad_id is not None else 0
        ids = np.full((b, width), pad, dtype=np.int64)  # [b, width]: left padding
        mask = np.zeros((b, width), dtype=np.int64)
        for r, row in enumerate(rows):
            ids[r, width - len(row):], mask[r, width - len(row):] = row, 1
        positions = position_ids_for(mask)  # [b, width]: real tokens count from 0
        lengths = mask.sum(axis=1)  # [b]: each row's next position
        room = self.spec.max_seq_len - int(lengths.max())  # positions left for the longest prompt
        steps = min(max_new_tokens, room + 1)  # the last chosen id is never fed back
        stepper = self.stepper(b, width + max(steps - 1, 0))
        start = time.perf_counter()
        logits = stepper.step(ids, mask, positions)  # [b, vocab]
        prefill = time.perf_counter() - start
        start = time.perf_counter()
        live = list(range(b))
        for n in range(steps):
            tokens = np.full((b, 1), pad, dtype=np.int64)
            for r in list(live):
                token = next_token(logits[r], sampling, rng, self.vocab_limit)
                results[r].ids.append(token)
                tokens[r, 0] = token
                if on_token is not None:
                    on_token(r, token)
                if token in stop:
                    results[r].stop_reason = "eos"
                    live.remove(r)
                elif n == steps - 1 and steps < max_new_tokens:
                    results[r].stop_reason = "max_seq_len"  # no position left to feed the token at
            if not live or n == steps - 1:
                break
            mask = np.concatenate([mask, np.ones((b, 1), dtype=np.int64)], axis=1)  # [b, t + 1]
            logits = stepper.step(tokens, mask, lengths[:, None])
            lengths = lengths + 1
        decode = time.perf_counter() - start
        for result in results:
            result.prefill_seconds, result.decode_seconds = prefill, decode
        return results

    def generate_text(self, text: str, **kwargs) -> tuple[str, Generation]:
        """Tokenize ``text``, generate, and decode the new ids (requires a tokenizer)."""
        if self.tokenizer is None:
            raise BlueprintError("no tokenizer: the build has no tokenizer.json",
                                 hint="pass --tokenizer PATH, or use --ids")
        result = self.generate(self.tokenizer.encode(text), **kwargs)
        return self.tokenizer.decode(result.ids), result
