"""Depth conventions of RGB-D folders (issue 10, items 3 and 4, and beyond): units per metre (setting,
``_info.txt``, float maps in metres), the one-line plausibility warning, colour cameras that differ from
the depth camera, and scans posed in survey coordinates."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from PIL import Image

from ovtools.datasets.scenes3d import generate_scenes3d
from ovtools.scene3d import (
    FeaturePartition,
    RGBDFolder,
    RGBDFrame,
    backproject_rgbd,
    check_depth_scale,
    folder_depth_scale,
    fuse_features,
    plan_views,
    read_depth,
    render_points,
    write_rgbd_folder,
)


@pytest.fixture(scope="module")
def frames():
    """3 rendered views (48 x 64) around a small generated scene: real multi-view geometry."""
    scene = next(generate_scenes3d(1, seed=3000, points=4000))
    cams = plan_views(scene.points, n_around=3, elevations=(45.0,), size=(48, 64), top_down=False)
    out = []
    for i, cam in enumerate(cams):
        r = render_points(scene.points, scene.colors, cam.K, cam.pose, cam.size, point_size_m=0.06).cpu()
        out.append(RGBDFrame(r.rgb.numpy(), r.depth.numpy(), cam.pose, cam.K, cam.K, str(i)))
    return out


def test_read_depth_conventions(tmp_path):
    mm = np.array([[0, 1000], [2500, 65535]], np.uint16)
    Image.fromarray(mm).save(tmp_path / "a.png")
    d, scale = read_depth(tmp_path / "a.png")
    assert scale == 1000 and d.dtype == np.float32
    np.testing.assert_allclose(d, [[0.0, 1.0], [2.5, 65.535]], rtol=1e-6)
    assert read_depth(tmp_path / "a.png", 5000.0)[0][1, 0] == pytest.approx(0.5)
    metres = np.array([[np.nan, 1.25], [-1.0, np.inf]], np.float32)  # 32-bit float TIFF in metres
    Image.fromarray(metres).save(tmp_path / "b.tiff")
    d, scale = read_depth(tmp_path / "b.tiff")
    assert scale == 1.0 and d.tolist() == [[0.0, 1.25], [0.0, 0.0]]  # NaN, negative, inf: invalid
    np.save(tmp_path / "c.npy", metres)
    assert read_depth(tmp_path / "c.npy")[0].tolist() == [[0.0, 1.25], [0.0, 0.0]]
    Image.fromarray(np.zeros((2, 2), np.uint8)).save(tmp_path / "d.png")
    with pytest.raises(ValueError, match="8-bit"):
        read_depth(tmp_path / "d.png")


def test_info_file_declares_the_units(tmp_path, frames):
    folder = write_rgbd_folder(tmp_path / "tum", frames, depth_scale=5000.0, color_format="png")
    assert folder_depth_scale(folder) == 5000.0  # the writer says what it wrote
    scan = RGBDFolder(folder)
    assert scan.depth_scale == 5000.0 and "_info.txt" in scan.depth_scale_source
    np.testing.assert_allclose(scan[0].depth, frames[0].depth, atol=1e-4)
    assert RGBDFolder(folder, depth_scale=1000.0)[0].depth.max() == pytest.approx(5 * frames[0].depth.max(),
                                                                                 rel=1e-3)
    (folder / "_info.txt").write_text("m_versionNumber = 4\nm_depthShift = abc\n")
    with pytest.raises(ValueError, match="m_depthShift"):
        RGBDFolder(folder)


def test_float_tiff_depth_folder_reads_metres(tmp_path, frames):
    folder = write_rgbd_folder(tmp_path / "f", frames, color_format="png", depth_format="tiff")
    assert not (folder / "_info.txt").exists() and next((folder / "depth").iterdir()).suffix == ".tiff"
    scan = RGBDFolder(folder)
    np.testing.assert_allclose(scan[1].depth, frames[1].depth, atol=1e-6)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert check_depth_scale(scan) is None


def _scaled(frames, s):
    """The same views of a world scaled by ``s`` (depths and camera positions alike)."""
    out = []
    for f in frames:
        pose = f.pose.copy()
        pose[:3, 3] *= s
        out.append(RGBDFrame(f.color, f.depth * s, pose, f.K_color, f.K_depth, f.name))
    return out


def test_wrong_units_warn_in_one_line_naming_the_setting(tmp_path, frames):
    desk = _scaled(frames, 0.4)  # cameras ~2 m away: read at 1000 instead of 5000, the median (9 m) looks fine
    folder = write_rgbd_folder(tmp_path / "tum", desk, depth_scale=5000.0, color_format="png")
    (folder / "_info.txt").unlink()  # TUM RGB-D: 5000 per metre, and nothing in the folder says so
    with pytest.warns(UserWarning, match=r"5000 units per metre, not 1000.*depth_scale") as w:
        check_depth_scale(RGBDFolder(folder))
    assert len(w) == 1 and "\n" not in str(w[0].message)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert check_depth_scale(RGBDFolder(folder, depth_scale=5000.0)) is None
    with pytest.warns(UserWarning, match=r"median depth .* implausible.*depth_scale"):
        check_depth_scale(RGBDFolder(folder, depth_scale=1.0))  # read as metres: kilometres away


def test_colour_camera_other_than_depth_camera(tmp_path):
    """Colour pixels come from the colour camera (its own K, size and offset), for colours and features."""
    kd = np.array([[25.0, 0, 14.5], [0, 25.0, 9.5], [0, 0, 1]])  # depth 20 x 30
    kc = np.array([[40.0, 0, 27.0], [0, 40.0, 16.0], [0, 0, 1]])  # colour 36 x 50, other FOV and centre
    e = np.eye(4)
    e[0, 3] = -0.1  # the colour camera sits 10 cm to the right of the depth camera
    color = np.zeros((36, 50, 3), np.uint8)
    color[:, :, 0] = np.arange(50, dtype=np.uint8)[None] * 5  # red encodes the colour column
    f = RGBDFrame(color, np.full((20, 30), 2.0, np.float32), np.eye(4), kc, kd, "0", e)
    folder = write_rgbd_folder(tmp_path / "scan", [f], color_format="png")
    scan = RGBDFolder(folder)
    np.testing.assert_allclose(scan.color_from_depth, e, atol=1e-8)
    pts, cols = backproject_rgbd(scan, voxel_size=0.001)
    u = np.floor(kc[0, 0] * (pts[:, 0] - 0.1) / pts[:, 2] + kc[0, 2] + 0.5)
    np.testing.assert_array_equal(cols[:, 0], (u * 5).astype(np.uint8))
    # fusion: a partition of the colour image in 50 column cells picks the cell the point projects to
    part = FeaturePartition(torch.arange(50).repeat(36, 1), torch.eye(50))
    fused = fuse_features(pts.astype(np.float32), [(kd, np.eye(4), f.depth, part, kc, (36, 50), e)],
                          depth_tolerance=0.01)
    assert bool(fused.seen.all())
    np.testing.assert_array_equal(fused.features.float().argmax(1).numpy(), u.astype(np.int64))


def test_survey_poses_backproject_without_losing_precision(frames):
    offset = np.array([512345.0, 5412345.0, 310.0])
    far = []
    for f in frames:
        pose = f.pose.copy()
        pose[:3, 3] += offset
        far.append(RGBDFrame(f.color, f.depth, pose, f.K_color, f.K_depth, f.name))
    near_pts, near_cols = backproject_rgbd(frames, voxel_size=0.02)
    far_pts, far_cols = backproject_rgbd(far, voxel_size=0.02)  # used to fail: > 2**20 voxels from the origin
    assert far_pts.dtype == np.float64 and len(far_pts) == len(near_pts)
    np.testing.assert_allclose(far_pts - offset, near_pts, atol=1e-6)
    np.testing.assert_array_equal(far_cols, near_cols)


def test_distorted_cameras_are_undistorted_when_read(tmp_path):
    """A lens with radial distortion (OpenCV k1 k2 p1 p2 k3 in intrinsic/distortion_depth.txt): a tilted
    plane back-projects flat only once the depth map is undistorted."""
    import cv2

    K = np.array([[150.0, 0, 79.5], [0, 150.0, 59.5], [0, 0, 1]])
    dist = np.array([-0.3, 0.1, 0.001, -0.001, 0.0])
    vv, uu = np.mgrid[0:120, 0:160].astype(np.float64)
    ray = cv2.undistortPoints(np.stack([uu, vv], -1).reshape(-1, 1, 2), K, dist).reshape(120, 160, 2)
    depth = (2.0 / (1.0 - 0.5 * ray[..., 0])).astype(np.float32)  # the plane z = 2 + 0.5 x seen through the lens
    f = RGBDFrame(np.zeros((120, 160, 3), np.uint8), depth, np.eye(4), K, K, "0")
    folder = write_rgbd_folder(tmp_path / "scan", [f], color_format="png")

    def off_plane(scan):
        pts, _ = backproject_rgbd(scan, voxel_size=0.001)
        return np.abs(pts[:, 2] - (2.0 + 0.5 * pts[:, 0])).max()

    assert off_plane(RGBDFolder(folder)) > 0.05  # read as a pinhole camera: the plane bends
    np.savetxt(folder / "intrinsic" / "distortion_depth.txt", dist[None])
    scan = RGBDFolder(folder)
    assert scan.distortion["depth"] is not None and scan.distortion["color"] is None
    assert off_plane(scan) < 0.01
    (folder / "intrinsic" / "distortion_depth.txt").write_text("0.1 0.2 0.3\n")
    with pytest.raises(ValueError, match="distortion"):
        RGBDFolder(folder)


def test_tum_sequence_layout_is_named(tmp_path):
    for d in ("rgb", "depth"):
        (tmp_path / d).mkdir()
    (tmp_path / "groundtruth.txt").write_text("# timestamp tx ty tz qx qy qz qw\n")
    with pytest.raises(FileNotFoundError, match="TUM RGB-D.*depth_scale 5000"):
        RGBDFolder(tmp_path)
