"""3D mIoU per mode on the generated 3D world: ``ovtools eval DIR`` with a ``scenes3d.json`` folder,
and :func:`~ovtools.eval.scenes3d.evaluate_scenes3d` checked against a direct count.

The shipped small model (``--pretrained shapes``) with a small preset written here; its 3D results
are not meaningful yet, so only ranges, keys and consistency are checked.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import yaml
from typer.testing import CliRunner

pytest.importorskip("plyfile")

from ovtools.cli import app
from ovtools.datasets.scenes3d import SCENE3D_CLASS_NAMES, write_scenes3d
from ovtools.io.ply import read_point_cloud

pytestmark = pytest.mark.usefixtures("one_torch_thread")

SMALL = {"task": "segment3d", "model": "ovtools-shapes", "pretrained": "shapes", "device": "cpu",
         "classes": "shapes3d", "features": "dense", "n_around": 2, "elevations": [45.0],
         "view_size": [96, 128], "distill_steps": 10, "distill_batch": 2048}
MODES = {"fusion", "distill", "ensemble"}


@pytest.fixture(scope="module")
def d(tmp_path_factory):
    return tmp_path_factory.mktemp("eval3d")


@pytest.fixture(scope="module")
def world(d):
    return write_scenes3d(d / "world", 2, seed=3000, points=6000)


def _preset(folder, name="segment3d-small.yaml", **values):
    path = folder / name
    path.write_text(yaml.safe_dump({**SMALL, **values}))
    return path


@pytest.fixture(scope="module")
def preset(d):
    return _preset(d)


def run(*args):
    return CliRunner().invoke(app, ["eval", *map(str, args)], catch_exceptions=False)


@pytest.mark.slow
def test_eval_cli_reports_every_mode(world, preset, tmp_path):
    out = tmp_path / "m.json"
    r = run(world, "--preset", preset, "--pretrained", "shapes", "-o", out)
    assert r.exit_code == 0, r.output
    doc = json.loads(out.read_text())
    assert doc["task"] == "segmentation3d" and doc["n_scenes"] == 2
    assert doc["model"] == "ovtools-shapes" and doc["pretrained"] == "shapes" and doc["classes"] == "shapes3d"
    assert set(doc["modes"]) == MODES
    man = json.loads((world / "scenes3d.json").read_text())
    present = {SCENE3D_CLASS_NAMES[0]} | {o["name"] for s in man["scenes"] for o in s["objects"]}
    for mode, m in doc["modes"].items():
        assert 0.0 <= m["mIoU"] <= 1.0, mode
        assert 0.0 <= m["point_accuracy"] <= 1.0, mode
        assert m["classes_in_gt"] == len(present)
        assert set(m["per_class_IoU"]) == present  # by name, every class of the ground truth
        assert all(0.0 <= v <= 1.0 for v in m["per_class_IoU"].values())
        assert m["mIoU"] == pytest.approx(np.mean(list(m["per_class_IoU"].values())), abs=1e-5)
    assert 0.0 <= doc["seen_fraction"] <= 1.0 and doc["seconds_per_scene"] >= 0
    shown = json.loads(r.stdout)  # printed too, without the per-class table
    assert set(shown["modes"]) == MODES and "per_class_IoU" not in shown["modes"]["fusion"]


def _direct_accuracy(pipe, world, mode):
    """Point accuracy and mIoU counted here from the pipeline's labels and the PLY ground truth."""
    names = [n.casefold() for n in pipe.labels]
    correct = total = 0
    inter, union = {}, {}
    for s in json.loads((world / "scenes3d.json").read_text())["scenes"]:
        gt_local = read_point_cloud(world / s["file"]).fields["class_id"]
        gt = np.array([names.index(SCENE3D_CLASS_NAMES[g].casefold()) for g in gt_local])
        pred = pipe(world / s["file"], mode=mode).class_id
        correct += int((pred == gt).sum())
        total += len(gt)
        for c in np.unique(gt):
            inter[c] = inter.get(c, 0) + int(((pred == c) & (gt == c)).sum())
            union[c] = union.get(c, 0) + int(((pred == c) | (gt == c)).sum())
    return correct / total, float(np.mean([inter[c] / union[c] for c in inter]))


@pytest.mark.slow
def test_evaluate_scenes3d_matches_a_direct_count(world, preset):
    from ovtools.eval.scenes3d import evaluate_scenes3d
    from ovtools.pipelines import Segment3DPipeline

    # the manifest's classes in another order: results are mapped by name, not by index
    shuffled = list(SCENE3D_CLASS_NAMES[::-1])
    pipe = Segment3DPipeline(preset, pretrained="shapes", labels=shuffled)
    res = evaluate_scenes3d(pipe, world, modes=("fusion", "distill"))
    assert set(res["modes"]) == {"fusion", "distill"} and res["n_scenes"] == 2
    for mode in ("fusion", "distill"):
        acc, miou = _direct_accuracy(pipe, world, mode)
        assert res["modes"][mode]["point_accuracy"] == pytest.approx(acc, abs=1e-6), mode
        assert res["modes"][mode]["mIoU"] == pytest.approx(miou, abs=2e-6), mode  # classes of the GT only
    one = evaluate_scenes3d(pipe, world / "scenes3d.json", modes=("fusion",), limit=1)
    assert one["n_scenes"] == 1 and set(one["modes"]) == {"fusion"}


@pytest.mark.slow
def test_fusion_only_preset_scores_fusion_only(world, d, tmp_path):
    preset = _preset(d, "fusion-only.yaml", distill_steps=0, mode="fusion")
    out = tmp_path / "m.json"
    r = run(world / "scenes3d.json", "--preset", preset, "--pretrained", "shapes", "-o", out, "-q")
    assert r.exit_code == 0, r.output
    doc = json.loads(out.read_text())
    assert set(doc["modes"]) == {"fusion"} and doc["n_scenes"] == 2


def test_manifest_listing_a_missing_file(world, preset, tmp_path):
    folder = tmp_path / "broken"
    folder.mkdir()
    man = json.loads((world / "scenes3d.json").read_text())
    man["scenes"].append({**man["scenes"][0], "index": 9, "file": "scene_0009.ply"})
    (folder / "scenes3d.json").write_text(json.dumps(man))
    for s in man["scenes"][:2]:
        (folder / s["file"]).write_bytes((world / s["file"]).read_bytes())
    out = tmp_path / "m.json"
    r = run(folder, "--preset", preset, "--pretrained", "shapes", "-o", out)
    assert r.exit_code == 2, r.output
    assert "scene_0009.ply" in r.output and "Traceback" not in r.output
    assert not out.exists()


@pytest.mark.slow
def test_class_space_missing_manifest_classes(world, preset, tmp_path):
    out = tmp_path / "m.json"
    r = run(world, "--preset", preset, "--pretrained", "shapes", "--labels", "red cube", "-o", out)
    assert r.exit_code == 2, r.output
    assert "floor" in r.output and "Traceback" not in r.output
    assert not out.exists()


def test_manifest_without_class_names(world, preset, tmp_path):
    folder = tmp_path / "bad"
    folder.mkdir()
    (folder / "scenes3d.json").write_text(json.dumps({"scenes": []}))
    r = run(folder, "--preset", preset, "--pretrained", "shapes")
    assert r.exit_code == 2 and "class_names" in r.output, r.output


def test_output_never_overwrites_the_dataset(world, preset, tmp_path):
    folder = tmp_path / "copy"
    folder.mkdir()
    for p in world.iterdir():
        (folder / p.name).write_bytes(p.read_bytes())
    before = (folder / "scenes3d.json").read_bytes()
    r = run(folder, "--preset", _preset(tmp_path, distill_steps=0, mode="fusion"), "--pretrained", "shapes",
            "-o", folder / "scenes3d.json", "-q")
    assert (folder / "scenes3d.json").read_bytes() == before
    assert r.exit_code == 2 and "input" in r.output


def _copy_world(world, folder, edit_manifest=None, edit_ply=None):
    """A copy of the world folder with its manifest (and optionally its first PLY) edited."""
    from ovtools.io.ply import write_ply

    folder.mkdir()
    man = json.loads((world / "scenes3d.json").read_text())
    for s in man["scenes"]:
        (folder / s["file"]).write_bytes((world / s["file"]).read_bytes())
    if edit_ply is not None:
        f = folder / man["scenes"][0]["file"]
        write_ply(f, edit_ply(read_point_cloud(f)))
    text = json.dumps(man) if edit_manifest is None else edit_manifest(man)
    (folder / "scenes3d.json").write_text(text)
    return folder


def _no_class_id(cloud):
    cloud.fields.pop("class_id")
    return cloud


def _class_id_999(cloud):
    cloud.fields["class_id"] = np.full(len(cloud.points), 999, np.int32)
    return cloud


@pytest.mark.parametrize("edit_manifest,edit_ply,message", [
    (lambda m: "{not json", None, "not a JSON manifest"),
    (lambda m: json.dumps({**m, "scenes": []}), None, "non-empty list"),
    (lambda m: json.dumps({**m, "scenes": "x.ply"}), None, "non-empty list"),
    (lambda m: json.dumps({**m, "scenes": [{"index": 0}]}), None, "'file'"),
    (lambda m: json.dumps({**m, "class_names": [1, 2, 3]}), None, "class_names"),
    (None, _no_class_id, "no per-point 'class_id'"),
    (None, _class_id_999, "out of range"),
])
@pytest.mark.slow
def test_malformed_3d_datasets_are_usage_errors(world, preset, tmp_path, edit_manifest, edit_ply, message):
    """Breaker's findings: each was a KeyError / IndexError / TypeError traceback (exit 1) or NaN mIoU."""
    folder = _copy_world(world, tmp_path / "w", edit_manifest, edit_ply)
    out = tmp_path / "m.json"
    r = run(folder, "--preset", preset, "--pretrained", "shapes", "-o", out)
    assert r.exit_code == 2, r.output
    assert message in r.output and "Traceback" not in r.output
    assert not out.exists()
