"""Load a spec: YAML with positions -> ``extends`` -> schema -> cross-field rules.

This is the one entry point the rest of blueprint uses (``blueprint.load_spec``). Every stage
reports all the problems it finds as located ``SpecIssue``s. The YAML stages (parse,
``extends``) stop at their errors: without a mapping there is nothing to check. The schema and
the cross-field rules run together: when the schema rejects part of the spec, the rules still
run on every part it accepted (``blueprint.spec.partial``), so the caller gets one
``SpecError`` with every error, and with the warnings found beside them. Warnings never stop
loading; they come back beside the spec.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path as FsPath
from typing import Any

from pydantic import ValidationError

from blueprint.errors import SpecError, SpecIssue
from blueprint.spec.diagnose import issues_from_validation, sort_issues
from blueprint.spec.extends import read_spec_file, resolve_extends
from blueprint.spec.partial import salvage
from blueprint.spec.resolve import derive_in_overrides
from blueprint.spec.rules import CONTEXT, check_rules
from blueprint.spec.schema import ModelSpec
from blueprint.spec.source import Positions
from blueprint.spec.yamlload import load_yaml


@dataclass(frozen=True)
class LoadedSpec:
    """A validated spec with the warnings found on the way and where it came from."""

    spec: ModelSpec
    warnings: list[SpecIssue] = field(default_factory=list)
    file: str = "<spec>"


def validate_mapping(data: Any, positions: Positions,
                     files_dir: FsPath | None = None) -> LoadedSpec:
    """Validate an already parsed (and ``extends``-resolved) mapping.

    ``files_dir``: also check that files the spec names exist, relative to this folder.

    Raises:
        SpecError: every schema and cross-field error (``warnings`` carries the warnings).
    """
    file = positions.root.file
    if not isinstance(data, dict):
        got = "an empty file" if data is None else f"a {type(data).__name__}"
        raise SpecError(issues=[SpecIssue(f"a spec must be a mapping of keys to values, got {got}",
                                          "", file, 1, 1, "start from a preset: extends: gpt2")])
    try:
        spec = ModelSpec.model_validate(data, context=CONTEXT)
        schema_errors = []
    except ValidationError as err:
        schema_errors = issues_from_validation(err, data, positions, ModelSpec)
        # the parts that validate, with the values overrides derive (as ModelSpec's own
        # validator would have written them), so the rules judge the same layers either way
        spec = salvage(ModelSpec, derive_in_overrides(data), context=CONTEXT)
    errors, warnings = check_rules(spec, data, positions, files_dir)
    if schema_errors or errors:
        raise SpecError(issues=sort_issues(schema_errors + errors), warnings=warnings)
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


def load_spec_file(path: str | FsPath, *, check_files: bool = False) -> LoadedSpec:
    """Like ``load_spec_with_warnings`` but returns a ``LoadedSpec``.

    ``check_files``: also require the files the spec names (``tokenizer.path``) to exist,
    relative to the spec file (``blueprint validate`` does; a build's lock file may not).
    """
    fs_path = FsPath(path)
    data, positions = read_spec_file(fs_path, str(path))
    data, positions = resolve_extends(data, positions, fs_path.parent,
                                      (os.path.realpath(fs_path),))  # realpath: a symlink loop is read, and refused, not raised
    return validate_mapping(data, positions, fs_path.parent if check_files else None)


def load_spec(path: str | FsPath) -> ModelSpec:
    """The validated, fully resolved spec at ``path``.

    Raises:
        SpecError: carrying every problem found (``err.issues``), each with file, line, column,
            dotted spec path, message and hint.
    """
    return load_spec_file(path).spec
