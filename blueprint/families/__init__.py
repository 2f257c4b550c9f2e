"""The registry of Hugging Face families: one module per family, found by looking in this package.

Each module ``blueprint/families/<name>.py`` defines ``FAMILY = Family(...)``: everything blueprint
knows about that family, in one file (docs/architecture.md, "Adding a family"):

- ``model_types``: the ``config.json`` model types it reads (LLaMA's module serves four);
- ``to_spec(reader, head)``: config -> spec body (fields read through a ``ConfigReader``);
- ``irrelevant``: this family's config fields known not to change the computed function;
- ``detect(spec)``: the model type whose layout ``spec`` has, or None (export-hf picks the one
  family that claims a spec; two claiming one spec is a bug this registry reports);
- ``to_config(spec, model_type)``: spec -> config body (export-hf);
- ``weights``: the checkpoint names both ways (``blueprint.families.weightmap``);
- ``gguf`` (optional): the llama.cpp architectures it reads, their ``{arch}.*`` keys -> config,
  and llama.cpp's tensor names -> the checkpoint names of ``weights``.

The generic drivers (``blueprint.hf.config_to_spec``, ``blueprint.hf.to_config.spec_to_config``,
``compiler.weights.hf_names``, ``compiler.weights.hf_export``) read only this registry. Imports
no torch.
"""

from __future__ import annotations

import importlib
import pkgutil
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable

from blueprint.errors import BlueprintError
from blueprint.families.weightmap import WeightMap

if TYPE_CHECKING:
    from blueprint.hf.fields import ConfigReader
    from blueprint.spec.schema import ModelSpec

_SUPPORT_MODULES = frozenset({"weightmap"})


@dataclass(frozen=True)
class GGUFLayout:
    """How llama.cpp writes a family (``blueprint.gguf``, ``compiler.weights.gguf_tensors``).

    ``to_config(arch, keys, shapes)``: the config.json transformers would write, from the
    ``{arch}.*`` keys (a ``blueprint.gguf.metadata.Keys``: get / require / float32, every key
    read is marked) and the tensor shapes (GGUF order, [in, out]). ``tensors``: (GGUF name
    template, Hugging Face name template) pairs in ``weightmap`` template syntax.
    ``permuted``: the architectures whose q/k rows llama.cpp's converter permutes into
    interleaved pairs (undone on reading)."""

    architectures: tuple[str, ...]
    to_config: Callable[[str, Any, dict[str, list[int]]], dict[str, Any]]
    tensors: tuple[tuple[str, str], ...]
    permuted: tuple[str, ...] = ()


@dataclass(frozen=True)
class Family:
    """One Hugging Face family (see the module docstring for each field)."""

    name: str
    model_types: tuple[str, ...]
    to_spec: Callable[["ConfigReader", dict[str, Any] | None], dict[str, Any]]
    detect: Callable[["ModelSpec"], str | None]
    to_config: Callable[["ModelSpec", str], dict[str, Any]]
    weights: WeightMap
    irrelevant: frozenset[str] = frozenset()
    gguf: GGUFLayout | None = None


_REGISTRY: dict[str, Family] | None = None


def _load() -> dict[str, Family]:
    """model_type -> Family, from every module of this package (loaded once, on first use)."""
    global _REGISTRY
    if _REGISTRY is None:
        found: dict[str, Family] = {}
        for info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
            if info.name.startswith("_") or info.name in _SUPPORT_MODULES:
                continue
            family = getattr(importlib.import_module(f"{__name__}.{info.name}"), "FAMILY", None)
            if not isinstance(family, Family):
                raise RuntimeError(f"blueprint/families/{info.name}.py defines no FAMILY = Family(...)")
            for model_type in family.model_types:
                if model_type in found:
                    raise RuntimeError(f"model_type {model_type!r} is claimed by both "
                                       f"{found[model_type].name} and {family.name}")
                found[model_type] = family
        _REGISTRY = found
    return _REGISTRY


def model_types() -> list[str]:
    """Every supported ``model_type``, sorted."""
    return sorted(_load())


def families() -> list[Family]:
    """Every family module's ``FAMILY``, once each, by module name."""
    return sorted({id(f): f for f in _load().values()}.values(), key=lambda f: f.name)


def get(model_type: Any, *, what: str = "is not supported") -> Family:
    """The family of ``model_type``, or an error listing the supported ones."""
    registry = _load()
    if not isinstance(model_type, str) or model_type not in registry:
        raise BlueprintError(f"config.json: model_type {model_type!r} {what}",
                             hint=f"supported: {', '.join(sorted(registry))}")
    return registry[model_type]


def for_gguf(arch: Any) -> Family | None:
    """The family whose GGUF layout reads llama.cpp architecture ``arch`` (None: no family)."""
    return next((f for f in families() if f.gguf is not None and arch in f.gguf.architectures), None)


def gguf_architectures() -> list[str]:
    return sorted(a for f in families() if f.gguf is not None for a in f.gguf.architectures)


def detect(spec: "ModelSpec") -> tuple[str, Family]:
    """(model_type, family) whose layout ``spec`` has, or an error saying none fits."""
    claims = [(t, f) for f in families() if (t := f.detect(spec)) is not None]
    if len(claims) > 1:
        raise BlueprintError(f"spec '{spec.name}' matches several families ({', '.join(t for t, _ in claims)})",
                             hint="a bug in blueprint/families: each family's detect() must be exclusive")
    if not claims:
        raise BlueprintError(
            f"spec '{spec.name}' does not have the layout of a supported Hugging Face family",
            hint=f"export-hf supports {', '.join(model_types())} layouts",
        )
    return claims[0]


__all__ = ["Family", "GGUFLayout", "detect", "families", "for_gguf", "get", "gguf_architectures", "model_types"]
