"""The image checks and downscaling every proposal source shares."""

from __future__ import annotations

import numpy as np
from PIL import Image


def check_image(image: np.ndarray) -> np.ndarray:
    """Validate an RGB uint8 (H, W, 3) array for a proposal source.

    Raises:
        TypeError: not a numpy array.
        ValueError: wrong shape, dtype or an empty image.
    """
    if not isinstance(image, np.ndarray):
        raise TypeError(f"proposal sources take an RGB uint8 numpy array (H, W, 3), got {type(image).__name__}")
    if image.ndim != 3 or image.shape[2] != 3 or image.shape[0] == 0 or image.shape[1] == 0:
        raise ValueError(f"image must have shape (H, W, 3) with H, W > 0, got {image.shape}")
    if image.dtype != np.uint8:
        raise ValueError(f"image must be uint8, got dtype {image.dtype}")
    return image


def downscale(image: np.ndarray, max_side: int | None) -> np.ndarray:
    """RGB uint8 (H, W, 3) resized (bilinear) so its longer side is at most ``max_side`` (``None``: unchanged)."""
    h, w = image.shape[:2]
    if not max_side or max(h, w) <= max_side:
        return image
    f = max_side / max(h, w)
    size = (max(1, round(w * f)), max(1, round(h * f)))
    return np.asarray(Image.fromarray(image).resize(size, Image.Resampling.BILINEAR))


def felzenszwalb_input(image: np.ndarray, max_side: int | None, min_region: int) -> tuple[np.ndarray, int]:
    """The image Felzenszwalb segments (downscaled to ``max_side``) and its smallest region in pixels
    (``min_region`` is given for a 192 x 192 image and scaled with the area, at least 4).

    Raises:
        TypeError / ValueError: ``image`` is not an RGB uint8 (H, W, 3) array.
    """
    work = downscale(check_image(image), max_side)
    return work, max(4, int(round(min_region * work.shape[0] * work.shape[1] / (192.0 * 192.0))))
