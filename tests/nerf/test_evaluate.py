"""Field evaluation: mIoU at the ground-truth points, LERF localisation on held-out views, ``ovtools eval RUN``."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from .conftest import NEEDS_NERFSTUDIO

pytest.importorskip("nerfstudio", reason=NEEDS_NERFSTUDIO)

from typer.testing import CliRunner  # noqa: E402

from ovtools.cli import app  # noqa: E402
from ovtools.datasets.scenes3d import write_scenes3d  # noqa: E402
from ovtools.io.ply import read_point_cloud  # noqa: E402
from ovtools.nerf.evaluate import evaluate_field, point_miou, run_scene  # noqa: E402
from ovtools.prompts import ClassSpace  # noqa: E402


@pytest.fixture(scope="module")
def ground_truth(rgbd_only, tmp_path_factory):
    """The scene's labelled PLY and manifest beside its RGB-D folder, as ``ovtools datagen`` lays them out."""
    out = write_scenes3d(tmp_path_factory.mktemp("gt") / "w", 1, seed=5, points=20_000, min_objects=4, max_objects=4)
    folder = rgbd_only[1]
    shutil.copyfile(out / "scene_0000.ply", folder.parent / f"{folder.name}.ply")
    shutil.copyfile(out / "scenes3d.json", folder.parent / "scenes3d.json")
    return folder.parent / f"{folder.name}.ply"


def test_point_miou_counts_points():
    r = point_miou(np.array([0, 0, 1, -1]), np.array([0, 1, 1, -1]), ["a", "b"])
    assert r["mIoU"] == pytest.approx(1 / 2) and r["point_accuracy"] == pytest.approx(2 / 3)  # gt -1: ignored


def test_evaluate_field(tiny_field, ground_truth):
    assert run_scene(tiny_field)[0] == ground_truth  # found from the run's data folder
    r = evaluate_field(tiny_field, labels=ClassSpace.load("shapes3d"), n_views=2)
    gt = read_point_cloud(ground_truth).fields["class_id"]
    assert r["n_points"] == len(gt) and r["classes_in_gt"] == len(np.unique(gt))
    assert 0.0 <= r["mIoU"] <= 1.0
    # the same figure by hand: labels at the ground-truth points, scored point by point
    space = ClassSpace.load("shapes3d")
    pred = tiny_field.labels_at(read_point_cloud(ground_truth).points, space).class_id
    names = json.loads((ground_truth.parent / "scenes3d.json").read_text())["class_names"]
    to_space = np.array([space.names.index(n) for n in names])
    assert point_miou(pred, to_space[gt], space.names)["mIoU"] == r["mIoU"]
    loc = r["localisation"]
    assert loc["n_views"] == 2 and 0 <= loc["n_found"] <= loc["n_queries"]
    assert sum(q for _, q in loc["per_class"].values()) == loc["n_queries"] > 0
    assert loc["accuracy"] == pytest.approx(loc["n_found"] / loc["n_queries"], abs=1e-6)


def test_evaluate_needs_every_manifest_class(tiny_field, ground_truth):
    with pytest.raises(ValueError, match="not in the class space"):
        evaluate_field(tiny_field, labels="floor", localise=False)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        evaluate_field(tiny_field, ground_truth.parent / "nope.ply")


def test_cli_eval_run(tiny_run, ground_truth, tmp_path):
    res = CliRunner().invoke(app, ["eval", str(tiny_run), "--classes", "shapes3d", "-o", str(tmp_path / "m.json"),
                                   "--quiet"])
    assert res.exit_code == 0, res.output
    doc = json.loads((tmp_path / "m.json").read_text())
    assert doc["task"] == "field3d" and "localisation" in doc and 0 <= doc["mIoU"] <= 1
