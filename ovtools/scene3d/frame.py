"""The local working frame of a scene: which input axis is up, and a reference point near the points.

Rendering, fusion and distillation run in float32 and plan views with +z up.  Real
scans break both assumptions: survey (UTM-like) coordinates put a scene 5 000 km from
the origin, where float32 steps are 0.5 m, and many tools export Y-up clouds.  So every
scene is first moved into a *local frame*: rotated so that its up axis becomes +z, then
shifted so that its float64 bounding-box centre is the origin (the only float32 step
comes after the shift).  Outputs keep the input's own coordinates; only the work uses
the local frame.

The up axis is a setting (``up_axis``: ``"+z"``, ``"-y"``, ...) or found from the data
(``"auto"``, :func:`detect_up_axis`): the floor a scene stands on is the axis-aligned
plane at one end of the cloud that holds the most points — the "dominant supporting
plane" of Manhattan-world scene parsing (e.g. Silberman et al., "Indoor Segmentation
and Support Inference from RGBD Images", ECCV 2012, §4, which takes gravity from the
dominant floor plane), restricted here to the six axis directions a file can declare.
"""

from __future__ import annotations

from typing import Literal, get_args

import numpy as np

UpAxis = Literal["auto", "+x", "-x", "+y", "-y", "+z", "-z"]
UP_AXES: tuple[str, ...] = get_args(UpAxis)

# The smallest rotation taking each axis to +z (about the axis perpendicular to both; 180° about x for -z).
# Row i is the input direction that becomes local axis i, e.g. "+y": local (x, y, z) = (x, -z, y).
_TO_Z_UP = {
    "+z": ((1, 0, 0), (0, 1, 0), (0, 0, 1)),
    "-z": ((1, 0, 0), (0, -1, 0), (0, 0, -1)),
    "+y": ((1, 0, 0), (0, 0, -1), (0, 1, 0)),
    "-y": ((1, 0, 0), (0, 0, 1), (0, -1, 0)),
    "+x": ((0, 0, -1), (0, 1, 0), (1, 0, 0)),
    "-x": ((0, 0, 1), (0, 1, 0), (-1, 0, 0)),
}


def rotation_to_z_up(axis: str) -> np.ndarray:
    """float64 (3, 3) rotation ``R`` (det +1) with ``R @ up = (0, 0, 1)`` for ``axis`` in ``+x ... -z``.

    Raises:
        ValueError: ``axis`` is not one of ``+x -x +y -y +z -z``.

    Example:
        >>> (rotation_to_z_up("+y") @ [0.0, 1.0, 0.0]).tolist()
        [0.0, 0.0, 1.0]
    """
    if axis not in _TO_Z_UP:
        raise ValueError(f"up axis must be one of {list(_TO_Z_UP)}, got {axis!r}")
    return np.array(_TO_Z_UP[axis], np.float64)


def detect_up_axis(points: np.ndarray, slab: float = 0.02, margin: float = 0.8,
                   min_support: float = 0.1) -> str:
    """The input axis that points up, from the plane the scene stands on.

    For each of the six axis directions ``d``, the points within ``slab`` × the cloud's
    largest extent of the low end of ``p · d`` (its 0.5th percentile, so stray points
    below the floor do not matter) are counted: a floor is a large plane at the bottom
    with the objects above it.  The direction with the most is "up"; ``+z`` is kept when
    it scores at least ``margin`` × the best (the common convention wins near-ties), and
    also when no direction gathers ``min_support`` of the points (no supporting plane:
    a single object).

    Args:
        points: float (N, 3) finite coordinates, any frame and offset (float64 advised).
        slab: thickness of the end slab as a fraction of the largest extent.
        margin: ``+z`` is kept when its count is at least this fraction of the best.
        min_support: smallest fraction of points the winning slab must hold.

    Returns:
        ``"+x"``, ``"-x"``, ``"+y"``, ``"-y"``, ``"+z"`` or ``"-z"``.

    Raises:
        ValueError: ``points`` not (N, 3) with N >= 1, or non-finite.

    Example:
        >>> rng = np.random.default_rng(0)
        >>> floor = np.c_[rng.uniform(-1, 1, (500, 2)), np.zeros(500)]
        >>> box = rng.uniform([-0.2, -0.2, 0.0], [0.2, 0.2, 0.5], (100, 3))
        >>> p = np.r_[floor, box]
        >>> detect_up_axis(p), detect_up_axis(p[:, [0, 2, 1]] * [1, 1, -1])   # Y-up export (x, z, -y)
        ('+z', '+y')
    """
    p = np.asarray(points, np.float64)
    if p.ndim != 2 or p.shape[1] != 3 or len(p) == 0:
        raise ValueError(f"points must have shape (N, 3) with N >= 1, got {p.shape}")
    if not np.isfinite(p).all():
        raise ValueError("points has NaN or infinite values")
    p = p - np.median(p, axis=0)
    lo, hi = np.percentile(p, [0.5, 99.5], axis=0)
    t = slab * float((hi - lo).max())
    if not t > 0:
        return "+z"
    scores = {}
    for k, name in enumerate("xyz"):
        scores[f"+{name}"] = int((p[:, k] < lo[k] + t).sum())  # floor at the low end: up is +axis
        scores[f"-{name}"] = int((p[:, k] > hi[k] - t).sum())
    best = max(scores, key=lambda a: (scores[a], a == "+z"))
    if best == "+z" or scores["+z"] >= margin * scores[best] or scores[best] < min_support * len(p):
        return "+z"
    return best


def local_frame(points: np.ndarray, up_axis: str = "auto") -> tuple[np.ndarray, str]:
    """The rigid transform from the input frame to the local working frame, and the up axis used.

    Args:
        points: float (N, 3) finite input coordinates (float64 keeps survey coordinates exact).
        up_axis: ``"auto"`` (:func:`detect_up_axis`) or one of ``+x -x +y -y +z -z``.

    Returns:
        ``(T, axis)``: float64 (4, 4) ``T`` with ``local = R @ p + t``: ``R`` turns ``axis``
        into +z (:func:`rotation_to_z_up`) and ``t`` puts the rotated bounding-box centre at
        the origin; ``axis`` the input's up axis.

    Raises:
        ValueError: a bad ``up_axis``, or ``points`` not finite (N, 3), N >= 1.
    """
    if up_axis not in UP_AXES:
        raise ValueError(f"up_axis must be one of {list(UP_AXES)}, got {up_axis!r}")
    p = np.asarray(points, np.float64)
    if p.ndim != 2 or p.shape[1] != 3 or len(p) == 0 or not np.isfinite(p).all():
        raise ValueError(f"points must be finite (N, 3) with N >= 1, got shape {p.shape}")
    axis = detect_up_axis(p) if up_axis == "auto" else up_axis
    R = rotation_to_z_up(axis)
    q = p @ R.T  # R is a signed permutation: exact in float64
    T = np.eye(4)
    T[:3, :3] = R
    T[:3, 3] = -(q.min(axis=0) + q.max(axis=0)) / 2
    return T, axis


def apply_transform(T: np.ndarray, points: np.ndarray) -> np.ndarray:
    """float64 (N, 3) ``R @ p + t`` for the rigid 4×4 ``T`` (computed in float64)."""
    p = np.asarray(points, np.float64)
    return p @ T[:3, :3].T + T[:3, 3]
