"""Depth images: decoding, units, and a check that the units are plausible.

Depth maps come in several conventions; :func:`read_depth` turns each into float32
metres (0 = invalid):

* 16-bit PNG or TIFF of ``depth × depth_scale`` (ScanNet 1000 per metre, TUM RGB-D 5000);
  0 = no measurement;
* 32-bit float TIFF (or ``.npy``) already in metres (``depth_scale`` 1 unless set);
  NaN, inf, 0 and negative values = no measurement;
* 8-bit images are refused: they cannot hold a metric depth (a visualisation).

The units per metre of integer images are a setting (``depth_scale``); when it is not
set, a folder may say so itself in ScanNet's C++ ``SensReader`` export file
``_info.txt`` (line ``m_depthShift = 1000``), read by :func:`folder_depth_scale`;
otherwise ScanNet's 1000 applies.  :func:`check_depth_scale` warns in one line, naming
the setting, when the depth maps look like other units: a median valid depth outside
0.1–20 m, or views that agree with each other only at another scale (the camera path
fixes the metric scale: a surface seen from two poses back-projects to the same place
only with the right units).
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
from PIL import Image

DEPTH_SUFFIXES = (".png", ".tif", ".tiff", ".npy")
DEFAULT_DEPTH_SCALE = 1000.0  # ScanNet: millimetres
_MULTIPLIERS = (0.2, 0.25, 0.5, 1.0, 2.0, 4.0, 5.0)  # 1000 vs 5000 (TUM) vs 4000, halves and doubles


def folder_depth_scale(folder: str | Path) -> float | None:
    """Units per metre a folder declares: ``m_depthShift`` of ``_info.txt`` (in the folder or its
    ``intrinsic/``), as ScanNet's ``SensReader`` writes it; ``None`` when it declares none.

    Raises:
        ValueError: an ``m_depthShift`` line whose value is not a positive number.
    """
    for f in (Path(folder) / "_info.txt", Path(folder) / "intrinsic" / "_info.txt"):
        if not f.is_file():
            continue
        for line in f.read_text(errors="replace").splitlines():
            key, _, value = line.partition("=")
            if key.strip() == "m_depthShift":
                try:
                    scale = float(value.strip())
                except ValueError:
                    raise ValueError(f"{f}: m_depthShift must be a number, got {value.strip()!r}") from None
                if not scale > 0:
                    raise ValueError(f"{f}: m_depthShift must be > 0, got {scale:g}")
                return scale
    return None


def read_depth(path: str | Path, depth_scale: float | None = None) -> tuple[np.ndarray, float]:
    """Decode one depth image to metres.

    Args:
        path: ``.png``/``.tif``/``.tiff`` (16-bit integer or 32-bit float) or ``.npy`` (2-D array).
        depth_scale: stored units per metre; ``None``: 1000 for integer images, 1 for float ones.

    Returns:
        ``(depth, scale)``: float32 (h, w) metres along the optical axis, 0 where there is no
        valid measurement; and the units per metre applied.

    Raises:
        ValueError: undecodable, not single-channel, or 8-bit (the message names the file).
    """
    path = Path(path)
    try:
        if path.suffix.lower() == ".npy":
            raw = np.load(path, allow_pickle=False)
        else:
            with Image.open(path) as im:
                raw = np.asarray(im)
    except (OSError, ValueError) as e:
        raise ValueError(f"cannot decode depth image {path}: {e}") from e
    if raw.ndim != 2:
        raise ValueError(f"{path} must be a single-channel depth image, got shape {raw.shape}")
    if raw.dtype in (np.uint8, np.int8, np.bool_):  # 8 bits cannot hold millimetres: a visualisation
        raise ValueError(f"{path} is an 8-bit image; depth maps must be 16-bit (depth x depth_scale) or "
                         "32-bit float (metres)")
    if raw.dtype.kind not in "iuf":
        raise ValueError(f"{path}: depth must be integer or float, got dtype {raw.dtype}")
    scale = depth_scale if depth_scale is not None else (1.0 if raw.dtype.kind == "f" else DEFAULT_DEPTH_SCALE)
    depth = raw.astype(np.float32) / np.float32(scale)
    depth[~np.isfinite(depth) | (depth < 0)] = 0.0
    return depth, float(scale)


def _agreement(frames, multiplier: float, tol: float = 0.03) -> float:
    """Fraction of the valid depth pixels of one frame that land on the same surface in the next frame when
    every depth is multiplied by ``multiplier`` (over pairs of consecutive given frames).  Counted against
    all valid pixels, not only those landing on a valid pixel: a wrong scale throws most points out of the
    other view (while a floor seen by cameras at one height maps to one plane at every scale)."""
    hits = total = 0
    for a, b in zip(frames[:-1], frames[1:]):
        step = max(1, int(np.sqrt(a.depth.size / 4000)))
        d = a.depth[::step, ::step] * multiplier
        vv, uu = np.nonzero(d > 0)
        z = d[vv, uu].astype(np.float64)
        total += len(z)
        Ka, Kb = a.K_depth, b.K_depth
        cam = np.stack([(uu * step - Ka[0, 2]) * z / Ka[0, 0], (vv * step - Ka[1, 2]) * z / Ka[1, 1], z], 1)
        T = np.linalg.inv(b.pose) @ a.pose
        pb = cam @ T[:3, :3].T + T[:3, 3]
        front = pb[:, 2] > 1e-6
        pb = pb[front]
        u = np.floor(Kb[0, 0] * pb[:, 0] / pb[:, 2] + Kb[0, 2] + 0.5).astype(np.int64)
        v = np.floor(Kb[1, 1] * pb[:, 1] / pb[:, 2] + Kb[1, 2] + 0.5).astype(np.int64)
        h, w = b.depth.shape
        inside = (u >= 0) & (u < w) & (v >= 0) & (v < h)
        db = b.depth[v[inside], u[inside]].astype(np.float64) * multiplier
        ok = db > 0
        zb = pb[inside, 2][ok]
        hits += int((np.abs(zb - db[ok]) < tol * db[ok]).sum())
    return hits / total if total else 0.0


def check_depth_scale(rgbd, n_frames: int = 3, min_m: float = 0.1, max_m: float = 20.0) -> str | None:
    """Warn in one line, naming ``depth_scale``, when an RGB-D folder's depth units look wrong.

    Two checks on ``n_frames`` frames spread over the scan: the median valid depth must lie in
    ``[min_m, max_m]`` metres; and frames back-projected with their poses must agree with each
    other best at the units in use — if depths multiplied by some ``m`` in 0.2–5 agree clearly
    better (≥ 1.5× as many pixels land on the same surface in the next frame, and at least 30 %
    of them), the maps are in ``depth_scale / m`` units per metre.  Views from (almost) one place agree at every scale
    and never warn.

    Args:
        rgbd: an :class:`~ovtools.scene3d.rgbd.RGBDFolder`.
        n_frames: frames decoded for the check.
        min_m, max_m: plausible median depth in metres.

    Returns:
        The warning message, or ``None`` when the depths look plausible.

    Warns:
        UserWarning: the message above.
    """
    n = len(rgbd)
    picks = sorted(set(np.linspace(0, n - 1, min(n, n_frames)).round().astype(int).tolist()))
    frames = [rgbd[i] for i in picks]
    scale = f"{rgbd.unit_scale:g} units per metre, {rgbd.depth_scale_source}"
    valid = np.concatenate([f.depth[f.depth > 0] for f in frames])
    message = None
    if valid.size == 0:
        message = f"{rgbd.folder}: the depth maps of frames {picks} have no valid pixel; check depth_scale ({scale})"
    else:
        med = float(np.median(valid))
        if not min_m <= med <= max_m:
            message = (f"{rgbd.folder}: median depth {med:.3g} m is implausible (expected {min_m:g}-{max_m:g} m); "
                       f"check depth_scale ({scale}; ScanNet 1000, TUM 5000 units per metre, float maps in metres)")
        elif len(frames) > 1:
            scores = {m: _agreement(frames, m) for m in _MULTIPLIERS}
            best = max(scores, key=scores.get)
            if best != 1.0 and scores[best] >= 0.3 and scores[best] >= 1.5 * scores[1.0]:
                message = (f"{rgbd.folder}: the views agree at {best:g}x the depths read ({scores[best]:.0%} vs "
                           f"{scores[1.0]:.0%} of pixels); the depth maps look like "
                           f"{rgbd.unit_scale / best:g} units per metre, not {scale} (depth_scale)")
    if message is not None:
        warnings.warn(message, UserWarning, stacklevel=3)
    return message
