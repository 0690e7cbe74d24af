"""ScanNet-layout RGB-D folders: write/read round trip, pose validity, errors, back-projection."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from ovtools.scene3d import (
    RGBDFolder,
    RGBDFrame,
    backproject_rgbd,
    look_at,
    write_rgbd_folder,
)
from ovtools.scene3d.camera import scale_intrinsics

KC = np.array([[50.0, 0, 29.5], [0, 50.0, 19.5], [0, 0, 1]])  # colour 40 x 60
KD = np.array([[25.0, 0, 14.5], [0, 25.0, 9.5], [0, 0, 1]])  # depth 20 x 30


def _frames(n=3, seed=0):
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        color = rng.integers(0, 256, (40, 60, 3), dtype=np.uint8)
        depth = rng.uniform(0.5, 4.0, (20, 30)).astype(np.float32)
        depth[0, 0] = 0.0
        pose = look_at((i, -3.0, 1.5), (0.0, 0.0, 1.0))
        out.append(RGBDFrame(color, depth, pose, KC, KD, name=str(i)))
    return out


def test_round_trip_png(tmp_path):
    frames = _frames()
    write_rgbd_folder(tmp_path / "scan", frames, color_format="png")
    scan = RGBDFolder(tmp_path / "scan")
    assert len(scan) == 3 and scan.names == ["0", "1", "2"]
    assert np.allclose(scan.K_color, KC) and np.allclose(scan.K_depth, KD)
    for a, b in zip(frames, scan):
        assert b.color.dtype == np.uint8 and np.array_equal(a.color, b.color)
        assert b.depth.dtype == np.float32 and b.depth.shape == (20, 30)
        assert np.abs(a.depth - b.depth).max() <= 0.0005 + 1e-6 and b.depth[0, 0] == 0
        assert np.allclose(a.pose, b.pose, atol=1e-8)
        assert np.allclose(b.K_depth, KD)


def test_round_trip_jpg_and_depth_scale(tmp_path):
    frames = _frames(1)
    frames[0].color[:] = 128
    write_rgbd_folder(tmp_path, frames, depth_scale=5000.0)
    assert (tmp_path / "color" / "0.jpg").is_file()
    f = RGBDFolder(tmp_path, depth_scale=5000.0)[0]
    assert np.abs(f.color.astype(int) - 128).max() <= 2
    assert np.abs(f.depth - frames[0].depth).max() <= 0.0001 + 1e-6


def test_missing_depth_intrinsics_are_scaled_from_colour(tmp_path):
    write_rgbd_folder(tmp_path, _frames(1), color_format="png")
    (tmp_path / "intrinsic" / "intrinsic_depth.txt").unlink()
    scan = RGBDFolder(tmp_path)
    assert scan.K_depth is None
    assert np.allclose(scan[0].K_depth, scale_intrinsics(KC, (40, 60), (20, 30)))
    assert np.allclose(scan[0].K_depth, KD)  # half-size camera with the pixel-centre convention


def test_invalid_pose_skipped_with_warning_and_numeric_order(tmp_path):
    frames = _frames(12)
    write_rgbd_folder(tmp_path, frames, color_format="png")
    bad = np.eye(4)
    bad[0, 0] = -np.inf
    np.savetxt(tmp_path / "pose" / "3.txt", bad)
    with pytest.warns(UserWarning, match="skipped 1 of 12 frames"):
        scan = RGBDFolder(tmp_path)
    assert scan.n_invalid_poses == 1 and len(scan) == 11
    assert scan.names == ["0", "1", "2", "4", "5", "6", "7", "8", "9", "10", "11"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert RGBDFolder(tmp_path, frame_skip=5).names == ["0", "5", "10"]


def test_unmatched_files_warned(tmp_path):
    write_rgbd_folder(tmp_path, _frames(2), color_format="png")
    (tmp_path / "depth" / "1.png").unlink()
    with pytest.warns(UserWarning, match="1 colour/depth/pose"):
        scan = RGBDFolder(tmp_path)
    assert scan.names == ["0"]


def test_bad_folders(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        RGBDFolder(tmp_path / "nope")
    write_rgbd_folder(tmp_path / "a", _frames(1), color_format="png")
    for f in (tmp_path / "a" / "depth").iterdir():
        f.unlink()
    with pytest.raises(ValueError, match=r"no frame .* \(1 colour, 0 depth, 1 pose"):
        RGBDFolder(tmp_path / "a")
    (tmp_path / "a" / "depth").rmdir()
    with pytest.raises(FileNotFoundError, match=r"lacks sub-folder\(s\) \['depth'\]"):
        RGBDFolder(tmp_path / "a")
    write_rgbd_folder(tmp_path / "b", _frames(1), color_format="png")
    (tmp_path / "b" / "intrinsic" / "intrinsic_color.txt").unlink()
    with pytest.raises(FileNotFoundError, match="intrinsic_color.txt"):
        RGBDFolder(tmp_path / "b")
    (tmp_path / "b" / "intrinsic" / "intrinsic_color.txt").write_text("1 2\n3 4\n")
    with pytest.raises(ValueError, match="3x3 or 4x4"):
        RGBDFolder(tmp_path / "b")
    with pytest.raises(ValueError, match="frame_skip"):
        RGBDFolder(tmp_path / "b", frame_skip=0)


def test_write_errors(tmp_path):
    frames = _frames(2)
    frames[1].K_color = KC * 2
    frames[1].K_color[2, 2] = 1
    with pytest.raises(ValueError, match="other intrinsics"):
        write_rgbd_folder(tmp_path, frames)
    with pytest.raises(ValueError, match="at least one frame"):
        write_rgbd_folder(tmp_path, [])
    with pytest.raises(ValueError, match="color_format"):
        write_rgbd_folder(tmp_path, frames[:1], color_format="bmp")


def test_backproject_flat_wall_and_voxel_dedup():
    color = np.zeros((40, 60, 3), np.uint8)
    color[:, :30] = (255, 0, 0)  # left half red, right half blue
    color[:, 30:] = (0, 0, 255)
    depth = np.full((20, 30), 2.0, np.float32)
    pose = np.eye(4)
    pose[:3, 3] = (1.0, 0.0, 0.0)
    f = RGBDFrame(color, depth, pose, KC, KD, "0")
    pts, cols = backproject_rgbd([f], voxel_size=0.01)
    assert pts.dtype == np.float64 and cols.dtype == np.uint8 and len(pts) == 600  # one voxel per pixel
    assert np.allclose(pts[:, 2], 2.0, atol=1e-5)
    x_cam = (np.arange(30) - 14.5) * 2.0 / 25.0
    assert np.allclose(np.unique(pts[:, 0].round(5)), (x_cam + 1.0).round(5))
    left = pts[:, 0] < 1.0
    assert (cols[left] == (255, 0, 0)).all() and (cols[~left] == (0, 0, 255)).all()
    again, _ = backproject_rgbd([f, f], voxel_size=0.01)
    assert len(again) == 600
    coarse, _ = backproject_rgbd([f], voxel_size=0.5)
    assert len(coarse) < 60
    assert len(backproject_rgbd([f], voxel_size=0.01, max_depth=1.0)[0]) == 0


def test_8_bit_depth_is_refused(tmp_path):
    """An 8-bit depth PNG (a visualisation) used to be read at the wrong scale without a word."""
    from PIL import Image

    write_rgbd_folder(tmp_path / "scan", _frames(1), color_format="png")
    depth = next((tmp_path / "scan" / "depth").glob("*.png"))
    Image.fromarray(np.full((20, 30), 128, np.uint8)).save(depth)
    with pytest.raises(ValueError, match="8-bit"):
        RGBDFolder(tmp_path / "scan")[0]


def test_pose_and_files_without_decoding(tmp_path):
    frames = _frames()
    write_rgbd_folder(tmp_path / "scan", frames)
    scan = RGBDFolder(tmp_path / "scan")
    for i, f in enumerate(frames):
        assert np.allclose(scan.pose(i), f.pose, atol=1e-8) and np.allclose(scan.pose(i), scan[i].pose)
        color, depth = scan.files(i)
        assert color == tmp_path / "scan" / "color" / f"{i}.jpg" and depth.suffix == ".png"
