"""What every spec model shares: strictness, and the error its own validators raise."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict
from pydantic_core import PydanticCustomError

# Validation context key. When the loader sets it, a validator that relates fields of its model
# (num_heads % num_kv_heads) leaves that check to ``blueprint.spec.rules``, which reports it
# located and beside every other finding; raised here it would reject the whole section and
# hide the rules about it. A direct ``model_validate`` (no context) still raises it.
LOCATED_RULES = "blueprint.located_rules"


def rule_error(field: str, message: str) -> PydanticCustomError:
    """A validator error that names the offending ``field`` so the loader can point at it.

    Raised from model validators, whose errors pydantic locates at the model, not the field.
    """
    return PydanticCustomError("spec_rule", "{reason}", {"reason": message, "field": field})


class Strict(BaseModel):
    """Base for every spec model: unknown keys are errors, values are immutable, floats must be
    finite (``.inf`` is a valid YAML float but never a valid size, scale or rate), and types are
    strict, as the published JSON Schema says: an integer field takes an integer, not ``"64"``,
    ``true`` or ``1e2``, and a boolean field takes ``true``/``false``, not ``"yes"`` or ``1``.
    A float field still takes an integer (``rope_base: 10000``), as JSON Schema's ``number`` does."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False, strict=True)
