"""Virtual camera planning for a bare point cloud (no captured images).

To label a PLY with a 2D model we render it from virtual cameras
(:func:`ovtools.scene3d.render.render_points`), run the 2D model on the
renders and fuse the results back onto the points
(:mod:`ovtools.scene3d.fuse`).  :func:`plan_views` chooses those cameras:

* **around**: ``n_around`` azimuths on each elevation ring, every camera
  looking at the centre of the axis-aligned bounding box, at the smallest
  distance where all 8 box corners project inside the image (found by
  bisection between the bounding-sphere distance and the sphere radius).
  Rings are offset by half an azimuth step so that they interleave.
* **top**: one camera straight above the centre looking down (image up = +y).
* **inside**: for room scans, ``n_inside`` cameras at the footprint centre at
  eye height, looking outward (pitched down by ``inside_pitch_deg``) with a
  wide field of view: seen from outside, a room is mostly the back of its walls.

Whether a cloud is a room is decided by :func:`looks_like_room` (documented there).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from .camera import Camera, check_points, intrinsics_from_fov

__all__ = ["Camera", "look_at", "looks_like_room", "plan_views"]


def look_at(eye, target, up=(0.0, 0.0, 1.0)) -> np.ndarray:
    """Camera-to-world pose of an OpenCV camera at ``eye`` looking at ``target``.

    The camera's z axis points from ``eye`` to ``target``, its x axis (image
    right) is ``z × up`` and its y axis (image down) is ``z × x``, so ``up``
    appears upwards in the image.

    Args:
        eye: (3,) camera position in world metres.
        target: (3,) point the optical axis passes through.
        up: (3,) world direction to show as "up" (default +z, the world's up).

    Returns:
        float64 (4, 4) camera-to-world pose with an orthonormal, right-handed rotation.

    Raises:
        ValueError: ``eye == target``, or the viewing direction is parallel to ``up``
            (pass another ``up``, e.g. ``(0, 1, 0)`` for a top-down view).

    Example:
        >>> pose = look_at((0, -2, 0), (0, 0, 0))
        >>> pose[:3, 2].round(6).tolist()   # camera z = world +y
        [0.0, 1.0, 0.0]
    """
    eye = np.asarray(eye, dtype=np.float64).reshape(3)
    target = np.asarray(target, dtype=np.float64).reshape(3)
    up = np.asarray(up, dtype=np.float64).reshape(3)
    z = target - eye
    nz = np.linalg.norm(z)
    if nz < 1e-12:
        raise ValueError(f"eye and target coincide at {eye.tolist()}")
    z /= nz
    x = np.cross(z, up)
    nx = np.linalg.norm(x)
    if nx < 1e-9 * max(1.0, np.linalg.norm(up)):
        raise ValueError(f"viewing direction {z.tolist()} is parallel to up {up.tolist()}; pass another up")
    x /= nx
    y = np.cross(z, x)
    pose = np.eye(4)
    pose[:3, 0], pose[:3, 1], pose[:3, 2], pose[:3, 3] = x, y, z, eye
    return pose


def _corners(lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    return np.array([[(lo, hi)[i][0], (lo, hi)[j][1], (lo, hi)[k][2]] for i in (0, 1) for j in (0, 1) for k in (0, 1)])


def _fits(corners: np.ndarray, pose: np.ndarray, K: np.ndarray, size: tuple[int, int], margin: float) -> bool:
    """All corners in front of the camera and within the central ``1/margin`` of the image."""
    pc = (corners - pose[:3, 3]) @ pose[:3, :3]
    z = pc[:, 2]
    if (z <= 1e-9).any():
        return False
    u = K[0, 0] * pc[:, 0] / z + K[0, 2]
    v = K[1, 1] * pc[:, 1] / z + K[1, 2]
    h, w = size
    return bool((np.abs(u - (w - 1) / 2) <= (w / 2 - 0.5) / margin).all()
                and (np.abs(v - (h - 1) / 2) <= (h / 2 - 0.5) / margin).all())


def _framing_distance(center, direction, up, corners, K, size, margin) -> float:
    """Smallest distance along ``direction`` from ``center`` at which the box fits (bisection)."""
    r = max(float(np.linalg.norm(corners - center, axis=1).max()), 1e-3)
    half = min(math.atan((size[1] / 2 - 0.5) / K[0, 0]), math.atan((size[0] / 2 - 0.5) / K[1, 1]))
    half = math.atan(math.tan(half) / margin)
    lo, hi = r * 1.0001, r / math.sin(half) * 1.0001  # at hi the bounding sphere lies inside the view cone

    def ok(s: float) -> bool:
        return _fits(corners, look_at(center + s * direction, center, up), K, size, margin)

    if ok(lo):
        return lo
    for _ in range(40):
        mid = 0.5 * (lo + hi)
        lo, hi = (lo, mid) if ok(mid) else (mid, hi)
    return hi


def looks_like_room(points, min_size_m: float = 2.0, min_height_m: float = 1.8) -> bool:
    """Heuristic: is this cloud a room scan (to be viewed from inside)?

    A cloud is a room when all three hold:

    1. **size**: both horizontal extents (1st–99th percentile) >= ``min_size_m`` and
       the vertical extent >= ``min_height_m``;
    2. **surrounded**: in the band from 0.3 to 0.8 of the height above the floor
       (1st percentile of z), points lying at >= 60 % of the box's half extent from the
       centre exist in at least 12 of 16 azimuth sectors — walls around the centre;
    3. **free centre**: fewer than 5 % of that band's points lie within 25 % of the
       smaller half extent of the centre — there is space to stand in.

    Args:
        points: float (N, 3) world metres, z up.
        min_size_m: smallest horizontal extent of a room in metres.
        min_height_m: smallest vertical extent of a room in metres.

    Returns:
        True for a room scan.
    """
    p = check_points(points).cpu().numpy().astype(np.float64)
    if len(p) < 100:
        return False
    lo, hi = np.percentile(p, 1, axis=0), np.percentile(p, 99, axis=0)
    ext = hi - lo
    if ext[0] < min_size_m or ext[1] < min_size_m or ext[2] < min_height_m:
        return False
    c = 0.5 * (lo + hi)
    zr = (p[:, 2] - lo[2]) / ext[2]
    band = p[(zr > 0.3) & (zr < 0.8)]
    if len(band) < 50:
        return False
    d = band[:, :2] - c[:2]
    ang = np.arctan2(d[:, 1], d[:, 0])
    # Half extent of the box along each point's direction (distance from centre to the box edge).
    half = ext[:2] / 2
    edge = np.minimum(half[0] / np.maximum(np.abs(np.cos(ang)), 1e-9), half[1] / np.maximum(np.abs(np.sin(ang)), 1e-9))
    rel = np.linalg.norm(d, axis=1) / edge
    sectors = ((ang + np.pi) / (2 * np.pi) * 16).astype(int) % 16
    walled = np.unique(sectors[rel >= 0.6]).size
    central = (np.linalg.norm(d, axis=1) < 0.25 * half.min()).mean()
    return bool(walled >= 12 and central < 0.05)


def plan_views(
    points,
    n_around: int = 8,
    elevations: Sequence[float] = (30.0, 55.0),
    n_inside: int | None = None,
    size: tuple[int, int] = (240, 320),
    fov_deg: float = 60.0,
    *,
    top_down: bool = True,
    margin: float = 1.05,
    inside_fov_deg: float = 90.0,
    eye_height_m: float = 1.5,
    inside_pitch_deg: float = 15.0,
) -> list[Camera]:
    """Plan virtual cameras that together see a point cloud.

    Args:
        points: float (N, 3) world metres, z up (numpy or torch), N >= 1.
        n_around: cameras per elevation ring around the scene (0 = none).
        elevations: ring elevations in degrees above the horizontal, each in (-90, 90).
        n_inside: cameras inside the scene looking outward; ``None`` = 4 if
            :func:`looks_like_room` else 0.
        size: ``(H, W)`` of every image in pixels.
        fov_deg: horizontal field of view of the around and top cameras, degrees.
        top_down: add one camera above the centre looking straight down.
        margin: the box fills at most ``1/margin`` of the image around its centre (>= 1).
        inside_fov_deg: horizontal field of view of the inside cameras, degrees.
        eye_height_m: height of the inside cameras above the floor (capped at 60 % of the scene height).
        inside_pitch_deg: the inside cameras look down by this angle.

    Returns:
        Cameras named ``around-<elevation>-<k>``, ``top``, ``inside-<k>``, in that order.

    Raises:
        ValueError: empty cloud, non-finite points, counts < 0, ``margin < 1``,
            an elevation outside (-90, 90) or a bad size / field of view.

    Example:
        >>> import numpy as np
        >>> cams = plan_views(np.random.default_rng(0).random((500, 3)), n_around=4, elevations=(30,))
        >>> [c.name for c in cams]
        ['around-30-0', 'around-30-1', 'around-30-2', 'around-30-3', 'top']
    """
    p = check_points(points).cpu().numpy().astype(np.float64)
    if len(p) == 0:
        raise ValueError("cannot plan views for an empty point cloud")
    if n_around < 0 or (n_inside is not None and n_inside < 0):
        raise ValueError(f"n_around and n_inside must be >= 0, got {n_around}, {n_inside}")
    if margin < 1:
        raise ValueError(f"margin must be >= 1, got {margin}")
    for e in elevations:
        if not -90 < e < 90:
            raise ValueError(f"elevations must be in (-90, 90) degrees, got {e}")
    size = (int(size[0]), int(size[1]))
    K = intrinsics_from_fov(size, fov_deg)
    lo, hi = p.min(0), p.max(0)
    center = 0.5 * (lo + hi)
    corners = _corners(lo, hi)
    up = np.array([0.0, 0.0, 1.0])
    cams: list[Camera] = []
    for ring, e in enumerate(elevations):
        er = math.radians(e)
        for k in range(n_around):
            a = 2 * math.pi * (k + 0.5 * (ring % 2)) / n_around
            d = np.array([math.cos(er) * math.cos(a), math.cos(er) * math.sin(a), math.sin(er)])
            s = _framing_distance(center, d, up, corners, K, size, margin)
            cams.append(Camera(K, look_at(center + s * d, center, up), size, f"around-{e:g}-{k}"))
    if top_down:
        d, top_up = np.array([0.0, 0.0, 1.0]), np.array([0.0, 1.0, 0.0])
        s = _framing_distance(center, d, top_up, corners, K, size, margin)
        cams.append(Camera(K, look_at(center + s * d, center, top_up), size, "top"))
    if n_inside is None:
        n_inside = 4 if looks_like_room(p) else 0
    if n_inside:
        Ki = intrinsics_from_fov(size, inside_fov_deg)
        floor = float(np.percentile(p[:, 2], 1))
        height = max(float(np.percentile(p[:, 2], 99)) - floor, 1e-3)
        eye = np.array([center[0], center[1], floor + min(eye_height_m, 0.6 * height)])
        pitch = math.radians(inside_pitch_deg)
        for k in range(n_inside):
            a = 2 * math.pi * k / n_inside
            d = np.array([math.cos(pitch) * math.cos(a), math.cos(pitch) * math.sin(a), -math.sin(pitch)])
            cams.append(Camera(Ki, look_at(eye, eye + d, up), size, f"inside-{k}"))
    return cams
