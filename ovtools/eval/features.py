"""Image features for evaluation: decode, preprocess and encode a list of images in batches."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from ..io.images import as_loaded


def image_features(
    encoder,
    images: Sequence[str | Path | np.ndarray],
    batch_size: int = 64,
    progress: bool = False,
    desc: str = "encoding images",
) -> torch.Tensor:
    """Embed many images with the shared encoder.

    Args:
        encoder: a :class:`~ovtools.encoders.CLIPEncoder`.
        images: paths or RGB uint8 (H, W, 3) arrays.
        batch_size: images decoded and encoded per step (bounds memory).
        progress: show a tqdm bar on stderr.

    Returns:
        float32 (N, D) L2-normalised features on the CPU, in input order.

    Raises:
        ImageLoadError: an image cannot be decoded (names the file).
    """
    out = []
    steps = range(0, len(images), batch_size)
    for i in tqdm(steps, desc=desc, disable=not progress, unit="batch"):
        pixels = [as_loaded(im).pixels for im in images[i : i + batch_size]]
        out.append(encoder.encode_images(encoder.preprocess(pixels), batch_size=batch_size))
    return torch.cat(out) if out else torch.zeros(0, encoder.embed_dim)
