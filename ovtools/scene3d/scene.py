"""What `ovtools segment3d` reads: a bare point cloud, or a posed RGB-D folder (with or without a PLY).

:func:`load_scene` turns a path into a :class:`Scene3DInput`:

* a point-cloud file (``.ply`` in any variant :func:`~ovtools.io.ply.read_point_cloud`
  reads; ``.pcd``/``.xyz``/``.pts``): the points and colours; views are planned and
  rendered later;
* a folder in ScanNet's layout (``color/ depth/ pose/ intrinsic/``): the real frames,
  and the points of the folder's PLY (``*_vh_clean_2.ply`` first, else the only
  ``.ply``), or, when there is none, points back-projected from the depth maps.

The work happens in a *local frame* (:mod:`ovtools.scene3d.frame`): the cloud is turned
so that its up axis (``up_axis``, or detected) is +z and shifted so that its float64
bounding-box centre is the origin, before anything is rounded to float32 — survey
coordinates far from the origin and Y-up exports label like the same scene at the origin.
Every input row keeps its place: rows with NaN/inf coordinates (pixels without a return
in an organized scan) are *invalid* (``inverse`` -1; labelled "nothing"), and the
input's own coordinates, dtype and organized ``(height, width)`` are kept for the outputs.
With ``voxel_size`` the cloud is down-sampled for the expensive steps and ``inverse``
maps every input point to its voxel, so labels reach every input point.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import PointCloudError
from ..io.ply import PointCloud, read_point_cloud
from .depth import check_depth_scale
from .frame import apply_transform, local_frame
from .rgbd import RGBDFolder, backproject_rgbd
from .voxels import voxel_downsample


@dataclass
class Scene3DInput:
    """A scene ready for feature fusion.

    Attributes:
        points: float32 (M, 3) metres in the local frame (``to_local`` applied; after
            down-sampling, if any).
        colors: uint8 (M, 3) RGB, or ``None`` for a cloud without colours.
        inverse: int64 (N,) row of ``points`` for every *input* row, -1 for invalid rows
            (NaN/inf coordinates); per-point results are ``result[inverse]`` on valid rows.
        rgbd: a :class:`~ovtools.scene3d.rgbd.RGBDFolder`, or ``None`` for a bare cloud.
        fields: per-input-row arrays of the file (e.g. ground-truth ``class_id``), length N.
        source: the path read.
        input_points: float32 or float64 (N, 3) the input's own coordinates, every row as
            given (NaN rows too); outputs are written with these.
        to_local: float64 (4, 4) rigid transform from the input frame to the local frame
            (``local = R @ p + t``; RGB-D poses are moved with it).
        up_axis: the input's up axis (``"+z"``, ``"+y"``, ...), given or detected.
        organized: ``(height, width)`` of an organized input cloud, else ``None``.
    """

    points: np.ndarray
    colors: np.ndarray | None
    inverse: np.ndarray
    rgbd: object | None
    fields: dict
    source: Path
    input_points: np.ndarray | None = None
    to_local: np.ndarray = field(default_factory=lambda: np.eye(4))
    up_axis: str = "+z"
    organized: tuple[int, int] | None = None

    @property
    def original_points(self) -> np.ndarray:
        """float32 or float64 (N, 3) the input's points, in input order, in the input frame."""
        return self.points if self.input_points is None else self.input_points

    @property
    def n_input_points(self) -> int:
        """N, the number of rows of the input (before down-sampling; invalid rows included)."""
        return int(len(self.inverse))

    @property
    def valid(self) -> np.ndarray:
        """bool (N,): input rows with finite coordinates (the others are labelled "nothing")."""
        return self.inverse >= 0


def _folder_ply(folder: Path) -> Path | None:
    preferred = sorted(folder.glob("*_vh_clean_2.ply"))
    if preferred:
        return preferred[0]
    plys = sorted(folder.glob("*.ply"))
    if len(plys) > 1:
        raise PointCloudError(f"{folder}: several .ply files ({[p.name for p in plys[:5]]}); "
                              "give the PLY and the frames folder separately")
    return plys[0] if plys else None


def load_scene(path: str | Path, *, voxel_size: float | None = None, mesh: str = "vertices",
               frame_skip: int = 1, depth_scale: float | None = None, up_axis: str = "auto") -> Scene3DInput:
    """Read a point cloud or a posed RGB-D folder.

    Args:
        path: a point-cloud file or a ScanNet-layout folder.
        voxel_size: down-sample to voxels of this edge in metres (``None``: keep every point).
        mesh: for a mesh PLY: ``"vertices"`` or ``"sample"`` (uniform surface samples).
        frame_skip: RGB-D folders: use every ``frame_skip``-th frame.
        depth_scale: RGB-D folders: stored depth units per metre; ``None``: the folder's own
            (:class:`~ovtools.scene3d.rgbd.RGBDFolder`; ScanNet 1000 by default).
        up_axis: ``"auto"`` or the input's up axis (``"+z"``, ``"+y"``, ...);
            see :func:`~ovtools.scene3d.frame.local_frame`.

    Returns:
        :class:`Scene3DInput`.

    Raises:
        FileNotFoundError: ``path`` does not exist, or a folder lacks the RGB-D layout.
        PointCloudError: an unreadable, empty or single-point cloud (named).
        ValueError: ``voxel_size <= 0``, a bad ``up_axis`` or bad RGB-D options.

    Warns:
        UserWarning: the cloud has no colours (features then come from geometry alone);
            rows with invalid coordinates (counted); the detected up axis is not +z; the
            depth maps look like another depth scale.
    """
    path = Path(path)
    if voxel_size is not None and not voxel_size > 0:
        raise ValueError(f"voxel_size must be > 0 metres, got {voxel_size}")
    if not path.exists():
        raise FileNotFoundError(f"scene {path} does not exist")
    rgbd = None
    if path.is_dir():
        rgbd = RGBDFolder(path, depth_scale=depth_scale, frame_skip=frame_skip)
        check_depth_scale(rgbd)
        ply = _folder_ply(path)
        if ply is not None:
            cloud = read_point_cloud(ply, mesh=mesh, keep_invalid=True)
        else:
            pts, cols = backproject_rgbd(rgbd, voxel_size=voxel_size or 0.02)
            cloud = PointCloud(pts, np.asarray(cols, np.uint8))
            if len(cloud.points) < 2:
                raise PointCloudError(f"{path}: the depth maps give fewer than two valid points")
    else:
        cloud = read_point_cloud(path, mesh=mesh, keep_invalid=True)
    if cloud.colors is None:
        warnings.warn(f"{path}: the point cloud has no colours; rendered views are grey and labels rely on "
                      "geometry" + (" and the RGB-D frames" if rgbd is not None else ""), stacklevel=2)
    return scene_from_cloud(cloud, path, voxel_size, rgbd, up_axis=up_axis)


def scene_from_cloud(cloud, source: Path, voxel_size: float | None = None, rgbd=None, *,
                     up_axis: str = "auto") -> Scene3DInput:
    """A :class:`Scene3DInput` from a :class:`~ovtools.io.ply.PointCloud`: invalid rows set aside,
    the valid ones moved to the local frame (:func:`~ovtools.scene3d.frame.local_frame`) and
    voxel down-sampled when ``voxel_size`` (metres) is given; its fields stay per input row.

    Raises:
        PointCloudError: fewer than two valid points, or all at one position.
        ValueError: a bad ``up_axis``.

    Warns:
        UserWarning: invalid rows (counted: they keep their place, labelled "nothing"); float32
            coordinates so far from the origin that the file has rounded them (> 10 km); an
            ``up_axis="auto"`` that is not +z (named, with the setting); down-sampling left
            fewer than 100 points (and fewer than the input had).
    """
    n = len(cloud.points)
    valid = cloud.valid
    n_valid = int(valid.sum())
    if n_valid < 2:
        raise PointCloudError(f"{source}: fewer than two points with finite coordinates ({n_valid} of {n})")
    if n_valid < n:
        warnings.warn(f"{source}: {n - n_valid} of {n} points have NaN/inf coordinates; they keep their rows "
                      "(label -1, score 0)", UserWarning, stacklevel=3)
    kept = cloud if n_valid == n else cloud.select(valid)
    extent = np.ptp(kept.points.astype(np.float64), axis=0)
    if not extent.max() > 0:
        raise PointCloudError(f"{source}: all {n_valid} valid points are at one position "
                              f"{kept.points[0].tolist()}; nothing to render")
    far = float(np.abs(kept.points).max())
    if kept.points.dtype == np.float32 and far > 1e4:  # the file itself already rounded the coordinates
        warnings.warn(f"{source}: coordinates up to {far:.3g} m from the origin are stored as float32, which "
                      f"rounds them to {float(np.spacing(np.float32(far))):.2g} m; export doubles (or local "
                      "coordinates) to keep the detail", UserWarning, stacklevel=3)
    to_local, axis = local_frame(kept.points, up_axis)
    if up_axis == "auto" and axis != "+z":
        warnings.warn(f"{source}: up axis {axis} detected (the floor faces {axis}); working with {axis} up "
                      "(set up_axis / --up-axis to override)", UserWarning, stacklevel=3)
    R = to_local[:3, :3]
    local = PointCloud(apply_transform(to_local, kept.points).astype(np.float32), kept.colors,
                       None if kept.normals is None else (kept.normals @ R.T).astype(np.float32))
    inverse = np.arange(n_valid, dtype=np.int64)
    if voxel_size is not None:
        local, inverse = voxel_downsample(local, voxel_size)
        if len(local.points) < min(100, n_valid):
            warnings.warn(f"{source}: --voxel-size {voxel_size:g} m leaves {len(local.points)} of {n} points; "
                          "labels will be coarse", stacklevel=3)
    full = np.full(n, -1, np.int64)
    full[valid] = inverse
    return Scene3DInput(local.points, local.colors, full, rgbd, dict(cloud.fields), Path(source), cloud.points,
                        to_local, axis, cloud.organized)
