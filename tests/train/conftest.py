from __future__ import annotations

import pytest

from trainhelpers import tokenizer_for


@pytest.fixture(scope="session")
def tokenizer(tmp_path_factory):
    """tokenizer.json (512 ids) trained by blueprint train on the stdlib's json package."""
    return tokenizer_for(tmp_path_factory)


@pytest.fixture(autouse=True)
def one_thread():
    """Tiny models on a shared 2-core machine: one intra-op thread is ~50x faster than two
    threads spinning against other processes (measured: 10-30 ms vs 1.2 s per step)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
