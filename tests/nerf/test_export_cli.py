"""Export in segment3d's PLY schema, and the ``ovtools field`` / ``ovtools eval RUN`` commands end to end."""

from __future__ import annotations

import json

import numpy as np
import pytest

from .conftest import NEEDS_NERFSTUDIO

pytest.importorskip("nerfstudio", reason=NEEDS_NERFSTUDIO)

from typer.testing import CliRunner  # noqa: E402

from ovtools.cli import app  # noqa: E402
from ovtools.io.ply import read_point_cloud  # noqa: E402
from ovtools.nerf.export import export_field, field_surface, pick_views  # noqa: E402


def test_pick_views():
    assert pick_views(10, 3) == [0, 4, 9] and pick_views(2, 5) == [0, 1] and pick_views(0, 3) == []


def test_export_writes_segment3d_schema(tiny_field, tmp_path):
    """The 2-step field is not trained: its surface lies beyond the scene box, so the background is kept here."""
    with pytest.raises(ValueError, match="no surface in the 2 rendered views inside the scene box"):
        export_field(tiny_field, tmp_path / "none.ply", max_views=2)
    assert not (tmp_path / "none.ply").exists()
    surf = field_surface(tiny_field, views=[0, 3], voxel_size=0.05, background=True)
    assert surf.n_views == 2 and surf.points.dtype == np.float32 and len(surf.points) == len(surf.colors) > 0
    inside = field_surface(tiny_field, views=[0, 3], voxel_size=0.05)
    assert len(inside.points) == 0 or tiny_field.in_scene_box(inside.points).all()
    doc = export_field(tiny_field, tmp_path / "l.ply", summary=tmp_path / "s.json", max_views=2, voxel_size=0.05,
                       background=True)
    cloud = read_point_cloud(tmp_path / "l.ply")
    assert len(cloud) == doc["n_points"]
    assert set(cloud.fields) == {"label", "score"}  # what ovtools segment3d --output writes
    assert cloud.fields["label"].min() >= -1 and cloud.fields["label"].max() < 3
    s = json.loads((tmp_path / "s.json").read_text())
    assert s["class_names"] == ["red cube", "blue sphere", "floor"] and isinstance(s["instances"], list)
    assert sum(s["points_per_class"].values()) == doc["n_points"]
    rel = export_field(tiny_field, tmp_path / "r.ply", query="red cube", max_views=2, voxel_size=0.05,
                       background=True)
    rcloud = read_point_cloud(tmp_path / "r.ply")
    assert set(rcloud.fields) == {"relevancy"} and rel["query"] == "red cube"
    with pytest.raises(ValueError, match="not both"):
        export_field(tiny_field, None, labels="a", query="b")


def _run(*args):
    return CliRunner().invoke(app, [str(a) for a in args])


def test_cli_query_and_export(tiny_run, tmp_path):
    res = _run("field", "query", tiny_run, "--query", "red cube", "--cameras", "0,2", "--render-side", "24",
               "--save-vis", tmp_path / "vis", "--quiet")
    assert res.exit_code == 0, res.output
    rows = [json.loads(line) for line in res.stdout.splitlines()]  # stdout holds the JSON rows and nothing else
    assert [r["camera"] for r in rows] == [0, 2] and all(0 <= r["max_relevancy"] <= 1 for r in rows)
    assert sorted(p.name for p in (tmp_path / "vis").iterdir()) == ["red-cube_cam0.png", "red-cube_cam2.png"]
    res = _run("field", "export", tiny_run, "--labels", "red cube, floor", "-o", tmp_path / "l.ply", "--summary",
               tmp_path / "s.json", "--max-views", "2", "--render-side", "24", "--keep-background")
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["n_points"] > 0  # stdout is one JSON document (nerfstudio's loading lines not there)
    assert set(read_point_cloud(tmp_path / "l.ply").fields) == {"label", "score"}
    assert json.loads((tmp_path / "s.json").read_text())["class_names"] == ["red cube", "floor"]


@pytest.mark.parametrize("args, message", [
    (["field", "query", "{tmp}/missing", "--query", "x"], "does not exist"),
    (["field", "query", "{tmp}", "--query", "x"], "no config.yml"),
    (["field", "query", "{run}", "--query", "  "], "non-empty"),
    (["field", "export", "{run}", "-o", "{tmp}/o.ply"], "no labels"),
    (["field", "export", "{run}", "--labels", "a", "-o", "{tmp}/o.ply", "--max-views", "1"], "no surface"),
    (["field", "export", "{run}", "--labels", "a", "-o", "{run}/config.yml"], ".ply"),
    (["field", "export", "{run}", "--labels", "a", "--query", "b", "-o", "{tmp}/o.ply"], "not both"),
    (["field", "query", "{run}", "--query", "x", "--cameras", "0,99"], "0..6"),
    (["field", "query", "{run}", "--query", "x", "--scale", "0"], "--scale must be > 0"),
    (["field", "query", "{run}", "--query", "x", "--scale", "-0.1"], "--scale must be > 0"),
    (["field", "export", "{run}", "--labels", "a", "-o", "{tmp}/o.ply", "--scale", "0"], "--scale must be > 0"),
    (["field", "export", "{run}", "--labels", "a", "-o", "{tmp}/o.ply", "--voxel-size", "0"], "--voxel-size must"),
    (["field", "export", "{run}", "--query", " ", "-o", "{tmp}/o.ply"], "non-empty"),
    (["field", "train", "{tmp}/nodata", "--out", "{tmp}/r"], "does not exist"),
    (["field", "train", "{tmp}", "--out", "{tmp}/r"], "not an RGB-D folder"),
    (["field", "train", "{run}/..", "--out", "{tmp}/r", "--preset", "huge"], "--preset"),
    (["eval", "{tmp}", "--labels", "a"], None),
])
def test_cli_bad_inputs(tiny_run, tmp_path, args, message):
    res = _run(*(a.format(tmp=tmp_path, run=tiny_run) for a in args))
    assert res.exit_code == 2, res.output
    if message is not None:
        assert message in res.output and "Traceback" not in res.output


def test_a_copied_run_loads_its_own_checkpoint_and_broken_runs_are_one_line_errors(tiny_run, tmp_path):
    """config.yml holds the absolute folder the run was trained in: a copy must still read its own checkpoint
    (a damaged one is an error, not the original's silently), and broken runs give one Error line, exit 2."""
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(tiny_run, copy)
    (ckpt,) = list((copy / "nerfstudio_models").glob("step-*.ckpt"))
    ckpt.write_bytes(ckpt.read_bytes()[:1000])
    res = _run("field", "query", copy, "--query", "red cube", "--cameras", "0", "--render-side", "24")
    assert res.exit_code == 2 and "cannot be read" in res.output and str(copy.resolve()) in res.output, res.output
    assert "Traceback" not in res.output
    ckpt.unlink()
    res = _run("eval", copy)
    assert res.exit_code == 2 and "holds no checkpoint" in res.output, res.output
    shutil.copy2(next((tiny_run / "nerfstudio_models").glob("step-*.ckpt")), ckpt)
    res = _run("field", "query", copy, "--query", "red cube", "--cameras", "0", "--render-side", "24", "--quiet")
    assert res.exit_code == 0, res.output


def test_export_never_writes_onto_the_runs_data(tiny_run, tmp_path):
    """The run's data folder (its images, depth, ground truth) is an input too: known only once the run is
    loaded, it is checked then (export -o onto the scene's ground-truth PLY replaced it before)."""
    from ovtools.nerf.pipeline import FeatureFieldPipeline

    data = FeatureFieldPipeline(tiny_run, "red cube").data
    info = data / "_info.txt"
    before = info.read_bytes()
    res = _run("field", "export", tiny_run, "--labels", "red cube, floor", "-o", tmp_path / "l.ply", "--summary", info,
               "--max-views", "1", "--render-side", "24")
    assert res.exit_code == 2 and "--summary" in res.output and "input" in res.output, res.output
    assert info.read_bytes() == before


def test_field_train_names_the_bad_file_before_training(rgbd_scene, rgbd_only, tmp_path):
    """Bad training data is one Error line naming the file (exit 2) before nerfstudio reads it (it raised
    AttributeError / RuntimeError / ZeroDivisionError tracebacks), and nothing is left in --out."""
    import shutil

    from PIL import Image

    _, folder = rgbd_scene

    def broken(name, change, source=folder):
        data = tmp_path / name
        shutil.copytree(source, data)
        change(data)
        res = _run("field", "train", data, "--out", tmp_path / f"run-{name}", "--iterations", "1", "--model",
                   "ovtools-shapes", "--pretrained", "shapes3d", "--quiet")
        assert res.exit_code == 2 and "Traceback" not in res.output, res.output
        assert not (tmp_path / f"run-{name}").exists()
        return " ".join(res.output.split())

    garbage = broken("garbage", lambda d: (d / "color" / "2.jpg").write_bytes(b"x"))
    assert "color/2.jpg cannot be read as an image" in garbage
    garbage = broken("garbage-rgbd", lambda d: (d / "color" / "2.jpg").write_bytes(b"x"), rgbd_only[1])  # RGB-D layout
    assert "color/2.jpg cannot be read as an image" in garbage
    depth = broken("depth-rgbd", lambda d: (d / "depth" / "5.png").write_bytes(b"x"), rgbd_only[1])
    assert "depth image" in depth and "depth/5.png cannot be read" in depth
    out = broken("sizes", lambda d: Image.open(d / "color" / "3.jpg").resize((80, 60)).save(d / "color" / "3.jpg"))
    assert "3.jpg is 80x60" in out and "one size" in out
    depth = json.loads((folder / "transforms.json").read_text())["frames"][1]["depth_file_path"]
    assert f"depth image {tmp_path / 'nodepth' / depth} does not exist" in broken(
        "nodepth", lambda d: (d / depth).unlink())
    (tmp_path / "a.png").write_bytes(b"")
    res = _run("field", "train", folder, "--out", tmp_path / "a.png" / "run", "--iterations", "1")
    assert res.exit_code == 2 and "is a file, not a folder" in res.output, res.output
