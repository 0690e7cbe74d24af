"""Semantic-segmentation metrics: confusion matrix and mean IoU.

Per-class IoU = TP / (TP + FP + FN), accumulated over the whole dataset (not averaged
per image), as in PASCAL VOC and the mmsegmentation / detectron2 evaluators.  mIoU is the
mean over the classes that occur in the ground truth; pixels labelled ``ignore_index`` in
the ground truth are not counted.  Background (no class) is its own row/column: a
prediction of class c on background pixels is a false positive of c, and background
predicted on class-c pixels is a false negative of c; background IoU is reported apart
and is not part of mIoU.
"""

from __future__ import annotations

import numpy as np

from ..errors import first_line


class ConfusionMatrix:
    """Accumulates a (C + 1) × (C + 1) pixel confusion matrix; row = ground truth, column = prediction.

    Index 0 is background (``-1`` in label maps), index ``c + 1`` is class ``c``.

    Args:
        num_classes: C.
        ignore_index: ground-truth value whose pixels are skipped (e.g. 255); ``None``: none.
    """

    def __init__(self, num_classes: int, ignore_index: int | None = None) -> None:
        if num_classes < 1:
            raise ValueError(f"num_classes must be >= 1, got {num_classes}")
        self.num_classes = int(num_classes)
        self.ignore_index = ignore_index
        self.matrix = np.zeros((num_classes + 1, num_classes + 1), np.int64)

    def update(self, gt: np.ndarray, pred: np.ndarray) -> None:
        """Add one image (or point cloud).

        Args:
            gt: int (H, W) or (N,) ground-truth class ids, ``-1`` = background.
            pred: int array of the same shape, ``-1`` = background.

        Raises:
            ValueError: shapes differ, or ids outside ``[-1, C)``.
        """
        if np.shape(gt) != np.shape(pred):
            raise ValueError(f"ground truth has shape {np.shape(gt)}, prediction {np.shape(pred)}")
        gt, pred = np.asarray(gt).ravel(), np.asarray(pred).ravel()
        if self.ignore_index is not None:
            keep = gt != self.ignore_index
            gt, pred = gt[keep], pred[keep]
        c = self.num_classes
        for name, a in (("ground truth", gt), ("prediction", pred)):
            if a.size and (a.min() < -1 or a.max() >= c):
                raise ValueError(f"{name} holds ids outside [-1, {c}): {int(a.min())}..{int(a.max())}")
        idx = (gt.astype(np.int64) + 1) * (c + 1) + (pred.astype(np.int64) + 1)
        self.matrix += np.bincount(idx, minlength=(c + 1) ** 2).reshape(c + 1, c + 1)

    def iou(self) -> np.ndarray:
        """float64 (C + 1,) IoU of background then each class; NaN where a class is neither in GT nor predicted."""
        m = self.matrix
        tp = np.diag(m).astype(np.float64)
        denom = m.sum(0) + m.sum(1) - tp
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(denom > 0, tp / denom, np.nan)

    def metrics(self, class_names: list[str] | None = None) -> dict:
        """``{"mIoU", "background_IoU", "pixel_accuracy", "per_class_IoU", "classes_in_gt"}``.

        mIoU averages the classes present in the ground truth (module docs).
        """
        iou = self.iou()
        in_gt = self.matrix[1:].sum(1) > 0
        per = iou[1:]
        miou = float(np.mean(per[in_gt])) if in_gt.any() else float("nan")
        total = self.matrix.sum()
        names = class_names or [str(i) for i in range(self.num_classes)]
        return {
            "mIoU": round(miou, 6),
            "background_IoU": None if np.isnan(iou[0]) else round(float(iou[0]), 6),
            "pixel_accuracy": round(float(np.trace(self.matrix) / total), 6) if total else None,
            "per_class_IoU": {names[i]: round(float(per[i]), 6) for i in np.nonzero(in_gt)[0]},
            "classes_in_gt": int(in_gt.sum()),
        }


def coco_label_map(coco, image_id: int, category_to_class: dict[int, int], size: tuple[int, int]) -> np.ndarray:
    """Ground-truth semantic map of one COCO image.

    Args:
        coco: a ``pycocotools.coco.COCO`` with segmentation annotations.
        image_id: the image.
        category_to_class: COCO category id → class id (categories not in it are skipped).
        size: ``(H, W)`` expected; the image entry's size must match.

    Returns:
        int32 (H, W): class id of each pixel, ``-1`` where no annotation covers it; where
        annotations overlap, the later one in the file wins (iscrowd annotations included).

    Raises:
        ValueError: the annotation file gives another image size.
    """
    info = coco.imgs[image_id]
    h, w = int(info["height"]), int(info["width"])
    if (h, w) != tuple(size):
        raise ValueError(f"image {image_id}: annotations are for {h}x{w} pixels, the image is {size[0]}x{size[1]}")
    out = np.full((h, w), -1, np.int32)
    for ann in coco.imgToAnns.get(image_id, []):
        c = category_to_class.get(ann["category_id"])
        if c is not None and ann.get("segmentation"):
            out[coco.annToMask(ann).astype(bool)] = c
    return out


def check_segmentations(coco, source: str = "annotations") -> None:
    """Decode every annotation's mask once, so that a malformed file fails before any image is scored.

    Args:
        coco: a ``pycocotools.coco.COCO``.
        source: the file name, for messages.

    Raises:
        ValueError: an annotation without ``segmentation``, one pycocotools cannot decode (bad RLE,
            polygon with fewer than 3 points, wrong type), or a mask whose size is not its image's;
            the message names the file, the annotation id and the image id.
    """
    for ann in coco.dataset.get("annotations", []):
        where = f"{source}: annotation {ann.get('id')} (image {ann.get('image_id')})"
        seg = ann.get("segmentation")
        if not seg:
            raise ValueError(f"{where} has no segmentation; segmentation needs instance masks (RLE or polygons)")
        if isinstance(seg, list) and any(not isinstance(p, list) or len(p) < 6 for p in seg):
            raise ValueError(f"{where}: a polygon needs at least 3 points (6 numbers)")
        try:
            m = coco.annToMask(ann)
        except Exception as e:  # pycocotools raises many types on malformed input
            raise ValueError(f"{where}: segmentation cannot be decoded ({first_line(e)})") from None
        info = coco.imgs.get(ann.get("image_id"), {})
        size = (int(info.get("height", -1)), int(info.get("width", -1)))
        if m.shape != size:
            raise ValueError(f"{where}: mask is {m.shape[0]}x{m.shape[1]} pixels, the image entry {size[0]}x{size[1]}")
