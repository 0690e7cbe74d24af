"""``ovtools segment3d`` end to end: output PLY / summary / features, relevancy queries, the PLY variants
users have (ASCII, float colours, no colours, meshes, NaN points), RGB-D folders and usage errors.

The shipped small model (``--pretrained shapes``) with a small preset written here (dense 2D features,
2 + 1 small views, 10 distillation steps) on a small generated scene.  Plumbing, not accuracy.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import yaml
from typer.testing import CliRunner

plyfile = pytest.importorskip("plyfile")

from ovtools.cli import app
from ovtools.datasets.scenes3d import generate_scenes3d
from ovtools.io.ply import write_ply
from ovtools.prompts import CANONICAL_NEGATIVES

pytestmark = pytest.mark.usefixtures("one_torch_thread")

# Labels equal to the canonical negatives leave no negative to beat: every point is labelled
# (ensemble mode), so the summary has instances to check.
NEG = ", ".join(CANONICAL_NEGATIVES)
N = 6000
SMALL = {"task": "segment3d", "model": "ovtools-shapes", "pretrained": "shapes", "device": "cpu",
         "classes": "shapes3d", "features": "dense", "n_around": 2, "elevations": [45.0],
         "view_size": [96, 128], "distill_steps": 10, "distill_batch": 2048, "mode": "ensemble"}


@pytest.fixture(scope="module")
def d(tmp_path_factory):
    return tmp_path_factory.mktemp("seg3d")


@pytest.fixture(scope="module")
def preset(d):
    path = d / "segment3d-small.yaml"
    path.write_text(yaml.safe_dump(SMALL))
    return path


@pytest.fixture(scope="module")
def scene3d():
    return next(generate_scenes3d(1, seed=3000, points=N))


@pytest.fixture(scope="module")
def scene_ply(d, scene3d):
    return write_ply(d / "scene.ply", scene3d.to_point_cloud())


@pytest.fixture(scope="module")
def ref(preset):
    """The pipeline with the same settings as the command line."""
    from ovtools.pipelines import Segment3DPipeline

    return Segment3DPipeline(preset, pretrained="shapes", labels=NEG)


def run(*args):
    return CliRunner().invoke(app, ["segment3d", *map(str, args)], catch_exceptions=False)


def small(preset, *args):
    return ["--preset", preset, "--pretrained", "shapes", *args]


def vertex(path):
    return plyfile.PlyData.read(str(path))["vertex"]


def _write(path, props: dict, *, text=False, faces=None):
    """Write a PLY with plyfile: ``props`` maps property name → 1-D array (its dtype is the PLY type)."""
    n = len(next(iter(props.values())))
    v = np.empty(n, dtype=[(k, a.dtype.str.lstrip("<>=|")) for k, a in props.items()])
    for k, a in props.items():
        v[k] = a
    elements = [plyfile.PlyElement.describe(v, "vertex")]
    if faces is not None:
        f = np.empty(len(faces), dtype=[("vertex_indices", "O")])
        f["vertex_indices"] = [np.asarray(x, np.int32) for x in faces]
        elements.append(plyfile.PlyElement.describe(f, "face", val_types={"vertex_indices": "i4"}))
    plyfile.PlyData(elements, text=text).write(str(path))
    return path


def _xyz(points):
    return {k: points[:, i].astype(np.float32) for i, k in enumerate("xyz")}


# ----------------------------------------------------------------------- outputs
@pytest.mark.slow
def test_labelled_ply_summary_and_features(preset, scene_ply, scene3d, ref, tmp_path):
    out, summary, feats = tmp_path / "labelled.ply", tmp_path / "summary.json", tmp_path / "f.npy"
    r = run(scene_ply, *small(preset, "--labels", NEG, "-o", out, "--summary", summary, "--features", feats))
    assert r.exit_code == 0, r.output
    shown = json.loads(r.stdout)
    assert shown["n_points"] == N and isinstance(shown["instances"], int)

    v = vertex(out)  # open3d reads what write_ply writes: tests/io/test_ply.py
    assert len(v) == N and {"red", "green", "blue"} <= set(v.data.dtype.names)
    np.testing.assert_allclose(np.stack([np.asarray(v[c]) for c in "xyz"], 1), scene3d.points, atol=1e-6)
    assert v.data.dtype["label"].kind == "i" and v.data.dtype["score"].kind == "f"
    label, score = np.asarray(v["label"]), np.asarray(v["score"])
    expected = ref(scene_ply)
    np.testing.assert_array_equal(label, expected.class_id)
    np.testing.assert_allclose(score, expected.confidence, atol=1e-6)
    assert label.min() >= -1 and label.max() < len(CANONICAL_NEGATIVES)
    assert score.min() >= 0 and score.max() <= 1
    colours = np.stack([np.asarray(v[c]) for c in ("red", "green", "blue")], 1)
    for c in np.unique(label):  # one colour per class
        assert len(np.unique(colours[label == c], axis=0)) == 1

    doc = json.loads(summary.read_text())
    assert doc["n_points"] == N and doc["class_names"] == list(CANONICAL_NEGATIVES)
    assert doc["model"] == "ovtools-shapes" and doc["pretrained"] == "shapes" and doc["mode"] == "ensemble"
    assert sum(doc["points_per_class"].values()) == N
    assert doc["points_per_class"] == expected.counts()
    assert doc["instances"], "every point is labelled: there must be instances"
    total = 0
    for b in doc["instances"]:
        lo, hi, centre, size = (np.array(b[k]) for k in ("min", "max", "centre", "size"))
        assert lo.shape == hi.shape == centre.shape == size.shape == (3,)
        assert (lo <= hi).all()
        np.testing.assert_allclose(centre, (lo + hi) / 2, atol=1e-6)
        np.testing.assert_allclose(size, hi - lo, atol=1e-6)
        assert b["class_name"] in CANONICAL_NEGATIVES and b["n_points"] >= 20
        members = label == b["label"]
        assert (scene3d.points[members].min(0) <= lo + 1e-5).all()  # inside the class's own extent
        total += b["n_points"]
    assert total <= N

    f = np.load(feats)
    assert f.dtype == np.float16 and f.shape == (N, ref.encoder.embed_dim)
    assert np.isfinite(f.astype(np.float32)).all()
    norms = np.linalg.norm(f.astype(np.float32), axis=1)
    assert (norms < 1.01).all() and (norms > 0.99).mean() > 0.9  # L2-normalised features


@pytest.mark.slow
def test_query_writes_relevancy(preset, scene_ply, ref, tmp_path):
    out, summary = tmp_path / "relevancy.ply", tmp_path / "q.json"
    r = run(scene_ply, *small(preset, "--query", "red cube", "-o", out, "--summary", summary, "-q"))
    assert r.exit_code == 0, r.output
    v = vertex(out)
    assert "label" not in v.data.dtype.names and v.data.dtype["relevancy"].kind == "f"
    rel = np.asarray(v["relevancy"])
    assert rel.shape == (N,) and (rel > 0).all() and (rel <= 1).all()
    np.testing.assert_allclose(rel, ref.query(scene_ply, "red cube"), atol=1e-6)
    assert len(v) == N and {"red", "green", "blue"} <= set(v.data.dtype.names)
    doc = json.loads(summary.read_text())
    assert doc["query"] == "red cube" and doc["n_points"] == N
    assert doc["points_relevant"] == int((rel > 0.5).sum())
    assert doc["max_relevancy"] == pytest.approx(float(rel.max()), abs=1e-5)


@pytest.mark.slow
def test_voxel_size_output_keeps_the_input_points(preset, scene_ply, scene3d, tmp_path):
    out = tmp_path / "v.ply"
    r = run(scene_ply, *small(preset, "--labels", NEG, "--voxel-size", "0.1", "-o", out, "-q"))
    assert r.exit_code == 0, r.output
    v = vertex(out)
    assert len(v) == N
    np.testing.assert_allclose(np.stack([v["x"], v["y"], v["z"]], 1), scene3d.points, atol=1e-6)


# ----------------------------------------------------------------- PLY variants
def _variant(kind, scene3d, path):
    pts, rgb = scene3d.points, scene3d.colors
    colours = {k: rgb[:, i] for i, k in enumerate(("red", "green", "blue"))}
    if kind == "ascii":
        return _write(path, {**_xyz(pts), **colours}, text=True), N
    if kind == "float_rgb":
        return _write(path, {**_xyz(pts), **{k: (rgb[:, i] / 255.0).astype(np.float32)
                                             for i, k in enumerate("rgb")}}), N
    if kind == "no_colours":
        return _write(path, _xyz(pts)), N
    if kind == "mesh":
        faces = [[i, i + 1, i + 2] for i in range(0, N - 2, 3)]
        return _write(path, {**_xyz(pts), **colours}, faces=faces), N
    bad = pts.copy()  # "nan"
    bad[[5, 50, 500], 2] = [np.nan, np.inf, np.nan]
    return _write(path, {**_xyz(bad), **colours}), N  # invalid rows keep their place (issue 10)


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["ascii", "float_rgb", "no_colours", "mesh", "nan"])
def test_ply_variants_end_to_end(preset, scene3d, tmp_path, kind):
    path, n = _variant(kind, scene3d, tmp_path / f"{kind}.ply")
    out = tmp_path / "out.ply"
    warns = {"no_colours": "colours", "nan": "3 of 6000 points have NaN/inf"}
    if kind in warns:
        with pytest.warns(UserWarning, match=warns[kind]):
            r = run(path, *small(preset, "--labels", NEG, "-o", out, "-q"))
    else:
        r = run(path, *small(preset, "--labels", NEG, "-o", out, "-q"))
    assert r.exit_code == 0, r.output
    v = vertex(out)
    assert len(v) == n
    pts = np.stack([v["x"], v["y"], v["z"]], 1)
    valid = np.isfinite(scene3d.points).all(1)
    label = np.asarray(v["label"])
    if kind == "nan":  # every input row, in input order; invalid rows: coordinates as given, label -1, score 0
        valid[[5, 50, 500]] = False
        assert np.isnan(pts[[5, 500], 2]).all() and np.isposinf(pts[50, 2])
        assert (label[~valid] == -1).all() and (np.asarray(v["score"])[~valid] == 0).all()
    np.testing.assert_allclose(pts[valid], scene3d.points[valid], atol=1e-6)
    assert label.min() >= -1 and label.max() < len(CANONICAL_NEGATIVES)


@pytest.mark.slow
def test_rgbd_folder(preset, scene3d, tmp_path):
    from ovtools.scene3d import RGBDFrame, plan_views, render_points, write_rgbd_folder

    cams = plan_views(scene3d.points, n_around=4, elevations=(45.0,), size=(96, 128), top_down=False)
    frames = []
    for i, cam in enumerate(cams):
        r = render_points(scene3d.points, scene3d.colors, cam.K, cam.pose, cam.size).cpu()
        frames.append(RGBDFrame(r.rgb.numpy(), r.depth.numpy(), cam.pose, cam.K, cam.K, str(i)))
    folder = write_rgbd_folder(tmp_path / "scan", frames, color_format="png")
    ply = write_ply(folder / "scene.ply", scene3d.to_point_cloud())
    out, summary = tmp_path / "l.ply", tmp_path / "s.json"
    r = run(folder, *small(preset, "--labels", NEG, "-o", out, "--summary", summary, "-q"))
    assert r.exit_code == 0, r.output
    assert len(vertex(out)) == N
    doc = json.loads(summary.read_text())
    assert doc["n_views"] == 4 and sum(doc["points_per_class"].values()) == N
    before = ply.read_bytes()
    for opt, target in (("-o", ply), ("--summary", folder / "pose" / "0.txt")):  # every file in it is an input
        r = run(folder, *small(preset, "--labels", NEG, opt, target))
        assert r.exit_code == 2 and "input" in r.output, r.output
    assert ply.read_bytes() == before


# ----------------------------------------------------------------- usage errors
def _usage_scene(kind, d, scene_ply):
    if kind == "missing":
        return d / "missing.ply"
    if kind == "empty":
        p = d / "empty.ply"
        p.write_bytes(b"")
        return p
    if kind == "no_points":
        return _write(d / "no_points.ply", _xyz(np.zeros((0, 3), np.float32)))
    if kind == "one_point":
        return _write(d / "one_point.ply", _xyz(np.zeros((1, 3), np.float32)))
    return scene_ply


@pytest.mark.parametrize("kind,args,message", [
    ("missing", [], "does not exist"),
    ("empty", [], "empty.ply"),
    ("no_points", [], "no_points.ply"),
    ("one_point", [], "one_point.ply"),
    ("ok", ["--mode", "bad"], "--mode"),
    ("ok", ["--2d-features", "bad"], "--2d-features"),
    ("ok", ["--output", "{tmp}/out.txt"], ".ply"),
    ("ok", ["--features", "{tmp}/f.txt"], ".npy"),
    ("ok", ["--query", ""], "--query"),
    ("ok", ["--query", "   "], "--query"),
    ("ok", ["--voxel-size", "0"], "--voxel-size"),
    ("ok", ["--threshold", "1.5"], "threshold"),
    ("ok", ["--classes", "shapes3d"], "not both"),
    ("ok", ["--distill-steps", "0", "--mode", "ensemble"], "distill"),  # ensemble needs the 3D network
    ("ok", ["--summary", "{tmp}/x.npy", "--features", "{tmp}/x.npy"], "same file"),
])
@pytest.mark.slow
def test_usage_errors_exit_2(preset, d, scene_ply, tmp_path, kind, args, message):
    scene = _usage_scene(kind, d, scene_ply)
    args = [a.replace("{tmp}", str(tmp_path)) for a in args]
    r = run(scene, *small(preset, "--labels", "red cube", *args))
    assert r.exit_code == 2, r.output
    assert message in r.output and "Traceback" not in r.output
    assert not any(tmp_path.iterdir())


def test_output_equal_to_the_scene_is_refused(preset, scene3d, tmp_path):
    scene = write_ply(tmp_path / "scene.ply", scene3d.to_point_cloud())
    before = scene.read_bytes()
    for opt in ("-o", "--summary"):
        r = run(scene, *small(preset, "--labels", "red cube", opt, scene))
        assert r.exit_code == 2 and "input" in r.output, (opt, r.output)
    assert scene.read_bytes() == before


def test_unknown_class_space_is_a_usage_error(preset, scene_ply):
    r = run(scene_ply, *small(preset, "--classes", "no-such-classes"))
    assert r.exit_code == 2, r.output
    assert "no-such-classes" in r.output and "Traceback" not in r.output


def test_no_labels_is_a_usage_error(scene_ply, tmp_path):
    path = tmp_path / "nolabels.yaml"
    path.write_text(yaml.safe_dump({**SMALL, "classes": None}))
    r = run(scene_ply, "--preset", path, "--pretrained", "shapes")
    assert r.exit_code == 2 and "no labels" in r.output, r.output


def test_invalid_view_setting_is_a_usage_error(scene_ply, tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump({**SMALL, "elevations": [95.0]}))
    r = CliRunner().invoke(app, ["segment3d", str(scene_ply), "--preset", str(path), "--labels", "red cube"])
    assert r.exit_code == 2, r.output
    assert "elevations" in r.output


def test_help_lists_segment3d_options():
    r = CliRunner().invoke(app, ["segment3d", "--help"], terminal_width=200)
    assert r.exit_code == 0
    for option in ("--labels", "--classes", "--query", "--mode", "--2d-features", "--voxel-size",
                   "--distill-steps", "--threshold", "--output", "--summary", "--features", "--preset",
                   "--pretrained", "--device"):
        assert option in r.stdout, option


@pytest.mark.slow
def test_distill_steps_0_alone_means_fusion(preset, scene_ply, tmp_path):
    """No 3D network: --distill-steps 0 without --mode runs fusion instead of failing on the preset's ensemble."""
    summary = tmp_path / "s.json"
    r = run(scene_ply, *small(preset, "--labels", "red cube", "--distill-steps", "0", "--summary", summary))
    assert r.exit_code == 0, r.output
    assert json.loads(summary.read_text())["mode"] == "fusion"
    assert "distill 0.0 s" in r.output  # the stage timings on stderr


@pytest.mark.slow
def test_xyz_input_without_a_loadable_open3d_is_one_line(preset, tmp_path, monkeypatch):
    from tests.io.test_ply import broken_open3d

    path = tmp_path / "scan.xyz"
    path.write_text("0 0 0\n1 0 0\n0 1 0\n0 0 1\n")
    broken_open3d(monkeypatch, tmp_path)
    r = run(path, *small(preset, "--labels", "red cube"))
    assert r.exit_code != 0
    lines = [ln for ln in r.output.splitlines() if ln.strip() and not ln.startswith("segment3d: ")]  # not stages
    assert len(lines) == 1 and "apt-get install libusb-1.0-0" in lines[0] and "Traceback" not in r.output
