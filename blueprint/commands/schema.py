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


def run(args: argparse.Namespace) -> int:
    from blueprint.errors import BlueprintError
    from blueprint.spec.json_schema import spec_json_schema

    text = json.dumps(spec_json_schema(), indent=2) + "\n"
    if args.output:
        try:
            with open(args.output, "w", encoding="utf-8") as fh:
                fh.write(text)
        except OSError as err:
            raise BlueprintError(f"{args.output}: cannot write: {err.strerror}") from None
    else:
        print(text, end="")
    return 0
