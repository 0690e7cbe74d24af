"""nerfstudio's transforms.json: OpenCV → OpenGL poses, pixel-corner principal point, validation, the datagen output."""

from __future__ import annotations

import json

import numpy as np
import pytest

from ovtools.scene3d import Camera, intrinsics_from_fov, look_at
from ovtools.scene3d.transforms import opencv_to_opengl, opengl_to_opencv, transforms_dict, write_transforms_json


def _camera(eye=(2.0, -1.0, 1.5), target=(0.1, 0.2, 0.3), size=(48, 64)) -> Camera:
    return Camera(intrinsics_from_fov(size, 60.0), look_at(eye, target), size)


def _project_opengl(c2w_gl: np.ndarray, meta: dict, point: np.ndarray) -> tuple[float, float, float]:
    """Project as nerfstudio does: OpenGL camera (−z forward, +y up), pixel (row, col) centre at col + 0.5."""
    p = np.linalg.inv(c2w_gl) @ np.append(point, 1.0)
    x, y, z = p[:3]
    depth = -z  # the camera looks along −z
    u = meta["fl_x"] * x / depth + meta["cx"]  # continuous, pixel corners at integers
    v = -meta["fl_y"] * y / depth + meta["cy"]  # +y up → image rows grow downwards
    return u, v, depth


def test_opengl_pose_projects_a_known_point_to_the_same_pixel():
    cam = _camera()
    point = np.array([0.4, -0.1, 0.5])
    u_cv, v_cv, z_cv = (float(t[0]) for t in cam.project(point[None]))
    meta = transforms_dict([cam], ["color/0.jpg"])
    c2w = np.array(meta["frames"][0]["transform_matrix"])
    u, v, depth = _project_opengl(c2w, meta, point)
    assert depth == pytest.approx(z_cv, abs=1e-6) and depth > 0
    # OpenCV pixel centres are integers, nerfstudio's are at +0.5: the same pixel.
    assert u == pytest.approx(u_cv + 0.5, abs=1e-5)
    assert v == pytest.approx(v_cv + 0.5, abs=1e-5)
    # the target lies on the optical axis: the image centre in both conventions
    u_t, v_t, _ = _project_opengl(c2w, meta, np.array([0.1, 0.2, 0.3]))
    assert (u_t, v_t) == pytest.approx((32.0, 24.0), abs=1e-6)


def test_opengl_flip_is_its_own_inverse_and_keeps_a_rotation():
    pose = look_at((1.0, 2.0, 3.0), (0.0, 0.0, 0.0))
    gl = opencv_to_opengl(pose)
    assert np.allclose(opengl_to_opencv(gl), pose)
    assert np.linalg.det(gl[:3, :3]) == pytest.approx(1.0)
    assert np.allclose(gl[:3, 3], pose[:3, 3])
    assert np.allclose(gl[:3, 2], -pose[:3, 2])  # OpenGL +z points backwards


def test_transforms_dict_refuses_mixed_intrinsics_and_lengths():
    a, b = _camera(), _camera(size=(60, 80))
    with pytest.raises(ValueError, match="other intrinsics"):
        transforms_dict([a, b], ["0.jpg", "1.jpg"])
    with pytest.raises(ValueError, match="2 cameras but 1"):
        transforms_dict([a, a], ["0.jpg"])
    with pytest.raises(ValueError, match="at least one"):
        transforms_dict([], [])


def test_write_transforms_json_checks_files_and_records_depth_units(tmp_path):
    cam = _camera()
    with pytest.raises(ValueError, match="does not exist"):
        write_transforms_json(tmp_path, [cam], ["color/0.jpg"])
    (tmp_path / "color").mkdir()
    (tmp_path / "depth").mkdir()
    (tmp_path / "color" / "0.jpg").write_bytes(b"x")
    (tmp_path / "depth" / "0.png").write_bytes(b"x")
    path = write_transforms_json(tmp_path, [cam], ["color/0.jpg"], ["depth/0.png"], depth_scale=1000.0)
    meta = json.loads(path.read_text())
    assert meta["depth_unit_scale_factor"] == pytest.approx(1e-3)
    assert meta["frames"][0]["depth_file_path"] == "depth/0.png"
    assert (meta["w"], meta["h"]) == (64, 48)
    assert not list(tmp_path.glob(".transforms.*"))  # no temporary file left
    with pytest.raises(ValueError, match="depth_scale"):
        write_transforms_json(tmp_path, [cam], ["color/0.jpg"], depth_scale=0)
