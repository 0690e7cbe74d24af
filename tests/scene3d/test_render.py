"""render_points: exact pixels/depth/index, z-buffer occlusion, splat sizes, chunking, hole filling, errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ovtools.scene3d import estimate_point_spacing, look_at, render_points
from ovtools.scene3d.render import Render

K = np.array([[100.0, 0.0, 16.0], [0.0, 100.0, 12.0], [0.0, 0.0, 1.0]])
SIZE = (24, 32)


def test_points_land_on_expected_pixels_with_depth_and_index():
    pts = np.array([[0.0, 0.0, 2.0], [0.2, -0.1, 2.0], [-0.3, 0.2, 4.0]], np.float32)
    cols = np.array([[255, 0, 0], [0, 255, 0], [0, 0, 255]], np.uint8)
    r = render_points(pts, cols, K, np.eye(4), SIZE, point_radius_px=0, background=(7, 8, 9), fill_holes=0)
    assert isinstance(r, Render)
    assert r.rgb.shape == (24, 32, 3) and r.rgb.dtype == torch.uint8
    assert r.depth.shape == (24, 32) and r.depth.dtype == torch.float32
    assert r.index.shape == (24, 32) and r.index.dtype == torch.int64
    # u = 100 x / z + 16, v = 100 y / z + 12; pixel = floor(coord + 0.5)
    expected = {(12, 16): 0, (7, 26): 1, (17, 9): 2}
    for (row, col), i in expected.items():
        assert int(r.index[row, col]) == i
        assert float(r.depth[row, col]) == pytest.approx(pts[i, 2])
        assert r.rgb[row, col].tolist() == cols[i].tolist()
    assert int(r.mask.sum()) == 3
    assert r.rgb[0, 0].tolist() == [7, 8, 9] and float(r.depth[0, 0]) == 0.0 and int(r.index[0, 0]) == -1


def test_camera_pose_is_camera_to_world():
    pose = look_at((0.0, -3.0, 1.0), (0.0, 0.0, 1.0))  # looking along +y, image up = +z
    pts = np.array([[0.0, 0.0, 1.0], [0.0, 0.0, 1.3]], np.float32)
    r = render_points(pts, None, K, pose, SIZE, point_radius_px=0, fill_holes=0)
    assert int(r.index[12, 16]) == 0 and float(r.depth[12, 16]) == pytest.approx(3.0)
    assert int(r.index[2, 16]) == 1  # 0.3 m higher in the world = 10 px up in the image


@pytest.mark.parametrize("order", [[0, 1], [1, 0]])
def test_nearer_point_occludes_farther_one(order):
    pts = np.array([[0.0, 0.0, 2.0], [0.0, 0.0, 5.0]], np.float32)[order]
    r = render_points(pts, None, K, np.eye(4), SIZE, point_radius_px=2, fill_holes=0)
    near = order.index(0)
    assert (r.index[10:15, 14:19] == near).all()  # the near 5x5 splat covers the far one
    assert torch.allclose(r.depth[10:15, 14:19], torch.tensor(2.0))
    assert int(r.mask.sum()) == 25


def test_splat_size_follows_depth_and_world_size():
    # side = f * point_size_m / z = 100 * 0.1 / 2 = 5 px -> 5x5; at z = 10: 1 px
    pts = np.array([[0.0, 0.0, 2.0], [1.0, 0.0, 10.0]], np.float32)
    r = render_points(pts, None, K, np.eye(4), SIZE, point_size_m=0.1, fill_holes=0)
    assert int((r.index == 0).sum()) == 25 and int((r.index == 1).sum()) == 1
    assert int(r.index[12, 26]) == 1


def test_points_behind_camera_and_empty_cloud():
    r = render_points(np.array([[0.0, 0.0, -2.0]]), None, K, np.eye(4), SIZE, point_radius_px=1)
    assert not bool(r.mask.any())
    r = render_points(np.zeros((0, 3), np.float32), np.zeros((0, 3), np.uint8), K, np.eye(4), SIZE,
                      point_radius_px=1)
    assert not bool(r.mask.any()) and r.rgb.shape == (24, 32, 3)


def test_chunked_equals_unchunked_and_float_colors():
    rng = np.random.default_rng(0)
    pts = (rng.random((3000, 3)) * [2, 2, 3] + [-1, -1, 1]).astype(np.float32)
    cols = rng.random((3000, 3)).astype(np.float32)
    pose = look_at((0.3, -0.2, -0.5), (0.0, 0.0, 2.0), up=(0, -1, 0))
    full = render_points(pts, cols, K, pose, SIZE, point_size_m=0.05)
    part = render_points(pts, cols, K, pose, SIZE, point_size_m=0.05, chunk_size=257)
    assert torch.equal(full.index, part.index) and torch.equal(full.depth, part.depth)
    assert torch.equal(full.rgb, part.rgb)
    i = full.index[full.mask]
    assert torch.equal(full.rgb[full.mask], (torch.from_numpy(cols)[i] * 255).round().to(torch.uint8))


def test_depth_is_front_most_everywhere():
    rng = np.random.default_rng(1)
    pts = (rng.random((2000, 3)) * [1, 1, 2] + [-0.5, -0.5, 1]).astype(np.float32)
    r = render_points(pts, None, K, np.eye(4), SIZE, point_radius_px=0, fill_holes=0)
    u = np.floor(100 * pts[:, 0] / pts[:, 2] + 16.5).astype(int)
    v = np.floor(100 * pts[:, 1] / pts[:, 2] + 12.5).astype(int)
    ok = (u >= 0) & (u < 32) & (v >= 0) & (v < 24)
    best = np.full(SIZE, np.inf)
    np.minimum.at(best, (v[ok], u[ok]), pts[ok, 2])
    drawn = np.isfinite(best)
    assert np.array_equal(drawn, r.mask.numpy())
    assert np.allclose(r.depth.numpy()[drawn], best[drawn])


def test_hole_filling_closes_single_pixel_gaps():
    # A 3x3 block of pixels at depth 2 with the centre pixel missing.
    px = [(r, c) for r in (11, 12, 13) for c in (15, 16, 17) if (r, c) != (12, 16)]
    pts = np.array([[(c - 16) * 2 / 100, (r - 12) * 2 / 100, 2.0] for r, c in px], np.float32)
    holes = render_points(pts, None, K, np.eye(4), SIZE, point_radius_px=0, fill_holes=0)
    filled = render_points(pts, None, K, np.eye(4), SIZE, point_radius_px=0, fill_holes=1)
    assert int(holes.index[12, 16]) == -1
    assert int(filled.index[12, 16]) >= 0 and float(filled.depth[12, 16]) == pytest.approx(2.0)
    assert int(filled.mask.sum()) == 9  # edge pixels have < 5 drawn neighbours: silhouettes do not grow


def test_estimate_point_spacing_on_a_grid():
    g = np.stack(np.meshgrid(np.arange(150), np.arange(150), indexing="ij"), -1).reshape(-1, 2) * 0.01
    pts = np.concatenate([g, np.zeros((len(g), 1))], 1).astype(np.float32)
    assert estimate_point_spacing(pts) == pytest.approx(0.01, rel=0.05)
    assert estimate_point_spacing(pts, max_samples=5000) == pytest.approx(0.01, rel=0.2)  # subsampled
    rnd = np.random.default_rng(0).random((20000, 3)).astype(np.float32)
    rnd[:, 2] = 0  # random points on a 1 m^2 plane: 1 / sqrt(density) = 1 / sqrt(20000)
    assert estimate_point_spacing(rnd) == pytest.approx(20000**-0.5, rel=0.2)


def test_errors():
    with pytest.raises(ValueError, match=r"\(N, 3\)"):
        render_points(np.zeros((4, 2)), None, K, np.eye(4), SIZE, point_radius_px=0)
    with pytest.raises(ValueError, match="non-finite"):
        render_points(np.zeros((4, 3)), None, K, np.full((4, 4), np.inf), SIZE, point_radius_px=0)
    with pytest.raises(ValueError, match="colors"):
        render_points(np.zeros((4, 3)), np.zeros((3, 3), np.uint8), K, np.eye(4), SIZE, point_radius_px=0)
    with pytest.raises(ValueError, match="size"):
        render_points(np.zeros((4, 3)), None, K, np.eye(4), (0, 5), point_radius_px=0)
