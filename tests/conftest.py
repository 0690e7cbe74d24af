"""Shared fixtures: tiny random-weight open_clip models, small images, an isolated cache.

The tiny architectures are JSON configs in ``tests/assets`` registered with
``open_clip.add_model_config`` — real open_clip models, never mocks.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import open_clip
import pytest
import torch

ASSETS = Path(__file__).parent / "assets"
open_clip.add_model_config(ASSETS)

TINY_VIT = "ovtools-test-vit"
TINY_RN = "ovtools-test-rn"


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory, monkeypatch):
    """Every test gets its own text-embedding cache folder (never ~/.cache)."""
    monkeypatch.setenv("OVTOOLS_CACHE_DIR", str(tmp_path_factory.mktemp("ovtools-cache")))


@pytest.fixture(scope="session")
def tiny_encoder():
    """A CLIPEncoder over a tiny random-weight ViT (embed dim 64, 64×64 input, patch 16)."""
    from ovtools.encoders import CLIPEncoder

    torch.manual_seed(0)
    return CLIPEncoder(TINY_VIT, None, device="cpu", precision="fp32")  # exact values, on every CPU


@pytest.fixture(scope="session")
def tiny_rn_encoder():
    """A CLIPEncoder over a tiny random-weight ModifiedResNet (embed dim 64, 64×64 input)."""
    from ovtools.encoders import CLIPEncoder

    torch.manual_seed(0)
    return CLIPEncoder(TINY_RN, None, device="cpu", precision="fp32")


@pytest.fixture
def rgb_image():
    """A deterministic RGB uint8 (120, 160, 3) image."""
    rng = np.random.default_rng(0)
    img = rng.integers(0, 255, (120, 160, 3), dtype=np.uint8)
    img[30:90, 40:100] = (220, 30, 30)
    return img


@pytest.fixture(scope="module")
def one_torch_thread():
    """Torch on one thread for a module (restored after): with small tensors on a shared 2-core machine,
    intra-op threads mostly wait on each other (a 3D scene took 9 s instead of 0.3 s with 2 threads)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
