"""nerfstudio's ``transforms.json`` for posed RGB(-D) frames (the "nerfstudio-data" format).

nerfstudio (and instant-ngp) describe a posed image set with one JSON file beside the images:
shared pinhole intrinsics ``fl_x, fl_y, cx, cy, w, h`` and, per frame, ``file_path``, an optional
``depth_file_path`` and ``transform_matrix``, a 4 × 4 **camera-to-world** matrix with
**OpenGL camera axes** (x right, y up, the camera looks along −z).  ovtools' cameras are OpenCV
(x right, y down, z forward; :mod:`ovtools.scene3d.camera`), so the y and z columns of the pose
are negated (:func:`opencv_to_opengl`).

Pixel centres differ too: ovtools puts pixel ``(row, col)``'s centre at ``u = col`` (OpenCV),
nerfstudio casts the ray of pixel ``(row, col)`` through ``u = col + 0.5``
(``Cameras.generate_rays``), so the principal point is written as ``cx + 0.5, cy + 0.5``.

Depth images are referenced as written by :func:`~ovtools.scene3d.write_rgbd_folder` (uint16 PNG,
``depth_scale`` units per metre, 0 = no depth); nerfstudio's parser multiplies them by its
``depth_unit_scale_factor`` (default ``1e-3``: millimetres), so they are read in metres only when
``depth_scale == 1000`` — :func:`write_transforms_json` records the factor to use as
``"depth_unit_scale_factor"`` and refuses other units unless told otherwise.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from .camera import Camera

OPENCV_TO_OPENGL = np.diag([1.0, -1.0, -1.0, 1.0])  # flips the camera's y and z axes

__all__ = ["OPENCV_TO_OPENGL", "opencv_to_opengl", "opengl_to_opencv", "transforms_dict", "write_transforms_json"]


def opencv_to_opengl(pose) -> np.ndarray:
    """OpenCV camera-to-world (x right, y down, z forward) → OpenGL/nerfstudio camera-to-world (y up, −z forward).

    Args:
        pose: (4, 4) camera-to-world, OpenCV camera axes.

    Returns:
        float64 (4, 4): the same camera, OpenGL camera axes (columns 1 and 2 negated).
    """
    return np.asarray(pose, np.float64) @ OPENCV_TO_OPENGL


def opengl_to_opencv(pose) -> np.ndarray:
    """Inverse of :func:`opencv_to_opengl` (the flip is its own inverse)."""
    return np.asarray(pose, np.float64) @ OPENCV_TO_OPENGL


def transforms_dict(cameras: Sequence[Camera], color_paths: Sequence[str],
                    depth_paths: Sequence[str] | None = None, depth_unit_scale_factor: float = 1e-3) -> dict:
    """The ``transforms.json`` content for frames sharing one intrinsics matrix and image size.

    Args:
        cameras: one :class:`~ovtools.scene3d.Camera` per frame (OpenCV axes, camera-to-world, metres).
        color_paths: image path per frame, relative to the JSON's folder (POSIX separators).
        depth_paths: depth image path per frame (relative), or ``None`` for RGB only.
        depth_unit_scale_factor: metres per stored depth unit (``1e-3`` for millimetre PNGs).

    Returns:
        dict with ``camera_model`` ``"OPENCV"``, ``fl_x, fl_y, cx, cy`` (pixels, nerfstudio's
        pixel-corner convention), ``w, h``, zero distortion, ``depth_unit_scale_factor`` and ``frames``.

    Raises:
        ValueError: no cameras, lengths differ, or the cameras differ in intrinsics or size.
    """
    cams = list(cameras)
    if not cams:
        raise ValueError("transforms.json needs at least one camera")
    if len(color_paths) != len(cams) or (depth_paths is not None and len(depth_paths) != len(cams)):
        raise ValueError(f"{len(cams)} cameras but {len(color_paths)} colour paths and "
                         f"{'no' if depth_paths is None else len(depth_paths)} depth paths")
    K, size = cams[0].K, cams[0].size
    for i, c in enumerate(cams):
        if c.size != size or not np.allclose(c.K, K):
            raise ValueError(f"camera {i} has other intrinsics or size than camera 0; transforms.json stores one")
    if abs(K[0, 1]) > 1e-9:
        raise ValueError(f"transforms.json has no skew term; camera 0's K has skew {K[0, 1]}")
    frames = []
    for i, cam in enumerate(cams):
        frame = {"file_path": str(color_paths[i]), "transform_matrix": opencv_to_opengl(cam.pose).tolist()}
        if depth_paths is not None:
            frame["depth_file_path"] = str(depth_paths[i])
        frames.append(frame)
    h, w = size
    return {
        "camera_model": "OPENCV",
        "fl_x": float(K[0, 0]), "fl_y": float(K[1, 1]),
        "cx": float(K[0, 2]) + 0.5, "cy": float(K[1, 2]) + 0.5,
        "w": int(w), "h": int(h),
        "k1": 0.0, "k2": 0.0, "p1": 0.0, "p2": 0.0,
        "depth_unit_scale_factor": float(depth_unit_scale_factor),
        "frames": frames,
    }


def write_transforms_json(out_dir, cameras: Sequence[Camera], color_paths: Sequence[str],
                          depth_paths: Sequence[str] | None = None, depth_scale: float = 1000.0) -> Path:
    """Write ``OUT/transforms.json`` (atomically) for frames already written under ``OUT``.

    Args:
        out_dir: the folder holding the frames; the JSON goes there.
        cameras, color_paths, depth_paths: see :func:`transforms_dict` (paths relative to ``out_dir``).
        depth_scale: stored depth units per metre (1000 = millimetres); nerfstudio's
            ``nerfstudio-data`` parser reads depth as ``value × depth_unit_scale_factor``
            with a default factor ``1e-3``, recorded here as ``1 / depth_scale``.

    Returns:
        Path of the written ``transforms.json``.

    Raises:
        ValueError: see :func:`transforms_dict`; ``depth_scale <= 0``; a referenced file is missing.
    """
    if not depth_scale > 0:
        raise ValueError(f"depth_scale must be > 0, got {depth_scale}")
    out = Path(out_dir)
    for rel in list(color_paths) + list(depth_paths or []):
        if not (out / rel).is_file():
            raise ValueError(f"frame file {out / rel} does not exist")
    data = transforms_dict(cameras, color_paths, depth_paths, 1.0 / depth_scale)
    path = out / "transforms.json"
    fd, tmp = tempfile.mkstemp(dir=out, prefix=".transforms.", suffix=".tmp")
    with os.fdopen(fd, "w") as f:
        json.dump(data, f, indent=1)
    os.replace(tmp, path)
    return path
