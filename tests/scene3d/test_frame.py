"""The local working frame: up-axis rotations and detection, the float64 reference point (issue 10, items 2 and 5)."""

from __future__ import annotations

import numpy as np
import pytest

from ovtools.datasets.scenes3d import generate_scenes3d
from ovtools.scene3d.frame import apply_transform, detect_up_axis, local_frame, rotation_to_z_up

# How tools export a z-up scan with another up axis: the input coordinates as functions of (x, y, z).
EXPORTS = {
    "+z": lambda p: p,
    "+y": lambda p: np.c_[p[:, 0], p[:, 2], -p[:, 1]],  # Y-up (x, z, -y): Blender/three.js/many scanners
    "-y": lambda p: np.c_[p[:, 0], -p[:, 2], p[:, 1]],
    "+x": lambda p: np.c_[p[:, 2], p[:, 1], -p[:, 0]],
    "-x": lambda p: np.c_[-p[:, 2], p[:, 1], p[:, 0]],
    "-z": lambda p: np.c_[p[:, 0], -p[:, 1], -p[:, 2]],
}


@pytest.fixture(scope="module")
def scene():
    return next(generate_scenes3d(1, seed=3000, points=4000))


@pytest.mark.parametrize("axis", list(EXPORTS))
def test_rotations_are_proper_and_take_the_axis_up(axis):
    R = rotation_to_z_up(axis)
    sign, k = (1.0 if axis[0] == "+" else -1.0), "xyz".index(axis[1])
    up = np.zeros(3)
    up[k] = sign
    np.testing.assert_array_equal(R @ up, [0.0, 0.0, 1.0])
    np.testing.assert_allclose(R @ R.T, np.eye(3))
    assert np.linalg.det(R) == pytest.approx(1.0)


@pytest.mark.parametrize("axis", list(EXPORTS))
def test_detected_up_axis_brings_back_the_original_scene_exactly(scene, axis):
    p = EXPORTS[axis](scene.points.astype(np.float64))
    assert detect_up_axis(p) == axis
    T, found = local_frame(p, "auto")
    T0, _ = local_frame(scene.points, "+z")
    assert found == axis
    # the same local coordinates, bit for bit, as the unrotated scene
    np.testing.assert_array_equal(apply_transform(T, p).astype(np.float32),
                                  apply_transform(T0, scene.points).astype(np.float32))


def test_survey_offset_gives_the_same_local_frame(scene):
    offset = np.array([512345.0, 5412345.0, 310.0])
    far = scene.points.astype(np.float64) + offset
    T, axis = local_frame(far, "auto")
    T0, _ = local_frame(scene.points, "auto")
    assert axis == "+z"
    # equal up to the float64 rounding of the shifted input itself (ulp of 5.4e6 m is 1e-9 m)
    np.testing.assert_allclose(apply_transform(T, far), apply_transform(T0, scene.points), rtol=0, atol=1e-8)
    assert np.abs(apply_transform(T, far)).max() < 2.0  # float32 work happens near the origin


def test_no_supporting_plane_keeps_z_and_bad_inputs_are_named():
    rng = np.random.default_rng(0)
    blob = rng.normal(size=(500, 3))
    assert detect_up_axis(blob) == "+z"
    with pytest.raises(ValueError, match="up_axis"):
        local_frame(blob, "y")
    with pytest.raises(ValueError, match="up axis"):
        rotation_to_z_up("auto")
    with pytest.raises(ValueError, match="NaN"):
        detect_up_axis(np.full((3, 3), np.nan))


def test_float32_survey_coordinates_warn_that_the_file_rounded_them(scene):
    from ovtools.io.ply import PointCloud
    from ovtools.scene3d.scene import scene_from_cloud

    rounded = PointCloud((scene.points.astype(np.float64) + [512345.0, 5412345.0, 310.0]).astype(np.float32))
    with pytest.warns(UserWarning, match="float32, which rounds them to 0.5 m"):
        scene_from_cloud(rounded, "utm32.ply")
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        doubles = PointCloud(scene.points.astype(np.float64) + [512345.0, 5412345.0, 310.0], scene.colors)
        s = scene_from_cloud(doubles, "utm64.ply")
    assert s.original_points.dtype == np.float64 and np.abs(s.points).max() < 2.0
