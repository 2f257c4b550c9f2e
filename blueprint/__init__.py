"""Blueprint: declare a transformer in a YAML spec, compile it, ship it as ONNX."""

__version__ = "0.1.0"


def load_spec(path):  # noqa: ANN001, ANN201 - re-exported below once the loader exists
    from blueprint.spec.load import load_spec as _load_spec

    return _load_spec(path)
