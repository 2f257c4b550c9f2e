"""Reading a Hugging Face ``config.json`` so that nothing is dropped silently.

``ConfigReader`` records every field a family mapping reads. After the mapping, any field that
was neither read nor listed in ``IRRELEVANT`` (bookkeeping that does not change the computed
function) is an error naming the field: an unknown field may change the architecture, and
guessing would give a model that loads but computes something else.
"""

from __future__ import annotations

from typing import Any

from blueprint.errors import BlueprintError

# Fields every transformers config may carry that do not change what the network computes:
# bookkeeping, output switches, generation settings from old configs, task metadata.
IRRELEVANT: frozenset[str] = frozenset(
    {
        "_name_or_path", "architectures", "auto_map", "transformers_version", "torch_dtype",
        "dtype", "use_cache", "return_dict", "output_hidden_states", "output_attentions",
        "torchscript", "use_bfloat16", "tf_legacy_loss", "gradient_checkpointing",
        "chunk_size_feed_forward", "problem_type", "finetuning_task", "task_specific_params",
        "prefix", "tokenizer_class", "id2label", "label2id", "sep_token_id", "cls_token_id", "unk_token_id",
        "decoder_start_token_id", "forced_bos_token_id", "forced_eos_token_id", "suppress_tokens",
        "begin_suppress_tokens", "max_length", "min_length", "do_sample", "early_stopping",
        "num_beams", "num_beam_groups", "diversity_penalty", "temperature", "top_k", "top_p",
        "typical_p", "repetition_penalty", "length_penalty", "no_repeat_ngram_size",
        "encoder_no_repeat_ngram_size", "bad_words_ids", "num_return_sequences",
        "output_scores", "return_dict_in_generate", "remove_invalid_values",
        "exponential_decay_length_penalty", "pretraining_tp", "output_router_logits",
    }
)


class ConfigReader:
    """A config mapping that remembers which fields were read."""

    def __init__(self, config: dict[str, Any], family: str, extra_irrelevant: frozenset[str] = frozenset()):
        self.config = config
        self.family = family
        self.used: set[str] = {"model_type"}
        self.irrelevant = IRRELEVANT | extra_irrelevant

    def get(self, key: str, default: Any = None) -> Any:
        self.used.add(key)
        value = self.config.get(key, default)
        return default if value is None else value

    def require(self, key: str) -> Any:
        self.used.add(key)
        if self.config.get(key) is None:
            raise BlueprintError(f"config.json: '{key}' is required for model_type '{self.family}'")
        return self.config[key]

    def first(self, *keys: str, default: Any = None) -> Any:
        """The value of the first present key (old and new transformers spell some fields differently)."""
        for key in keys:
            self.used.add(key)
        for key in keys:
            if self.config.get(key) is not None:
                return self.config[key]
        return default

    def expect(self, key: str, allowed: tuple[Any, ...], why: str) -> Any:
        """Read a field whose other values blueprint cannot express; absent counts as allowed[0]."""
        value = self.get(key, allowed[0])
        if value not in allowed:
            raise BlueprintError(
                f"config.json: '{key}' = {value!r} is not supported for model_type "
                f"'{self.family}' (supported: {', '.join(map(repr, allowed))})",
                hint=why,
            )
        return value

    def finish(self) -> None:
        """Raise naming every field that was neither read nor known to be irrelevant."""
        unknown = sorted(k for k in self.config if k not in self.used and k not in self.irrelevant)
        if unknown:
            listed = ", ".join(repr(k) for k in unknown)
            what = f"field {listed} is" if len(unknown) == 1 else f"fields {listed} are"
            raise BlueprintError(
                f"config.json: {what} not understood for model_type '{self.family}'; "
                "importing would silently drop them",
                hint="these fields may change the architecture; blueprint refuses rather than "
                "guess. Remove them only if you know they do not affect the computation",
            )
