"""Region-level training data (proposal crops labelled by overlap) and `ovtools train` on a COCO file."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
from PIL import Image

from ovtools.datasets.export import NEGATIVE_LABEL, write_scenes
from ovtools.train import RegionDataConfig, TrainConfig, region_labels, train, write_region_data

TINY_RN = "ovtools-test-rn"  # tests/assets, registered by tests/conftest.py


@pytest.fixture(scope="module")
def tiny_coco(tmp_path_factory):
    """Three generated scenes (seed 5000, the region-training seed) as a COCO instances file."""
    return write_scenes(tmp_path_factory.mktemp("coco") / "scenes", 3, seed=5000) / "annotations.json"


def _rows(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_region_labels_positive_part_loose_background_ambiguous():
    cfg = RegionDataConfig()
    iou = np.array([[0.8, 0.0], [0.05, 0.0], [0.3, 0.0], [0.6, 0.0], [0.0, 0.0], [0.05, 0.72]])
    inside = np.array([[1.0, 0.0], [0.9, 0.0], [0.5, 0.0], [0.9, 0.0], [0.0, 0.0], [0.9, 1.0]])
    # object 0; a part inside object 0 (IoU 0.05); a loose box (IoU 0.3); ambiguous (IoU 0.6);
    # background; object 1 although it lies inside object 0's box (a small object on a large one)
    assert region_labels(iou, inside, cfg).tolist() == [0, -1, -1, -3, -2, 1]
    assert region_labels(np.zeros((2, 0)), np.zeros((2, 0)), cfg).tolist() == [-2, -2]
    with pytest.raises(ValueError, match="negative_iou"):
        RegionDataConfig(positive_iou=0.4, negative_iou=0.5)


@pytest.mark.parametrize("masked", [False, True])
def test_region_rows_match_the_boxes(tiny_coco, tmp_path, masked):
    cfg = RegionDataConfig(proposals="regions" if masked else "segments", masked=masked,
                           context_padding=0.2 if masked else 0.3)
    path = write_region_data(tiny_coco, tmp_path / "r", image_size=32, config=cfg)
    rows = _rows(path)
    names = {c["name"] for c in json.loads(tiny_coco.read_text())["categories"]}
    pos = [r for r in rows if r["label"] != NEGATIVE_LABEL]
    neg = [r for r in rows if r["label"] == NEGATIVE_LABEL]
    assert len(pos) >= 9 and len(neg) >= 3  # 3-6 objects a scene: every object found, parts and loose boxes
    for r in pos:
        assert r["label"] in names and r["label"] in r["caption"]
        assert r["image_labels"].split("|") == [r["label"], r["label"].split(" ")[1], "object"]
    assert all(r["image_labels"] == NEGATIVE_LABEL and r["label"] not in names for r in neg)
    present = {a["category_id"] for a in json.loads(tiny_coco.read_text())["annotations"]}
    cats = {c["id"]: c["name"] for c in json.loads(tiny_coco.read_text())["categories"]}
    assert {r["label"] for r in pos} <= {cats[c] for c in present}
    img = np.asarray(Image.open(path.parent / rows[0]["filepath"]))
    assert img.shape == (32, 32, 3) and img.dtype == np.uint8
    with pytest.raises(FileExistsError, match="regions.csv"):
        write_region_data(tiny_coco, tmp_path / "r", image_size=32, config=cfg)


def test_region_rows_are_deterministic(tiny_coco, tmp_path):
    a = write_region_data(tiny_coco, tmp_path / "a", image_size=32)
    b = write_region_data(tiny_coco, tmp_path / "b", image_size=32)
    assert _rows(a) == _rows(b)
    ra, rb = _rows(a), _rows(b)
    assert (a.parent / ra[5]["filepath"]).read_bytes() == (b.parent / rb[5]["filepath"]).read_bytes()


def test_masked_crops_need_a_mask_source(tiny_coco, tmp_path):
    with pytest.raises(ValueError, match="mask proposal source"):
        write_region_data(tiny_coco, tmp_path / "m", config=RegionDataConfig(proposals="segments", masked=True))


def test_train_on_a_coco_file(tiny_coco, tmp_path):
    cfg = TrainConfig(data=str(tiny_coco), model=TINY_RN, out=str(tmp_path / "run"), steps=2, batch_size=8,
                      save_every=0, log_every=1, threads=1, device="cpu", warmup=1)
    r = train(cfg, progress=False)
    assert r.loss_name == "supcon-clip" and r.step == 2 and np.isfinite(r.losses).all()
    rows = _rows(tmp_path / "run" / "regions" / "regions.csv")
    assert any(x["label"] == NEGATIVE_LABEL for x in rows) and (tmp_path / "run" / "model.safetensors").is_file()
    # resuming reuses the region rows instead of rewriting them
    stamp = (tmp_path / "run" / "regions" / "regions.csv").stat().st_mtime_ns
    train(TrainConfig(**{**cfg.__dict__, "steps": 3, "resume": str(tmp_path / "run")}), progress=False)
    assert (tmp_path / "run" / "regions" / "regions.csv").stat().st_mtime_ns == stamp


def test_train_cli_on_a_coco_file(tiny_coco, tmp_path):
    from typer.testing import CliRunner

    from ovtools.cli import app

    runner = CliRunner()
    args = ["train", str(tiny_coco), "--model", TINY_RN, "--steps", "1", "--batch-size", "4", "--quiet",
            "--threads", "1", "--device", "cpu"]
    r = runner.invoke(app, [*args, "--out", str(tmp_path / "o"), "--region-proposals", "windows"])
    assert r.exit_code == 0, r.output
    assert (tmp_path / "o" / "regions" / "regions.csv").is_file() and (tmp_path / "o" / "model.safetensors").is_file()
    r = runner.invoke(app, [*args, "--out", str(tmp_path / "o2"), "--region-proposals", "no-such-source"])
    assert r.exit_code == 2 and "no-such-source" in r.output
    r = runner.invoke(app, [*args, "--out", str(tmp_path / "o3"), "--region-masked"])
    assert r.exit_code == 2 and "mask proposal source" in r.output
