"""Opening a build directory: manifest, locked spec, onnxruntime session, tokenizer."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from blueprint.errors import BlueprintError
from blueprint.runtime.tokenizer import Tokenizer


@dataclass
class Build:
    directory: Path
    manifest: dict
    spec: object  # ModelSpec
    session: object  # onnxruntime.InferenceSession
    tokenizer: Tokenizer | None

    @property
    def input_names(self) -> list[str]:
        return [i.name for i in self.session.get_inputs()]

    @property
    def output_names(self) -> list[str]:
        return [o.name for o in self.session.get_outputs()]

    @property
    def vocab_limit(self) -> int:
        """Ids at or above this are never produced: the tokenizer's real vocabulary."""
        spec = self.spec
        limit = spec.vocab_size
        if spec.tokenizer is not None and spec.tokenizer.vocab_size:
            limit = min(limit, spec.tokenizer.vocab_size)
        if self.tokenizer is not None:  # also a --tokenizer smaller than the spec's
            limit = min(limit, self.tokenizer.vocab_size)
        return limit


def session_options(threads: int | None = None, spinning: bool = True):
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 3
    if threads:
        options.intra_op_num_threads = threads
    if not spinning:
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return options


def open_build(directory: str | Path, *, tokenizer: str | Path | None = None, threads: int | None = None,
               spinning: bool = True) -> Build:
    """Load ``directory`` (written by ``blueprint build``).

    Raises:
        BlueprintError: not a build directory, or its files are missing.
    """
    import onnxruntime as ort

    from blueprint import load_spec

    directory = Path(directory)
    manifest_path = directory / "manifest.json"
    if not manifest_path.is_file():
        raise BlueprintError(f"{directory} is not a build directory (no manifest.json)",
                             hint="create one with: blueprint build SPEC -o DIR")
    try:
        manifest = json.loads(manifest_path.read_text())
    except (ValueError, OSError) as err:
        raise BlueprintError(f"{manifest_path}: unreadable manifest ({err})", hint="rebuild it with blueprint build") from None
    missing = [f for f in manifest.get("files", {}) if not (directory / f).is_file()]
    if missing:
        raise BlueprintError(f"{directory}: build is incomplete, missing {', '.join(missing)}",
                             hint="rebuild it with blueprint build")
    spec = load_spec(directory / "spec.lock.yaml")
    try:
        session = ort.InferenceSession(str(directory / "model.onnx"), session_options(threads, spinning),
                                       providers=["CPUExecutionProvider"])
    except Exception as err:  # onnxruntime raises its own exception types
        lines = str(err).strip().splitlines()
        raise BlueprintError(f"{directory}: onnxruntime cannot load model.onnx: {lines[0] if lines else err!r}",
                             hint="the build is damaged; rebuild it with blueprint build") from None
    tok_path = Path(tokenizer) if tokenizer else directory / "tokenizer.json"
    tok = Tokenizer(tok_path) if tokenizer or tok_path.is_file() else None
    return Build(directory, manifest, spec, session, tok)
