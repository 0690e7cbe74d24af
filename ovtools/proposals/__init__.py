"""Box and mask proposal sources, one registry.

A proposal source is a callable object built with keyword options::

    source = create_proposals("windows", scales=(0.2, 0.4), overlap=0.5)
    boxes = source(image)        # RGB uint8 (H, W, 3) -> float32 (N, 4) xyxy pixels

Box sources return float32 ``(N, 4)`` boxes ``x_min, y_min, x_max, y_max`` in
pixel coordinates of the array they were given (origin top-left, inside
``[0, W] x [0, H]``), possibly ``(0, 4)``.  Mask sources have the class
attribute ``output = "masks"`` and return bool ``(N, H, W)`` masks at the
given array's size, best first, possibly ``(0, H, W)``.  Sources are
deterministic.

Built-ins: box sources ``"windows"`` (:class:`~ovtools.proposals.windows.SlidingWindows`),
``"segments"`` (:class:`~ovtools.proposals.segments.SegmentProposals`) and
``"hybrid"`` (:class:`HybridProposals`: segments plus coarse windows); mask sources
``"regions"`` (:class:`~ovtools.proposals.regions.RegionMaskProposals`, no weights) and
``"sam"`` (:class:`~ovtools.proposals.sam.SamMaskProposals`, Segment Anything).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from PIL import Image

from ..geometry import dedup_boxes
from ..registry import Registry

_REGISTRY = Registry("proposal source")

#: Class decorator adding a proposal source under a name (``ValueError`` if the name is taken).
register_proposals = _REGISTRY.register


def available_proposals() -> list[str]:
    """Sorted names of the registered proposal sources."""
    return _REGISTRY.names()


def create_proposals(name: str, **kwargs: Any):
    """Build a registered proposal source.

    Args:
        name: registry key, e.g. ``"windows"``, ``"segments"``, ``"hybrid"``.
        **kwargs: options of that source's constructor.

    Returns:
        A callable ``source(image: np.ndarray (H, W, 3) uint8) -> np.ndarray (N, 4) float32``.

    Raises:
        UnknownNameError: ``name`` is not registered; the message lists the valid names.
        TypeError / ValueError: invalid options for that source.
    """
    return _REGISTRY.create(name, **kwargs)


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


from .regions import RegionMaskProposals  # noqa: E402
from .segments import SegmentProposals  # noqa: E402
from .windows import SlidingWindows  # noqa: E402
from .sam import SamBoxSegmenter, SamMaskProposals  # noqa: E402


@register_proposals("hybrid")
class HybridProposals:
    """Segment proposals plus coarse sliding windows, deduplicated.

    Segments find compact, colour-coherent objects with tight boxes; coarse
    windows add large or textured objects that segmentation over-splits.

    Args:
        segments: keyword options of :class:`SegmentProposals`.
        windows: keyword options of :class:`SlidingWindows` (default: scales
            0.3-0.9 of the shorter side, overlap 0.5).
        dedup_iou: boxes overlapping an earlier box by more than this IoU are dropped.
        max_boxes: cap on the number of returned boxes (segments first).
    """

    def __init__(self, segments: dict | None = None, windows: dict | None = None,
                 dedup_iou: float = 0.9, max_boxes: int = 500) -> None:
        self.segments = SegmentProposals(**(segments or {}))
        self.windows = SlidingWindows(**(windows or {"scales": (0.3, 0.5, 0.7, 0.9), "overlap": 0.5}))
        self.dedup_iou = float(dedup_iou)
        self.max_boxes = int(max_boxes)

    def __call__(self, image: np.ndarray) -> np.ndarray:
        """Boxes for an RGB uint8 (H, W, 3) image → float32 (N, 4) xyxy pixels of that image."""
        boxes = np.concatenate([self.segments(image), self.windows(image)])
        return dedup_boxes(boxes, self.dedup_iou)[: self.max_boxes]


__all__ = [
    "HybridProposals", "RegionMaskProposals", "SamBoxSegmenter", "SamMaskProposals", "SegmentProposals",
    "SlidingWindows", "available_proposals", "check_image",
    "create_proposals", "register_proposals",
]
