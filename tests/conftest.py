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
    return CLIPEncoder(TINY_VIT, None, device="cpu")


@pytest.fixture(scope="session")
def tiny_rn_encoder():
    """A CLIPEncoder over a tiny random-weight ModifiedResNet (embed dim 64, 64×64 input)."""
    from ovtools.encoders import CLIPEncoder

    torch.manual_seed(0)
    return CLIPEncoder(TINY_RN, None, device="cpu")


@pytest.fixture
def rgb_image():
    """A deterministic RGB uint8 (120, 160, 3) image."""
    rng = np.random.default_rng(0)
    img = rng.integers(0, 255, (120, 160, 3), dtype=np.uint8)
    img[30:90, 40:100] = (220, 30, 30)
    return img
