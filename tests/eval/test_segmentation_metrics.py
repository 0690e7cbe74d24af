"""Segmentation metrics: confusion matrix / mIoU by hand, COCO label maps, label maps and RLE of
Detections, and ``ovtools eval`` on a generated COCO set (mask AP + mIoU)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from pycocotools import mask as mask_utils
from pycocotools.coco import COCO
from typer.testing import CliRunner

from ovtools.cli import app
from ovtools.eval.segmentation import ConfusionMatrix, coco_label_map
from ovtools.geometry import boxes_from_masks
from ovtools.structures import Detections, masks_to_rle


# ------------------------------------------------------------------------------ ConfusionMatrix
#               0   1   2   3   4   5   6   7   8   9
GT = np.array([-1, -1, -1, 0, 0, 0, 0, 1, 1, 1])
PRED = np.array([-1, -1, 2, 0, 0, 0, -1, 1, 0, 2])
# class 0: TP 3 (3,4,5), FP 1 (8), FN 1 (6)      -> 3/5
# class 1: TP 1 (7),     FP 0,     FN 2 (8, 9)   -> 1/3
# class 2: not in GT;    FP 2 (2, 9)             -> IoU 0, left out of mIoU
# class 3: never seen                            -> NaN
# background: TP 2 (0,1), FP 1 (6), FN 1 (2)     -> 2/4
# mIoU over GT classes {0, 1} = (3/5 + 1/3) / 2; pixel accuracy 6/10


def test_confusion_matrix_by_hand():
    cm = ConfusionMatrix(4)
    cm.update(GT.reshape(2, 5), PRED.reshape(2, 5))  # (H, W) maps are flattened alike
    assert cm.matrix.shape == (5, 5) and cm.matrix.sum() == 10
    assert cm.matrix[0 + 1, 2 + 1] == 0 and cm.matrix[1 + 1, 0 + 1] == 1  # row = GT, column = prediction
    iou = cm.iou()
    np.testing.assert_allclose(iou[:4], [2 / 4, 3 / 5, 1 / 3, 0.0])
    assert np.isnan(iou[4])
    m = cm.metrics(["a", "b", "c", "d"])
    assert m["mIoU"] == pytest.approx((3 / 5 + 1 / 3) / 2, abs=1e-6)
    assert m["background_IoU"] == pytest.approx(0.5)
    assert m["pixel_accuracy"] == pytest.approx(0.6)
    assert m["classes_in_gt"] == 2
    assert m["per_class_IoU"] == pytest.approx({"a": 0.6, "b": 1 / 3}, abs=1e-6)  # "c" is not in GT: not listed


def test_false_positive_class_lowers_gt_classes_only_through_fn():
    """Predicting an absent class on GT-class pixels costs those classes IoU, and adds no class to mIoU."""
    gt = np.array([0, 0, 0, 0])
    perfect, cm = ConfusionMatrix(2), ConfusionMatrix(2)
    perfect.update(gt, gt)
    cm.update(gt, np.array([0, 0, 1, 1]))
    assert perfect.metrics()["mIoU"] == 1.0
    m = cm.metrics()
    assert m["mIoU"] == pytest.approx(0.5) and m["classes_in_gt"] == 1 and set(m["per_class_IoU"]) == {"0"}
    assert cm.iou()[2] == 0.0


def test_iou_is_accumulated_over_the_dataset_not_averaged_per_image():
    cm = ConfusionMatrix(1)
    cm.update(np.zeros(4, int), np.zeros(4, int))  # image IoU 1
    cm.update(np.array([0, -1, -1, -1, -1, -1]), np.zeros(6, int))  # image IoU 1/6
    assert cm.metrics()["mIoU"] == pytest.approx(5 / 10)  # TP 5, FP 5; a per-image mean would be 7/12


def test_ignore_index():
    cm = ConfusionMatrix(2, ignore_index=255)
    gt = np.array([[0, 255], [1, 255]])
    pred = np.array([[0, 7], [1, -5]])  # whatever is predicted on ignored pixels is not looked at
    cm.update(gt, pred)
    assert cm.matrix.sum() == 2
    assert cm.metrics()["mIoU"] == 1.0
    with pytest.raises(ValueError, match="ground truth"):
        ConfusionMatrix(2).update(gt, np.zeros((2, 2), int))  # 255 is out of range without ignore_index


def test_only_background_gives_nan_miou():
    cm = ConfusionMatrix(2)
    cm.update(np.array([-1, -1]), np.array([-1, 0]))
    m = cm.metrics()
    assert np.isnan(m["mIoU"]) and m["classes_in_gt"] == 0 and m["per_class_IoU"] == {}
    assert m["background_IoU"] == pytest.approx(0.5)
    assert ConfusionMatrix(1).metrics()["pixel_accuracy"] is None


@pytest.mark.parametrize("gt,pred,match", [
    (np.zeros((2, 3), int), np.zeros((2, 4), int), "shape"),
    (np.array([0, 3]), np.array([0, 0]), "ground truth"),
    (np.array([0, -2]), np.array([0, 0]), "ground truth"),
    (np.array([0, 0]), np.array([0, 3]), "prediction"),
    (np.array([0, 0]), np.array([-2, 0]), "prediction"),
])
def test_update_errors(gt, pred, match):
    cm = ConfusionMatrix(3)
    with pytest.raises(ValueError, match=match):
        cm.update(gt, pred)
    assert cm.matrix.sum() == 0  # nothing half-added
    with pytest.raises(ValueError, match="num_classes"):
        ConfusionMatrix(0)


def test_transposed_prediction_is_a_shape_error():
    with pytest.raises(ValueError):
        ConfusionMatrix(2).update(np.zeros((2, 3), int), np.zeros((3, 2), int))


# ------------------------------------------------------------------------------ coco_label_map
def _rle(mask: np.ndarray) -> dict:
    r = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
    return {"size": [int(v) for v in r["size"]], "counts": r["counts"].decode("ascii")}


def _box_mask(h, w, ys, xs):
    m = np.zeros((h, w), bool)
    m[ys, xs] = True
    return m


def _coco(annotations, h=6, w=8, extra_images=()):
    anns = [{"id": i + 1, "image_id": 1, "iscrowd": 0, "area": 1.0, "bbox": [0, 0, 1, 1], **a}
            for i, a in enumerate(annotations)]
    coco = COCO()
    coco.dataset = {"images": [{"id": 1, "file_name": "a.png", "height": h, "width": w}, *extra_images],
                    "annotations": anns,
                    "categories": [{"id": c, "name": f"c{c}"} for c in (7, 9, 99)]}
    coco.createIndex()
    return coco


A = _box_mask(6, 8, slice(1, 5), slice(1, 6))   # category 7 -> class 0
B = _box_mask(6, 8, slice(3, 6), slice(4, 8))   # category 9 -> class 1, overlaps A
ROW0 = _box_mask(6, 8, 0, slice(None))           # category 99: not in the mapping


def test_coco_label_map_later_annotation_wins():
    uncompressed = {"size": [6, 8], "counts": [int(v) for v in  # iscrowd-style uncompressed RLE of B
                                               np.diff(np.r_[0, np.flatnonzero(np.diff(np.r_[0, B.T.ravel(), 0])),
                                                             B.size])]}
    mapping = {7: 0, 9: 1}
    for b_seg, crowd in ((_rle(B), 0), (uncompressed, 1)):
        coco = _coco([{"category_id": 7, "segmentation": _rle(A)},
                      {"category_id": 9, "segmentation": b_seg, "iscrowd": crowd},
                      {"category_id": 99, "segmentation": _rle(ROW0)}])
        got = coco_label_map(coco, 1, mapping, (6, 8))
        want = np.full((6, 8), -1, np.int32)
        want[A], want[B] = 0, 1
        assert got.dtype == np.int32
        np.testing.assert_array_equal(got, want)
    reversed_order = _coco([{"category_id": 9, "segmentation": _rle(B)},
                            {"category_id": 7, "segmentation": _rle(A)}])
    got = coco_label_map(reversed_order, 1, mapping, (6, 8))
    assert got[3, 4] == 0 and got[5, 7] == 1  # the overlap now goes to A, the later one


def test_coco_label_map_polygons_and_empty_images():
    coco = _coco([{"category_id": 9, "segmentation": [[1, 1, 5, 1, 5, 4, 1, 4]]},
                  {"category_id": 7, "segmentation": []}],  # no segmentation: skipped
                 extra_images=[{"id": 2, "file_name": "b.png", "height": 3, "width": 4}])
    got = coco_label_map(coco, 1, {7: 0, 9: 1}, (6, 8))
    assert (got[2, 2:4] == 1).all() and got[0, 0] == -1 and got[5, 7] == -1 and set(np.unique(got)) == {-1, 1}
    np.testing.assert_array_equal(coco_label_map(coco, 2, {7: 0, 9: 1}, (3, 4)), np.full((3, 4), -1))


def test_coco_label_map_size_mismatch():
    coco = _coco([{"category_id": 7, "segmentation": _rle(A)}])
    with pytest.raises(ValueError, match="image 1"):
        coco_label_map(coco, 1, {7: 0}, (8, 6))  # transposed
    with pytest.raises(ValueError, match="6x8"):
        coco_label_map(coco, 1, {7: 0}, (12, 16))


# ------------------------------------------------------------------ Detections.label_map, RLE, boxes
def _dets(masks, conf, cls, names=("a", "b", "c")):
    masks = np.asarray(masks, bool)
    return Detections(boxes_from_masks(masks), conf, cls, list(names), mask=masks, image_size=masks.shape[1:])


def test_label_map_most_confident_wins():
    m = np.zeros((3, 4, 5), bool)
    m[0, :, :3] = True   # class 0, conf 0.5
    m[1, 1:3, 1:4] = True  # class 1, conf 0.9: wins the overlap with both
    m[2, 2:, 2:] = True  # class 2, conf 0.7: wins over class 0, loses to class 1
    d = _dets(m, [0.5, 0.9, 0.7], [0, 1, 2])
    want = np.array([[0, 0, 0, -1, -1],
                     [0, 1, 1, 1, -1],
                     [0, 1, 1, 1, 2],
                     [0, 0, 2, 2, 2]], np.int32)
    lm = d.label_map()
    assert lm.dtype == np.int32 and lm.shape == (4, 5)
    np.testing.assert_array_equal(lm, want)
    order = [2, 0, 1]  # the detections' order does not matter, only their confidence
    np.testing.assert_array_equal(d[np.array(order)].label_map(), want)
    np.testing.assert_array_equal(d.label_map(background=255), np.where(want < 0, 255, want))


def test_label_map_without_masks_or_detections():
    with pytest.raises(ValueError, match="mask"):
        Detections(np.zeros((1, 4)), [0.5], [0], ["a"]).label_map()
    empty = Detections(np.zeros((0, 4)), [], [], ["a"], mask=np.zeros((0, 3, 2), bool))
    np.testing.assert_array_equal(empty.label_map(), np.full((3, 2), -1))


def test_masks_to_rle_round_trip_and_to_dict():
    rng = np.random.default_rng(0)
    masks = rng.random((3, 7, 9)) > 0.6
    masks[1] = False  # an empty mask
    rles = masks_to_rle(masks)
    assert len(rles) == 3
    for m, r in zip(masks, rles):
        assert r["size"] == [7, 9] and isinstance(r["counts"], str) and r["area"] == int(m.sum())
        np.testing.assert_array_equal(mask_utils.decode({"size": r["size"], "counts": r["counts"].encode()}), m)
    assert masks_to_rle(np.zeros((0, 7, 9), bool)) == []
    d = _dets(masks, [0.9, 0.5, 0.7], [0, 1, 2])
    doc = json.loads(json.dumps(d.to_dict()))
    assert doc["image_size"] == [7, 9]
    for det, m in zip(doc["detections"], masks):
        assert det["area"] == int(m.sum())
        np.testing.assert_array_equal(mask_utils.decode(det["segmentation"]), m)


def test_boxes_from_masks():
    m = np.zeros((4, 6, 8), bool)
    m[0, 2, 3] = True
    m[1, 1:4, 2:7] = True
    m[1, 5, 0] = True  # a stray pixel widens the box
    m[3] = True
    boxes = boxes_from_masks(m)
    assert boxes.dtype == np.float32 and boxes.shape == (4, 4)
    np.testing.assert_array_equal(boxes, [[3, 2, 4, 3], [0, 1, 7, 6], [0, 0, 0, 0], [0, 0, 8, 6]])
    assert boxes_from_masks(np.zeros((0, 6, 8), bool)).shape == (0, 4)


# ------------------------------------------------------------------------------ ovtools eval
@pytest.fixture(scope="module")
def scenes(tmp_path_factory):
    """Three generated scenes with COCO masks (ovtools datagen)."""
    out = tmp_path_factory.mktemp("scenes")
    r = CliRunner().invoke(app, ["datagen", str(out), "--kind", "scenes", "--n", "3", "--seed", "2000"],
                           catch_exceptions=False)
    assert r.exit_code == 0, r.output
    assert (out / "annotations.json").is_file()
    return out / "annotations.json"


def _eval(*args):
    return CliRunner().invoke(app, ["eval", *map(str, args)])


@pytest.mark.slow
def test_eval_segment_preset_mask_ap_and_miou(scenes, tmp_path):
    out = tmp_path / "m.json"
    r = _eval(scenes, "--preset", "segment-shapes", "--no-absent", "--device", "cpu", "-o", out, "-q")
    assert r.exit_code == 0, r.output
    m = json.loads(out.read_text())
    assert m["task"] == "segmentation" and m["n_images"] == 3 and m["errors"] == []
    for key in ("mIoU", "mask_AP", "mask_AP50", "AP50", "background_IoU", "pixel_accuracy"):
        assert 0.0 <= m[key] <= 1.0, (key, m[key])
    assert m["mIoU"] > 0.6, m["mIoU"]  # the shipped model is good on its own world
    assert m["classes_in_gt"] == len(m["per_class_IoU"]) > 0
    assert "absent_label_rejection" not in m


def test_eval_task_segment_overrides_default_task(scenes, tmp_path):
    """--task segment without a preset: segment-default with the tiny model (mask keys present)."""
    out = tmp_path / "m.json"
    r = _eval(scenes, "--task", "segment", "--model", "ovtools-test-vit", "--pretrained", "none", "--device", "cpu",
              "--templates", "single", "--scoring", "dense", "--threshold", "0", "--max-side", "64", "--no-absent",
              "-o", out, "-q")
    assert r.exit_code == 0, r.output
    m = json.loads(out.read_text())
    assert m["task"] == "segmentation" and 0.0 <= m["mIoU"] <= 1.0 and "mask_AP" in m


@pytest.mark.parametrize("args,message", [
    (["--task", "classify"], "--task must be detect or segment"),
    (["--preset", "detect-shapes", "--task", "segment"], "is for the 'detect' pipeline"),  # --task picks the pipeline
    (["--preset", "segment-shapes", "--task", "detect"], "is for the 'segment' pipeline"),
    (["--preset", "segment-shapes", "--scoring", "sparse"], "--scoring"),
])
def test_eval_task_usage_errors(scenes, args, message):
    r = _eval(scenes, "--no-absent", "--device", "cpu", *args)
    assert r.exit_code == 2, r.output
    assert message in r.output and "Traceback" not in r.output


def test_eval_task_on_image_folder_is_a_usage_error(tmp_path):
    from PIL import Image

    for c in ("cat", "dog"):
        (tmp_path / "data" / c).mkdir(parents=True)
        Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(tmp_path / "data" / c / "x.png")
    r = _eval(tmp_path / "data", "--task", "segment")
    assert r.exit_code == 2 and "--task" in r.output


def _broken(scenes, tmp_path, edit):
    d = json.loads(scenes.read_text())
    edit(d)
    out = tmp_path / "broken.json"
    out.write_text(json.dumps(d))
    return out


def _drop_segmentation(d):
    for a in d["annotations"]:
        a.pop("segmentation")


def _bad_rle(d):
    d["annotations"][0]["segmentation"] = {"size": [100, 100], "counts": "!!!!"}


def _short_polygon(d):
    d["annotations"][0]["segmentation"] = [[1, 2, 3]]


def _wrong_image_size(d):
    d["images"][0]["height"] = 50


@pytest.mark.parametrize("edit,message", [
    (_drop_segmentation, "has no segmentation"),
    (_bad_rle, "annotation"),
    (_short_polygon, "at least 3 points"),
    (_wrong_image_size, "image"),
])
@pytest.mark.slow
def test_malformed_masks_are_usage_errors(scenes, tmp_path, edit, message):
    """Breaker's findings: pycocotools raised KeyError / ValueError / IndexError from deep inside (exit 1)."""
    ann = _broken(scenes, tmp_path, edit)
    r = _eval(ann, "--image-dir", scenes.parent, "--preset", "segment-shapes", "--no-absent", "-q")
    assert r.exit_code == 2, r.output
    assert message in r.output and "Traceback" not in r.output
