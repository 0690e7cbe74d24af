"""COCO detection metrics through pycocotools' ``COCOeval`` (Lin et al. 2014).

AP is the mean over IoU thresholds 0.50:0.05:0.95 and categories; AP50 at IoU
0.5; AR@100 the recall with at most 100 detections per image.
"""

from __future__ import annotations

import contextlib
import io

import numpy as np
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

STAT_NAMES = ["AP", "AP50", "AP75", "AP_small", "AP_medium", "AP_large", "AR1", "AR10", "AR100",
              "AR_small", "AR_medium", "AR_large"]


def coco_detection_metrics(coco_gt, results: list[dict], iou_type: str = "bbox") -> dict:
    """Evaluate COCO-format results against ground truth.

    Args:
        coco_gt: a ``pycocotools.coco.COCO`` object, or a path to an instances JSON.
        results: COCO results (``image_id``, ``category_id``, ``bbox`` [x, y, w, h] in pixels, ``score``).
        iou_type: ``"bbox"`` or ``"segm"`` (results then carry RLE ``segmentation``).

    Returns:
        Dict of the 12 standard COCOeval statistics (``AP``, ``AP50``, ... ``AR100`` ...) in [0, 1];
        -1 where COCOeval has nothing to measure. With no results at all every value is 0.
    """
    if not isinstance(coco_gt, COCO):
        with contextlib.redirect_stdout(io.StringIO()):
            coco_gt = COCO(str(coco_gt))
    if not results:
        return {k: 0.0 for k in STAT_NAMES}
    with contextlib.redirect_stdout(io.StringIO()):
        dt = coco_gt.loadRes(results)
        ev = COCOeval(coco_gt, dt, iou_type)
        ev.params.imgIds = sorted(coco_gt.getImgIds())
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return {k: float(np.round(v, 6)) for k, v in zip(STAT_NAMES, ev.stats)}
