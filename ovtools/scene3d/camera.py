"""Pinhole cameras and projection shared by the 3D modules.

Conventions used by every module of :mod:`ovtools.scene3d`:

* **World frame**: z-up, metres.
* **Camera frame**: OpenCV — x right, y down, z forward (along the optical axis).
* **Intrinsics** ``K`` (3, 3) in pixels, ``[[fx, 0, cx], [0, fy, cy], [0, 0, 1]]``.
  Integer pixel coordinates are pixel *centres* (OpenCV): pixel ``(row, col)``
  covers ``u in [col - 0.5, col + 0.5)``, so a point projecting to ``u`` lands in
  column ``floor(u + 0.5)``; the image centre is ``((W - 1) / 2, (H - 1) / 2)``.
* **Pose** (4, 4): **camera-to-world** (as ScanNet's ``pose/*.txt``); the
  world-to-camera transform is its inverse.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch


def as_tensor(x, device=None, dtype=None) -> torch.Tensor:
    """numpy array / tensor / sequence → tensor on ``device`` (default: the tensor's own, else CPU)."""
    if isinstance(x, torch.Tensor):
        return x.to(device=device if device is not None else x.device, dtype=dtype or x.dtype)
    a = np.asarray(x)
    if a.dtype.kind in "fiub" and not a.flags.writeable:  # torch warns on read-only arrays
        a = a.copy()
    t = torch.as_tensor(a)
    return t.to(device=device if device is not None else "cpu", dtype=dtype or t.dtype)


def default_device(*xs) -> torch.device:
    """Device of the first tensor among ``xs``, else the CPU."""
    for x in xs:
        if isinstance(x, torch.Tensor):
            return x.device
    return torch.device("cpu")


def check_points(points, name: str = "points", device=None) -> torch.Tensor:
    """Validate (N, 3) coordinates and return them as float32 on ``device``.

    Raises:
        ValueError: wrong shape or non-finite values.
    """
    p = as_tensor(points, device=device)
    if p.ndim != 2 or p.shape[1] != 3:
        raise ValueError(f"{name} must have shape (N, 3), got {tuple(p.shape)}")
    p = p.float()
    if p.numel() and not bool(torch.isfinite(p).all()):
        raise ValueError(f"{name} contains NaN or infinite values")
    return p


def check_K(K) -> np.ndarray:
    """Validate intrinsics: (3, 3) finite with positive focal lengths → float64 numpy.

    Raises:
        ValueError: wrong shape, non-finite, or ``fx``/``fy`` not positive.
    """
    k = np.asarray(K.detach().cpu() if isinstance(K, torch.Tensor) else K, dtype=np.float64)
    if k.shape != (3, 3):
        raise ValueError(f"K must have shape (3, 3), got {k.shape}")
    if not np.isfinite(k).all() or k[0, 0] <= 0 or k[1, 1] <= 0:
        raise ValueError(f"K must be finite with fx, fy > 0, got {k.tolist()}")
    return k


def check_pose(pose, name: str = "pose") -> np.ndarray:
    """Validate a camera-to-world (4, 4) rigid transform → float64 numpy.

    Raises:
        ValueError: wrong shape, non-finite entries (ScanNet marks lost tracking with ``-inf``),
            or a singular rotation block.
    """
    p = np.asarray(pose.detach().cpu() if isinstance(pose, torch.Tensor) else pose, dtype=np.float64)
    if p.shape != (4, 4):
        raise ValueError(f"{name} must have shape (4, 4), got {p.shape}")
    if not np.isfinite(p).all():
        raise ValueError(f"{name} has non-finite entries (lost tracking?)")
    if abs(np.linalg.det(p[:3, :3])) < 1e-6:
        raise ValueError(f"{name} has a singular rotation block")
    return p


def world_to_camera(pose) -> np.ndarray:
    """Invert a camera-to-world pose → world-to-camera (4, 4) float64."""
    return np.linalg.inv(check_pose(pose))


def transform_points(points: torch.Tensor, T: np.ndarray) -> torch.Tensor:
    """Apply a (4, 4) transform (float64 numpy) to float32 (N, 3) points on their device."""
    t = torch.as_tensor(T, dtype=torch.float32, device=points.device)
    return points @ t[:3, :3].T + t[:3, 3]


def project(points_cam: torch.Tensor, K: np.ndarray) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Pinhole projection of camera-frame points.

    Args:
        points_cam: float32 (N, 3) in the camera frame (OpenCV), metres.
        K: (3, 3) intrinsics in pixels.

    Returns:
        ``(u, v, z)``: float32 (N,) continuous pixel coordinates (pixel centres at
        integers) and depth along the optical axis in metres.  ``u``/``v`` are
        meaningless where ``z <= 0``.
    """
    fx, skew, cx, fy, cy = (float(K[i, j]) for i, j in ((0, 0), (0, 1), (0, 2), (1, 1), (1, 2)))
    z = points_cam[:, 2]
    zs = torch.where(z > 1e-9, z, torch.ones_like(z))
    x, y = points_cam[:, 0] / zs, points_cam[:, 1] / zs
    u = fx * x + skew * y + cx
    v = fy * y + cy
    return u, v, z


def intrinsics_from_fov(size: tuple[int, int], fov_deg: float) -> np.ndarray:
    """Square-pixel intrinsics with horizontal field of view ``fov_deg`` and the principal point at the centre.

    Args:
        size: ``(H, W)`` in pixels.
        fov_deg: horizontal field of view in degrees, in (0, 180).

    Returns:
        float64 (3, 3) ``K`` with ``cx = (W - 1) / 2``, ``cy = (H - 1) / 2``.

    Raises:
        ValueError: non-positive size or a field of view outside (0, 180).
    """
    h, w = int(size[0]), int(size[1])
    if h <= 0 or w <= 0:
        raise ValueError(f"size must be positive (H, W), got {size}")
    if not 0 < fov_deg < 180:
        raise ValueError(f"fov_deg must be in (0, 180), got {fov_deg}")
    f = (w / 2.0) / math.tan(math.radians(fov_deg) / 2.0)
    return np.array([[f, 0.0, (w - 1) / 2.0], [0.0, f, (h - 1) / 2.0], [0.0, 0.0, 1.0]])


def scale_intrinsics(K, from_size: tuple[int, int], to_size: tuple[int, int]) -> np.ndarray:
    """Rescale intrinsics for an image resized from ``(H, W)`` to ``(H', W')`` (pixel-centre convention).

    ``u' = (u + 0.5) * W' / W - 0.5`` and likewise for ``v``.
    """
    k = check_K(K).copy()
    sy, sx = to_size[0] / from_size[0], to_size[1] / from_size[1]
    k[0, 0] *= sx
    k[0, 1] *= sx
    k[0, 2] = (k[0, 2] + 0.5) * sx - 0.5
    k[1, 1] *= sy
    k[1, 2] = (k[1, 2] + 0.5) * sy - 0.5
    return k


@dataclass(frozen=True)
class Camera:
    """A pinhole camera: intrinsics, camera-to-world pose and image size.

    Attributes:
        K: float64 (3, 3) intrinsics in pixels.
        pose: float64 (4, 4) camera-to-world (OpenCV axes: x right, y down, z forward).
        size: ``(H, W)`` in pixels.
        name: a label such as ``"around-030-00"``, ``"inside-2"`` or ``"top"``.

    Raises:
        ValueError: on construction, if ``K`` or ``pose`` is invalid or ``size`` is not positive.
    """

    K: np.ndarray
    pose: np.ndarray
    size: tuple[int, int]
    name: str = ""

    def __post_init__(self) -> None:
        object.__setattr__(self, "K", check_K(self.K))
        object.__setattr__(self, "pose", check_pose(self.pose))
        h, w = (int(s) for s in self.size)
        if h <= 0 or w <= 0:
            raise ValueError(f"size must be positive (H, W), got {self.size}")
        object.__setattr__(self, "size", (h, w))

    @property
    def center(self) -> np.ndarray:
        """Camera position in the world, float64 (3,) metres."""
        return self.pose[:3, 3].copy()

    def project(self, points) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """World points (N, 3) → ``(u, v, z)`` float32 (N,) on the points' device (see :func:`project`)."""
        p = check_points(points)
        return project(transform_points(p, world_to_camera(self.pose)), self.K)
