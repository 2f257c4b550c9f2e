"""`blueprint explain`: not implemented yet."""

from blueprint.errors import BlueprintError


def add_arguments(parser):
    pass


def run(args):
    raise BlueprintError("'explain' is not implemented yet")
