"""What a build directory is, told by its content: the manifest, the files it lists, their hashes.

Two callers need to know this without importing torch:

- ``blueprint build -o DIR`` may replace ``DIR`` only when it is a previous build. A file
  named ``manifest.json`` is not proof (browser extensions and web apps ship one); a build's
  manifest has blueprint's keys, lists the files beside it, and hashes the lock file under
  ``spec_sha256``. Anything else is refused, so ``-o`` never deletes someone else's folder.
- ``blueprint run DIR`` loads files the manifest hashes. A ``model.onnx`` that no longer
  matches its manifest (edited, truncated, swapped) is refused before onnxruntime sees it;
  the hash is computed on the bytes that are then handed to onnxruntime, so checking costs
  one pass over data that has to be read anyway.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from blueprint.errors import BlueprintError

MANIFEST = "manifest.json"
# Files a build may hold besides its manifest (model.onnx.data only above the external threshold).
BUILD_FILES = frozenset({"model.onnx", "model.onnx.data", "weights.safetensors", "spec.lock.yaml",
                         "tokenizer.json", "genai_config.json"})  # genai_config: decoders (onnxruntime-genai)
REQUIRED_FILES = frozenset({"model.onnx", "spec.lock.yaml"})
_CHUNK = 1 << 20
_REBUILD = "rebuild it with: blueprint build SPEC -o DIR"


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(_CHUNK), b""):
            h.update(chunk)
    return h.hexdigest()


def read_manifest(directory: Path) -> dict:
    """The manifest of the build in ``directory``, checked for the shape blueprint writes.

    Raises:
        BlueprintError: no manifest, unreadable, not a JSON object, or without a file list.
    """
    path = directory / MANIFEST
    if not path.is_file():
        raise BlueprintError(f"{directory} is not a build directory (no {MANIFEST})",
                             hint="create one with: blueprint build SPEC -o DIR")
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, OSError) as err:
        raise BlueprintError(f"{path}: unreadable manifest ({err})", hint=_REBUILD) from None
    problem = manifest_problem(manifest)
    if problem:
        raise BlueprintError(f"{path}: not a blueprint build manifest: {problem}", hint=_REBUILD)
    return manifest


def manifest_problem(manifest: object) -> str | None:
    """Why ``manifest`` is not one ``blueprint build`` wrote, or None."""
    if not isinstance(manifest, dict):
        return f"a JSON {type(manifest).__name__}, not an object"
    files = manifest.get("files")
    if not isinstance(files, dict) or not all(isinstance(v, str) for v in files.values()):
        return "no 'files' object of name -> sha256"
    unknown = sorted(set(files) - BUILD_FILES)
    if unknown:
        return f"lists files a build never writes: {', '.join(unknown)}"
    missing = sorted(REQUIRED_FILES - set(files))
    if missing:
        return f"does not list {', '.join(missing)}"
    sha = manifest.get("spec_sha256")
    if not isinstance(sha, str) or len(sha) != 64:
        return "no spec_sha256"
    versions = manifest.get("versions")
    if not isinstance(versions, dict) or "blueprint" not in versions:
        return "no blueprint version"
    return None


def previous_build_problem(directory: Path) -> str | None:
    """Why ``directory`` is not a previous build that ``build -o`` may replace, or None.

    A previous build: a blueprint manifest, every entry of the directory listed in it (nothing
    the user added would be deleted), and a lock file whose hash is the manifest's spec_sha256.
    """
    try:
        manifest = json.loads((directory / MANIFEST).read_text(encoding="utf-8"))
    except FileNotFoundError:
        return f"no {MANIFEST}"
    except (ValueError, OSError, UnicodeDecodeError) as err:
        return f"its {MANIFEST} is unreadable ({type(err).__name__})"
    problem = manifest_problem(manifest)
    if problem:
        return f"its {MANIFEST} is not a blueprint build manifest ({problem})"
    extra = sorted(p.name for p in directory.iterdir()
                   if p.name != MANIFEST and (p.name not in manifest["files"] or not p.is_file()
                                              or p.is_symlink()))
    if extra:
        shown = ", ".join(extra[:5]) + (" ..." if len(extra) > 5 else "")
        return f"it holds files the build did not write: {shown}"
    lock = directory / "spec.lock.yaml"
    if not lock.is_file() or sha256_file(lock) != manifest["spec_sha256"]:
        return "its spec.lock.yaml does not match the manifest's spec_sha256"
    return None


def check_file(directory: Path, manifest: dict, name: str) -> None:
    """Refuse ``name`` if it is listed in the manifest and its content has another hash."""
    expected = manifest["files"].get(name)
    if expected is not None and sha256_file(directory / name) != expected:
        raise tampered(directory, name)


def read_checked(directory: Path, manifest: dict, name: str) -> bytes:
    """The bytes of ``name``, refused unless they hash to the manifest's entry (when it has one)."""
    data = (directory / name).read_bytes()
    expected = manifest["files"].get(name)
    if expected is not None and sha256_bytes(data) != expected:
        raise tampered(directory, name)
    return data


def tampered(directory: Path, name: str) -> BlueprintError:
    return BlueprintError(f"{directory / name} does not match the hash in {directory / MANIFEST}: "
                          "the file changed after the build (edited, truncated or replaced)",
                          hint=_REBUILD)


def no_checkpoint(directory: Path) -> BlueprintError | None:
    """The error for a quantized build folder written without its fp32 checkpoint
    (weights.safetensors; kept only with --keep-checkpoint). None for anything else, a damaged
    build missing a file it lists included: that is the caller's "missing file" error."""
    if (directory / "weights.safetensors").is_file() or not all((directory / f).is_file() for f in (MANIFEST, "spec.lock.yaml")):
        return None
    try:
        manifest = json.loads((directory / MANIFEST).read_text(encoding="utf-8"))
    except (ValueError, OSError):
        return None
    if not isinstance(manifest, dict) or "quantization" not in manifest or "weights.safetensors" in manifest.get("files", {}):
        return None
    return BlueprintError(
        f"{directory} is a quantized build without its fp32 weights (weights.safetensors): it holds only what "
        "the quantized model runs",
        hint="use the fp32 build folder or the original weights, or rebuild with --quantize ... --keep-checkpoint")
