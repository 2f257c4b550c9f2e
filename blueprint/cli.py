"""The ``blueprint`` command.

Each subcommand lives in ``blueprint/commands/<name>.py`` with ``add_arguments(parser)`` and
``run(args) -> int``; modules are imported only when their command runs, so ``validate`` never
pays for importing torch. User errors (``BlueprintError``) are printed plainly and exit 1;
usage errors exit 2 (argparse's convention).
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys

from blueprint.errors import BlueprintError

# command name -> (module under blueprint.commands, one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "validate": ("validate", "check specs and report every error with file:line:column"),
    "explain": ("explain", "print the resolved spec as a per-layer table with costs"),
    "schema": ("schema", "print the JSON Schema of the spec language"),
    "build": ("build", "compile a spec and export a verified ONNX model"),
    "run": ("run", "run an exported model with onnxruntime"),
    "import-hf": ("import_hf", "write a blueprint spec from a Hugging Face model folder"),
    "export-hf": ("export_hf", "write a build back as a Hugging Face model folder"),
    "inspect": ("inspect", "attention maps, head roles and the logit lens of a spec or build"),
}


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="blueprint", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, (module, help_text) in COMMANDS.items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        p.set_defaults(_module=module)
        # Arguments are declared by the command module; importing it here is cheap because
        # command modules defer heavy imports (torch, onnx) into run().
        importlib.import_module(f"blueprint.commands.{module}").add_arguments(p)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    command = importlib.import_module(f"blueprint.commands.{args._module}")
    try:
        return int(command.run(args) or 0)
    except BlueprintError as err:
        print(err.format(), file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # The reader went away (`blueprint explain x.yaml | head`): stop quietly. Point stdout at
        # devnull so the interpreter's final flush does not raise again (Python docs, signal).
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141


if __name__ == "__main__":
    sys.exit(main())
