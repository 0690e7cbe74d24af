"""look_at and plan_views: orthonormal poses, framing of the bounding box, room heuristic."""

from __future__ import annotations

import numpy as np
import pytest

from ovtools.scene3d import (
    Camera,
    intrinsics_from_fov,
    look_at,
    looks_like_room,
    plan_views,
)
from ovtools.scene3d.views import _corners


def _room(rng, size=(5.0, 4.0, 2.6), n=20000, ceiling=False):
    """Points on the floor and four walls of a box room (z up)."""
    ext = np.array(size)
    faces = [(2, 0)] + [(0, 0), (0, 1), (1, 0), (1, 1)] + ([(2, 1)] if ceiling else [])
    out = []
    for axis, side in faces:
        q = rng.random((n // len(faces), 3)) * ext
        q[:, axis] = side * ext[axis]
        out.append(q)
    return np.concatenate(out).astype(np.float32)


@pytest.mark.parametrize("eye,target", [((3, -2, 1.5), (0, 0, 0.5)), ((0, 0, 5), (1, 1, 0)), ((-1, 4, 0), (2, 2, 2))])
def test_look_at_is_orthonormal_and_looks_at_target(eye, target):
    pose = look_at(eye, target)
    R = pose[:3, :3]
    assert np.allclose(R.T @ R, np.eye(3), atol=1e-12) and np.linalg.det(R) == pytest.approx(1.0)
    assert np.allclose(pose[:3, 3], eye) and np.allclose(pose[3], [0, 0, 0, 1])
    cam = Camera(intrinsics_from_fov((48, 64), 60), pose, (48, 64))
    u, v, z = cam.project(np.array([target, np.add(target, (0, 0, 0.1))], np.float32))
    assert float(u[0]) == pytest.approx(31.5, abs=1e-4) and float(v[0]) == pytest.approx(23.5, abs=1e-4)
    assert float(z[0]) == pytest.approx(np.linalg.norm(np.subtract(target, eye)), rel=1e-5)
    assert float(v[1]) < float(v[0])  # world up is image up


def test_look_at_errors():
    with pytest.raises(ValueError, match="parallel"):
        look_at((0, 0, 5), (0, 0, 0))
    with pytest.raises(ValueError, match="coincide"):
        look_at((1, 1, 1), (1, 1, 1))
    top = look_at((0, 0, 5), (0, 0, 0), up=(0, 1, 0))
    assert np.allclose(top[:3, 2], [0, 0, -1])


def test_plan_views_frames_the_bounding_box():
    rng = np.random.default_rng(0)
    pts = (rng.random((3000, 3)) * [4.0, 1.5, 0.8] + [10.0, -3.0, 0.2]).astype(np.float32)
    cams = plan_views(pts, n_around=6, elevations=(20, 50), size=(120, 160), fov_deg=60)
    assert len(cams) == 13 and cams[-1].name == "top" and cams[0].name == "around-20-0"
    corners = _corners(pts.min(0), pts.max(0))
    centre = 0.5 * (pts.min(0) + pts.max(0))
    for cam in cams:
        assert cam.size == (120, 160)
        u, v, z = cam.project(corners.astype(np.float32))
        assert (z > 0).all()
        assert ((u >= -0.5) & (u < 159.5) & (v >= -0.5) & (v < 119.5)).all(), cam.name
        uc, vc, _ = cam.project(centre[None].astype(np.float32))
        assert float(uc[0]) == pytest.approx(79.5, abs=1e-3) and float(vc[0]) == pytest.approx(59.5, abs=1e-3)
        # framed tightly: some corner is near the image border (margin 1.05)
        span = max(float((u - 79.5).abs().max()) / 79.5, float((v - 59.5).abs().max()) / 59.5)
        assert 0.85 < span <= 1.0
    elev = [np.degrees(np.arcsin((c.center - centre)[2] / np.linalg.norm(c.center - centre))) for c in cams[:12]]
    assert np.allclose(elev[:6], 20) and np.allclose(elev[6:], 50)


def test_room_heuristic_and_inside_cameras():
    rng = np.random.default_rng(0)
    room = _room(rng)
    assert looks_like_room(room)
    assert not looks_like_room(room * 0.3)  # a 1.5 m box is an object
    blob = rng.normal(size=(5000, 3)).astype(np.float32) * [2, 2, 1]
    assert not looks_like_room(blob)  # big but filled: no free centre
    cams = plan_views(room, n_around=4, elevations=(45,))
    inside = [c for c in cams if c.name.startswith("inside")]
    assert len(inside) == 4
    for c in inside:
        assert (room.min(0) < c.center).all() and (c.center < room.max(0)).all()
        assert c.center[2] == pytest.approx(1.5, abs=0.05)
    assert not any(c.name.startswith("inside") for c in plan_views(room * 0.3))
    assert len(plan_views(room * 0.3, n_around=2, elevations=(30,), n_inside=3, top_down=False)) == 5


def test_plan_views_errors():
    with pytest.raises(ValueError, match="empty"):
        plan_views(np.zeros((0, 3)))
    with pytest.raises(ValueError, match="elevations"):
        plan_views(np.zeros((5, 3)), elevations=(90,))
    with pytest.raises(ValueError, match="margin"):
        plan_views(np.zeros((5, 3)), margin=0.5)


def test_single_point_cloud_gets_valid_cameras():
    cams = plan_views(np.array([[1.0, 2.0, 3.0]]), n_around=3, elevations=(30,))
    assert len(cams) == 4 and all(np.isfinite(c.pose).all() for c in cams)
