"""Run a build with onnxruntime: ``load(dir)`` gives a ``Decoder`` (generate) or an ``Encoder``
(encode / fill_mask / classify). No torch is imported here.

    >>> from blueprint import runtime
    >>> model = runtime.load("build/gpt2-tiny")
    >>> model.generate([1, 2, 3], max_new_tokens=5).ids
"""

from __future__ import annotations

from pathlib import Path

from blueprint.runtime.decoder import Decoder, Generation
from blueprint.runtime.encoder import Encoder
from blueprint.runtime.sampling import Sampling, next_token
from blueprint.runtime.session import Build, open_build


def load(directory: str | Path, *, tokenizer: str | Path | None = None, threads: int | None = None,
         spinning: bool = True) -> Decoder | Encoder:
    """Open a build directory and return the matching runner."""
    build = open_build(directory, tokenizer=tokenizer, threads=threads, spinning=spinning)
    return Decoder(build) if build.spec.is_decoder else Encoder(build)


__all__ = ["Build", "Decoder", "Encoder", "Generation", "Sampling", "load", "next_token", "open_build"]
