"""Load a spec: YAML with positions -> ``extends`` -> schema -> cross-field rules.

This is the one entry point the rest of blueprint uses (``blueprint.load_spec``). Every stage
reports all the problems it finds as located ``SpecIssue``s; a stage that fails stops the
pipeline (cross-field rules need a schema-valid spec), and the caller gets one ``SpecError``
with every error of that stage. Warnings never stop loading; they come back beside the spec.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path as FsPath
from typing import Any

from pydantic import ValidationError

from blueprint.errors import SpecError, SpecIssue
from blueprint.spec.diagnose import issues_from_validation
from blueprint.spec.extends import read_spec_file, resolve_extends
from blueprint.spec.rules import check_rules
from blueprint.spec.schema import ModelSpec
from blueprint.spec.source import Positions
from blueprint.spec.yamlload import load_yaml


@dataclass(frozen=True)
class LoadedSpec:
    """A validated spec with the warnings found on the way and where it came from."""

    spec: ModelSpec
    warnings: list[SpecIssue] = field(default_factory=list)
    file: str = "<spec>"


def validate_mapping(data: Any, positions: Positions) -> LoadedSpec:
    """Validate an already parsed (and ``extends``-resolved) mapping.

    Raises:
        SpecError: every schema error, or (if the schema passes) every cross-field error.
    """
    file = positions.root.file
    if not isinstance(data, dict):
        got = "an empty file" if data is None else f"a {type(data).__name__}"
        raise SpecError(issues=[SpecIssue(f"a spec must be a mapping of keys to values, got {got}",
                                          "", file, 1, 1, "start from a preset: extends: gpt2")])
    try:
        spec = ModelSpec.model_validate(data)
    except ValidationError as err:
        raise SpecError(issues=issues_from_validation(err, data, positions, ModelSpec)) from None
    errors, warnings = check_rules(spec, data, positions)
    if errors:
        raise SpecError(issues=errors)
    return LoadedSpec(spec, warnings, file)


def load_spec_text(text: str | bytes, file: str = "<spec>", base_dir: str | FsPath = ".") -> LoadedSpec:
    """Load a spec from a string; ``extends`` paths resolve against ``base_dir``.

    Raises:
        SpecError: with every problem found.
    """
    data, positions = load_yaml(text, file)
    data, positions = resolve_extends(data, positions, FsPath(base_dir), ())
    return validate_mapping(data, positions)


def load_spec_with_warnings(path: str | FsPath) -> tuple[ModelSpec, list[SpecIssue]]:
    """Load and validate the spec file at ``path``; return it with its warnings.

    Raises:
        SpecError: with every problem found.
    """
    loaded = load_spec_file(path)
    return loaded.spec, loaded.warnings


def load_spec_file(path: str | FsPath) -> LoadedSpec:
    """Like ``load_spec_with_warnings`` but returns a ``LoadedSpec``."""
    fs_path = FsPath(path)
    data, positions = read_spec_file(fs_path, str(path))
    data, positions = resolve_extends(data, positions, fs_path.parent,
                                      (str(fs_path.resolve()),))
    return validate_mapping(data, positions)


def load_spec(path: str | FsPath) -> ModelSpec:
    """The validated, fully resolved spec at ``path``.

    Raises:
        SpecError: carrying every problem found (``err.issues``), each with file, line, column,
            dotted spec path, message and hint.
    """
    return load_spec_file(path).spec
