"""`blueprint export-hf`: not implemented yet."""

from blueprint.errors import BlueprintError


def add_arguments(parser):
    pass


def run(args):
    raise BlueprintError("'export-hf' is not implemented yet")
