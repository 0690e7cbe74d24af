"""COCO detection metrics through pycocotools' ``COCOeval`` (Lin et al. 2014).

AP is the mean over IoU thresholds 0.50:0.05:0.95 and categories; AP50 at IoU
0.5; AR@100 the recall with at most 100 detections per image.

Image and category ids may be numbers or strings (as pycocotools accepts them);
``COCOeval`` itself sorts and de-duplicates them with ``numpy.unique``, which turns
a mix of numbers and strings into strings and silently matches nothing.  The
evaluation therefore runs on a copy whose ids are replaced by 1..N, the same
mapping for ground truth and results, so any id a file gives is matched
exactly (``1`` and ``"1"`` stay different ids, as in pycocotools).
"""

from __future__ import annotations

import contextlib
import io
from pathlib import Path

import numpy as np
from pycocotools.cocoeval import COCOeval

from ..datasets.coco import coco_index, id_order, read_coco

STAT_NAMES = ["AP", "AP50", "AP75", "AP_small", "AP_medium", "AP_large", "AR1", "AR10", "AR100",
              "AR_small", "AR_medium", "AR_large"]


def _unknown(results: list[dict], key: str, known: dict, what: str) -> None:
    bad = {repr(r.get(key)) for r in results if r.get(key) not in known}
    if bad:
        sample = sorted(known, key=id_order)[:3]
        raise ValueError(f"results name {what} ids that are not in the ground truth: {sorted(bad)[:5]}; the ground "
                         f"truth has e.g. {sample!r} (ids are compared with their type: 1 and '1' differ)")


def coco_detection_metrics(coco_gt, results: list[dict], iou_type: str = "bbox") -> dict:
    """Evaluate COCO-format results against ground truth.

    Args:
        coco_gt: a ``pycocotools.coco.COCO`` object (e.g. ``read_coco(...).coco``), or a path to
            an instances JSON (read with :func:`~ovtools.datasets.coco.read_coco`).
        results: COCO results (``image_id``, ``category_id``, ``bbox`` [x, y, w, h] in pixels, ``score``),
            ids as the ground truth spells them; not modified.
        iou_type: ``"bbox"`` or ``"segm"`` (results then carry RLE ``segmentation``).

    Returns:
        Dict of the 12 standard COCOeval statistics (``AP``, ``AP50``, ... ``AR100`` ...) in [0, 1];
        -1 where COCOeval has nothing to measure. With no results at all every value is 0.

    Raises:
        ValueError: an unknown ``iou_type``, or a result whose image or category id is not in the
            ground truth (names the ids).
    """
    if iou_type not in ("bbox", "segm"):
        raise ValueError(f"iou_type must be 'bbox' or 'segm', got {iou_type!r}")
    if isinstance(coco_gt, (str, Path)):
        coco_gt = read_coco(coco_gt).coco
    if not results:
        return {k: 0.0 for k in STAT_NAMES}
    images = {i: k for k, i in enumerate(sorted(coco_gt.imgs, key=id_order), start=1)}
    cats = {c: k for k, c in enumerate(sorted(coco_gt.cats, key=id_order), start=1)}
    _unknown(results, "image_id", images, "image")
    _unknown(results, "category_id", cats, "category")
    d = coco_gt.dataset
    gt = coco_index({
        "images": [{**im, "id": images[im["id"]]} for im in d["images"]],
        "categories": [{**c, "id": cats[c["id"]]} for c in d["categories"]],
        "annotations": [{**a, "image_id": images[a["image_id"]], "category_id": cats[a["category_id"]]}
                        for a in d.get("annotations", [])],
    })
    # copies: loadRes adds id, area (and a box polygon) to the dicts it is given
    dt_list = [{**r, "image_id": images[r["image_id"]], "category_id": cats[r["category_id"]]} for r in results]
    with contextlib.redirect_stdout(io.StringIO()):
        dt = gt.loadRes(dt_list)
        ev = COCOeval(gt, dt, iou_type)
        ev.params.imgIds = sorted(gt.getImgIds())
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return {k: float(np.round(v, 6)) for k, v in zip(STAT_NAMES, ev.stats)}
