"""``ovtools detect`` end to end with a tiny random-weight model (``--pretrained none``)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from ovtools.cli import app
from ovtools.prompts import CANONICAL_NEGATIVES

TINY = ["--model", "ovtools-test-vit", "--pretrained", "none", "--device", "cpu", "--templates", "single"]
# Dense scoring over windows is fast; labels equal to the canonical negatives leave no negative to beat,
# so a random-weight model still reports boxes.
FAST = [*TINY, "--scoring", "dense", "--proposals", "windows", "--threshold", "0",
        "--labels", ", ".join(CANONICAL_NEGATIVES)]


@pytest.fixture
def runner():
    return CliRunner()


@pytest.fixture
def photos(tmp_path):
    d = tmp_path / "photos"
    d.mkdir()
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 255, (60, 90, 3), dtype=np.uint8)).save(d / "000000000139.jpg")
    Image.fromarray(rng.integers(0, 255, (64, 64, 3), dtype=np.uint8)).save(d / "b.png")
    (d / "empty.png").write_bytes(b"")
    return d


def run(runner, *args):
    return runner.invoke(app, ["detect", *map(str, args)], catch_exceptions=False)


def test_single_image_json_coco_png(runner, photos, tmp_path):
    from pycocotools.coco import COCO

    img = photos / "000000000139.jpg"
    out, coco, vis = tmp_path / "o.json", tmp_path / "coco.json", tmp_path / "v.png"
    r = run(runner, img, *FAST, "--max-detections", "5", "-o", out, "--coco-output", coco, "--save-vis", vis)
    assert r.exit_code == 0, r.output
    assert "000000000139.jpg" in r.stdout
    doc = json.loads(out.read_text())
    assert doc["task"] == "detect" and doc["class_names"] == list(CANONICAL_NEGATIVES)
    (rec,) = doc["results"]
    assert rec["image_size"] == [60, 90] and 0 < len(rec["detections"]) <= 5
    for d in rec["detections"]:
        assert set(d) == {"label", "class_id", "confidence", "xyxy"}
        x0, y0, x1, y1 = d["xyxy"]
        assert 0 <= x0 <= x1 <= 90 and 0 <= y0 <= y1 <= 60 and 0 <= d["confidence"] <= 1
        assert doc["class_names"][d["class_id"]] == d["label"]
    dt = COCO(str(coco.with_name("coco.categories.json"))).loadRes(str(coco))
    assert len(dt.getAnnIds(imgIds=[139])) == len(rec["detections"])
    assert Image.open(vis).size == (90, 60)


def test_batch_continues_past_bad_file(runner, photos, tmp_path):
    out, vis = tmp_path / "o.json", tmp_path / "vis"
    r = run(runner, photos, *FAST, "-o", out, "--save-vis", vis)
    assert r.exit_code == 1
    assert "empty.png" in r.stderr
    doc = json.loads(out.read_text())
    assert sorted(Path(x["image"]).name for x in doc["results"]) == ["000000000139.jpg", "b.png"]
    assert [Path(e["image"]).name for e in doc["errors"]] == ["empty.png"]
    assert sorted(p.name for p in vis.iterdir()) == ["000000000139.detect.png", "b.detect.png"]


def test_crop_scoring_runs(runner, photos):
    r = run(runner, photos / "b.png", *TINY, "--labels", "dog", "--scoring", "crop", "--proposals", "segments")
    assert r.exit_code == 0, r.output


def test_preset_file(runner, photos, tmp_path):
    p = tmp_path / "mine.yaml"
    p.write_text("task: detect\nmodel: ovtools-test-vit\npretrained: none\ndevice: cpu\ntemplates: single\n"
                 "scoring: dense\nproposals: windows\nlabels: [object, things, stuff, texture]\nscore_threshold: 0\n")
    r = run(runner, photos / "b.png", "--preset", p)  # the preset names the labels: no --labels needed
    assert r.exit_code == 0, r.output
    p.write_text("task: detect\nscoring: dense\nscore_treshold: 0.1\n")
    r = run(runner, photos / "b.png", "--preset", p, *TINY, "--labels", "dog")
    assert r.exit_code == 2 and "score_treshold" in r.stderr and "mine.yaml" in r.stderr


@pytest.mark.parametrize("args,message", [
    (["--scoring", "sparse"], "--scoring"),
    (["--proposals", "magic"], "--proposals"),
    (["--threshold", "1.5"], "threshold"),
    (["--nms-iou", "0"], "nms-iou"),
    (["--max-detections", "0"], "max-detections"),
    (["--preset", "no-such-preset"], "unknown pipeline preset"),
])
def test_usage_errors_exit_2(runner, photos, args, message):
    r = run(runner, photos / "b.png", *TINY, "--labels", "dog", *args)
    assert r.exit_code == 2, r.output
    assert message in r.output and "Traceback" not in r.output


def test_no_labels_exit_2(runner, photos):
    r = run(runner, photos / "b.png", *TINY)
    assert r.exit_code == 2 and "no labels" in r.stderr


def test_outputs_never_overwrite_inputs(runner, photos, tmp_path):
    img = photos / "b.png"
    before = img.read_bytes()
    for opt in ("-o", "--coco-output", "--save-vis"):
        r = run(runner, img, *FAST, opt, img)
        assert r.exit_code == 2, (opt, r.output)
    r = run(runner, img, *FAST, "-o", tmp_path / "x.json", "--coco-output", tmp_path / "x.json")
    assert r.exit_code == 2 and "same file" in r.stderr
    assert img.read_bytes() == before


def test_help_lists_every_option(runner):
    r = runner.invoke(app, ["detect", "--help"], terminal_width=200)
    assert r.exit_code == 0
    for option in ("--labels", "--classes", "--scoring", "--proposals", "--threshold", "--nms-iou",
                   "--max-detections", "--preset", "--coco-output", "--output", "--save-vis", "--model",
                   "--pretrained", "--device", "--precision", "--templates", "--batch-size", "--max-side",
                   "--recursive", "--cache-dir", "--no-cache", "--quiet"):
        assert option in r.stdout, option


def test_null_on_the_command_line_sets_a_nullable_setting_to_none(runner, tmp_path):
    """`--cascade-nms-iou null` (documented "null = rank order only") is the preset's `cascade_nms_iou: null`,
    not "the preset's value" and not a parse error; numbers out of range exit 2 before the model loads."""
    from ovtools.cli.derive import NULL, nullable_number

    parse = nullable_number(float, 0.0, 1.0, exclusive_low=True)
    assert parse("null") is NULL and parse("None") is NULL and parse("0.5") == 0.5
    for bad, msg in (("0", "out of range: must be > 0.0 and <= 1.0"), ("abc", "'abc' is not a number or null")):
        with pytest.raises(Exception, match=msg):
            parse(bad)
    img = tmp_path / "a.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8)).save(img)
    base = [img, *TINY, "--scoring", "cascade", "--proposals", "windows", "--threshold", "0",
            "--labels", ", ".join(CANONICAL_NEGATIVES)]
    from ovtools.resources import presets_dir

    preset = tmp_path / "p.yaml"  # detect-default with `cascade_nms_iou: null`
    text = (presets_dir() / "detect-default.yaml").read_text()
    preset.write_text(re.sub(r"(?m)^cascade_nms_iou: *0\.5", "cascade_nms_iou: null", text))
    assert "cascade_nms_iou: null" in preset.read_text()
    codes = []
    for name, extra in (("a", ["--cascade-nms-iou", "null"]), ("b", ["--preset", preset]), ("c", [])):  # c: 0.5
        torch.manual_seed(0)  # the same random weights each time
        codes.append(run(runner, *base, "--cascade-k", 3, *extra, "-o", tmp_path / f"{name}.json").exit_code)
    assert codes == [0, 0, 0]
    dets = [json.loads((tmp_path / f"{n}.json").read_text())["results"][0]["detections"] for n in "abc"]
    assert dets[0] == dets[1] and dets[0] != dets[2]
    for bad in (["--cascade-nms-iou", "0"], ["--cascade-side", "0"], ["--cascade-side", "big"]):
        r = run(runner, *base, *bad)
        assert r.exit_code == 2 and "Invalid value for" in r.output and "loading" not in r.output
