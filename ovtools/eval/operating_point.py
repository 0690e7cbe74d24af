"""What a user sees at the preset's threshold: precision, recall and duplicates per object.

AP ranks every detection a pipeline could report; a user sees only the ones it does
report (those reaching ``score_threshold`` and beating their negatives).  These figures
score exactly those (COCO matching rules at one IoU):

* a reported detection is a *true positive* if it overlaps an unmatched ground-truth
  object of the same category with IoU >= ``iou`` (boxes, or masks for segmentation;
  greedy, most confident first, as COCOeval does at one IoU threshold);
* ``precision`` = TP / reported, ``recall`` = TP / ground-truth objects; as in COCOeval,
  ``iscrowd`` regions are not objects, and a detection lying on a crowd region of its
  category (at least ``iou`` of its area) is ignored;
* a false positive lying mostly inside a ground-truth object of the same category
  (at least ``inside`` of its box area) is a *duplicate*: a second box on an object that
  was found, or a part of it; ``duplicates_per_object`` = duplicates / ground-truth objects.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence

import numpy as np
from pycocotools import mask as mask_utils


def _inside_fraction(dt: np.ndarray, gt: np.ndarray) -> np.ndarray:
    """(D, G) fraction of each xywh box in ``dt`` covered by each xywh box in ``gt``."""
    x0 = np.maximum(dt[:, None, 0], gt[None, :, 0])
    y0 = np.maximum(dt[:, None, 1], gt[None, :, 1])
    x1 = np.minimum(dt[:, None, 0] + dt[:, None, 2], gt[None, :, 0] + gt[None, :, 2])
    y1 = np.minimum(dt[:, None, 1] + dt[:, None, 3], gt[None, :, 1] + gt[None, :, 3])
    inter = np.clip(x1 - x0, 0, None) * np.clip(y1 - y0, 0, None)
    return inter / np.maximum(dt[:, None, 2] * dt[:, None, 3], 1e-9)


def operating_point_metrics(coco, results: Sequence[dict], iou: float = 0.5, segm: bool = False,
                            inside: float = 0.5) -> dict:
    """Precision, recall and duplicates of the reported detections.

    Args:
        coco: the ground truth (``pycocotools.coco.COCO``).
        results: COCO results (``image_id``, ``category_id``, ``bbox`` xywh pixels, ``score``,
            ``segmentation`` RLE for ``segm``), exactly what the pipeline reported.
        iou: matching threshold (0.5, as AP50).
        segm: match masks (RLE) instead of boxes.
        inside: a false positive covered at least this much by a same-category object is a duplicate.

    Returns:
        ``{"precision", "recall", "duplicates_per_object", "true_positives", "false_positives",
        "duplicates", "objects"}`` (precision is 1.0 when nothing was reported).
    """
    by_image: dict = defaultdict(list)
    for r in results:
        by_image[r["image_id"]].append(r)
    tp = fp = dup = n_gt = 0
    for img_id in coco.getImgIds():
        anns = coco.imgToAnns.get(img_id, [])
        gts = [a for a in anns if not a.get("iscrowd", 0)]
        crowd = [a for a in anns if a.get("iscrowd", 0)]
        n_gt += len(gts)
        dts = sorted(by_image.get(img_id, []), key=lambda r: -r["score"])
        if not dts:
            continue
        matched = set()
        if gts:
            if segm:
                ious = mask_utils.iou([d["segmentation"] for d in dts], [coco.annToRLE(g) for g in gts],
                                      [0] * len(gts))
            else:
                ious = mask_utils.iou([d["bbox"] for d in dts], [g["bbox"] for g in gts], [0] * len(gts))
            ious = np.asarray(ious, dtype=np.float64).reshape(len(dts), len(gts))
            cover = _inside_fraction(np.asarray([d["bbox"] for d in dts], np.float64),
                                     np.asarray([g["bbox"] for g in gts], np.float64))
        for i, d in enumerate(dts):
            best, best_iou = -1, iou
            for j, g in enumerate(gts):
                if j in matched or g["category_id"] != d["category_id"] or ious[i, j] < best_iou:
                    continue
                best, best_iou = j, ious[i, j]
            if best >= 0:
                matched.add(best)
                tp += 1
                continue
            if crowd and any(c["category_id"] == d["category_id"] and cover_c >= iou for c, cover_c in zip(
                    crowd, _inside_fraction(np.asarray([d["bbox"]], np.float64),
                                            np.asarray([c["bbox"] for c in crowd], np.float64))[0])):
                continue  # on a crowd region of its category: ignored
            fp += 1
            if gts and any(g["category_id"] == d["category_id"] and cover[i, j] >= inside for j, g in enumerate(gts)):
                dup += 1
    reported = tp + fp
    return {"precision": tp / reported if reported else 1.0, "recall": tp / n_gt if n_gt else None,
            "duplicates_per_object": dup / n_gt if n_gt else None, "true_positives": tp, "false_positives": fp,
            "duplicates": dup, "objects": n_gt}
