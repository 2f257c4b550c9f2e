"""Opening a build directory: manifest, locked spec, onnxruntime session, tokenizer."""

from __future__ import annotations

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
        limit = self.spec.token_limit
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
        BlueprintError: not a build directory, its files are missing, or a file it reads no
            longer matches the hash in the manifest (model.onnx, spec.lock.yaml, tokenizer.json).
    """
    import onnxruntime as ort

    from blueprint.buildinfo import check_file, read_checked, read_manifest
    from blueprint.spec.load import load_spec_text

    directory = Path(directory)
    if not directory.exists():
        raise BlueprintError(f"{directory} does not exist", hint="pass a folder written by: blueprint build SPEC")
    if not directory.is_dir():
        raise BlueprintError(f"{directory} is a file, not a build directory",
                             hint="pass the folder written by blueprint build")
    manifest = read_manifest(directory)
    missing = [f for f in manifest["files"] if not (directory / f).is_file()]
    if missing:
        raise BlueprintError(f"{directory}: build is incomplete, missing {', '.join(missing)}",
                             hint="rebuild it with blueprint build")
    # Every file read here must be the one the build verified: hashed on the bytes that are used.
    lock_text = read_checked(directory, manifest, "spec.lock.yaml")
    spec = load_spec_text(lock_text, str(directory / "spec.lock.yaml"), directory).spec
    try:
        if (directory / "model.onnx.data").exists():  # external weights: onnxruntime reads them by path
            check_file(directory, manifest, "model.onnx.data")
            check_file(directory, manifest, "model.onnx")
            model: str | bytes = str(directory / "model.onnx")
        else:
            model = read_checked(directory, manifest, "model.onnx")
        options = session_options(threads, spinning)
        # model.onnx refers to its weights in weights.safetensors (stored once, by offset): a
        # model handed over as checked bytes finds them in the build folder
        options.add_session_config_entry("session.model_external_initializers_file_folder_path", str(directory))
        if isinstance(model, bytes) and (directory / "weights.safetensors").exists():
            check_file(directory, manifest, "weights.safetensors")
        session = ort.InferenceSession(model, options, providers=["CPUExecutionProvider"])
    except BlueprintError:
        raise
    except Exception as err:  # onnxruntime raises its own exception types
        lines = str(err).strip().splitlines()
        raise BlueprintError(f"{directory}: onnxruntime cannot load model.onnx: {lines[0] if lines else err!r}",
                             hint="the build is damaged; rebuild it with blueprint build") from None
    if not tokenizer and (directory / "tokenizer.json").is_file():
        check_file(directory, manifest, "tokenizer.json")
    tok_path = Path(tokenizer) if tokenizer else directory / "tokenizer.json"
    tok = Tokenizer(tok_path) if tokenizer or tok_path.is_file() else None
    return Build(directory, manifest, spec, session, tok)
