"""`blueprint schema`: print the spec language's JSON Schema (draft-07).

Point yaml-language-server at it for completion and checking in editors::

    blueprint schema -o blueprint.schema.json
    # first line of a spec:  # yaml-language-server: $schema=./blueprint.schema.json
"""

from __future__ import annotations

import argparse
import json


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-o", "--output", metavar="FILE",
                        help="write the schema to FILE instead of standard output")
    parser.add_argument("--force", action="store_true",
                        help="overwrite FILE even if it is not a blueprint schema")


def _ours(path) -> bool:
    """Whether ``path`` holds a schema this command wrote (an older one may be replaced freely;
    anything else, such as a spec given as -o by mistake, needs --force)."""
    try:
        with open(path, encoding="utf-8") as fh:
            data = json.load(fh)
    except (OSError, ValueError):
        return False
    return isinstance(data, dict) and data.get("title") == "blueprint spec" and "$schema" in data


def run(args: argparse.Namespace) -> int:
    from blueprint.errors import BlueprintError
    from blueprint.spec.json_schema import spec_json_schema

    text = json.dumps(spec_json_schema(), indent=2) + "\n"
    if args.output:
        import os

        if os.path.isfile(args.output) and not args.force and not _ours(args.output):
            raise BlueprintError(f"{args.output} exists and is not a blueprint schema; refusing to overwrite it",
                                 hint="pass --force to replace it, or choose another -o FILE")
        try:
            with open(args.output, "w", encoding="utf-8") as fh:
                fh.write(text)
        except OSError as err:
            raise BlueprintError(f"{args.output}: cannot write: {err.strerror}") from None
    else:
        print(text, end="")
    return 0
