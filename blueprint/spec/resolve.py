"""Default resolution and per-layer overrides.

Values that depend on other fields are filled here, once, at validation time, so the
validated spec (and its lock file) states every number explicitly:

- ``attention.num_kv_heads`` defaults to ``num_heads`` (MHA);
- ``attention.head_dim`` defaults to ``embed_dim // num_heads``;
- ``ffn.hidden_dim`` defaults to ``4 * embed_dim`` (for a mixture of experts, the expert's and
  the shared expert's).

Derived defaults follow what they derive from, after merging, the same way for ``extends:``
and for ``layers:`` overrides: an override that changes ``num_heads`` without writing
``num_kv_heads`` or ``head_dim`` gets them re-derived from its own ``num_heads`` (unless the
spec wrote them explicitly in ``block``, which then holds everywhere, as it does through
``extends``). ``derive_in_overrides`` writes those values into the override's ``set`` at
validation time, so the lock file states them and the per-layer merge below stays a plain merge.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from blueprint.spec.partial import UNKNOWN, derive

if TYPE_CHECKING:
    from blueprint.spec.schema import BlockSpec, ModelSpec


ATTENTION_DERIVED = ("num_kv_heads", "head_dim")


def attention_defaults(num_heads: Any, embed_dim: Any) -> dict[str, Any]:
    """The values ``num_kv_heads`` and ``head_dim`` take when a spec does not write them: the
    one place both ``block`` and overrides derive them (UNKNOWN propagates)."""
    return {"num_kv_heads": num_heads,
            "head_dim": derive(lambda e, h: max(1, e // h), embed_dim, num_heads)}


def fill_block_defaults(block: "BlockSpec", embed_dim: int) -> "BlockSpec":
    """Return ``block`` with every dimension-dependent default made explicit.

    On a partially validated block (``blueprint.spec.partial``) a rejected part stays UNKNOWN,
    and so does a default derived from an UNKNOWN value.
    """
    attn, ffn = block.attention, block.ffn
    updates: dict[str, Any] = {}
    if attn is not UNKNOWN:
        defaults = attention_defaults(attn.num_heads, embed_dim)
        attn_updates = {f: defaults[f] for f in ATTENTION_DERIVED if getattr(attn, f) is None}
        if attn_updates:
            updates["attention"] = attn.model_copy(update=attn_updates)
    if ffn is not UNKNOWN:
        filled = _fill_ffn(ffn, embed_dim)
        if filled is not ffn:
            updates["ffn"] = filled
    return block.model_copy(update=updates) if updates else block


def _fill_ffn(ffn: Any, embed_dim: int) -> Any:
    """``ffn`` with ``hidden_dim`` defaulted to 4 * embed_dim; a mixture of experts fills its
    expert and shared expert the same way (each is an FFN of its own)."""
    if ffn.kind == "moe":
        updates = {}
        for field in ("expert", "shared_expert"):
            part = getattr(ffn, field)
            if part is not None and part is not UNKNOWN:
                filled = _fill_ffn(part, embed_dim)
                if filled is not part:
                    updates[field] = filled
        return ffn.model_copy(update=updates) if updates else ffn
    if ffn.hidden_dim is None:
        return ffn.model_copy(update={"hidden_dim": derive(lambda e: 4 * e, embed_dim)})
    return ffn


def deep_merge(base: dict[str, Any], patch: dict[str, Any]) -> dict[str, Any]:
    """Merge ``patch`` into ``base``: mappings recurse, anything else replaces.

    A patch that changes a tagged union's ``kind`` replaces that mapping whole, so fields of
    the old variant do not leak into the new one (``ffn: {kind: swiglu}`` over an MLP).
    """
    out = dict(base)
    for key, value in patch.items():
        old = out.get(key)
        if isinstance(value, dict) and isinstance(old, dict):
            if "kind" in value and value.get("kind") != old.get("kind"):
                out[key] = dict(value)
            else:
                out[key] = deep_merge(old, value)
        else:
            out[key] = value
    return out


def derive_in_overrides(data: Any) -> Any:
    """The raw spec mapping with each override that sets ``attention.num_heads`` completed by
    the values derived from it (``attention_defaults``), where the spec does not write them.

    Runs on the raw mapping (before validation), because only there is it known which values
    the user wrote and which were defaults. A derived value is not added when an earlier
    override that selects every one of the same layers writes it (the merge keeps that value),
    nor when ``embed_dim`` does not divide by ``num_heads`` (a rule reports that). When an
    earlier override writes it for only some of those layers, no single value is right; the
    rules report that too (``override_derivation_conflicts``).
    """
    if not isinstance(data, dict) or not isinstance(data.get("layers"), list):
        return data
    data = {**data, "layers": [_written(o) for o in data["layers"]]}
    block, embed_dim = _written(data.get("block")), data.get("embed_dim")
    attention = block.get("attention") if isinstance(block, dict) else None
    if not isinstance(attention, dict) or type(embed_dim) is not int:
        return data
    layers = list(data["layers"])
    for k, override in enumerate(layers):
        heads = _override_heads(override)
        if heads is None:
            continue
        patch = override["set"]["attention"]
        added = {}
        for field, value in attention_defaults(heads, embed_dim).items():
            if field in patch or field in attention:
                continue
            if field == "head_dim" and embed_dim % heads:
                continue
            earlier = _earlier_writers(data, k, field)
            if earlier is None or earlier:  # selectors unreadable, or an earlier value applies
                continue
            added[field] = value
        if added:
            new_set = {**override["set"], "attention": {**patch, **added}}
            layers[k] = {**override, "set": new_set}
    return {**data, "layers": layers}


def _written(value: Any) -> Any:
    """A model built in Python (``BlockSpec(...)``, ``LayerOverride(...)``) as the mapping of the
    fields its author set, so it is read like the YAML that would say the same."""
    from pydantic import BaseModel

    if isinstance(value, BaseModel):
        return {name: _written(getattr(value, name)) for name in value.model_fields_set}
    return value


def _override_heads(override: Any) -> int | None:
    body = override.get("set") if isinstance(override, dict) else None
    patch = body.get("attention") if isinstance(body, dict) else None
    heads = patch.get("num_heads") if isinstance(patch, dict) else None
    return heads if type(heads) is int and heads >= 1 else None


def selected_layers(override: Any, num_layers: int) -> set[int] | None:
    """The layers a raw override selects, or None if its selector is not valid."""
    from blueprint.spec.schema import LayerOverride

    try:
        parsed = LayerOverride.model_validate({**override, "set": {}})
    except Exception:  # noqa: BLE001 - an invalid selector has its own schema error
        return None
    return {i for i in range(num_layers) if parsed.selects(i)}


def _earlier_writers(data: dict[str, Any], k: int, field: str) -> list[int] | None:
    """Earlier overrides that write ``attention.<field>`` on every layer override ``k`` selects
    ([] if none write it on any of them; None if that cannot be told)."""
    num_layers = data.get("num_layers")
    if type(num_layers) is not int or not 1 <= num_layers <= 4096:
        return None
    mine = selected_layers(data["layers"][k], num_layers)
    if mine is None:
        return None
    covered: set[int] = set()
    writers = []
    for j in range(k):
        other = data["layers"][j]
        body = other.get("set") if isinstance(other, dict) else None
        patch = body.get("attention") if isinstance(body, dict) else None
        if isinstance(patch, dict) and field in patch:
            theirs = selected_layers(other, num_layers)
            if theirs is None:
                return None
            if theirs & mine:
                writers.append(j)
                covered |= theirs & mine
    if writers and covered != mine:
        return None  # partly covered: the rules report the conflict
    return writers


def apply_overrides(block: "BlockSpec", patches: list[dict[str, Any]], embed_dim: int) -> "BlockSpec":
    """Validate ``block`` with ``patches`` merged in order, defaults filled."""
    from blueprint.spec.schema import BlockSpec

    if not patches:
        return block
    merged = block.model_dump(mode="python")
    for patch in patches:
        merged = deep_merge(merged, patch)
    return fill_block_defaults(BlockSpec.model_validate(merged), embed_dim)


def resolve_layer(spec: "ModelSpec", i: int) -> "BlockSpec":
    """Layer ``i``'s block: the default block with every selecting override applied."""
    if not 0 <= i < spec.num_layers:
        raise IndexError(f"layer {i} out of range for num_layers={spec.num_layers}")
    patches = [o.set for o in spec.layers if o.selects(i)]
    return apply_overrides(spec.block, patches, spec.embed_dim)
