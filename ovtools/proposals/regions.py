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
import torch.nn.functional as F

from .image_input import felzenszwalb_input
from .registry import register_proposals
from .segments import hierarchical_grouping


def resize_masks(masks: np.ndarray | torch.Tensor, size: tuple[int, int]) -> np.ndarray:
    """Resize bool masks (N, h, w) to ``size = (H, W)``: bilinear on the 0/1 masks, then ``> 0.5``.

    Args:
        masks: bool (N, h, w) array or tensor.
        size: output ``(H, W)`` in pixels.

    Returns:
        bool (N, H, W) numpy array (processed in chunks to bound memory).
    """
    m = torch.as_tensor(np.asarray(masks) if not isinstance(masks, torch.Tensor) else masks)
    n = m.shape[0]
    if tuple(m.shape[1:]) == tuple(size):
        return m.cpu().numpy().astype(bool, copy=False)
    out = np.zeros((n, *size), bool)
    step = max(1, int(2**26 // max(1, size[0] * size[1])))  # ~64M floats per chunk
    for i in range(0, n, step):
        chunk = m[i : i + step, None].float()
        out[i : i + step] = (F.interpolate(chunk, size=size, mode="bilinear", align_corners=False)[:, 0] > 0.5).numpy()
    return out


def mask_iou(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """IoU between two sets of masks.

    Args:
        a: bool/float (N, H, W); b: bool/float (M, H, W) on the same grid.

    Returns:
        float32 (N, M) intersection over union (0 where both are empty).
    """
    fa = a.reshape(a.shape[0], -1).float()
    fb = b.reshape(b.shape[0], -1).float()
    inter = fa @ fb.T
    union = fa.sum(1)[:, None] + fb.sum(1)[None, :] - inter
    return torch.where(union > 0, inter / union.clamp(min=1e-6), torch.zeros_like(inter))


def greedy_keep(over: torch.Tensor) -> torch.Tensor:
    """Greedy suppression in priority order: item i survives unless a surviving earlier item suppresses it.

    Args:
        over: bool (N, N), ``over[i, j]`` = item i (earlier, higher priority) suppresses item j; only the
            upper triangle (j > i) is read.

    Returns:
        bool (N,) survivors.  Shared by mask de-duplication, mask NMS and cross-label box suppression.
    """
    over = torch.triu(over, diagonal=1)
    removed = torch.zeros(over.shape[0], dtype=torch.bool)
    for i in range(over.shape[0]):  # N steps of an (N,) "or"
        if not removed[i]:
            removed |= over[i]
    return ~removed


def dedup_masks(masks: torch.Tensor, iou: float, grid: int = 64) -> torch.Tensor:
    """Indices of masks kept after greedy de-duplication, in priority order (earlier wins).

    Args:
        masks: bool (N, H, W), in priority order.
        iou: a mask whose IoU (on a ``grid``-sized coarse copy) with an earlier kept mask exceeds
            this is dropped.
        grid: longer side of the coarse grid the IoU is measured on.

    Returns:
        int64 (K,) indices into ``masks``, increasing.
    """
    n, h, w = masks.shape
    if n == 0:
        return torch.zeros(0, dtype=torch.long)
    f = min(1.0, grid / max(h, w))
    small = F.adaptive_avg_pool2d(masks[:, None].float(), (max(1, round(h * f)), max(1, round(w * f))))[:, 0]
    return greedy_keep(mask_iou(small, small) > iou).nonzero(as_tuple=True)[0]


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

    Raises:
        ValueError: empty or non-positive ``scales``, or limits out of range.

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
    ) -> None:
        self.scales = tuple(float(s) for s in scales)
        if not self.scales or min(self.scales) <= 0:
            raise ValueError(f"scales must be a non-empty sequence of positive numbers, got {scales!r}")
        if not 0 <= min_area < max_area <= 1:
            raise ValueError(f"need 0 <= min_area < max_area <= 1, got {min_area}, {max_area}")
        if max_masks < 1 or min_region < 1:
            raise ValueError("max_masks and min_region must be >= 1")
        if not 0 < dedup_iou <= 1:
            raise ValueError(f"dedup_iou must be in (0, 1], got {dedup_iou}")
        self.sigma, self.min_region, self.merge = float(sigma), int(min_region), bool(merge)
        self.max_side = max_side
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
        from skimage.segmentation import felzenszwalb

        work, min_region = felzenszwalb_input(image, self.max_side, self.min_region)
        h, w = image.shape[:2]
        rng = np.random.default_rng(self.seed)
        masks, ranks = [], []
        for k in self.scales:
            labels = felzenszwalb(work, scale=k, sigma=self.sigma, min_size=min_region)
            member, level = self._groups(labels, work)
            area = member.astype(np.float64) @ np.bincount(labels.ravel(), minlength=member.shape[1]) / labels.size
            ok = (area >= self.min_area) & (area <= self.max_area)
            member, level = member[ok], level[ok]
            masks.append(torch.from_numpy(member[:, labels]))  # (G, wh, ww)
            ranks.append(level * rng.random(len(level)))
        if not masks or sum(len(m) for m in masks) == 0:
            return np.zeros((0, h, w), bool)
        m = torch.cat(masks)
        order = torch.from_numpy(np.argsort(np.concatenate(ranks), kind="stable"))
        m = m[order]
        keep = dedup_masks(m, self.dedup_iou)[: self.max_masks]
        return resize_masks(m[keep], (h, w))
