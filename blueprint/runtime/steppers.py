"""How a generation loop calls the model: one ``step`` per prompt or new token.

Both steppers take the step's input ids [b, s], the attention mask over every position so far
[b, t] and the position ids [b, s], and return the last position's logits [b, vocab].

- ``ArrayStepper`` (any build): ``Decoder.forward`` with numpy arrays; each step's ``present.*``
  (past + new, a fresh buffer) becomes the next ``past_key_values.*``.
- ``BoundStepper`` (fused builds, whose GroupQueryAttention appends to its cache in place): the
  cache of every layer is one preallocated buffer [b, KV, capacity, hd] bound as both
  ``past_key_values.*`` and ``present.*`` through onnxruntime's IO binding, so a step moves the
  new tokens' K/V and nothing else; ``logits_to_keep = 1`` computes the head on the last
  position only, into a preallocated output. Nothing of the cache passes through numpy.
  A layer with a window-sized cache (``--window-cache``) gets a buffer of its capacity C
  instead: the graph evicts inside it, so it never grows with the sequence.
"""

from __future__ import annotations

import numpy as np

KEEP = "logits_to_keep"


def can_bind(session) -> bool:
    """A fused build: its cache can be shared (GroupQueryAttention) and it takes logits_to_keep."""
    return any(i.name == KEEP for i in session.get_overridable_initializers())


class ArrayStepper:
    def __init__(self, decoder):
        self.decoder, self.past = decoder, None

    def step(self, ids: np.ndarray, mask: np.ndarray, positions: np.ndarray) -> np.ndarray:
        logits, self.past = self.decoder.forward(ids, mask, positions, self.past)
        return logits[:, -1]  # [b, vocab]


class BoundStepper:
    """The shared-buffer loop for ``batch`` rows and at most ``capacity`` positions."""

    def __init__(self, decoder, batch: int, capacity: int):
        import onnxruntime as ort

        session = decoder.build.session
        self.session, self.binding = session, session.io_binding()
        self.has_positions = decoder._has_positions
        dtype = decoder._past_dtype
        self.caches = []  # keep the OrtValues alive as long as the binding uses them
        full = [n for n in decoder._past_names if int(n.split(".")[1]) not in decoder.bounded]
        self.capacity = capacity if full else None  # positions a full cache can hold (None: no limit)
        for name in decoder._past_names:
            kv, hd = decoder._past_dims[name]
            rows = decoder.past_rows(name, capacity)
            cache = ort.OrtValue.ortvalue_from_numpy(np.zeros((batch, kv, rows, hd), dtype=dtype))  # [b, KV, C, hd]
            self.caches.append(cache)
            self.binding.bind_ortvalue_input(name, cache)
            self.binding.bind_ortvalue_output(name.replace("past_key_values.", "present.", 1), cache)
        vocab = decoder.spec.vocab_size
        # the OrtValue wraps this array's memory: the step reads the logits through it, where
        # OrtValue.numpy() would copy them into a fresh allocation every token
        self.logits_array = np.zeros((batch, 1, vocab), dtype=dtype)  # [b, 1, V]
        self.logits = ort.OrtValue.ortvalue_from_numpy(self.logits_array)
        self.binding.bind_ortvalue_output("logits", self.logits)
        # an initializer-backed input: bind_cpu_input does not find it, an OrtValue binds
        self.keep = ort.OrtValue.ortvalue_from_numpy(np.array(1, dtype=np.int64))
        self.binding.bind_ortvalue_input(KEEP, self.keep)

    def step(self, ids: np.ndarray, mask: np.ndarray, positions: np.ndarray) -> np.ndarray:
        if self.capacity is not None and mask.shape[1] > self.capacity:
            raise AssertionError(f"position {mask.shape[1]} beyond the cache's {self.capacity}")
        # the arrays must outlive the run: bind_cpu_input hands onnxruntime their memory
        self._inputs = [np.ascontiguousarray(ids, dtype=np.int64), np.ascontiguousarray(mask, dtype=np.int64)]
        self.binding.bind_cpu_input("input_ids", self._inputs[0])
        self.binding.bind_cpu_input("attention_mask", self._inputs[1])
        if self.has_positions:
            self._inputs.append(np.ascontiguousarray(positions, dtype=np.int64))
            self.binding.bind_cpu_input("position_ids", self._inputs[2])
        self.session.run_with_iobinding(self.binding)
        # a view of the bound output buffer: the next step overwrites it (callers use it at once)
        return self.logits_array[:, -1]  # [b, vocab]
