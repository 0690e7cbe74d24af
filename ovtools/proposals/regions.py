"""Classical mask proposals: Felzenszwalb regions and their selective-search merges, as masks.

The mask counterpart of :class:`~ovtools.proposals.segments.SegmentProposals`,
needing no weights:

1. over-segment the image with Felzenszwalb & Huttenlocher's graph method
   (IJCV 2004, :func:`skimage.segmentation.felzenszwalb`) at several scales;
2. merge adjacent regions greedily by colour, size and fill similarity
   (selective search, Uijlings et al. IJCV 2013, Algorithm 1 — see
   :func:`~ovtools.proposals.segments.hierarchical_grouping`); every initial
   region and every merged group is a candidate mask (the union of its regions);
3. candidates smaller than ``min_area`` or larger than ``max_area`` (fractions of
   the image) are dropped, and near-duplicates (mask IoU above ``dedup_iou``,
   measured on a coarse grid) are removed in rank order, where rank = hierarchy
   level × a seeded uniform factor (Uijlings §3.3);
4. masks are returned at the input image's size (bilinear upsampling of the
   working-resolution masks, thresholded at 0.5).

Registered as ``"regions"``.  On the generated shapes scenes (192 px) the
defaults give ~100–250 masks per image.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from skimage.segmentation import felzenszwalb

from ..geometry import dedup_masks, resize_masks
from .image_input import check_felzenszwalb_options, felzenszwalb_input, map_in_threads
from .registry import check_number, register_proposals
from .segments import hierarchical_grouping


@register_proposals("regions")
class RegionMaskProposals:
    """Felzenszwalb regions and their selective-search merges as mask proposals (no weights needed).

    Args:
        scales: Felzenszwalb ``scale`` values (larger → larger regions), one segmentation each.
        sigma: Gaussian pre-smoothing (pixels) of the segmentation.
        min_region: smallest Felzenszwalb region in pixels at 192 px longer side (scaled with
            the area actually segmented).
        merge: add the selective-search merges of adjacent regions (``False``: initial regions only).
        max_side: segment the image downscaled to this longer side (``None``: never); masks are
            returned at the input's size.
        min_area: masks covering less than this fraction of the image are dropped.
        max_area: masks covering more than this fraction of the image are dropped.
        dedup_iou: of two masks with IoU above this, the lower-ranked is dropped.
        max_masks: cap on the number of masks (best-ranked first).
        seed: seed of the ranking's random factor.
        workers: threads for the segmentations (one per scale): ``None`` = one each, up to torch's
            thread count (``torch.get_num_threads()``); 1 = the calling thread.  The masks do not
            depend on it.

    Raises:
        ValueError: empty or non-positive ``scales``, limits out of range (NaN, negative ``sigma`` / ``seed``,
            ``max_side`` < 16), ``workers`` < 1.

    Example:
        >>> src = RegionMaskProposals()
        >>> masks = src(np.zeros((60, 80, 3), np.uint8))
        >>> masks.dtype, masks.shape[1:]
        (dtype('bool'), (60, 80))
    """

    output = "masks"

    def __init__(
        self,
        scales: Sequence[float] = (50.0, 150.0, 400.0),
        sigma: float = 0.8,
        min_region: int = 30,
        merge: bool = True,
        max_side: int | None = 320,
        min_area: float = 0.0005,
        max_area: float = 0.95,
        dedup_iou: float = 0.9,
        max_masks: int = 300,
        seed: int = 0,
        workers: int | None = None,
    ) -> None:
        self.scales, self.workers = check_felzenszwalb_options("regions", scales, sigma, min_region, max_side, seed,
                                                               workers)
        if not 0 <= min_area < max_area <= 1:
            raise ValueError(f"regions: need 0 <= min_area < max_area <= 1, got {min_area}, {max_area}")
        check_number("regions: max_masks", max_masks, low=1)
        if not 0 < dedup_iou <= 1:
            raise ValueError(f"regions: dedup_iou must be in (0, 1], got {dedup_iou}")
        self.sigma, self.min_region, self.merge = float(sigma), int(min_region), bool(merge)
        self.max_side = None if max_side is None else int(max_side)
        self.min_area, self.max_area, self.dedup_iou = float(min_area), float(max_area), float(dedup_iou)
        self.max_masks, self.seed = int(max_masks), int(seed)

    def _groups(self, labels: np.ndarray, work: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Membership (G, R) of every group in the R initial regions, and the groups' hierarchy levels (G,)."""
        r = int(labels.max()) + 1
        if not self.merge:
            return np.eye(r, dtype=bool), np.ones(r, np.int64)
        _, level, merges = hierarchical_grouping(labels, work)
        member = np.zeros((r + len(merges), r), bool)
        member[np.arange(r), np.arange(r)] = True
        for m, (i, j) in enumerate(merges):
            member[r + m] = member[i] | member[j]
        return member, level[: len(member)]

    def __call__(self, image: np.ndarray) -> np.ndarray:
        """Masks for one image.

        Args:
            image: RGB uint8 (H, W, 3).

        Returns:
            bool (N, H, W) masks at the input's size, best-ranked first, ``N <= max_masks``
            (``(0, H, W)`` if none survive the filters).

        Raises:
            TypeError / ValueError: ``image`` is not an RGB uint8 (H, W, 3) array.
        """
        work, min_region = felzenszwalb_input(image, self.max_side, self.min_region)
        h, w = image.shape[:2]
        rng = np.random.default_rng(self.seed)

        def one(k: float) -> tuple[torch.Tensor, np.ndarray]:
            labels = felzenszwalb(work, scale=k, sigma=self.sigma, min_size=min_region)
            member, level = self._groups(labels, work)
            area = member.astype(np.float64) @ np.bincount(labels.ravel(), minlength=member.shape[1]) / labels.size
            ok = (area >= self.min_area) & (area <= self.max_area)
            return torch.from_numpy(member[ok][:, labels]), level[ok]  # (G, wh, ww), (G,)

        masks, ranks = [], []
        for m, level in map_in_threads(one, self.scales, self.workers):  # in scale order: the ranks are seeded
            masks.append(m)
            ranks.append(level * rng.random(len(level)))
        if not masks or sum(len(m) for m in masks) == 0:
            return np.zeros((0, h, w), bool)
        m = torch.cat(masks)
        order = torch.from_numpy(np.argsort(np.concatenate(ranks), kind="stable"))
        m = m[order]
        keep = dedup_masks(m, self.dedup_iou)[: self.max_masks]
        return resize_masks(m[keep], (h, w))
