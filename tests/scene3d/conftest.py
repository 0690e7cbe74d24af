"""scene3d tests run torch on one thread (see ``one_torch_thread`` in tests/conftest.py): with
small tensors, torch's intra-op threads mostly wait on each other on a shared 2-core machine."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def _one_thread(one_torch_thread):
    yield
