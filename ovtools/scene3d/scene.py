"""What `ovtools segment3d` reads: a bare point cloud, or a posed RGB-D folder (with or without a PLY).

:func:`load_scene` turns a path into a :class:`Scene3DInput`:

* a point-cloud file (``.ply`` in any variant :func:`~ovtools.io.ply.read_point_cloud`
  reads; ``.pcd``/``.xyz``/``.pts``): the points and colours; views are planned and
  rendered later;
* a folder in ScanNet's layout (``color/ depth/ pose/ intrinsic/``): the real frames,
  and the points of the folder's PLY (``*_vh_clean_2.ply`` first, else the only
  ``.ply``), or, when there is none, points back-projected from the depth maps.

With ``voxel_size`` the cloud is down-sampled for the expensive steps and
``inverse`` maps every input point to its voxel, so labels reach every input point.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import PointCloudError
from ..io.ply import PointCloud, read_point_cloud, voxel_downsample
from .rgbd import RGBDFolder, backproject_rgbd


@dataclass
class Scene3DInput:
    """A scene ready for feature fusion.

    Attributes:
        points: float32 (M, 3) world metres (after down-sampling, if any).
        colors: uint8 (M, 3) RGB, or ``None`` for a cloud without colours.
        inverse: int64 (N,) row of ``points`` for every *input* point (identity without
            down-sampling); per-point results are returned as ``result[inverse]``.
        rgbd: a :class:`~ovtools.scene3d.rgbd.RGBDFolder`, or ``None`` for a bare cloud.
        fields: per-input-point arrays of the file (e.g. ground-truth ``class_id``), length N.
        source: the path read.
        input_points: float32 (N, 3) the input's own points (``None``: the same as ``points``,
            i.e. no down-sampling); outputs are written with these coordinates.
    """

    points: np.ndarray
    colors: np.ndarray | None
    inverse: np.ndarray
    rgbd: object | None
    fields: dict
    source: Path
    input_points: np.ndarray | None = None

    @property
    def original_points(self) -> np.ndarray:
        """float32 (N, 3) the input's points, in input order."""
        return self.points if self.input_points is None else self.input_points

    @property
    def n_input_points(self) -> int:
        """N, the number of points of the input (before down-sampling)."""
        return int(len(self.inverse))


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
               frame_skip: int = 1, depth_scale: float = 1000.0) -> Scene3DInput:
    """Read a point cloud or a posed RGB-D folder.

    Args:
        path: a point-cloud file or a ScanNet-layout folder.
        voxel_size: down-sample to voxels of this edge in metres (``None``: keep every point).
        mesh: for a mesh PLY: ``"vertices"`` or ``"sample"`` (uniform surface samples).
        frame_skip: RGB-D folders: use every ``frame_skip``-th frame.
        depth_scale: RGB-D folders: stored depth units per metre (ScanNet: 1000).

    Returns:
        :class:`Scene3DInput`.

    Raises:
        FileNotFoundError: ``path`` does not exist, or a folder lacks the RGB-D layout.
        PointCloudError: an unreadable, empty or single-point cloud (named).
        ValueError: ``voxel_size <= 0`` or bad RGB-D options.

    Warns:
        UserWarning: the cloud has no colours (features then come from geometry alone), or
            points with invalid coordinates were dropped.
    """
    path = Path(path)
    if voxel_size is not None and not voxel_size > 0:
        raise ValueError(f"voxel_size must be > 0 metres, got {voxel_size}")
    if not path.exists():
        raise FileNotFoundError(f"scene {path} does not exist")
    rgbd = None
    if path.is_dir():
        rgbd = RGBDFolder(path, depth_scale=depth_scale, frame_skip=frame_skip)
        ply = _folder_ply(path)
        if ply is not None:
            cloud = read_point_cloud(ply, mesh=mesh)
        else:
            pts, cols = backproject_rgbd(rgbd, voxel_size=voxel_size or 0.02)
            cloud = PointCloud(np.asarray(pts, np.float32), np.asarray(cols, np.uint8))
            if len(cloud.points) < 2:
                raise PointCloudError(f"{path}: the depth maps give fewer than two valid points")
    else:
        cloud = read_point_cloud(path, mesh=mesh)
    if cloud.colors is None:
        warnings.warn(f"{path}: the point cloud has no colours; rendered views are grey and labels rely on "
                      "geometry" + (" and the RGB-D frames" if rgbd is not None else ""), stacklevel=2)
    return scene_from_cloud(cloud, path, voxel_size, rgbd)


def scene_from_cloud(cloud, source: Path, voxel_size: float | None = None, rgbd=None) -> Scene3DInput:
    """A :class:`Scene3DInput` from a :class:`~ovtools.io.ply.PointCloud`, voxel down-sampled when
    ``voxel_size`` (metres) is given; its fields stay per input point.

    Warns:
        UserWarning: down-sampling left fewer than 100 points (and fewer than the input had).
    """
    n = len(cloud.points)
    inverse = np.arange(n, dtype=np.int64)
    fields = dict(cloud.fields)
    original = None
    if voxel_size is not None:
        original = cloud.points
        cloud, inverse = voxel_downsample(cloud, voxel_size)
        if len(cloud.points) < min(100, n):
            warnings.warn(f"{source}: --voxel-size {voxel_size:g} m leaves {len(cloud.points)} of {n} points; "
                          "labels will be coarse", stacklevel=3)
    return Scene3DInput(cloud.points, cloud.colors, inverse, rgbd, fields, Path(source), original)
