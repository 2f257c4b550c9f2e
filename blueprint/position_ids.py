"""Position ids from an attention mask, as Hugging Face computes them: real tokens count from 0,
padding gets 0. One definition for the build's verification inputs (``compiler.export.io``) and
the runtime's decode loop (``blueprint.runtime.decoder``); numpy only."""

from __future__ import annotations

import numpy as np


def position_ids_for(mask: np.ndarray, s: int | None = None) -> np.ndarray:
    """Position ids [b, s] of the last ``s`` columns of ``mask`` [b, total] (all columns when
    ``s`` is None)."""
    positions = np.clip(np.cumsum(mask, axis=1) - 1, 0, None)  # [b, total]
    width = mask.shape[1] if s is None else s
    return positions[:, mask.shape[1] - width:].astype(np.int64)  # [b, s]
