"""Writers: atomic files, refusal to overwrite inputs, JSON schema, COCO results, PNG overlays."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
from PIL import Image

from ovtools.io.vis import class_color, draw_classifications, draw_detections, font_size_for, save_png, vis_path_for
from ovtools.io.writers import (
    COCO_CATEGORY_IDS,
    OutputPathError,
    atomic_write_text,
    classification_record,
    coco_image_id,
    detection_record,
    results_document,
    write_coco_results,
    write_json,
)
from ovtools.structures import Classifications, Detections


@pytest.fixture
def dets():
    return Detections(np.array([[10, 20, 50, 80], [0, 0, 5.5, 5.5]], np.float32), np.array([0.9, 0.4]),
                      np.array([1, 0]), ["man in red shirt", "dog"], image_size=(100, 200))


def test_atomic_write_replaces_and_leaves_no_temp(tmp_path):
    p = tmp_path / "sub" / "out.json"
    atomic_write_text(p, "one")
    atomic_write_text(p, "two")
    assert p.read_text() == "two"
    assert sorted(os.listdir(p.parent)) == ["out.json"]


def test_atomic_write_failure_keeps_old_file(tmp_path):
    p = tmp_path / "out.json"
    p.write_text("old")
    with pytest.raises(TypeError):
        write_json(p, {"x": object()})
    assert p.read_text() == "old"
    assert os.listdir(tmp_path) == ["out.json"]


def test_refuses_to_overwrite_input(tmp_path):
    src = tmp_path / "a.jpg"
    src.write_bytes(b"jpeg")
    with pytest.raises(OutputPathError, match="also an input"):
        atomic_write_text(src, "x", inputs=[src])
    with pytest.raises(OutputPathError, match="also an input"):  # same file by another spelling
        atomic_write_text(tmp_path / "." / "a.jpg", "x", inputs=[str(src)])
    link = tmp_path / "link.jpg"
    link.symlink_to(src)
    with pytest.raises(OutputPathError):
        atomic_write_text(link, "x", inputs=[src])
    assert src.read_bytes() == b"jpeg"


def test_refuses_folder(tmp_path):
    with pytest.raises(OutputPathError, match="folder"):
        atomic_write_text(tmp_path, "x")


def test_detection_record_schema(dets):
    rec = detection_record("img/a.jpg", dets)
    assert set(rec) == {"image", "image_size", "detections"}
    assert rec["image"] == "img/a.jpg" and rec["image_size"] == [100, 200]
    d0 = rec["detections"][0]
    assert set(d0) == {"label", "class_id", "confidence", "xyxy"}
    assert d0["label"] == "dog" and d0["class_id"] == 1 and d0["xyxy"] == [10, 20, 50, 80]
    assert isinstance(d0["confidence"], float)
    json.dumps(rec)


def test_classification_record_schema():
    c = Classifications(np.array([[2, 0], [1, -1]]), np.array([[0.7, 0.2], [0.5, 0.1]]), ["a", "b", "c"],
                        rejected=np.array([False, True]))
    rec = classification_record("x.png", c, 1, (10, 20))
    assert rec["image"] == "x.png" and rec["image_size"] == [10, 20] and rec["rejected"] is True
    assert rec["top_k"][0] == {"label": "b", "class_id": 1, "confidence": 0.5}
    assert rec["top_k"][1]["label"] is None and rec["top_k"][1]["class_id"] == -1
    with pytest.raises(IndexError):
        classification_record("x.png", c, 2)


def test_results_document(tmp_path, dets):
    doc = results_document("detect", [detection_record("a.jpg", dets)], dets.class_names, model="m",
                           errors=[{"image": "b.jpg", "error": "empty"}])
    p = write_json(tmp_path / "o.json", doc)
    back = json.loads(p.read_text())
    assert back["task"] == "detect" and back["class_names"] == ["man in red shirt", "dog"]
    assert back["errors"][0]["image"] == "b.jpg" and len(back["results"]) == 1
    with pytest.raises(ValueError, match="head's name"):
        results_document("", [], [])


def test_coco_ids():
    assert len(COCO_CATEGORY_IDS) == 80 and COCO_CATEGORY_IDS[-1] == 90 and 12 not in COCO_CATEGORY_IDS
    assert coco_image_id("val/000000397133.jpg", 0) == 397133
    assert coco_image_id("COCO_val2014_000000000042.jpg", 3) == 42
    assert coco_image_id("photo.jpg", 3) == 4


def test_coco_results_load_with_pycocotools(tmp_path, dets):
    from pycocotools.coco import COCO

    records = [detection_record("000000000139.jpg", dets), detection_record("b.jpg", dets)]
    res_path, header_path = write_coco_results(tmp_path / "dets.json", records, dets.class_names)
    results = json.loads(res_path.read_text())
    assert isinstance(results, list) and len(results) == 4
    r0 = results[0]
    assert set(r0) == {"image_id", "category_id", "bbox", "score"}
    assert r0["image_id"] == 139 and r0["category_id"] == 2 and r0["bbox"] == [10, 20, 40, 60]
    gt = COCO(str(header_path))
    dt = gt.loadRes(str(res_path))
    assert len(dt.getAnnIds()) == 4
    assert {c["name"] for c in gt.loadCats(gt.getCatIds())} == {"man in red shirt", "dog"}


def test_coco_results_keep_given_image_ids(tmp_path, dets):
    """A record's own image id (a COCO file's string or numeric-string id) is written unchanged, in the results
    and in the header, and other records do not collide with it."""
    from ovtools.datasets.coco import read_coco
    from ovtools.eval import coco_detection_metrics

    records = [{**detection_record("0000001_02999_d_0000005.jpg", dets), "image_id": "0000001_02999_d_0000005"},
               {**detection_record("7.jpg", dets), "image_id": "7"},
               detection_record("000000000007.jpg", dets)]
    res_path, header_path = write_coco_results(tmp_path / "dets.json", records, dets.class_names)
    ids = [r["image_id"] for r in json.loads(res_path.read_text())]
    assert ids == ["0000001_02999_d_0000005"] * 2 + ["7"] * 2 + [7] * 2
    header = json.loads(header_path.read_text())
    assert [im["id"] for im in header["images"]] == ["0000001_02999_d_0000005", "7", 7]
    # the header works as ground truth for its own results: every id matches its own image
    header["annotations"] = [{"id": i + 1, "image_id": r["image_id"], "category_id": r["category_id"],
                              "bbox": r["bbox"], "area": r["bbox"][2] * r["bbox"][3], "iscrowd": 0}
                             for i, r in enumerate(json.loads(res_path.read_text()))]
    gt_path = tmp_path / "gt.json"
    gt_path.write_text(json.dumps(header))
    m = coco_detection_metrics(read_coco(gt_path).coco, json.loads(res_path.read_text()))
    assert m["AP"] == pytest.approx(1.0)


def test_coco_space_uses_official_ids(tmp_path):
    from ovtools.prompts import ClassSpace

    names = ClassSpace.load("coco").names
    det = Detections(np.array([[0, 0, 4, 4]], np.float32), np.array([0.5]), np.array([79]), names, image_size=(8, 8))
    res_path, header_path = write_coco_results(tmp_path / "c.json", [detection_record("a.jpg", det)], names, "coco")
    assert json.loads(res_path.read_text())[0]["category_id"] == 90
    cats = json.loads(header_path.read_text())["categories"]
    assert cats[0] == {"id": 1, "name": "person", "supercategory": "object"}


def test_draw_detections_colours_and_scaling(dets):
    img = np.full((100, 200, 3), 255, np.uint8)
    out = draw_detections(img, dets)
    assert out.size == (200, 100) and out.mode == "RGB"
    a = np.asarray(out)
    assert (a != 255).any() and (img == 255).all()  # drawn on a copy
    assert class_color(0) != class_color(1) and class_color(-1) == (128, 128, 128)
    assert font_size_for(4000, 6000) > font_size_for(100, 200) >= 12


def test_draw_detections_on_downscaled_image(dets):
    from ovtools.io.images import LoadedImage

    small = LoadedImage(np.full((50, 100, 3), 255, np.uint8), (100, 200))
    out = np.asarray(draw_detections(small, dets))
    assert out.shape == (50, 100, 3)
    assert (out[10:40, 5] != 255).any()  # left edge of box 1 at x = 10 / 2


def test_draw_classifications_banner():
    c = Classifications(np.array([[1, 0]]), np.array([[0.8, 0.2]]), ["zebra", "goat"])
    out = draw_classifications(np.zeros((1, 30, 3), np.uint8), c)  # a 1-pixel-high image still gets a banner
    assert out.size[0] >= 30 and out.size[1] > 1
    with pytest.raises(IndexError):
        draw_classifications(np.zeros((4, 4, 3), np.uint8), c, 1)


def test_save_png_and_vis_names(tmp_path, dets):
    p = save_png(draw_detections(np.zeros((100, 200, 3), np.uint8), dets), tmp_path / "v.png")
    assert Image.open(p).format == "PNG"
    used: set[str] = set()
    assert vis_path_for("x/a.jpg", tmp_path, used).name == "a.png"
    assert vis_path_for("y/a.png", tmp_path, used).name == "a_1.png"
    src = tmp_path / "in.png"
    src.write_bytes(b"x")
    with pytest.raises(OutputPathError):
        save_png(Image.new("RGB", (2, 2)), src, inputs=[src])


def _mode(p) -> int:
    return os.stat(p).st_mode & 0o777


def test_every_temporary_file_writer_gives_usual_permissions(tmp_path, tiny_encoder):
    """Writers that only take a file name (safetensors, torch.jit.save, torch.save) wrote owner-only
    files (mkstemp / safetensors create 0600): every output now gets 0o666 minus the umask."""
    import torch
    from safetensors.torch import save_file

    from ovtools.export import export_pipeline
    from ovtools.io.writers import atomic_output
    from ovtools.pipelines import ClassifyPipeline
    from ovtools.prompts.cache import EmbeddingCache
    from ovtools.train.trainer import save_weights

    old = os.umask(0o022)
    try:
        with atomic_output(tmp_path / "a.safetensors") as tmp:
            save_file({"x": torch.zeros(2)}, str(tmp))
        save_weights(torch.nn.Linear(2, 2), tmp_path / "w.safetensors")
        pipe = ClassifyPipeline(encoder=tiny_encoder, labels="red, green", templates="single")
        export_pipeline(pipe, tmp_path / "m.pt", "classify", "torchscript")
        cache = EmbeddingCache(tmp_path / "cache")
        cache.put("k", {"x": torch.zeros(2)})
        outputs = [tmp_path / "a.safetensors", tmp_path / "w.safetensors", tmp_path / "m.pt", cache.path("k")]
    finally:
        os.umask(old)
    assert {p.name: _mode(p) for p in outputs} == {p.name: 0o644 for p in outputs}
    assert not list(tmp_path.glob(".*.tmp")) and not list((tmp_path / "cache").glob(".*.tmp"))


def test_atomic_output_keeps_old_file_on_error(tmp_path):
    from ovtools.io.writers import atomic_output

    out = tmp_path / "o.bin"
    out.write_bytes(b"old")
    with pytest.raises(RuntimeError):
        with atomic_output(out) as tmp:
            tmp.write_bytes(b"half")
            raise RuntimeError("writer failed")
    assert out.read_bytes() == b"old" and not list(tmp_path.glob(".*.tmp"))
