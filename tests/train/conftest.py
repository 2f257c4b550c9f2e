from __future__ import annotations

import pytest

from trainhelpers import tokenizer_for


@pytest.fixture(scope="session")
def tokenizer(tmp_path_factory):
    """tokenizer.json (512 ids) trained by blueprint train on the stdlib's json package."""
    return tokenizer_for(tmp_path_factory)
