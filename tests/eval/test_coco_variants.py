"""COCO files as other tools write them (issue 10, kind 1): the generated scenes' ``annotations.json``
rewritten the way converters and other producers write it must give the metrics of the original file.

Each variant runs ``ovtools eval`` end to end with the shipped small model (``detect-shapes``) on the same
three images; AP, AP50 and the number of detections must equal those of the unmodified file.  Before the fix
string ids crashed on ``int()``, numeric-string ids ran the model and then failed to match, and files without
``area``/``iscrowd``/annotation ``id`` failed inside COCOeval after the model pass.
"""

from __future__ import annotations

import copy
import json
import re
import shutil
import warnings

import numpy as np
import pytest
from typer.testing import CliRunner

from ovtools.cli import app
from ovtools.datasets.coco import read_coco
from ovtools.datasets.export import write_scenes

pytestmark = pytest.mark.usefixtures("one_torch_thread")

ARGS = ["--preset", "detect-shapes", "--no-absent", "-q"]
KEYS = ("AP", "AP50", "AP75", "AR100", "n_detections", "n_images")


@pytest.fixture(scope="module")
def scenes(tmp_path_factory):
    return write_scenes(tmp_path_factory.mktemp("coco-variants") / "scenes", 3, seed=3, size=96)


@pytest.fixture(scope="module")
def original(scenes):
    return json.loads((scenes / "annotations.json").read_text())


def _eval(path, tmp_path, *extra):
    out = tmp_path / "metrics.json"
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        r = CliRunner().invoke(app, ["eval", str(path), *ARGS, "-o", str(out), *map(str, extra)])
    assert r.exit_code == 0, r.output
    return json.loads(out.read_text()), [str(w.message) for w in caught if issubclass(w.category, UserWarning)]


@pytest.fixture(scope="module")
def reference(scenes, tmp_path_factory):
    m, warned = _eval(scenes / "annotations.json", tmp_path_factory.mktemp("ref"))
    assert not [w for w in warned if "COCO" in w], warned  # the generated file needs nothing filled
    assert m["n_detections"] > 5 and m["AP50"] > 0.5  # something to compare
    return m


def _ids(d, new_id):
    for im in d["images"]:
        im["id"] = new_id(im["id"])
    for a in d["annotations"]:
        a["image_id"] = new_id(a["image_id"])


def _categories(d, new_id):
    for c in d["categories"]:
        c["id"] = new_id(c["id"])
    for a in d["annotations"]:
        a["category_id"] = new_id(a["category_id"])


def _variant(d, kind):
    """The rewritten file and the text its one warning must contain (None: no warning)."""
    d = copy.deepcopy(d)
    anns = d["annotations"]
    if kind == "string_ids":  # VisDrone-style ids
        _ids(d, lambda i: f"{i:07d}_02999_d_{i:07d}")
    elif kind == "numeric_string_ids":
        _ids(d, str)
    elif kind == "mixed_ids":  # 1 and "1" are two images, as pycocotools sees them
        _ids(d, {1: 1, 2: "1", 3: "x3"}.get)
    elif kind == "no_area_no_iscrowd":
        for a in anns:
            del a["area"], a["iscrowd"]
        return d, f"iscrowd: {len(anns)}, area (from the mask): {len(anns)}"
    elif kind == "no_annotation_ids":
        for a in anns:
            del a["id"]
        return d, f"id: {len(anns)}"
    elif kind == "repeated_annotation_ids":
        for a in anns:
            a["id"] = 7
        return d, f"id (repeated): {len(anns) - 1}"
    elif kind == "sparse_category_ids":  # not starting at 1, gaps, listed in another order
        _categories(d, lambda c: 1000 - 7 * c)
        d["categories"].reverse()
    elif kind == "string_category_ids":
        _categories(d, lambda c: f"cat-{c}")
    elif kind == "bbox_as_text":
        for a in anns:
            a["bbox"] = [str(v) for v in a["bbox"]]
        return d, f"bbox (numbers written as text): {len(anns)}"
    elif kind == "no_bbox":  # boxes from the masks
        for a in anns:
            del a["bbox"]
        return d, f"bbox (from the mask): {len(anns)}"
    elif kind == "annotation_of_a_missing_image":
        anns.append({**anns[0], "id": 10_000, "image_id": 999})
        return d, "dropped, image id not in 'images' (999): 1"
    elif kind == "no_info_no_licenses":
        d.pop("info", None)
        d.pop("licenses", None)
    elif kind == "windows_file_names":
        for im in d["images"]:
            im["file_name"] = im["file_name"].replace("/", "\\")
        return d, f"file_name separators: {len(d['images'])}"
    elif kind == "grouping_category":  # Roboflow: the dataset's name as category 0, parent of all, never used
        for c in d["categories"]:
            c["supercategory"] = "my-shapes"
        d["categories"].insert(0, {"id": 0, "name": "my-shapes", "supercategory": "none"})
        return d, "categories left out, only the supercategory of others (my-shapes): 1"
    elif kind == "underscore_names":  # "red_circle" for the class space's "red circle"
        for c in d["categories"]:
            c["name"] = c["name"].replace(" ", "_")
    elif kind == "image_sizes_as_text":
        for im in d["images"]:
            im["height"], im["width"] = str(im["height"]), str(im["width"])
        return d, f"height/width (numbers written as text): {len(d['images'])}"
    elif kind == "no_image_sizes":
        for im in d["images"]:
            del im["height"], im["width"]
        return d, f"height/width (from the image file): {len(d['images'])}"
    else:
        raise AssertionError(kind)
    return d, None


KINDS = ["string_ids", "numeric_string_ids", "mixed_ids", "no_area_no_iscrowd", "no_annotation_ids",
         "repeated_annotation_ids", "sparse_category_ids", "string_category_ids", "bbox_as_text", "no_bbox",
         "annotation_of_a_missing_image", "no_info_no_licenses", "windows_file_names", "grouping_category",
         "underscore_names", "image_sizes_as_text", "no_image_sizes"]


@pytest.mark.parametrize("kind", KINDS)
def test_variant_gives_the_metrics_of_the_original(scenes, original, reference, tmp_path, kind):
    d, warning = _variant(original, kind)
    path = scenes / f"{kind}.json"
    path.write_text(json.dumps(d))
    m, warned = _eval(path, tmp_path)
    assert {k: m[k] for k in KEYS} == {k: reference[k] for k in KEYS}
    coco_warnings = [w for w in warned if str(path) in w]
    if warning is None:
        assert not coco_warnings
    else:
        assert len(coco_warnings) == 1 and warning in coco_warnings[0], coco_warnings


def test_image_sizes_read_from_the_files(scenes, original, tmp_path):
    """Without height/width the masks of a segmentation file still decode at the image's size."""
    from ovtools.eval.segmentation import check_segmentations, coco_label_map

    d, _ = _variant(original, "no_image_sizes")
    path = tmp_path / "sizes.json"
    path.write_text(json.dumps(d))
    with pytest.warns(UserWarning, match="from the image file"):
        data = read_coco(path, scenes)
    check_segmentations(data.coco, str(path))
    for im in original["images"]:
        got = data.coco.imgs[im["id"]]
        assert (got["height"], got["width"]) == (im["height"], im["width"])
    assert (coco_label_map(data.coco, 1, {c: c for c in data.category_ids}, (96, 96)) >= 0).any()


def test_file_names_in_sub_folders_with_an_image_dir(scenes, original, reference, tmp_path):
    root = tmp_path / "elsewhere"
    d = copy.deepcopy(original)
    for im in d["images"]:  # images/000000.png -> deep/er/000000.png under another folder
        target = root / "deep" / "er" / im["file_name"].split("/")[-1]
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(scenes / im["file_name"], target)
        im["file_name"] = f"deep/er/{target.name}"
    path = tmp_path / "ann.json"
    path.write_text(json.dumps(d))
    m, _ = _eval(path, tmp_path, "--image-dir", root)
    assert {k: m[k] for k in KEYS} == {k: reference[k] for k in KEYS}


def test_filled_area_is_the_mask_area_or_the_box_area(scenes, original, tmp_path):
    d, _ = _variant(original, "no_area_no_iscrowd")
    for a in d["annotations"][:2]:  # box-only annotations: area from the box
        a["segmentation"] = []
    path = tmp_path / "a.json"
    path.write_text(json.dumps(d))
    with pytest.warns(UserWarning, match="area \\(from the box\\): 2"):
        data = read_coco(path, scenes)
    got = {a["id"]: a for a in data.coco.dataset["annotations"]}
    for i, a in enumerate(original["annotations"]):
        g = got[a["id"]]
        assert g["iscrowd"] == 0
        w, h = a["bbox"][2:]
        assert g["area"] == (w * h if i < 2 else a["area"])  # the generator writes the exact mask area


def _perfect_segm_metrics(d, tmp_path, name):
    """Mask AP of the ground truth's own masks as results (1.0 when every mask is read as written)."""
    from pycocotools import mask as mask_utils

    from ovtools.eval import coco_detection_metrics

    path = tmp_path / name
    path.write_text(json.dumps(d))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        data = read_coco(path)
    results = []
    for a in data.coco.dataset["annotations"]:
        rle = data.coco.annToRLE(a)
        results.append({"image_id": a["image_id"], "category_id": a["category_id"], "score": 0.9,
                        "bbox": [float(v) for v in mask_utils.toBbox(rle)],
                        "segmentation": {"size": rle["size"], "counts": rle["counts"].decode()}})
    return coco_detection_metrics(data.coco, results, "segm"), data


@pytest.mark.parametrize("form", ["flat_polygon", "uncompressed_rle"])
def test_mask_forms_other_tools_write(original, tmp_path, form):
    """Flat polygon lists (one polygon, not a list of polygons) and RLE with ``counts`` as a list."""
    from pycocotools import mask as mask_utils

    d = copy.deepcopy(original)
    size = {im["id"]: (im["height"], im["width"]) for im in d["images"]}
    expected_area = {}
    for a in d["annotations"]:
        m = mask_utils.decode(a["segmentation"])
        if form == "flat_polygon":  # the box outline of the mask as one flat polygon
            x, y, w, h = a["bbox"]
            a["segmentation"] = [x, y, x + w, y, x + w, y + h, x, y + h]
            rle = mask_utils.merge(mask_utils.frPyObjects([a["segmentation"]], *size[a["image_id"]]))
            expected_area[a["id"]] = float(mask_utils.area(rle))
        else:  # column-major run lengths, starting with a run of zeros
            flat = m.flatten(order="F")
            change = np.flatnonzero(np.diff(np.concatenate([[0], flat, [2]])) != 0)
            a["segmentation"] = {"size": list(m.shape), "counts": np.diff(np.concatenate([[0], change])).tolist()}
            expected_area[a["id"]] = float(m.sum())
        del a["area"]
    metrics, data = _perfect_segm_metrics(d, tmp_path, f"{form}.json")
    assert metrics["AP"] == pytest.approx(1.0) and metrics["AP50"] == pytest.approx(1.0)
    for a in data.coco.dataset["annotations"]:
        assert a["area"] == pytest.approx(expected_area[a["id"]])
        if form == "flat_polygon":
            assert isinstance(a["segmentation"][0], list)


@pytest.mark.parametrize("change,message", [
    (lambda d: d["images"].append(dict(d["images"][0])), "appears twice in 'images'"),
    (lambda d: d["categories"].append(dict(d["categories"][0], name="x")), "appears twice in 'categories'"),
    (lambda d: d["annotations"][0].update(category_id=12345), "not in categories"),
    (lambda d: d["annotations"][0].update(bbox=[1, 2, 3]), "bbox"),
    (lambda d: d["annotations"][0].update(bbox=["a", 2, 3, 4]), "bbox"),
    (lambda d: d["images"][0].update(id=[1]), "images[0]"),
    (lambda d: d.pop("categories"), "not a COCO instances file"),
])
def test_what_cannot_be_evaluated_is_a_clear_error(original, tmp_path, change, message):
    d = copy.deepcopy(original)
    change(d)
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(d))
    with pytest.raises(ValueError, match=re.escape(message)) as e:
        read_coco(path)
    assert str(path) in str(e.value)
    r = CliRunner().invoke(app, ["eval", str(path), *ARGS])
    assert r.exit_code == 2 and message in r.output and "Traceback" not in r.output


def test_checked_before_the_first_image_is_encoded(scenes, original, tmp_path):
    """Problems only the evaluation sees (missing masks for segmentation, no image found, no annotation) stop
    the run before any image is read."""
    from ovtools.eval import evaluate
    from ovtools.pipelines import DetectPipeline, SegmentPipeline

    done = []
    d = copy.deepcopy(original)
    d["annotations"][3]["segmentation"] = []
    (scenes / "no_mask.json").write_text(json.dumps(d))
    with pytest.raises(ValueError, match="no segmentation"):
        evaluate(SegmentPipeline("segment-shapes"), scenes / "no_mask.json", progress=done.append)
    detect = DetectPipeline("detect-shapes")
    with pytest.raises(ValueError, match="none of its 3 images exists.*--image-dir"):
        evaluate(detect, scenes / "annotations.json", image_dir=tmp_path, progress=done.append)
    (scenes / "no_annotations.json").write_text(json.dumps({**original, "annotations": []}))
    with pytest.raises(ValueError, match="no annotations"):
        evaluate(detect, scenes / "no_annotations.json", progress=done.append)
    assert done == []


def test_coco_output_keeps_the_files_ids(scenes, original, tmp_path):
    """Results and the categories header written by the library carry the file's own (string) ids."""
    from ovtools.eval import coco_detection_metrics, evaluate
    from ovtools.pipelines import DetectPipeline

    d, _ = _variant(original, "string_ids")
    _categories(d, lambda c: f"cat-{c}")
    path = scenes / "ids-out.json"
    path.write_text(json.dumps(d))
    out = tmp_path / "dets.json"
    m = evaluate(DetectPipeline("detect-shapes"), path, absent=False, coco_output=out)
    results = json.loads(out.read_text())
    header = json.loads((tmp_path / "dets.categories.json").read_text())
    assert len(results) == m["n_detections"] > 0
    assert {r["image_id"] for r in results} <= {im["id"] for im in d["images"]}
    assert all(isinstance(r["category_id"], str) and r["category_id"].startswith("cat-") for r in results)
    assert [im["id"] for im in header["images"]] == [im["id"] for im in d["images"]]
    assert header["categories"] == d["categories"]
    assert coco_detection_metrics(read_coco(path).coco, results)["AP"] == m["AP"]  # usable as written


def test_results_with_ids_of_another_type_are_named(original, tmp_path):
    from ovtools.eval import coco_detection_metrics

    path = tmp_path / "a.json"
    path.write_text(json.dumps(original))
    res = [{"image_id": "1", "category_id": original["annotations"][0]["category_id"], "bbox": [0, 0, 5, 5],
            "score": 0.5}]
    with pytest.raises(ValueError, match=r"image ids that are not in the ground truth: \[\"'1'\"\]"):
        coco_detection_metrics(read_coco(path).coco, res)
