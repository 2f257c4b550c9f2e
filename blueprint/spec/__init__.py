"""The spec language: schema, loader, validator, lock file. Imports no torch."""

from blueprint.spec.load import LoadedSpec, load_spec, load_spec_file, load_spec_text, load_spec_with_warnings
from blueprint.spec.lock import dump_lock
from blueprint.spec.schema import ModelSpec

__all__ = [
    "LoadedSpec",
    "ModelSpec",
    "dump_lock",
    "load_spec",
    "load_spec_file",
    "load_spec_text",
    "load_spec_with_warnings",
]
