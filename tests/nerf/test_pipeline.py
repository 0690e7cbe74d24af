"""FeatureFieldPipeline on a tiny trained run: labels and relevancy at points, renders, relevancy maps, frames."""

from __future__ import annotations

import numpy as np
import pytest

from .conftest import NEEDS_NERFSTUDIO

pytest.importorskip("nerfstudio", reason=NEEDS_NERFSTUDIO)

import torch  # noqa: E402

from ovtools.heads.scoring import open_set_scores  # noqa: E402
from ovtools.nerf.dataparser import nerfstudio_cameras, to_model_frame  # noqa: E402
from ovtools.nerf.pipeline import FeatureFieldPipeline  # noqa: E402
from ovtools.prompts import ClassSpace  # noqa: E402
from ovtools.scene3d import RGBDFolder  # noqa: E402
from ovtools.structures import PointLabels  # noqa: E402


def test_run_has_the_data_frame(tiny_field, rgbd_only):
    """The dataset cameras come back as the folder's poses (data frame, OpenCV) and round-trip to nerfstudio."""
    scan = RGBDFolder(rgbd_only[1])
    cams = tiny_field.dataset_cameras()
    frames = tiny_field.nerf.datamanager.train_dataparser_outputs.metadata["frame_indices"]
    assert frames == [0, 1, 2, 3, 5, 6, 7]  # frame 4 held out
    for cam, i in zip(cams, frames):
        assert np.allclose(cam.pose, scan.pose(i), atol=1e-4)
        assert np.allclose(cam.K, scan.K_color, atol=1e-4)
    back = nerfstudio_cameras(cams, tiny_field.transform, tiny_field.scale)
    assert torch.allclose(back.camera_to_worlds, tiny_field.cameras.camera_to_worlds, atol=1e-5)


def test_labels_at_scores_the_field_features(tiny_field, rgbd_only):
    scene = rgbd_only[0]
    pts = scene.points[::97]
    labels = tiny_field.labels_at(pts)
    assert isinstance(labels, PointLabels) and len(labels) == len(pts)
    assert labels.class_names == ["red cube", "blue sphere", "floor"]
    assert labels.confidence.dtype == np.float32 and ((labels.confidence >= 0) & (labels.confidence <= 1)).all()
    # the same answer by hand: the field's features at those points, through the open-set scoring of every head
    emb = tiny_field.embed("red cube, blue sphere, floor")
    feats = tiny_field.features_at(pts, emb)
    assert feats.shape == (len(pts), tiny_field.encoder.embed_dim)
    assert torch.allclose(feats.norm(dim=1), torch.ones(len(pts)), atol=1e-4)
    cid, conf = open_set_scores(feats, emb, tiny_field.encoder.logit_scale).best()
    assert np.array_equal(labels.class_id, cid.numpy()) and np.allclose(labels.confidence, conf.numpy())
    # one scale: the model's own features at the points moved into its frame
    one = FeatureFieldPipeline(tiny_field.run, "floor", encoder=tiny_field.encoder, scales_m=(0.3,))
    direct = tiny_field.model.language_at(torch.from_numpy(
        to_model_frame(pts, tiny_field.transform, tiny_field.scale)).float(), 0.3 * tiny_field.scale)
    assert torch.allclose(one.features_at(pts), direct.cpu(), atol=1e-5)
    other = tiny_field.labels_at(pts, labels="floor")  # labels for one call only
    assert other.class_names == ["floor"] and tiny_field.labels == ["red cube", "blue sphere", "floor"]


def test_relevancy_and_query(tiny_field, rgbd_only):
    pts = rgbd_only[0].points[::211]
    rel = tiny_field.relevancy_at(pts, "red cube")
    assert rel.shape == (len(pts),) and rel.dtype == np.float32 and ((rel >= 0) & (rel <= 1)).all()
    space = ClassSpace.from_names(["red cube"])
    assert np.allclose(tiny_field.relevancy_at(pts, space), rel)
    maps = tiny_field.query("red cube", cameras=[0, 1])
    assert len(maps) == 2 and maps[0].shape == (18, 24) and maps[0].dtype == np.float32
    view = tiny_field.render(1)
    assert np.allclose(tiny_field.relevancy_map(view, "red cube"), maps[1])
    assert view.rgb.dtype == np.uint8 and view.rgb.shape == (18, 24, 3) and view.points.shape == (18, 24, 3)
    empty = ~np.isfinite(view.points[..., 0])
    assert (maps[1][empty] == 0).all() and (view.depth[empty] == 0).all()
    solid = ~empty
    if solid.any():  # depth is along the optical axis of the data-frame camera
        cam = view.camera
        z = ((view.points[solid] - cam.pose[:3, 3]) @ cam.pose[:3, :3])[:, 2]
        assert np.allclose(view.depth[solid], z, atol=1e-3)


def test_bad_inputs(tiny_field, tiny_run, tmp_path):
    with pytest.raises(ValueError, match="non-empty"):
        tiny_field.relevancy_at(np.zeros((2, 3)), "  ")
    with pytest.raises(ValueError, match=r"\(N, 3\)"):
        tiny_field.labels_at(np.zeros((4, 2)))
    with pytest.raises(ValueError, match="finite"):
        tiny_field.labels_at(np.full((1, 3), np.nan))
    with pytest.raises(IndexError, match="dataset cameras"):
        tiny_field.render(999)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        FeatureFieldPipeline(tmp_path / "missing")
    with pytest.raises(FileNotFoundError, match="no config.yml"):
        FeatureFieldPipeline(tmp_path)
    with pytest.raises(ValueError, match="not both"):
        FeatureFieldPipeline(tiny_run, "a", classes="shapes3d")
    with pytest.raises(ValueError, match="scales_m"):
        FeatureFieldPipeline(tiny_run, scales_m=(0.0,))
    fresh = FeatureFieldPipeline(tiny_run, encoder=tiny_field.encoder)
    with pytest.raises(RuntimeError, match="no labels"):
        fresh.labels_at(np.zeros((1, 3)))
