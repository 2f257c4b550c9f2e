"""SmolLM3 (``model_type: smollm3``): LLaMA's decoder (llama.py reads the shared fields) where
some layers apply no RoPE (``no_rope_layers[i] == 0``, every fourth layer in the published
model): those layers get ``attention.rope: false``. Optional sliding windows per
``layer_types``, as Qwen2.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from blueprint.errors import BlueprintError
from blueprint.families import Family, llama
from blueprint.hf.fields import ConfigReader

if TYPE_CHECKING:
    from blueprint.spec.schema import ModelSpec


def to_spec(r: ConfigReader, head: dict[str, Any] | None) -> dict[str, Any]:
    body = llama.to_spec(r, head)
    layers = body["num_layers"]
    interval = r.get("no_rope_layer_interval", 4)
    flags = r.get("no_rope_layers") or [int((i + 1) % interval != 0) for i in range(layers)]
    if len(flags) != layers or any(f not in (0, 1) for f in flags):
        raise BlueprintError(f"config.json: no_rope_layers must hold one 0/1 per layer ({layers}), got {flags}")
    off = [i for i, f in enumerate(flags) if not f]
    if not off:
        return body
    if off == list(range(interval - 1, layers, interval)):  # the published pattern: one override
        body["layers"] = [{"every": interval, "offset": interval - 1, "set": {"attention": {"rope": False}}},
                          *body["layers"]]
    else:
        body["layers"] = [{"index": i, "set": {"attention": {"rope": False}}} for i in off] + body["layers"]
    return body


def detect(spec: "ModelSpec") -> str | None:
    b = spec.block
    if not (spec.is_decoder and spec.positional.kind == "rope" and spec.norm.kind == "rmsnorm"
            and b.ffn.kind == "swiglu"):
        return None
    return "smollm3" if any(not layer.attention.rope for layer in spec.resolved_layers()) else None


def to_config(spec: "ModelSpec", model_type: str) -> dict[str, Any]:
    config = llama.to_config(spec, "llama")
    layers = spec.resolved_layers()
    windows = [layer.attention.window for layer in layers]
    window = next((w for w in windows if w), None)
    config.update({
        "architectures": ["SmolLM3ForCausalLM"],
        "no_rope_layers": [int(layer.attention.rope) for layer in layers],
        "use_sliding_window": window is not None, "sliding_window": window,
        "layer_types": ["sliding_attention" if w else "full_attention" for w in windows],
    })
    return config


FAMILY = Family(name="smollm3", model_types=("smollm3",), to_spec=to_spec, detect=detect, to_config=to_config,
                weights=llama.WEIGHTS)
