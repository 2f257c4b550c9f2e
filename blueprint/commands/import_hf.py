"""`blueprint import-hf SOURCE [-o SPEC]`: write the blueprint spec of a Hugging Face folder or a
GGUF file.

Only metadata is read (no torch, no transformers): config.json, tokenizer.json and
sentence-transformers module files of a folder; the header of a GGUF file, whose tokenizer is
rebuilt as a tokenizer.json written beside the spec. Weights are loaded later by
`blueprint build SPEC --weights SOURCE`, which maps the names per family.
"""

from __future__ import annotations

import sys
from pathlib import Path

from blueprint.errors import BlueprintError


def add_arguments(parser) -> None:
    parser.add_argument("folder", metavar="SOURCE",
                        help="a Hugging Face model folder (config.json, optional tokenizer.json) or a .gguf file")
    parser.add_argument("-o", "--output", metavar="SPEC", help="spec file to write (default: print to stdout); "
                        "for a GGUF file, its tokenizer is written beside it as <SPEC stem>.tokenizer.json")
    parser.add_argument("--name", help="spec name (default: the folder's or file's name)")
    parser.add_argument("--force", action="store_true",
                        help="overwrite SPEC (and, for a GGUF file, its tokenizer.json) if it exists")


def render(spec: dict, source: Path) -> str:
    """The spec as YAML. PyYAML writes floats as ``1.0e-05`` (with the dot), so YAML 1.1
    readers load them as floats, not strings."""
    import yaml

    header = (
        f"# Imported from {source} by `blueprint import-hf`.\n"
        f"# Build with: blueprint build <this file> --weights {source}\n"
    )
    return header + yaml.safe_dump(spec, sort_keys=False, default_flow_style=False)


def run(args) -> int:
    from blueprint.gguf import is_gguf

    source = Path(args.folder)
    if source.is_file() and source.name == "config.json":
        source = source.parent  # the folder was meant
    if not source.exists():
        raise BlueprintError(f"{source} does not exist", hint="give a Hugging Face model folder or a .gguf file")
    out = Path(args.output) if args.output else None
    if out is not None and out.is_dir():
        raise BlueprintError(f"-o {out} is a folder; name the spec file to write (e.g. {out / 'model.yaml'})")
    if out is not None and out.exists() and not out.is_file():
        raise BlueprintError(f"{out} exists and is not a regular file; refusing to replace it",
                             hint="choose another -o SPEC (omit -o to print the spec)")
    if out is not None and (out.exists() or out.is_symlink()) and not args.force:
        raise BlueprintError(f"{out} already exists; refusing to overwrite it",
                             hint="pass --force to replace it, or choose another -o SPEC")
    notes: list[str] = []
    extra: dict[Path, str] = {}  # further files to write beside the spec
    if source.is_file() and is_gguf(source):
        spec = _import_gguf(source, out, args.name, notes, extra)
    elif source.is_file():
        raise BlueprintError(f"{source} is neither a model folder nor a GGUF file",
                             hint="give the folder that holds config.json, or a .gguf file")
    else:
        from blueprint.hf import import_folder
        from blueprint.hf.folder import tokenizer_note

        spec = import_folder(source, spec_dir=out.parent if out else Path.cwd(), name=args.name, notes=notes)
        notes.append(tokenizer_note(source))
    for path in extra:
        if (path.exists() or path.is_symlink()) and not args.force:
            raise BlueprintError(f"{path} already exists; refusing to overwrite it",
                                 hint="pass --force to replace it, or choose another -o SPEC")
    for note in filter(None, notes):
        print(f"note: {note}", file=sys.stderr)
    text = render(spec, source)
    if out is None:
        sys.stdout.write(text)
        return 0
    _write_all({**extra, out: text})
    from blueprint import load_spec

    load_spec(out)  # the written file must load through the front end exactly as written
    wrote = ", ".join(str(p) for p in [*extra, out])
    print(f"wrote {wrote} ({spec['name']}: {spec['num_layers']} layers, "
          f"embed_dim {spec['embed_dim']}, head {spec['head']['kind']})", file=sys.stderr)
    return 0


def _write_all(files: dict[Path, str]) -> None:
    """Write every file or none: each goes to a temporary sibling first and all are moved into
    place only when all were written (a full disk leaves no half-written spec behind)."""
    import os
    import tempfile

    for path in files:  # a device or FIFO (-o /dev/null) must never be swapped for a file
        if path.exists() and not path.is_file():
            raise BlueprintError(f"{path} exists and is not a regular file; refusing to replace it",
                                 hint="choose another -o SPEC (omit -o to print the spec)")
    staged: list[tuple[Path, Path]] = []
    try:
        for path, content in files.items():
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
            staged.append((Path(tmp), path))
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                fh.write(content)
            umask = os.umask(0)
            os.umask(umask)
            os.chmod(tmp, 0o666 & ~umask)  # an ordinary file, not mkstemp's private 0600
        for tmp, path in staged:
            os.replace(tmp, path)
    except OSError as err:
        raise BlueprintError(f"cannot write {path}: {err.strerror or err}") from None
    finally:
        for tmp, _ in staged:
            tmp.unlink(missing_ok=True)


def _import_gguf(source: Path, out: Path | None, name: str | None, notes: list[str], extra: dict[Path, str]) -> dict:
    """The spec of a GGUF file; its rebuilt tokenizer.json goes beside the spec (``extra``)."""
    from blueprint.gguf import import_gguf

    tokenizer_file = None if out is None else out.with_name(f"{out.stem}.tokenizer.json")
    spec, tokenizer = import_gguf(source, name=name,
                                  tokenizer_path=tokenizer_file.name if tokenizer_file is not None else None,
                                  notes=notes)
    if tokenizer is not None and tokenizer_file is not None:
        extra[tokenizer_file] = tokenizer
    elif tokenizer is not None:
        notes.append("the GGUF tokenizer is written only with -o SPEC (beside the spec); "
                     "this spec has no tokenizer.path")
    return spec
