"""``ovtools segment`` end to end: a tiny random-weight model (``--pretrained none``) for the plumbing,
the shipped shapes model for "a label that matches nothing"."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from pycocotools import mask as mask_utils
from typer.testing import CliRunner

from ovtools.cli import app
from ovtools.io.labelmap import read_label_png
from ovtools.prompts import CANONICAL_NEGATIVES

TINY = ["--model", "ovtools-test-vit", "--pretrained", "none", "--device", "cpu", "--templates", "single"]
# Labels equal to the canonical negatives leave no negative to beat, so random weights still report masks;
# dense scoring is one forward pass per image.
FAST = [*TINY, "--scoring", "dense", "--threshold", "0", "--labels", ", ".join(CANONICAL_NEGATIVES)]


def _blocks(h, w, seed):
    """RGB uint8 (h, w, 3): flat colour blocks plus mild noise (few, quick region proposals)."""
    rng = np.random.default_rng(seed)
    img = np.empty((h, w, 3), np.uint8)
    img[:] = rng.integers(0, 255, 3)
    for _ in range(3):
        y0, x0 = rng.integers(0, h // 2), rng.integers(0, w // 2)
        img[y0:y0 + rng.integers(h // 4, h // 2), x0:x0 + rng.integers(w // 4, w // 2)] = rng.integers(0, 255, 3)
    return np.clip(img.astype(int) + rng.integers(-6, 7, img.shape), 0, 255).astype(np.uint8)


@pytest.fixture
def runner():
    return CliRunner()


@pytest.fixture
def photos(tmp_path):
    d = tmp_path / "photos"
    d.mkdir()
    Image.fromarray(_blocks(64, 96, 0)).save(d / "000000000139.png")
    Image.fromarray(_blocks(72, 72, 1)).save(d / "b.jpg", quality=95)
    (d / "empty.png").write_bytes(b"")
    return d


def run(runner, *args):
    return runner.invoke(app, ["segment", *map(str, args)], catch_exceptions=False)


def _decode(det):
    return mask_utils.decode({"size": det["segmentation"]["size"], "counts": det["segmentation"]["counts"].encode()})


def _check_record(rec, class_names, size):
    """Every detection's RLE decodes to the image size and its area is the mask's pixel count; returns masks."""
    h, w = size
    assert rec["image_size"] == [h, w]
    masks = []
    for d in rec["detections"]:
        assert set(d) == {"label", "class_id", "confidence", "xyxy", "segmentation", "area"}
        assert d["segmentation"]["size"] == [h, w] and isinstance(d["segmentation"]["counts"], str)
        m = _decode(d)
        assert m.shape == (h, w) and d["area"] == int(m.sum()) > 0
        ys, xs = np.nonzero(m)
        assert d["xyxy"] == pytest.approx([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1])
        assert class_names[d["class_id"]] == d["label"] and 0 <= d["confidence"] <= 1
        masks.append(m.astype(bool))
    confs = [d["confidence"] for d in rec["detections"]]
    assert confs == sorted(confs, reverse=True)
    return masks


def _check_label_map_against_masks(lm, rec, masks):
    """Every labelled pixel lies in a mask of its class; every pixel some mask covers is labelled."""
    covered = np.zeros(lm.shape, bool)
    for d, m in zip(rec["detections"], masks):
        covered |= m
    assert ((lm >= 0) == covered).all()
    for c in np.unique(lm[lm >= 0]):
        own = np.zeros(lm.shape, bool)
        for d, m in zip(rec["detections"], masks):
            if d["class_id"] == c:
                own |= m
        assert own[lm == c].all(), c


@pytest.mark.slow
def test_single_image_json_vis_labels_and_coco(runner, photos, tmp_path):
    from pycocotools.coco import COCO

    from ovtools.pipelines import SegmentPipeline

    img = photos / "000000000139.png"
    out, vis, labels, coco = tmp_path / "o.json", tmp_path / "v.png", tmp_path / "l.png", tmp_path / "coco.json"
    torch.manual_seed(0)  # random weights: the same seed gives the pipeline built below the same model
    r = run(runner, img, *FAST, "-o", out, "--save-vis", vis, "--save-labels", labels, "--coco-output", coco)
    assert r.exit_code == 0, r.output
    assert "ovtools segment" in r.stdout  # the results table
    doc = json.loads(out.read_text())
    assert doc["task"] == "segment" and doc["class_names"] == list(CANONICAL_NEGATIVES)
    assert doc["model"] == "ovtools-test-vit" and doc["pretrained"] is None and doc["errors"] == []
    (rec,) = doc["results"]
    masks = _check_record(rec, doc["class_names"], (64, 96))
    assert len(masks) > 0
    with Image.open(vis) as v:
        assert v.size == (96, 64)
    with Image.open(labels) as lp:
        assert lp.size == (96, 64) and lp.mode == "P"
    lm = read_label_png(labels)
    _check_label_map_against_masks(lm, rec, masks)

    torch.manual_seed(0)
    pipe = SegmentPipeline("segment-default", model="ovtools-test-vit", pretrained=None, device="cpu",
                           labels=list(CANONICAL_NEGATIVES), templates="single", scoring="dense", score_threshold=0.0)
    det = pipe(img)
    np.testing.assert_array_equal(lm, det.label_map())
    assert len(det) == len(masks)
    np.testing.assert_array_equal(det.mask, np.stack(masks))
    np.testing.assert_allclose(det.confidence, [d["confidence"] for d in rec["detections"]], atol=1e-5)

    header = coco.with_name("coco.categories.json")
    results = json.loads(coco.read_text())
    assert len(results) == len(masks) and all("segmentation" in x for x in results)
    gt = COCO(str(header))
    assert gt.imgs[139]["height"] == 64 and gt.imgs[139]["width"] == 96
    dt = gt.loadRes(results)
    anns = dt.loadAnns(dt.getAnnIds(imgIds=[139]))
    assert len(anns) == len(masks)
    for a, m in zip(sorted(anns, key=lambda a: -a["score"]), masks):
        np.testing.assert_array_equal(dt.annToMask(a), m)


@pytest.mark.slow
def test_folder_with_unreadable_file(runner, photos, tmp_path):
    out, labels, vis = tmp_path / "o.json", tmp_path / "labels", tmp_path / "vis"
    r = run(runner, photos, *FAST, "--max-detections", "5", "-o", out, "--save-labels", labels, "--save-vis", vis)
    assert r.exit_code == 1, r.output
    assert "empty.png" in r.stderr and "Traceback" not in r.output
    doc = json.loads(out.read_text())
    assert sorted(Path(x["image"]).name for x in doc["results"]) == ["000000000139.png", "b.jpg"]
    assert [Path(e["image"]).name for e in doc["errors"]] == ["empty.png"]
    assert sorted(p.name for p in labels.iterdir()) == ["000000000139.labels.png", "b.labels.png"]
    assert sorted(p.name for p in vis.iterdir()) == ["000000000139.segment.png", "b.segment.png"]
    sizes = {"000000000139": (64, 96), "b": (72, 72)}
    for rec in doc["results"]:
        stem = Path(rec["image"]).stem
        masks = _check_record(rec, doc["class_names"], sizes[stem])
        assert 0 < len(masks) <= 5
        with Image.open(labels / f"{stem}.labels.png") as lp:
            assert lp.size == sizes[stem][::-1]
        _check_label_map_against_masks(read_label_png(labels / f"{stem}.labels.png"), rec, masks)


@pytest.mark.parametrize("args,message", [
    (["--scoring", "sparse"], "--scoring"),
    (["--proposals", "magic"], "--proposals"),
    (["--proposals", "windows"], "--proposals"),  # a box source is not a mask source
    (["--proposals", "sam"], "--sam-checkpoint"),
    (["--proposals", "detect"], "--sam-checkpoint"),
    (["--sam-checkpoint", "{tmp}/missing.pth"], "no such file"),
    (["--sam-model", "vit_x"], "--sam-model"),
    (["--sam-model", "vit_b"], "--sam-checkpoint"),
    (["--save-labels", "{tmp}/out.jpg"], ".png"),
    (["--threshold", "1.5"], "threshold"),
    (["--max-detections", "0"], "max-detections"),
    (["--preset", "detect-default"], "detect"),
    (["--preset", "no-such-preset"], "unknown pipeline preset"),
])
def test_usage_errors_exit_2(runner, photos, tmp_path, args, message):
    args = [a.replace("{tmp}", str(tmp_path)) for a in args]
    r = run(runner, photos / "b.jpg", *TINY, "--labels", "dog", *args)
    assert r.exit_code == 2, r.output
    assert message in r.output and "Traceback" not in r.output
    assert not (tmp_path / "out.jpg").exists()


def test_outputs_never_overwrite_inputs(runner, photos, tmp_path):
    img = photos / "000000000139.png"
    before = img.read_bytes()
    for opt in ("-o", "--coco-output", "--save-vis", "--save-labels"):
        r = run(runner, img, *FAST, opt, img)
        assert r.exit_code == 2, (opt, r.output)
        assert "input" in r.stderr, (opt, r.stderr)
    r = run(runner, img, *FAST, "--save-vis", tmp_path / "x.png", "--save-labels", tmp_path / "x.png")
    assert r.exit_code == 2 and "same file" in r.stderr
    r = run(runner, photos, *FAST, "--save-labels", tmp_path / "one.png")  # a folder of images needs a folder
    assert r.exit_code == 2 and "folder" in r.stderr
    assert img.read_bytes() == before


@pytest.mark.slow
def test_exif_rotated_photo_gives_masks_in_rotated_size(runner, tmp_path):
    from skimage import data

    stored = np.asarray(Image.fromarray(data.coffee()).resize((120, 80), Image.Resampling.BILINEAR))  # W 120, H 80
    p = tmp_path / "coffee.jpg"
    im = Image.fromarray(stored)
    exif = im.getexif()
    exif[0x0112] = 6  # rotate 90° clockwise on display: the original is 120 high, 80 wide
    im.save(p, exif=exif.tobytes(), quality=90)
    out, labels, vis = tmp_path / "o.json", tmp_path / "l.png", tmp_path / "v.png"
    r = run(runner, p, *FAST, "--max-detections", "10", "-o", out, "--save-labels", labels, "--save-vis", vis)
    assert r.exit_code == 0, r.output
    doc = json.loads(out.read_text())
    (rec,) = doc["results"]
    masks = _check_record(rec, doc["class_names"], (120, 80))
    assert len(masks) > 0
    for path in (labels, vis):
        with Image.open(path) as x:
            assert x.size == (80, 120), path
    _check_label_map_against_masks(read_label_png(labels), rec, masks)


@pytest.mark.slow
def test_label_matching_nothing_with_the_shipped_model(runner, tmp_path):
    from ovtools.datasets.shapes import generate_scenes

    (scene,) = generate_scenes(1, seed=2000, size=192)
    absent = "red square"
    assert absent not in {o.name for o in scene.objects}
    img = tmp_path / "scene.png"
    Image.fromarray(scene.image).save(img)
    out, labels = tmp_path / "o.json", tmp_path / "l.png"
    r = run(runner, img, "--preset", "segment-shapes", "--device", "cpu", "--labels", absent, "-o", out,
            "--save-labels", labels)
    assert r.exit_code == 0, r.output
    assert "nothing found" in r.stdout
    doc = json.loads(out.read_text())
    assert doc["class_names"] == [absent] and doc["model"] == "ovtools-shapes"
    assert doc["results"][0]["detections"] == [] and doc["results"][0]["image_size"] == [192, 192]
    with Image.open(labels) as lp:
        assert lp.size == (192, 192)
        assert not np.asarray(lp).any()
    assert (read_label_png(labels) == -1).all()


@pytest.mark.slow
def test_save_labels_with_more_than_255_classes(runner, photos, tmp_path):
    labels = tmp_path / "l.png"
    many = ", ".join(f"thing{i}" for i in range(300))
    r = run(runner, photos / "b.jpg", *TINY, "--scoring", "dense", "--labels", many, "--save-labels", labels)
    assert r.exit_code == 0, r.output
    with Image.open(labels) as lp:
        assert lp.size == (72, 72) and lp.mode in ("I;16", "I")
    assert read_label_png(labels).max() < 300


def test_help_lists_segment_options(runner):
    r = runner.invoke(app, ["segment", "--help"], terminal_width=200)
    assert r.exit_code == 0
    for option in ("--labels", "--classes", "--scoring", "--proposals", "--sam-checkpoint", "--sam-model",
                   "--threshold", "--max-detections", "--save-labels", "--save-vis", "--coco-output", "--output",
                   "--preset", "--model", "--pretrained", "--device", "--max-side", "--recursive", "--quiet"):
        assert option in r.stdout, option
