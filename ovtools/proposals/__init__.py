"""Box and mask proposal sources, one registry (:mod:`ovtools.proposals.registry`).

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

from .hybrid import HybridProposals
from .image_input import check_image, downscale, felzenszwalb_input
from .regions import RegionMaskProposals
from .registry import PROPOSALS, available_proposals, create_proposals, register_proposals
from .sam import SamBoxSegmenter, SamMaskProposals
from .segments import SegmentProposals
from .windows import SlidingWindows

__all__ = [
    "HybridProposals", "PROPOSALS", "RegionMaskProposals", "SamBoxSegmenter", "SamMaskProposals",
    "SegmentProposals", "SlidingWindows", "available_proposals", "check_image", "create_proposals", "downscale",
    "felzenszwalb_input", "register_proposals",
]
