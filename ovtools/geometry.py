"""Box and mask geometry shared by proposals, heads and datasets: context boxes, masks ↔ boxes, IoU, NMS, crops.

The ground floor under :mod:`ovtools.proposals`, :mod:`ovtools.heads` and
:mod:`ovtools.datasets` (it imports none of them).  Conventions:

* boxes are xyxy in pixels of the image they refer to, float32; a tight box of a mask has
  ``x_max`` = last column + 1 (pixel edges, as COCO and ``torchvision.ops.masks_to_boxes`` + 1);
* masks are bool (N, H, W);
* "greedy suppression" walks items in priority order (earlier wins), as in the NMS of
  Girshick et al., Fast R-CNN (ICCV 2015).

Box IoU and box NMS come from :mod:`torchvision.ops`; crops are resampled with
:func:`torchvision.ops.roi_align` (Mask R-CNN, He et al. ICCV 2017, §3).
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torchvision.ops import nms, roi_align


# ------------------------------------------------------------------------ boxes
def square_context_boxes(boxes: torch.Tensor, padding: float) -> torch.Tensor:
    """Enlarge boxes by ``padding`` × their longer side on every side and make them square.

    Args:
        boxes: float (N, 4) xyxy pixels.
        padding: fraction of the longer side added on each side (>= 0).

    Returns:
        float32 (N, 4) square xyxy boxes with the same centres, side
        ``max(w, h) * (1 + 2 * padding)``; they may extend beyond the image.

    Example:
        >>> square_context_boxes(torch.tensor([[0.0, 20, 40, 60]]), 0.25)
        tensor([[-10.,  10.,  50.,  70.]])
    """
    boxes = boxes.float()
    c = (boxes[:, :2] + boxes[:, 2:]) / 2
    side = (boxes[:, 2:] - boxes[:, :2]).max(dim=1).values.clamp(min=1.0) * (1 + 2 * padding)
    half = (side / 2)[:, None]
    return torch.cat([c - half, c + half], dim=1)


def boxes_from_masks(masks) -> np.ndarray:
    """Tight boxes of masks.

    Args:
        masks: bool (N, H, W), numpy or a CPU tensor.

    Returns:
        float32 (N, 4) xyxy pixels (``x_max`` = last column + 1); an empty mask gives
        ``[0, 0, 0, 0]``; ``(0, 4)`` for N = 0.
    """
    masks = np.asarray(masks, bool)
    n, h, w = masks.shape
    out = np.zeros((n, 4), np.float32)
    if n == 0:
        return out
    rows, cols = masks.any(2), masks.any(1)  # (N, H), (N, W)
    found = rows.any(1)
    out[:, 0] = cols.argmax(1)
    out[:, 1] = rows.argmax(1)
    out[:, 2] = w - cols[:, ::-1].argmax(1)
    out[:, 3] = h - rows[:, ::-1].argmax(1)
    out[~found] = 0
    return out


def dedup_boxes(boxes: np.ndarray, iou: float) -> np.ndarray:
    """Remove near-duplicate boxes, keeping the first of each group (:func:`torchvision.ops.nms`).

    Args:
        boxes: float32 (N, 4) xyxy boxes, in priority order (earlier wins).
        iou: a box whose IoU with an earlier kept box exceeds this is dropped.

    Returns:
        float32 (M, 4) kept boxes, in their original order.
    """
    if len(boxes) == 0:
        return np.zeros((0, 4), np.float32)
    t = torch.as_tensor(np.asarray(boxes, np.float32))
    scores = torch.arange(len(t), 0, -1, dtype=torch.float32)
    keep = nms(t, scores, float(iou)).sort().values
    return t[keep].numpy()


# ------------------------------------------------------------------------ masks
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


# ------------------------------------------------------------------------ suppression
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


def mask_nms(masks: torch.Tensor, scores: torch.Tensor, class_id: torch.Tensor, iou: float) -> torch.Tensor:
    """Per-class greedy NMS on mask IoU.

    Args:
        masks: bool (N, H, W); scores: float (N,); class_id: int (N,).
        iou: of two same-class masks with IoU above this, the lower-scoring one is removed.

    Returns:
        int64 (K,) kept indices, by decreasing score.
    """
    order = scores.argsort(descending=True)
    if len(order) == 0:
        return order
    same = class_id[order][:, None] == class_id[order][None, :]
    return order[greedy_keep((mask_iou(masks[order], masks[order]) > iou) & same)]


# ------------------------------------------------------------------------ crops
def masked_roi_crops(image: torch.Tensor, rois: torch.Tensor, size: int | tuple[int, int],
                     masks: torch.Tensor | None = None, fill: torch.Tensor | None = None) -> torch.Tensor:
    """Crops of ``image`` resampled to ``size``, pixels outside each (soft, resampled) mask replaced by ``fill``.

    The masked-crop recipe of OVSeg (Liang et al. CVPR 2023, §3): one batched
    :func:`torchvision.ops.roi_align` (aligned, 2 × 2 samples per bin; samples outside the
    image read 0) crops the image, a second crops mask i for roi i, and the two are blended:
    ``crop · m + fill_crop · (1 − m)``.

    Args:
        image: float (1, C, H, W), usually normalised (then 0 = the encoder's mean colour).
        rois: float (N, 4) xyxy pixels of ``image`` (e.g. :func:`square_context_boxes`).
        size: output side, or ``(h, w)``, in pixels.
        masks: bool/float (N, H, W) on the image's grid, one per roi; ``None``: plain crops.
        fill: float (1, C, H, W) image whose crop fills outside the mask (e.g. a blurred copy);
            ``None``: 0.

    Returns:
        float32 (N, C, h, w) crops on ``image``'s device.

    Raises:
        ValueError: ``masks`` does not have one mask per roi on the image's grid.
    """
    crops = roi_align(image, [rois], output_size=size, spatial_scale=1.0, sampling_ratio=2, aligned=True)
    if masks is None:
        return crops
    if masks.shape[0] != rois.shape[0] or tuple(masks.shape[1:]) != tuple(image.shape[-2:]):
        raise ValueError(f"masks must have shape ({rois.shape[0]}, {image.shape[-2]}, {image.shape[-1]}), "
                         f"got {tuple(masks.shape)}")
    idx = torch.arange(len(rois), device=rois.device, dtype=rois.dtype)[:, None]
    soft = roi_align(masks[:, None].to(image.dtype), torch.cat([idx, rois], 1), output_size=size, spatial_scale=1.0,
                     sampling_ratio=2, aligned=True)
    bg = (roi_align(fill, [rois], output_size=size, spatial_scale=1.0, sampling_ratio=2, aligned=True)
          if fill is not None else torch.zeros_like(crops))
    return crops * soft + bg * (1 - soft)


__all__ = [
    "boxes_from_masks", "dedup_boxes", "dedup_masks", "greedy_keep", "mask_iou", "mask_nms", "masked_roi_crops",
    "resize_masks", "square_context_boxes",
]
