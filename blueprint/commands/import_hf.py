"""`blueprint import-hf DIR [-o SPEC]`: write a blueprint spec equivalent to a Hugging Face folder.

Only config.json, tokenizer.json and sentence-transformers module files are read (no torch, no
transformers): the spec is a pure function of the folder's metadata. Weights are loaded later
by `blueprint build SPEC --weights DIR`, which maps the names per family.
"""

from __future__ import annotations

import sys
from pathlib import Path

from blueprint.errors import BlueprintError


def add_arguments(parser) -> None:
    parser.add_argument("folder", metavar="DIR", help="a Hugging Face model folder (config.json, optional tokenizer.json)")
    parser.add_argument("-o", "--output", metavar="SPEC", help="spec file to write (default: print to stdout)")
    parser.add_argument("--name", help="spec name (default: the folder's name)")


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
    from blueprint.hf import import_folder
    from blueprint.hf.folder import tokenizer_note

    folder = Path(args.folder)
    if folder.is_file() and folder.name == "config.json":
        folder = folder.parent  # the folder was meant
    out = Path(args.output) if args.output else None
    if out is not None and out.is_dir():
        raise BlueprintError(f"-o {out} is a folder; name the spec file to write (e.g. {out / 'model.yaml'})")
    notes: list[str] = []
    spec = import_folder(folder, spec_dir=out.parent if out else Path.cwd(), name=args.name, notes=notes)
    notes.append(tokenizer_note(folder))
    for note in filter(None, notes):
        print(f"note: {note}", file=sys.stderr)
    text = render(spec, folder)
    if out is None:
        sys.stdout.write(text)
        return 0
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(text, encoding="utf-8")
    except OSError as err:
        raise BlueprintError(f"cannot write {out}: {err.strerror or err}") from None
    from blueprint import load_spec

    load_spec(out)  # the written file must load through the front end exactly as written
    print(f"wrote {out} ({spec['name']}: {spec['num_layers']} layers, "
          f"embed_dim {spec['embed_dim']}, head {spec['head']['kind']})", file=sys.stderr)
    return 0
