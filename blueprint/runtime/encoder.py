"""Encoder builds: pooled embeddings, masked-LM predictions, classification scores.

Batches are padded on the right with the spec's ``tokenizer.pad_id`` (0 when unset) and a 0 in
the attention mask, which is how the exported graph expects padding.
"""

from __future__ import annotations

import numpy as np

from blueprint.errors import BlueprintError
from blueprint.runtime.sampling import mask_vocab
from blueprint.runtime.session import Build


def _softmax(x: np.ndarray) -> np.ndarray:
    e = np.exp(x - x.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


class Encoder:
    """An encoder build: ``encode`` (embeddings), ``fill_mask`` (masked LM), ``classify``."""

    def __init__(self, build: Build):
        self.build = build
        self.spec = build.spec
        if self.spec.is_decoder:
            raise BlueprintError(f"{build.directory} holds a decoder, not an encoder")
        tok = self.spec.tokenizer
        self.pad_id = tok.pad_id if tok is not None and tok.pad_id is not None else 0

    @property
    def tokenizer(self):
        return self.build.tokenizer

    def tokenize(self, texts: list[str]) -> list[list[int]]:
        if self.tokenizer is None:
            raise BlueprintError("no tokenizer: the build has no tokenizer.json",
                                 hint="pass --tokenizer PATH, or use --ids")
        return [self.tokenizer.encode(t) for t in texts]

    def run(self, batch: list[list[int]], token_type_ids: list[list[int]] | None = None) -> dict[str, np.ndarray]:
        """Every output of the session for ``batch`` (right-padded), plus the ``attention_mask`` used."""
        if not batch or any(len(row) == 0 for row in batch):
            raise BlueprintError("every input sequence needs at least one id")
        if not all(isinstance(i, (int, np.integer)) and not isinstance(i, bool) for row in batch for i in row):
            raise BlueprintError("input ids must be integers")  # never a silent int(1.5)
        longest = max(len(r) for r in batch)
        if longest > self.spec.max_seq_len:
            raise BlueprintError(f"a sequence has {longest} tokens; the model's max_seq_len is {self.spec.max_seq_len}")
        bad = sorted({i for r in batch for i in r if not 0 <= i < self.spec.vocab_size})
        if bad:
            raise BlueprintError(f"ids {bad[:5]} are outside the model's vocabulary [0, {self.spec.vocab_size})")
        ids = np.full((len(batch), longest), self.pad_id, dtype=np.int64)  # [b, s]
        mask = np.zeros((len(batch), longest), dtype=np.int64)
        for r, row in enumerate(batch):
            ids[r, : len(row)] = row
            mask[r, : len(row)] = 1
        feeds = {"input_ids": ids, "attention_mask": mask}
        if "token_type_ids" in self.build.input_names:
            types = np.zeros_like(ids)
            for r, row in enumerate(token_type_ids or []):
                types[r, : len(row)] = row
            feeds["token_type_ids"] = types
        names = self.build.output_names
        out = dict(zip(names, self.build.session.run(names, feeds)))
        out["attention_mask"] = mask
        return out

    def encode(self, batch: list[list[int]]) -> np.ndarray:
        """[b, embed_dim] sentence embeddings: the spec's embeddings head when it has one
        (pooled as the spec says), else the masked mean of ``last_hidden_state``."""
        out = self.run(batch)
        # float32 whatever the build's dtype: an fp16 build's embeddings are exact in float32, and
        # what is computed from them (norms, cosines) must not round to fp16 (self-cosine 1.001)
        if "embeddings" in out:
            return out["embeddings"].astype(np.float32)
        mask = out["attention_mask"][..., None].astype(np.float32)  # [b, s, 1]
        return (out["last_hidden_state"].astype(np.float32) * mask).sum(1) / mask.sum(1)

    def mask_id(self) -> int:
        tok = self.spec.tokenizer
        if tok is not None and tok.mask_id is not None:
            return tok.mask_id
        if self.tokenizer is not None and self.tokenizer.token_to_id("[MASK]") is not None:
            return self.tokenizer.token_to_id("[MASK]")
        raise BlueprintError("the spec names no mask token", hint="set tokenizer.mask_id in the spec")

    def fill_mask(self, ids: list[int], top_k: int = 5) -> list[dict]:
        """For each mask position in ``ids``: the ``top_k`` most likely ids with probabilities."""
        if self.spec.head.kind != "masked_lm":
            raise BlueprintError(f"fill-mask needs a masked_lm head; this build's head is '{self.spec.head.kind}'")
        if top_k < 1:
            raise BlueprintError(f"top-k for masked predictions must be >= 1, got {top_k}")
        mask_id = self.mask_id()
        positions = [p for p, i in enumerate(ids) if i == mask_id]
        if not positions:
            raise BlueprintError(f"the input has no mask token (id {mask_id})")
        logits = self.run([ids])["logits"][0].astype(np.float64)  # [s, vocab]; fp16 builds too
        limit = self.build.vocab_limit
        results = []
        for p in positions:
            probs = _softmax(mask_vocab(logits[p], limit))
            best = np.argsort(-probs, kind="stable")[: min(top_k, limit)]  # never a padded id
            results.append({"position": p, "top": [{"id": int(i), "prob": float(probs[i])} for i in best]})
        return results

    def classify(self, batch: list[list[int]]) -> np.ndarray:
        """[b, num_labels] class probabilities; with one label, [b, 1] raw scores.

        A one-label head is a regression or a single logit (transformers treats it as
        regression); a softmax over one label is 1.0 for every input and says nothing.
        """
        if self.spec.head.kind != "classification":
            raise BlueprintError(f"classify needs a classification head; this build's head is '{self.spec.head.kind}'")
        logits = self.run(batch)["logits"].astype(np.float64)  # [b, num_labels]
        return logits if self.spec.head.num_labels == 1 else _softmax(logits)
