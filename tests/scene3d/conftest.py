"""scene3d tests run torch on one thread.

The tests use small tensors, where torch's intra-op threads mostly wait on each
other; on a shared 2-core machine that waiting made the distillation test ~10x
slower (25 s instead of 2 s for 200 steps).  The previous setting is restored.
"""

from __future__ import annotations

import pytest
import torch


@pytest.fixture(autouse=True, scope="package")
def _one_torch_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
