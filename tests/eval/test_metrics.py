"""Metric code: zero-shot accuracy, linear probe, COCO AP."""

from __future__ import annotations

import numpy as np
import pytest

from ovtools.eval import classification_metrics, coco_detection_metrics, linear_probe, sample_k_shot


def test_classification_metrics_values():
    logits = np.array([[3, 2, 1, 0, 0, 0], [0, 3, 2, 1, 0, 0], [3, 0, 0, 0, 0, 1], [0, 0, 0, 0, 0, 1]], float)
    m = classification_metrics(logits, [0, 2, 0, 3], list("abcdef"))
    assert m["top1"] == pytest.approx(0.5)
    assert m["top5"] == pytest.approx(1.0)
    # per class: a = 2/2, c = 0/1, d = 0/1 → mean 1/3
    assert m["mean_per_class_recall"] == pytest.approx(1 / 3)
    assert m["per_class_recall"] == {"a": 1.0, "c": 0.0, "d": 0.0}


def test_classification_metrics_shape_error():
    with pytest.raises(ValueError, match="must be"):
        classification_metrics(np.zeros((2, 3)), [0, 1, 2], ["a", "b", "c"])


def test_k_shot_sampling():
    y = np.repeat(np.arange(3), 10)
    idx = sample_k_shot(y, 4, seed=1)
    assert len(idx) == 12 and all((y[idx] == c).sum() == 4 for c in range(3))
    assert np.array_equal(idx, sample_k_shot(y, 4, seed=1))


@pytest.mark.slow
def test_linear_probe_separable_and_noise():
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(4, 16)) * 3
    y = np.repeat(np.arange(4), 30)
    x = centres[y] + rng.normal(size=(120, 16))
    yt = np.repeat(np.arange(4), 20)
    xt = centres[yt] + rng.normal(size=(80, 16))
    res = linear_probe(x, y, xt, yt)
    assert res["test_accuracy"] > 0.95 and res["n_train"] == 120
    noise = linear_probe(rng.normal(size=(120, 16)), y, rng.normal(size=(80, 16)), yt)
    assert noise["test_accuracy"] < 0.5


def _gt(tmp_path):
    import json

    gt = {"images": [{"id": 1, "width": 100, "height": 100, "file_name": "a.png"}],
          "categories": [{"id": 1, "name": "dog"}, {"id": 2, "name": "cat"}],
          "annotations": [{"id": 1, "image_id": 1, "category_id": 1, "bbox": [10, 10, 30, 30], "area": 900,
                           "iscrowd": 0},
                          {"id": 2, "image_id": 1, "category_id": 2, "bbox": [50, 50, 40, 40], "area": 1600,
                           "iscrowd": 0}]}
    p = tmp_path / "gt.json"
    p.write_text(json.dumps(gt))
    return p


def test_coco_metrics_perfect_half_and_empty(tmp_path):
    gt = _gt(tmp_path)
    perfect = [{"image_id": 1, "category_id": 1, "bbox": [10, 10, 30, 30], "score": 0.9},
               {"image_id": 1, "category_id": 2, "bbox": [50, 50, 40, 40], "score": 0.8}]
    assert coco_detection_metrics(gt, perfect)["AP50"] == pytest.approx(1.0)
    assert coco_detection_metrics(gt, perfect)["AP"] == pytest.approx(1.0)
    half = perfect[:1] + [{"image_id": 1, "category_id": 2, "bbox": [0, 0, 10, 10], "score": 0.8}]
    assert coco_detection_metrics(gt, half)["AP50"] == pytest.approx(0.5)
    assert coco_detection_metrics(gt, [])["AP50"] == 0.0
