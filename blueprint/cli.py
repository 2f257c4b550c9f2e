"""The ``blueprint`` command.

Each subcommand lives in ``blueprint/commands/<name>.py`` with ``add_arguments(parser)`` and
``run(args) -> int``; modules are imported only when their command runs, so ``validate`` never
pays for importing torch. User errors (``BlueprintError``) are printed plainly and exit 1;
usage errors exit 2 (argparse's convention); an OSError is the environment's answer (disk full,
permission denied) and exits 1; anything else is a bug in blueprint, reported in one line with
exit 70 (``BLUEPRINT_TRACEBACK=1`` re-raises it).
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys

import blueprint
from blueprint.errors import BlueprintError

# command name -> (module under blueprint.commands, one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "validate": ("validate", "check specs and report every error with file:line:column"),
    "explain": ("explain", "print the resolved spec as a per-layer table with costs"),
    "schema": ("schema", "print the JSON Schema of the spec language"),
    "build": ("build", "compile a spec and export a verified ONNX model"),
    "run": ("run", "run an exported model with onnxruntime"),
    "import-hf": ("import_hf", "write a blueprint spec from a Hugging Face model folder or a GGUF file"),
    "export-hf": ("export_hf", "write a build back as a Hugging Face model folder"),
    "train": ("train", "train a spec's compiled graph on text (torchrun: DDP / FSDP2)"),
    "inspect": ("inspect", "attention maps, head roles and the logit lens of a spec or build"),
}


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="blueprint", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"blueprint {blueprint.__version__}")
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
    except OSError as err:
        # The machine said no (disk full, permission denied, a path gone mid-run): the user's
        # environment, reported as such, not as a crash.
        where = f"{err.filename}: " if err.filename else ""
        print(f"{where}{err.strerror or err}", file=sys.stderr)
        return 1
    except Exception as err:  # noqa: BLE001 - the last line of defence: a bug, said plainly
        if os.environ.get("BLUEPRINT_TRACEBACK"):
            raise
        print(f"internal error: {type(err).__name__}: {err}\n    hint: this is a bug in blueprint, not in "
              "your input; please report it with the command you ran (BLUEPRINT_TRACEBACK=1 shows "
              "the traceback)", file=sys.stderr)
        return 70  # EX_SOFTWARE


if __name__ == "__main__":
    sys.exit(main())
