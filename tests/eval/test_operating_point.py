"""Precision, recall and duplicates of exactly what a pipeline reports (``ovtools.eval.operating_point``)."""

from __future__ import annotations

import contextlib
import io

import pytest
from pycocotools import mask as mask_utils
from pycocotools.coco import COCO

from ovtools.eval.operating_point import operating_point_metrics


@pytest.fixture
def coco():
    c = COCO()
    c.dataset = {
        "images": [{"id": "a", "width": 100, "height": 100}, {"id": "b", "width": 100, "height": 100}],
        "categories": [{"id": 1, "name": "star"}, {"id": 2, "name": "circle"}],
        "annotations": [
            {"id": 1, "image_id": "a", "category_id": 1, "bbox": [10, 10, 40, 40], "area": 1600, "iscrowd": 0},
            {"id": 2, "image_id": "a", "category_id": 2, "bbox": [60, 60, 30, 30], "area": 900, "iscrowd": 0},
            {"id": 3, "image_id": "b", "category_id": 2, "bbox": [0, 0, 50, 50], "area": 2500, "iscrowd": 0},
            {"id": 4, "image_id": "b", "category_id": 1, "bbox": [60, 0, 40, 40], "area": 1600, "iscrowd": 1},
        ]}
    with contextlib.redirect_stdout(io.StringIO()):
        c.createIndex()
    return c


def det(image, cat, box, score):
    return {"image_id": image, "category_id": cat, "bbox": box, "score": score}


def test_counts_match_what_a_user_sees(coco):
    results = [
        det("a", 1, [10, 10, 40, 40], 0.9),   # true positive
        det("a", 1, [12, 12, 20, 20], 0.8),   # a part of the same star: duplicate
        det("a", 1, [11, 11, 39, 39], 0.7),   # the star again: duplicate (its object is matched already)
        det("a", 2, [0, 60, 20, 20], 0.6),    # a circle where there is none: false positive, not a duplicate
        det("b", 1, [60, 0, 40, 40], 0.95),   # on a crowd region of its category: ignored, as COCOeval does
    ]
    m = operating_point_metrics(coco, results)
    assert m["objects"] == 3 and m["true_positives"] == 1
    assert m["false_positives"] == 3 and m["duplicates"] == 2
    assert m["precision"] == pytest.approx(1 / 4) and m["recall"] == pytest.approx(1 / 3)
    assert m["duplicates_per_object"] == pytest.approx(2 / 3)


def test_wrong_label_on_an_object_is_a_false_positive_and_nothing_reported_is_precise(coco):
    m = operating_point_metrics(coco, [det("b", 1, [0, 0, 50, 50], 0.9)])
    assert m["true_positives"] == 0 and m["false_positives"] == 1 and m["duplicates"] == 0
    none = operating_point_metrics(coco, [])
    assert none["precision"] == 1.0 and none["recall"] == 0.0


def test_masks_are_matched_by_mask_iou(coco):
    for a in coco.dataset["annotations"]:
        x, y, w, h = a["bbox"]
        a["segmentation"] = [[x, y, x + w, y, x + w, y + h, x, y + h]]
    with contextlib.redirect_stdout(io.StringIO()):
        coco.createIndex()
    rle = mask_utils.frPyObjects([[10, 10, 50, 10, 50, 50, 10, 50]], 100, 100)[0]
    rle["counts"] = rle["counts"].decode()
    hit = {**det("a", 1, [10, 10, 40, 40], 0.9), "segmentation": rle}
    m = operating_point_metrics(coco, [hit], segm=True)
    assert m["true_positives"] == 1 and m["false_positives"] == 0
