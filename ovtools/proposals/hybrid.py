"""``"hybrid"`` proposals: segments plus coarse sliding windows, deduplicated."""

from __future__ import annotations

import numpy as np

from ..geometry import dedup_boxes
from .registry import check_number, check_options, register_proposals
from .segments import SegmentProposals
from .windows import SlidingWindows


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

    Raises:
        TypeError: an unknown or mistyped option in ``segments`` / ``windows``
            (:func:`~ovtools.proposals.registry.check_options`).
        ValueError: ``dedup_iou`` outside (0, 1] or NaN, ``max_boxes`` < 1, or an option of
            ``segments`` / ``windows`` out of range.
    """

    def __init__(self, segments: dict | None = None, windows: dict | None = None,
                 dedup_iou: float = 0.9, max_boxes: int = 500) -> None:
        segments, windows = segments or {}, windows or {"scales": (0.3, 0.5, 0.7, 0.9), "overlap": 0.5}
        check_options("hybrid: segments", SegmentProposals, segments)
        check_options("hybrid: windows", SlidingWindows, windows)
        self.segments = SegmentProposals(**segments)
        self.windows = SlidingWindows(**windows)
        check_number("hybrid: dedup_iou", dedup_iou, low=0, low_open=True, high=1)
        check_number("hybrid: max_boxes", max_boxes, low=1)
        self.dedup_iou = float(dedup_iou)
        self.max_boxes = int(max_boxes)

    def __call__(self, image: np.ndarray) -> np.ndarray:
        """Boxes for an RGB uint8 (H, W, 3) image → float32 (N, 4) xyxy pixels of that image."""
        boxes = np.concatenate([self.segments(image), self.windows(image)])
        return dedup_boxes(boxes, self.dedup_iou)[: self.max_boxes]
