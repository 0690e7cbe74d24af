"""The processing frame every image head works in: the image decoded and downscaled to ``max_side``."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from ..io.images import LoadedImage, as_loaded


def resize_float(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Resize float (B, 3, H, W) images in [0, 1] to ``size = (h, w)`` (bicubic, antialiased, clamped)."""
    if tuple(x.shape[-2:]) == tuple(size):
        return x
    return F.interpolate(x, size=size, mode="bicubic", antialias=True, align_corners=False).clamp_(0, 1)


@dataclass(frozen=True)
class Frame:
    """One image prepared for a head.

    Attributes:
        pixels: RGB uint8 (h, w, 3), the processing frame (downscaled to ``max_side``).
        x: float32 (1, 3, h, w) in [0, 1], the same pixels as a tensor.
        original_size: ``(H, W)`` of the original image in pixels; results are reported in it.
    """

    pixels: np.ndarray
    x: torch.Tensor
    original_size: tuple[int, int]

    @property
    def size(self) -> tuple[int, int]:
        """``(h, w)`` of the processing frame in pixels."""
        return int(self.pixels.shape[0]), int(self.pixels.shape[1])


def processing_frame(encoder, image: LoadedImage | np.ndarray, max_side: int | None) -> Frame:
    """Decode ``image`` and downscale it so its longer side is at most ``max_side`` pixels.

    Raises:
        TypeError / ValueError: ``image`` is not a :class:`LoadedImage` or RGB uint8 (H, W, 3) array.
    """
    loaded = as_loaded(image)
    pixels = loaded.pixels
    x = encoder.to_float(pixels)  # (1, 3, H, W) in [0, 1]
    h, w = pixels.shape[:2]
    if max_side and max(h, w) > max_side:
        f = max_side / max(h, w)
        x = resize_float(x, (max(1, round(h * f)), max(1, round(w * f))))
        pixels = (x[0].permute(1, 2, 0) * 255).round().to(torch.uint8).numpy()
    return Frame(pixels, x, tuple(int(v) for v in loaded.original_size))
