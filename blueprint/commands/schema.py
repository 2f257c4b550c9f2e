"""`blueprint schema`: not implemented yet."""

from blueprint.errors import BlueprintError


def add_arguments(parser):
    pass


def run(args):
    raise BlueprintError("'schema' is not implemented yet")
