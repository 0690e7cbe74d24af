"""README's offline example shows only right boxes (issue 11):

    ovtools datagen scenes/ --kind scenes --n 8 --seed 1
    ovtools detect scenes/images/ --preset detect-shapes --labels "red star, blue circle"

Run through the CLI as a user types it; every reported box must match a ground-truth object of its label
(IoU >= 0.5, one box per object), and most of those objects must be found.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from ovtools.cli import app

pytestmark = [pytest.mark.quality, pytest.mark.timeout(900)]

LABELS = ("red star", "blue circle")


def _iou(a, b) -> float:
    x0, y0, x1, y1 = max(a[0], b[0]), max(a[1], b[1]), min(a[2], b[2]), min(a[3], b[3])
    inter = max(0.0, x1 - x0) * max(0.0, y1 - y0)
    return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)


def test_readme_offline_detect_example_shows_only_right_boxes(tmp_path):
    runner = CliRunner()
    r = runner.invoke(app, ["datagen", str(tmp_path / "scenes"), "--kind", "scenes", "--n", "8", "--seed", "1"])
    assert r.exit_code == 0, r.output
    out = tmp_path / "dets.json"
    r = runner.invoke(app, ["detect", str(tmp_path / "scenes" / "images"), "--preset", "detect-shapes", "--labels",
                            ", ".join(LABELS), "--output", str(out)])
    assert r.exit_code == 0, r.output
    coco = json.loads((tmp_path / "scenes" / "annotations.json").read_text())
    names = {c["id"]: c["name"] for c in coco["categories"]}
    by_file = {im["file_name"].split("/")[-1]: im["id"] for im in coco["images"]}
    gt = {}
    for a in coco["annotations"]:
        if names[a["category_id"]] in LABELS:
            x, y, w, h = a["bbox"]
            gt.setdefault(a["image_id"], []).append((names[a["category_id"]], [x, y, x + w, y + h]))
    doc = json.loads(out.read_text())
    right, wrong = 0, []
    for item in doc["results"]:
        img = by_file[str(item["image"]).split("/")[-1]]
        used = set()
        for d in item["detections"]:
            cands = [(i, _iou(d["xyxy"], b)) for i, (lab, b) in enumerate(gt.get(img, [])) if lab == d["label"]]
            best = max((c for c in cands if c[0] not in used), key=lambda c: c[1], default=(None, 0.0))
            if best[1] >= 0.5:
                used.add(best[0])
                right += 1
            else:
                wrong.append((item["image"], d["label"], d["xyxy"], round(best[1], 2)))
    n_objects = sum(len(v) for v in gt.values())
    assert wrong == [], f"{len(wrong)} wrong boxes: {wrong}"
    assert right >= max(1, int(np.ceil(0.5 * n_objects))), (right, n_objects)
