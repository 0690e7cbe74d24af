"""Training crops of rendered 3D views, the posed RGB-D writer and the 3D datagen kinds."""

from __future__ import annotations

import csv
import re
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from ovtools.datasets.export import NEGATIVE_LABEL
from ovtools.datasets.scenes3d import SCENE3D_CLASS_NAMES, generate_scenes3d
from ovtools.datasets.shapes import COLOURS
from ovtools.datasets.views3d import (
    CLIP_MEAN,
    CLIP_STD,
    FLOOR_NAME,
    masked_crops,
    scene_crops,
    write_scene_rgbd,
    write_views3d,
)
from ovtools.cli.inprocess import run_cli
from ovtools.prompts import ClassSpace
from ovtools.scene3d import (
    RGBDFolder,
    estimate_point_spacing,
    plan_views,
    render_points,
)

POINTS = 20_000
SMALL = (120, 160)
MEAN_RGB = np.array(CLIP_MEAN) * 255


@pytest.fixture(scope="module")
def scene():
    return next(generate_scenes3d(1, seed=5, points=POINTS))


@pytest.fixture(scope="module")
def render(scene):
    cam = plan_views(scene.points, n_around=6, elevations=(30,), size=(240, 320))[0]
    r = render_points(scene.points, scene.colors, cam.K, cam.pose, cam.size,
                      point_size_m=1.5 * estimate_point_spacing(scene.points))
    return r.rgb.numpy(), r.index.numpy()


def _instances(scene, index):
    return np.where(index >= 0, scene.instance_id[np.maximum(index, 0)], -1)


@pytest.mark.slow
def test_masked_crops_are_what_mask_features_encodes(tiny_rn_encoder, render):
    """Same box, padding, roi_align and mean fill as MaskFeatures.crops (up to uint8 rounding)."""
    from ovtools.heads.mask_features import MaskFeatures

    rgb, index = render
    masks = torch.from_numpy(np.stack([index >= 0, (index >= 0) & (index % 3 == 0)]))
    masks[1, :40] = True  # a mask touching the border: the square box reaches outside the image
    seen = []
    enc = tiny_rn_encoder
    assert torch.allclose(enc._mean.flatten(), torch.tensor(CLIP_MEAN))
    fake = SimpleNamespace(normalize=enc.normalize, device=enc.device, image_size=64, embed_dim=enc.embed_dim,
                           encode_pixels=lambda x, batch_size=64: seen.append(x) or torch.zeros(len(x), 4))
    MaskFeatures(fake, "crop", mask_fill="mean", context_padding=0.2).crops(
        torch.from_numpy(rgb).permute(2, 0, 1)[None].float() / 255, masks)
    ours = masked_crops(rgb, masks.numpy())
    assert ours.shape == (2, 64, 64, 3) and ours.dtype == np.uint8
    std = torch.tensor(CLIP_STD).view(1, 3, 1, 1)
    mean = torch.tensor(CLIP_MEAN).view(1, 3, 1, 1)
    theirs = ((seen[0] * std + mean) * 255).permute(0, 2, 3, 1).numpy()
    assert np.abs(ours.astype(np.float64) - theirs).max() <= 0.51


def test_masked_crops_validate():
    img = np.zeros((10, 12, 3), np.uint8)
    assert masked_crops(img, np.zeros((0, 10, 12), bool)).shape == (0, 64, 64, 3)
    with pytest.raises(ValueError, match="masks must have shape"):
        masked_crops(img, np.ones((1, 9, 12), bool))
    with pytest.raises(ValueError, match="at least one pixel"):
        masked_crops(img, np.zeros((1, 10, 12), bool))
    with pytest.raises(ValueError, match="uint8"):
        masked_crops(img.astype(np.float32), np.ones((1, 10, 12), bool))


def test_masked_object_crop_shows_the_object_colour(scene, render):
    rgb, index = render
    inst = _instances(scene, index)
    ks = [k for k in range(1, len(scene.objects) + 1) if (inst == k).sum() >= 80]
    assert ks
    crops = masked_crops(rgb, np.stack([inst == k for k in ks]))
    for crop, k in zip(crops, ks):
        px = crop.reshape(-1, 3).astype(np.float64)
        far = np.abs(px - MEAN_RGB).max(1) > 40  # clearly not the fill colour
        assert far.mean() > 0.1
        colour = np.median(px[far], axis=0)
        expected = np.array(COLOURS[scene.objects[k - 1].colour])
        assert np.abs(colour - expected).max() < 30, (scene.objects[k - 1].name, colour)
        corner = crop[:3, :3].reshape(-1, 3)  # outside the mask: the mean colour
        assert np.abs(corner - MEAN_RGB).max() <= 1


@pytest.mark.slow
def test_scene_crops_deterministic_and_consistent():
    a = scene_crops(0, 1, n_views=2, points=POINTS, size=(240, 320))
    b = scene_crops(0, 1, n_views=2, points=POINTS, size=(240, 320))
    assert len(a) == len(b) > 0
    for (ia, *ra), (ib, *rb) in zip(a, b):
        assert ra == rb and np.array_equal(ia, ib)
    space = {c.name: c.synonyms for c in ClassSpace.load("shapes3d").classes}
    shown = {o.name for o in next(generate_scenes3d(1, 0, start=1, points=POINTS)).objects}
    for img, caption, label, image_labels in a:
        assert img.shape == (64, 64, 3) and img.dtype == np.uint8
        labels = image_labels.split("|")
        assert label in labels
        primary = labels[0]
        assert primary in shown or primary in (FLOOR_NAME, NEGATIVE_LABEL)
        if primary in SCENE3D_CLASS_NAMES:
            words = (label, *space[label]) if label in space else (label,)
            assert any(re.search(rf"\b{w}\b", caption) for w in words), (caption, label)
    assert any(r[2] == FLOOR_NAME for r in a) and any(r[3].split("|")[0] in shown for r in a)


@pytest.mark.slow
def test_write_views3d_same_bytes_with_workers(tmp_path):
    kw = {"n_views": 1, "points": POINTS, "size": SMALL}
    one = write_views3d(tmp_path / "one", 2, seed=4, workers=1, **kw)
    two = write_views3d(tmp_path / "two", 2, seed=4, workers=2, **kw)
    text = (one / "captions.csv").read_text()
    assert text == (two / "captions.csv").read_text()
    rows = list(csv.reader(text.splitlines()))
    assert rows[0] == ["filepath", "caption", "label", "image_labels"] and len(rows) > 2
    for r in rows[1:]:
        assert (one / r[0]).read_bytes() == (two / r[0]).read_bytes()
    with pytest.raises(ValueError):
        write_views3d(tmp_path / "bad", -1)


def test_rgbd_folder_round_trip(scene, tmp_path):
    out = write_scene_rgbd(scene, tmp_path / "scan", 3, size=SMALL)
    scan = RGBDFolder(out)
    assert scan.names == ["0", "1", "2"]
    cams = plan_views(scene.points, n_around=2, elevations=(30.0, 55.0), size=SMALL, top_down=False, n_inside=0)
    spacing = estimate_point_spacing(scene.points)
    for frame, cam in zip(scan, [cams[0], cams[2], cams[1]]):  # azimuth by azimuth, alternating rings
        r = render_points(scene.points, scene.colors, cam.K, cam.pose, cam.size, point_size_m=1.5 * spacing)
        assert frame.color.shape == (*SMALL, 3) and frame.depth.shape == SMALL
        np.testing.assert_allclose(frame.pose, cam.pose, atol=1e-8)
        np.testing.assert_allclose(frame.K_depth, cam.K, atol=1e-8)
        assert np.abs(frame.depth - r.depth.numpy()).max() <= 0.0005 + 1e-6  # mm quantisation
        assert np.array_equal(frame.depth > 0, r.depth.numpy() > 0)
        assert np.abs(frame.color.astype(int) - r.rgb.numpy()).mean() < 8  # JPEG
    with pytest.raises(ValueError):
        write_scene_rgbd(scene, tmp_path / "none", 0)


@pytest.mark.slow
def test_datagen_3d_kinds(tmp_path):
    run_cli(["datagen", tmp_path / "s3", "--kind", "scenes3d", "--n", 2, "--seed", 1, "--points", 5000,
             "--rgbd-views", 1])
    assert sorted(p.name for p in (tmp_path / "s3").iterdir()) == [
        "scene_0000", "scene_0000.ply", "scene_0001", "scene_0001.ply", "scenes3d.json"]
    assert len(RGBDFolder(tmp_path / "s3" / "scene_0001").names) == 1
    with pytest.raises(RuntimeError, match="code 2"):  # not empty
        run_cli(["datagen", tmp_path / "s3", "--kind", "scenes3d", "--n", 1, "--points", 5000])
    run_cli(["datagen", tmp_path / "v3", "--kind", "views3d", "--n", 1, "--points", POINTS])
    rows = list(csv.reader((tmp_path / "v3" / "captions.csv").read_text().splitlines()))
    assert len(rows) > 5 and all((tmp_path / "v3" / r[0]).is_file() for r in rows[1:])
