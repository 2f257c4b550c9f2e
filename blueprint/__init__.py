"""Blueprint: declare a transformer in a YAML spec, compile it, ship it as ONNX.

The front end is importable without torch::

    import blueprint
    spec = blueprint.load_spec("specs/gpt2.yaml")          # ModelSpec, or raises SpecError
    spec, warnings = blueprint.load_spec_with_warnings("specs/gpt2.yaml")
    text = blueprint.dump_lock(spec)                         # spec.lock.yaml contents
"""

from __future__ import annotations

__version__ = "0.1.0"

from blueprint.errors import BlueprintError, SpecError, SpecIssue
from blueprint.spec.load import load_spec, load_spec_text, load_spec_with_warnings
from blueprint.spec.lock import dump_lock

__all__ = [
    "BlueprintError",
    "SpecError",
    "SpecIssue",
    "dump_lock",
    "load_spec",
    "load_spec_text",
    "load_spec_with_warnings",
]
