"""`Segment3DPipeline` plumbing: labels for every input point, features computed once per scene,
voxel down-sampling, every input kind (path, PointCloud, (points, colors), RGB-D folder), errors.

The shipped small model (``pretrained="shapes"``) on a small generated scene with cheap settings
(dense 2D features, 2 + 1 small views, 10 distillation steps).  Its labels on the 3D world are not
meaningful yet, so nothing here checks accuracy: shapes, dtypes, ranges and invariants only.
"""

from __future__ import annotations

import dataclasses
import os
import shutil

import numpy as np
import pytest
import torch

pytest.importorskip("plyfile")

from ovtools.datasets.scenes3d import generate_scenes3d
from ovtools.errors import ConfigError
from ovtools.heads.segment3d import MODES, SceneFeatures
from ovtools.io.ply import PointCloud, read_point_cloud, write_ply
from ovtools.scene3d.voxels import voxel_downsample
from ovtools.pipelines import Segment3DPipeline
from ovtools.prompts import CANONICAL_NEGATIVES
from ovtools.scene3d import RGBDFrame, estimate_point_spacing, plan_views, render_points, write_rgbd_folder
from ovtools.structures import PointLabels

pytestmark = pytest.mark.usefixtures("one_torch_thread")

FAST = dict(features="dense", n_around=2, elevations=(45.0,), view_size=(96, 128), distill_steps=10,
            distill_batch=2048)
# Labels equal to the canonical negatives leave no negative to beat: every seen point gets a label,
# so label-sharing checks are not vacuous ("nothing" everywhere).
NEG = list(CANONICAL_NEGATIVES)
N = 8000


@pytest.fixture(scope="module")
def encoder():
    from ovtools.encoders import CLIPEncoder

    return CLIPEncoder("ovtools-shapes", "shapes", device="cpu")


@pytest.fixture(scope="module")
def scene3d():
    return next(generate_scenes3d(1, seed=3000, points=N))


@pytest.fixture(scope="module")
def scene_ply(tmp_path_factory, scene3d):
    return write_ply(tmp_path_factory.mktemp("s3d") / "scene.ply", scene3d.to_point_cloud())


def make(encoder, **kw):
    return Segment3DPipeline("segment3d-shapes", encoder=encoder, **{**FAST, **kw})


@pytest.fixture(scope="module")
def pipe(encoder):
    return make(encoder)


def check_labels(labels: PointLabels, n: int, classes: list[str]) -> None:
    assert isinstance(labels, PointLabels) and len(labels) == n
    assert labels.class_id.dtype == np.int64 and labels.class_id.shape == (n,)
    assert labels.confidence.dtype == np.float32 and labels.confidence.shape == (n,)
    assert labels.class_names == classes
    assert labels.class_id.min() >= -1 and labels.class_id.max() < len(classes)
    assert np.isfinite(labels.confidence).all()
    assert labels.confidence.min() >= 0 and labels.confidence.max() <= 1
    assert labels.seen is not None and labels.seen.dtype == bool and labels.seen.shape == (n,)
    assert sum(labels.counts().values()) == n


def count_features(pipe, monkeypatch) -> list:
    """Record every call of ``pipe.head.features`` (the expensive step)."""
    calls = []
    real = pipe.head.features

    def wrapped(scene, progress=None):
        calls.append(scene.source)
        return real(scene, progress)

    monkeypatch.setattr(pipe.head, "features", wrapped)
    return calls


# ----------------------------------------------------------------------------- labels
@pytest.mark.slow
def test_every_mode_labels_every_point(pipe, scene_ply):
    assert pipe.labels[0] == "floor" and len(pipe.labels) == 41  # the preset's shapes3d class space
    for mode in MODES:
        check_labels(pipe(scene_ply, mode=mode), N, pipe.labels)
    out = pipe(scene_ply, labels=NEG, mode="ensemble")
    check_labels(out, N, NEG)
    assert (out.class_id >= 0).all()  # nothing to beat: every point is labelled
    fused = pipe(scene_ply, labels=NEG, mode="fusion")
    np.testing.assert_array_equal(fused.class_id >= 0, fused.seen)  # fusion: exactly the seen points


def test_unknown_mode_is_a_value_error(pipe, scene_ply):
    with pytest.raises(ValueError, match="mode"):
        pipe(scene_ply, mode="bad")


def test_query_unknown_mode_is_a_value_error(pipe, scene_ply):
    with pytest.raises(ValueError, match="mode"):
        pipe.query(scene_ply, "red cube", mode="bad")


def test_fusion_unseen_points_are_nothing(pipe, scene_ply):
    sf = pipe.features(scene_ply)
    count = sf.count.clone()
    count[:100] = 0  # pretend no view saw the first 100 points
    blind = dataclasses.replace(sf, count=count)
    out = pipe(blind, labels=NEG, mode="fusion")
    assert (out.class_id[:100] == -1).all() and not out.seen[:100].any()
    assert (out.class_id[100:] >= 0).all()
    rel = pipe.query(blind, "red cube", mode="fusion")
    assert rel.dtype == np.float32 and (rel[:100] <= 0.5).all()
    assert (pipe(blind, labels=NEG, mode="distill").class_id[:100] >= 0).all()  # distilled: every point


# ------------------------------------------------------------------- features once
@pytest.mark.slow
def test_features_computed_once_per_scene(encoder, scene3d, tmp_path, monkeypatch):
    p = make(encoder, labels="blue sphere, floor")
    calls = count_features(p, monkeypatch)
    path = write_ply(tmp_path / "a.ply", scene3d.to_point_cloud())
    first = p(path)
    assert len(calls) == 1
    p(path, labels="red cube, floor")
    p(str(path), labels=NEG, mode="fusion")
    p(tmp_path / "." / "a.ply")  # the same file by another spelling
    rel = p.query(path, "red cube")
    sf = p.features(path)
    assert len(calls) == 1
    assert isinstance(sf, SceneFeatures) and sf.fused.shape[0] == N and sf.fused.dtype == torch.float16
    np.testing.assert_array_equal(p(sf).class_id, first.class_id)  # SceneFeatures in: no work at all
    p.query(sf, "blue sphere")
    assert len(calls) == 1 and rel.shape == (N,)

    st = path.stat()  # touched: same content, newer modification time
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 2_000_000_000))
    again = p(path)
    assert len(calls) == 2
    np.testing.assert_array_equal(again.class_id, first.class_id)

    half = scene3d.to_point_cloud().select(np.arange(N // 2))  # rewritten with other content
    write_ply(path, half)
    st = path.stat()
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 4_000_000_000))
    assert len(p(path)) == N // 2 and len(p.query(path, "red cube")) == N // 2
    assert len(calls) == 3


# ----------------------------------------------------------------------- inputs
@pytest.mark.slow
def test_points_colors_tuple_and_point_cloud_inputs(encoder, pipe, scene3d, scene_ply):
    from_path = pipe(scene_ply, labels=NEG)
    tup = pipe((scene3d.points, scene3d.colors), labels=NEG)
    cloud = pipe(PointCloud(scene3d.points, scene3d.colors), labels=NEG)
    for out in (tup, cloud):
        check_labels(out, N, NEG)
        np.testing.assert_array_equal(out.class_id, from_path.class_id)
        np.testing.assert_allclose(out.confidence, from_path.confidence, atol=1e-6)
    check_labels(pipe((scene3d.points.astype(np.float64), None), labels=NEG), N, NEG)  # no colours
    assert pipe.scene((scene3d.points, scene3d.colors)).n_input_points == N
    with pytest.raises(TypeError, match="scene"):
        pipe(scene3d.points)
    with pytest.raises(TypeError, match="scene"):
        pipe(42)


def _groups_share(values: np.ndarray, inverse: np.ndarray) -> bool:
    per_voxel = np.empty(int(inverse.max()) + 1, values.dtype)
    per_voxel[inverse] = values
    return bool((per_voxel[inverse] == values).all())


@pytest.mark.slow
def test_voxel_size_labels_every_input_point(encoder, scene3d, scene_ply):
    p = make(encoder, voxel_size=0.1, labels=NEG)
    small = p.scene(scene_ply)
    assert small.n_input_points == N and 0 < len(small.points) < N // 4
    _, inverse = voxel_downsample(read_point_cloud(scene_ply), 0.1)
    np.testing.assert_array_equal(small.inverse, inverse)
    assert p.features(scene_ply).fused.shape[0] == len(small.points)  # the work is done on the voxels
    for mode in MODES:
        out = p(scene_ply, mode=mode)
        check_labels(out, N, NEG)
        assert _groups_share(out.class_id, inverse) and _groups_share(out.confidence, inverse), mode
    rel = p.query(scene_ply, "red cube")
    assert rel.shape == (N,) and _groups_share(rel, inverse)
    # the same cloud given as arrays is down-sampled the same way
    tup = p((scene3d.points, scene3d.colors))
    np.testing.assert_array_equal(tup.class_id, p(scene_ply).class_id)
    assert p.scene(PointCloud(scene3d.points, scene3d.colors)).inverse.shape == (N,)


def _rgbd_folder(folder, scene3d):
    """4 rendered views of the scene written in the ScanNet layout."""
    cams = plan_views(scene3d.points, n_around=4, elevations=(45.0,), size=(96, 128), top_down=False)
    assert len(cams) == 4
    spacing = estimate_point_spacing(scene3d.points)
    frames = []
    for i, cam in enumerate(cams):
        r = render_points(scene3d.points, scene3d.colors, cam.K, cam.pose, cam.size,
                          point_size_m=1.5 * spacing).cpu()
        frames.append(RGBDFrame(r.rgb.numpy(), r.depth.numpy(), cam.pose, cam.K, cam.K, str(i)))
    return write_rgbd_folder(folder, frames, color_format="png")


@pytest.fixture(scope="module")
def rgbd_folder(tmp_path_factory, scene3d):
    return _rgbd_folder(tmp_path_factory.mktemp("rgbd") / "scan", scene3d)


@pytest.mark.slow
def test_rgbd_folder_without_ply(pipe, rgbd_folder, scene3d):
    scene = pipe.scene(rgbd_folder)
    assert scene.rgbd is not None and len(scene.rgbd) == 4
    n = scene.n_input_points
    assert n > 1000 and scene.colors is not None and scene.colors.dtype == np.uint8
    lo, hi = scene3d.points.min(0), scene3d.points.max(0)  # back-projected depth lies on the scene
    pts = scene.original_points  # the input frame (scene.points: the local working frame)
    assert (pts >= lo - 0.05).all() and (pts <= hi + 0.05).all()
    for mode in MODES:
        check_labels(pipe(rgbd_folder, labels=NEG, mode=mode), n, NEG)
    sf = pipe.features(rgbd_folder)
    assert sf.n_views == 4 and sf.fused.shape[0] == n
    rel = pipe.query(rgbd_folder, "red cube")
    assert rel.shape == (n,) and rel.dtype == np.float32


def test_rgbd_folder_with_ply(pipe, rgbd_folder, scene3d, tmp_path):
    folder = tmp_path / "scan"
    shutil.copytree(rgbd_folder, folder)
    write_ply(folder / "scene0000_00_vh_clean_2.ply", scene3d.to_point_cloud())
    scene = pipe.scene(folder)
    assert scene.n_input_points == N and scene.rgbd is not None
    np.testing.assert_array_equal(scene.original_points, scene3d.points)
    out = pipe(folder, labels=NEG)
    check_labels(out, N, NEG)
    assert pipe.features(folder).n_views == 4


@pytest.mark.slow
def test_rgbd_folder_ply_rewritten_in_place_is_recomputed(pipe, rgbd_folder, scene3d, tmp_path):
    folder = tmp_path / "scan"
    shutil.copytree(rgbd_folder, folder)
    ply = folder / "scene.ply"
    write_ply(ply, scene3d.to_point_cloud())
    assert len(pipe(folder, labels=NEG)) == N
    tmp = write_ply(tmp_path / "half.ply", scene3d.to_point_cloud().select(np.arange(N // 2)))
    st = ply.stat()
    ply.write_bytes(tmp.read_bytes())  # in place, as most tools do: the folder's mtime does not change
    os.utime(ply, ns=(st.st_atime_ns, st.st_mtime_ns + 2_000_000_000))
    assert len(pipe.scene(folder).inverse) == N // 2
    assert len(pipe(folder, labels=NEG)) == N // 2


# ----------------------------------------------------------------------- errors
def test_distill_mode_without_distillation(encoder, scene_ply):
    with pytest.raises(ValueError, match="distill"):
        make(encoder, mode="distill", distill_steps=0)
    with pytest.raises(ValueError, match="distill"):
        make(encoder, mode="ensemble", distill_steps=0)
    p = make(encoder, mode="fusion", distill_steps=0, labels=NEG)
    sf = p.features(scene_ply)
    assert sf.distilled is None
    check_labels(p(sf), N, NEG)
    for mode in ("distill", "ensemble"):
        with pytest.raises(ValueError, match="distill"):
            p(sf, mode=mode)


def test_bad_keyword_is_a_type_error(encoder):
    with pytest.raises(TypeError, match="n_arround"):
        make(encoder, n_arround=3)
    with pytest.raises(TypeError, match="scoring"):
        make(encoder, scoring="dense")  # a 2D segmentation key, not a 3D one
    with pytest.raises(ValueError, match="encoder"):
        Segment3DPipeline("segment3d-shapes", encoder=encoder, pretrained="shapes")


@pytest.mark.slow
def test_pretrained_shapes_by_name(scene3d):
    p = Segment3DPipeline("segment3d-shapes", pretrained="shapes", device="cpu", labels="red cube, floor", **FAST)
    assert p.encoder.pretrained == "shapes" and p.labels == ["red cube", "floor"]
    check_labels(p((scene3d.points[:2000], scene3d.colors[:2000])), 2000, ["red cube", "floor"])


def _preset(tmp_path, **values):
    import yaml

    path = tmp_path / "bad3d.yaml"
    path.write_text(yaml.safe_dump({"task": "segment3d", "model": "ovtools-shapes", "pretrained": "shapes",
                                    "device": "cpu", "labels": "red cube", **values}))
    return path


@pytest.mark.parametrize("values,match", [
    ({"mode": "sideways"}, "mode"),
    ({"features": "pixels"}, "features"),
    ({"view_size": [8, 8]}, "view_size"),
    ({"view_size": [96]}, "view_size"),
    ({"distill_steps": -1}, "distill_steps"),
    ({"n_around": "six"}, "n_around"),
    ({"voxel_size": 0.0}, "voxel_size"),
    ({"score_threshold": 1.5}, "score_threshold"),
    ({"mode": "distill", "distill_steps": 0}, "distill"),
    ({"up_axis": "y"}, "up_axis"),
    ({"depth_scale": 0}, "depth_scale"),
    ({"depth_scale": "mm"}, "depth_scale"),
    ({"n_arround": 3}, "n_arround"),
    ({"task": "segment"}, "segment"),
])
def test_invalid_preset_value_names_the_file(encoder, tmp_path, values, match):
    path = _preset(tmp_path, **values)
    with pytest.raises(ConfigError, match=match) as e:
        Segment3DPipeline(path, encoder=encoder)
    assert str(path) in str(e.value)


@pytest.mark.parametrize("values", [{"elevations": [95.0]}, {"fov_deg": 0.0}])
def test_view_settings_checked_with_the_preset(encoder, tmp_path, values):
    path = _preset(tmp_path, **values)
    with pytest.raises(ConfigError) as e:
        Segment3DPipeline(path, encoder=encoder)
    assert str(path) in str(e.value)


# ----------------------------------------------------------------------- query
@pytest.mark.slow
def test_query_relevancy(pipe, scene_ply):
    for phrase in ("", "   "):
        with pytest.raises(ValueError, match="phrase"):
            pipe.query(scene_ply, phrase)
    for mode in (None, *MODES):
        rel = pipe.query(scene_ply, "red cube", mode=mode)
        assert rel.dtype == np.float32 and rel.shape == (N,)
        assert np.isfinite(rel).all() and (rel > 0).all() and (rel <= 1).all(), mode
    with pytest.raises(RuntimeError, match="labels"):
        make(pipe.encoder, classes=None)(scene_ply)


def test_no_view_seeing_any_point_is_a_clear_error(encoder, scene3d, tmp_path):
    """RGB-D frames of one place with a cloud 100 m away: nothing passes the depth test."""
    from ovtools.io.ply import write_ply
    from ovtools.scene3d import RGBDFrame, plan_views, render_points, write_rgbd_folder

    cams = plan_views(scene3d.points, n_around=2, elevations=(45.0,), size=(48, 64), top_down=False)
    frames = []
    for i, cam in enumerate(cams):
        r = render_points(scene3d.points, scene3d.colors, cam.K, cam.pose, cam.size)
        frames.append(RGBDFrame(r.rgb.numpy(), r.depth.numpy(), cam.pose, cam.K, cam.K, str(i)))
    folder = tmp_path / "scan"
    write_rgbd_folder(folder, frames)
    far = scene3d.to_point_cloud()
    far.points = far.points + np.float32(100.0)
    write_ply(folder / "scan.ply", far)
    p = make(encoder, labels="red cube")
    with pytest.raises(ValueError, match="no view saw any point"):
        p(folder)


@pytest.mark.slow
def test_float_colours_in_0_255_are_understood(encoder, scene3d):
    """(points, colors) with 0-255 floats (as many tools write) label like uint8 colours, not as white."""
    p = make(encoder, labels="red cube, floor")
    a = p((scene3d.points, scene3d.colors))
    b = p((scene3d.points, scene3d.colors.astype(np.float32)))
    c = p((scene3d.points, scene3d.colors.astype(np.float32) / 255))
    np.testing.assert_array_equal(a.class_id, b.class_id)
    np.testing.assert_array_equal(a.class_id, c.class_id)


@pytest.mark.slow
def test_degenerate_extent_names_the_scene_and_huge_voxels_warn(encoder, scene3d, tmp_path):
    from ovtools.io.ply import write_ply

    huge = scene3d.to_point_cloud()
    huge.points = (huge.points + np.float32(1e30)).astype(np.float32)  # every point rounds to one value
    path = write_ply(tmp_path / "huge.ply", huge)
    with pytest.raises(ValueError, match="huge.ply"):
        make(encoder, labels="red cube")(path)
    coarse = make(encoder, labels="red cube", voxel_size=1e9)
    with pytest.warns(UserWarning, match="leaves 1 of"):
        coarse.scene(write_ply(tmp_path / "ok.ply", scene3d.to_point_cloud()))
