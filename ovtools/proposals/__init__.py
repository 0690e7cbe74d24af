"""Box and mask proposal sources, one registry (:mod:`ovtools.proposals.registry`).

A proposal source is a callable built with keyword options (``create_proposals(name, **options)``):
a box source maps an RGB uint8 (H, W, 3) image to float32 (N, 4) xyxy pixel boxes, a mask source
(``output = "masks"``) to bool (N, H, W) masks; see :mod:`ovtools.proposals.registry`.

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
