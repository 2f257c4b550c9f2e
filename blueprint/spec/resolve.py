"""Default resolution and per-layer overrides.

Values that depend on other fields are filled here, once, at validation time, so the
validated spec (and its lock file) states every number explicitly:

- ``attention.num_kv_heads`` defaults to ``num_heads`` (MHA);
- ``attention.head_dim`` defaults to ``embed_dim // num_heads``;
- ``ffn.hidden_dim`` defaults to ``4 * embed_dim``.

An override's ``set`` is merged into the *resolved* default block: a layer inherits the
resolved values it does not set (changing ``num_heads`` alone keeps the block's ``head_dim``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from blueprint.spec.partial import UNKNOWN, derive

if TYPE_CHECKING:
    from blueprint.spec.schema import BlockSpec, ModelSpec


def fill_block_defaults(block: "BlockSpec", embed_dim: int) -> "BlockSpec":
    """Return ``block`` with every dimension-dependent default made explicit.

    On a partially validated block (``blueprint.spec.partial``) a rejected part stays UNKNOWN,
    and so does a default derived from an UNKNOWN value.
    """
    attn, ffn = block.attention, block.ffn
    updates: dict[str, Any] = {}
    if attn is not UNKNOWN:
        attn_updates: dict[str, Any] = {}
        if attn.num_kv_heads is None:
            attn_updates["num_kv_heads"] = attn.num_heads
        if attn.head_dim is None:
            attn_updates["head_dim"] = derive(lambda e, h: max(1, e // h), embed_dim,
                                              attn.num_heads)
        if attn_updates:
            updates["attention"] = attn.model_copy(update=attn_updates)
    if ffn is not UNKNOWN and ffn.hidden_dim is None:
        updates["ffn"] = ffn.model_copy(update={"hidden_dim": derive(lambda e: 4 * e, embed_dim)})
    return block.model_copy(update=updates) if updates else block


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
