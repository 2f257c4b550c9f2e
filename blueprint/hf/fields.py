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
# bookkeeping (names, versions, dtypes, the attention kernel chosen), output and cache switches,
# generation settings from old configs, task metadata. Reviewed one by one: a field that could
# change the computed function never belongs here (docs/architecture.md, "Importing").
IRRELEVANT: frozenset[str] = frozenset(
    {
        "_name_or_path", "_model_name_or_path", "_commit_hash", "_attn_implementation",
        "_attn_implementation_autoset", "attn_implementation", "transformers.js_config", "architectures",
        "auto_map", "transformers_version", "torch_dtype", "dtype", "use_cache", "return_dict", "output_hidden_states", "output_attentions",
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


# The value types of the fields the family mappings read (a malformed config.json is a user
# error naming the field, not a TypeError deep in a mapping). Sizes are whole numbers >= 1.
_SIZES = frozenset({
    "vocab_size", "hidden_size", "n_embd", "num_hidden_layers", "n_layer", "num_attention_heads", "n_head",
    "num_key_value_heads", "intermediate_size", "n_inner", "max_position_embeddings", "n_positions", "n_ctx",
    "head_dim", "local_attention", "sliding_window", "global_attn_every_n_layers",
})
_COUNTS = frozenset({"type_vocab_size", "max_window_layers", "num_labels"})  # whole numbers >= 0
_NUMBER_ENDINGS = ("_eps", "epsilon", "dropout", "pdrop", "_prob", "initializer_range", "theta", "_base",
                   "rotary_pct", "partial_rotary_factor", "cutoff_factor")
_BOOLS = frozenset({
    "tie_word_embeddings", "attention_bias", "mlp_bias", "use_parallel_residual", "qk_layernorm", "norm_bias",
    "classifier_bias", "decoder_bias", "use_sliding_window", "scale_attn_weights",
    "scale_attn_by_inverse_layer_idx", "add_cross_attention", "is_decoder", "is_encoder_decoder", "norm_topk_prob",
    "qkv_bias",
})
_MAPPINGS = frozenset({"rope_parameters", "rope_scaling", "id2label", "pruned_heads"})
_LISTS = frozenset({"layer_types", "architectures"})
_STRINGS = frozenset({"hidden_act", "activation_function", "hidden_activation", "classifier_activation",
                      "position_embedding_type"})


def _type_problem(key: str, value: Any) -> str | None:
    """What is wrong with ``value`` for field ``key``, or None."""
    whole = isinstance(value, int) and not isinstance(value, bool)
    if key in _SIZES:
        return None if whole and value >= 1 else "must be a whole number >= 1"
    if key in _COUNTS:
        return None if whole and value >= 0 else "must be a whole number >= 0"
    if key.endswith("_token_id"):
        ids = value if isinstance(value, list) else [value]
        ok = all(isinstance(i, int) and not isinstance(i, bool) for i in ids)  # -1: "no such token"
        return None if ok else "must be a token id (a whole number) or a list of them"
    if key.endswith(_NUMBER_ENDINGS) and key not in _BOOLS:  # norm_topk_prob is a switch
        return None if isinstance(value, (int, float)) and not isinstance(value, bool) else "must be a number"
    for names, kind, what in ((_BOOLS, bool, "true or false"), (_MAPPINGS, dict, "an object"),
                              (_LISTS, list, "a list"), (_STRINGS, str, "a string")):
        if key in names and not isinstance(value, kind):
            return f"must be {what}"
    return None


class ConfigReader:
    """A config mapping that remembers which fields were read."""

    def __init__(self, config: dict[str, Any], family: str, extra_irrelevant: frozenset[str] = frozenset()):
        self.config = config
        self.family = family
        self.used: set[str] = {"model_type"}
        self.irrelevant = IRRELEVANT | extra_irrelevant

    def _value(self, key: str) -> Any:
        """The field's value (None when absent), marked as read and type-checked."""
        self.used.add(key)
        value = self.config.get(key)
        problem = None if value is None else _type_problem(key, value)
        if problem:
            raise BlueprintError(f"config.json: '{key}' = {value!r} {problem}")
        return value

    def get(self, key: str, default: Any = None) -> Any:
        value = self._value(key)
        return default if value is None else value

    def require(self, key: str) -> Any:
        value = self._value(key)
        if value is None:
            raise BlueprintError(f"config.json: '{key}' is required for model_type '{self.family}'")
        return value

    def first(self, *keys: str, default: Any = None) -> Any:
        """The value of the first present key (old and new transformers spell some fields differently)."""
        values = [self._value(key) for key in keys]
        return next((v for v in values if v is not None), default)

    def heads(self, dim_key: str, heads_key: str) -> int:
        """The head count of a family whose head size is ``dim / heads`` exactly (GPT-2, BERT,
        NeoX, ModernBERT: transformers itself refuses a remainder)."""
        dim, heads = self.require(dim_key), self.require(heads_key)
        if dim % heads:
            raise BlueprintError(f"config.json: '{dim_key}' ({dim}) is not a multiple of '{heads_key}' ({heads})",
                                 hint=f"{self.family} splits {dim_key} evenly across the heads")
        return heads

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
