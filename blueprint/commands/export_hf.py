"""`blueprint export-hf BUILD_DIR -o OUT`: a build as a Hugging Face model folder.

Writes config.json and model.safetensors in the layout of the matching transformers class (the
family module in ``blueprint/families/`` whose ``detect`` claims the spec; docs/architecture.md
"Adding a family"), copies tokenizer.json,
and for a mean/cls-pooled embeddings head writes the sentence-transformers module files so the
pooling travels too. The folder is assembled in a temporary directory and moved into place when done.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
from pathlib import Path

from blueprint.errors import BlueprintError


def add_arguments(parser) -> None:
    parser.add_argument("build_dir", metavar="BUILD_DIR", help="a build folder (spec.lock.yaml + weights.safetensors)")
    parser.add_argument("-o", "--output", metavar="OUT", required=True, help="folder to write")
    parser.add_argument("--force", action="store_true",
                        help="replace OUT if it is a folder an earlier export-hf wrote (unchanged since)")


def _sentence_transformers_files(spec, out: Path) -> None:
    head = spec.head
    if head.kind != "embeddings" or head.pooler != "none":
        return
    modules = [{"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
               {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"}]
    if head.normalize:
        modules.append({"idx": 2, "name": "2", "path": "2_Normalize", "type": "sentence_transformers.models.Normalize"})
        (out / "2_Normalize").mkdir()
    (out / "modules.json").write_text(json.dumps(modules, indent=2) + "\n")
    (out / "1_Pooling").mkdir()
    pooling = {"word_embedding_dimension": spec.embed_dim,
               "pooling_mode_cls_token": head.pooling == "cls",
               "pooling_mode_mean_tokens": head.pooling == "mean",
               "pooling_mode_max_tokens": False,
               "pooling_mode_mean_sqrt_len_tokens": False,
               "pooling_mode_lasttoken": head.pooling == "last"}
    (out / "1_Pooling" / "config.json").write_text(json.dumps(pooling, indent=2) + "\n")


def _check_output(build_dir: Path, output: Path, force: bool) -> None:
    """OUT must be new, empty, or (with --force) a Hugging Face folder; never the build itself,
    inside it or around it (--force would delete the build being read)."""
    if output.exists() and not output.is_dir():
        raise BlueprintError(f"{output} exists and is not a folder", hint="choose another -o OUT")
    a, b = (Path(os.path.realpath(p)) for p in (build_dir, output))
    if a == b or a in b.parents or b in a.parents:
        raise BlueprintError(f"{output} overlaps the build folder {build_dir}",
                             hint="write the Hugging Face folder somewhere outside the build")
    if output.exists() and any(output.iterdir()):
        if not force:
            raise BlueprintError(f"{output} exists and is not empty", hint="pass --force to replace it")
        problem = _not_ours(output)
        if problem:
            raise BlueprintError(f"{output} was not written by export-hf ({problem}); refusing to replace it, "
                                 "even with --force", hint="choose another -o OUT, or remove it first")


MARKER = "blueprint-export.json"


def _files(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file() or p.is_symlink())


def _write_marker(folder: Path) -> None:
    """Record what export-hf wrote (name -> sha256), so a later --force can tell its own folder
    from a folder someone else owns or has since changed."""
    from blueprint.buildinfo import sha256_file

    files = {name: sha256_file(folder / name) for name in _files(folder)}
    (folder / MARKER).write_text(json.dumps({"written_by": "blueprint export-hf", "files": files},
                                            indent=2) + "\n")


def _not_ours(folder: Path) -> str | None:
    """Why ``folder`` is not an unchanged export-hf output, or None."""
    from blueprint.buildinfo import sha256_file

    try:
        marker = json.loads((folder / MARKER).read_text(encoding="utf-8"))
    except FileNotFoundError:
        return f"no {MARKER}"
    except (ValueError, OSError, UnicodeDecodeError):
        return f"its {MARKER} is unreadable"
    files = marker.get("files") if isinstance(marker, dict) else None
    if not isinstance(files, dict) or marker.get("written_by") != "blueprint export-hf":
        return f"its {MARKER} is not export-hf's"
    present = [f for f in _files(folder) if f != MARKER]
    extra = sorted(set(present) - set(files))
    if extra:
        return f"it holds files export-hf did not write: {', '.join(extra[:5])}"
    changed = sorted(f for f in present if (folder / f).is_symlink() or sha256_file(folder / f) != files[f])
    if changed:
        return f"changed since export-hf wrote it: {', '.join(changed[:5])}"
    return None


def export(build_dir: Path, output: Path, *, force: bool = False) -> Path:
    from blueprint import load_spec
    from blueprint.hf.to_config import spec_to_config
    from compiler.weights import load_weights
    from compiler.weights.hf_export import to_hf_state
    from compiler.weights.safetensors_io import write_tensors

    if not build_dir.exists():
        raise BlueprintError(f"{build_dir} does not exist", hint="pass a folder written by: blueprint build SPEC")
    lock = build_dir / "spec.lock.yaml"
    if not lock.is_file():
        raise BlueprintError(f"{build_dir}: no spec.lock.yaml; not a blueprint build folder",
                             hint="run `blueprint build SPEC` first and pass its output folder")
    _check_output(build_dir, output, force)
    if (build_dir / "manifest.json").exists():  # a real build: export what was verified, nothing else
        from blueprint.buildinfo import check_file, no_checkpoint, read_manifest

        quantized = no_checkpoint(build_dir)
        if quantized is not None:
            raise quantized

        manifest = read_manifest(build_dir)
        for name in ("spec.lock.yaml", "weights.safetensors", "tokenizer.json"):
            if (build_dir / name).is_file():
                check_file(build_dir, manifest, name)
    spec = load_spec(lock)
    config = spec_to_config(spec)
    weights = load_weights(build_dir / "weights.safetensors", spec)
    state = to_hf_state(weights, spec, config)
    output.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".export-hf-", dir=output.parent))
    try:
        config = {**config, "torch_dtype": spec.dtype}
        (tmp / "config.json").write_text(json.dumps(config, indent=2) + "\n")
        write_tensors(state, tmp / "model.safetensors", metadata={"format": "pt"})
        if (build_dir / "tokenizer.json").is_file():
            shutil.copyfile(build_dir / "tokenizer.json", tmp / "tokenizer.json")
        _sentence_transformers_files(spec, tmp)
        _write_marker(tmp)
        if output.exists():
            shutil.rmtree(output)
        tmp.rename(output)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)
    return output


def run(args) -> int:
    out = export(Path(args.build_dir), Path(args.output), force=args.force)
    files = sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.is_file())
    print(f"wrote {out} ({', '.join(files)})", file=sys.stderr)
    return 0
