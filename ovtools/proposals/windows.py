"""Multi-scale sliding-window box proposals.

The classic exhaustive search: windows of several sizes and aspect ratios slid
over the image with a fixed overlap.  Sizes are fractions of the image's
shorter side, so one configuration serves any resolution.  With overlap ``o``
a ground-truth box of exactly a window's size is met by a window shifted by at
most ``(1 - o) * side / 2`` along each axis, i.e. IoU >= 0.62 for ``o = 0.75``
but only >= 0.39 for ``o = 0.5``: dense overlap is needed for IoU-0.5 recall.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from .image_input import check_image
from .registry import check_number, register_proposals


def _positions(length: float, size: float, stride: float) -> np.ndarray:
    """Evenly spaced window starts covering [0, length] with step <= stride (first at 0, last at length - size)."""
    span = max(length - size, 0.0)
    n = int(math.ceil(span / stride - 1e-6)) + 1 if span > 0 else 1
    return np.linspace(0.0, span, n)


@register_proposals("windows")
class SlidingWindows:
    """Sliding windows at several scales and aspect ratios.

    Args:
        scales: window sizes as fractions of the image's shorter side; a window of
            scale ``s`` and aspect ratio ``a`` is ``s * min(H, W) * sqrt(a)`` wide and
            ``s * min(H, W) / sqrt(a)`` high (clipped to the image).
        aspect_ratios: width / height ratios, e.g. ``(0.5, 1.0, 2.0)``.
        overlap: fraction of a window's width (height) shared with its horizontal
            (vertical) neighbour, in [0, 1); the stride is ``(1 - overlap) * size``.
        min_size: windows smaller than this many pixels on a side are skipped.
        max_boxes: upper bound on the number of windows; if the grid is larger the
            stride is widened uniformly (in steps of 15 %) until it fits.

    Raises:
        ValueError: empty, non-positive or NaN scales / aspect ratios, overlap outside [0, 1),
            negative or NaN ``min_size``, or ``max_boxes < 1``.

    Example:
        >>> import numpy as np
        >>> boxes = SlidingWindows(scales=(0.5,), aspect_ratios=(1.0,), overlap=0.5)(np.zeros((100, 100, 3), np.uint8))
        >>> boxes.shape
        (9, 4)
    """

    def __init__(
        self,
        scales: Sequence[float] = (0.25, 0.4, 0.6, 0.85),
        aspect_ratios: Sequence[float] = (0.5, 1.0, 2.0),
        overlap: float = 0.5,
        min_size: float = 8.0,
        max_boxes: int = 400,
    ) -> None:
        # Boxes come out scale by scale in the order of ``scales``, row-major within a scale.
        self.scales = tuple(float(check_number("windows: scales", s, low=0, low_open=True)) for s in scales)
        self.aspect_ratios = tuple(float(check_number("windows: aspect_ratios", a, low=0, low_open=True))
                                   for a in aspect_ratios)
        check_number("windows: min_size", min_size, low=0)
        if not self.scales:  # each one is positive (checked above)
            raise ValueError(f"windows: scales must be a non-empty sequence of positive fractions, got {scales!r}")
        if not self.aspect_ratios:
            raise ValueError(f"windows: aspect_ratios must be a non-empty sequence of positive ratios, "
                             f"got {aspect_ratios!r}")
        if not 0.0 <= overlap < 1.0:
            raise ValueError(f"windows: overlap must be in [0, 1), got {overlap}")
        check_number("windows: max_boxes", max_boxes, low=1)
        self.overlap = float(overlap)
        self.min_size = float(min_size)
        self.max_boxes = int(max_boxes)

    def _grid(self, h: int, w: int, stride_factor: float) -> np.ndarray:
        short = min(h, w)
        out = []
        for s in self.scales:
            for a in self.aspect_ratios:
                bw = min(s * short * math.sqrt(a), w)
                bh = min(s * short / math.sqrt(a), h)
                if min(bw, bh) < self.min_size:
                    continue
                xs = _positions(w, bw, max((1 - self.overlap) * bw * stride_factor, 1.0))
                ys = _positions(h, bh, max((1 - self.overlap) * bh * stride_factor, 1.0))
                gx, gy = np.meshgrid(xs, ys)
                x0, y0 = gx.ravel(), gy.ravel()
                out.append(np.stack([x0, y0, x0 + bw, y0 + bh], axis=1))
        if not out:
            return np.zeros((0, 4), np.float32)
        boxes = np.concatenate(out).astype(np.float32)
        _, first = np.unique(np.round(boxes, 2), axis=0, return_index=True)  # e.g. windows clipped to the image
        return boxes[np.sort(first)]

    def __call__(self, image: np.ndarray) -> np.ndarray:
        """Windows for an image.

        Args:
            image: RGB uint8 (H, W, 3); only its size is used.

        Returns:
            float32 (N, 4) xyxy boxes in pixels of ``image``, ``N <= max_boxes``.

        Raises:
            TypeError / ValueError: ``image`` is not an RGB uint8 (H, W, 3) array.
        """
        h, w = check_image(image).shape[:2]
        factor = 1.0
        boxes = self._grid(h, w, factor)
        while len(boxes) > self.max_boxes and factor < 1e3:
            factor *= 1.15
            boxes = self._grid(h, w, factor)
        return boxes[: self.max_boxes]
