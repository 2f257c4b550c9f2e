"""The spec language: schema, loader, validator. Imports no torch."""

from blueprint.spec.schema import ModelSpec

__all__ = ["ModelSpec"]
