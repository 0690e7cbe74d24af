"""Voxel down-sampling of point clouds, with the inverse map that carries results back to every input point.

    >>> cloud = PointCloud(np.zeros((4, 3), np.float32), fields={"label": np.arange(4, dtype=np.int32)})
    >>> small, inverse = voxel_downsample(cloud, 0.05)   # 5 cm voxels
    >>> len(small), inverse.tolist()                      # labels of every point: labels_of_small[inverse]
    (1, [0, 0, 0, 0])
"""

from __future__ import annotations

import numpy as np

from ..io.ply import PointCloud


def _mode(groups: np.ndarray, values: np.ndarray, n_groups: int) -> np.ndarray:
    """Most frequent value per group (ties → smallest value); every group must be non-empty."""
    order = np.lexsort((values, groups))
    g, v = groups[order], values[order]
    start = np.flatnonzero(np.r_[True, (g[1:] != g[:-1]) | (v[1:] != v[:-1])])
    count = np.diff(np.r_[start, len(g)])
    best = np.lexsort((-count, g[start]))  # per group: highest count first, then smallest value
    run_group = g[start][best]
    first = np.r_[True, run_group[1:] != run_group[:-1]]
    out = np.empty(n_groups, values.dtype)
    out[run_group[first]] = v[start][best][first]
    return out


def voxel_downsample(cloud: PointCloud, voxel_size: float) -> tuple[PointCloud, np.ndarray]:
    """Average the points of each occupied voxel of a regular grid.

    Voxels are cubes of side ``voxel_size`` metres aligned on the cloud's minimum
    corner.  Per voxel: the mean position, the mean colour (rounded), the mean normal
    (renormalised), the mean of float fields and the most frequent value of integer
    and bool fields (ties → smallest).  Rows are in increasing voxel-key order.
    Memory is O(N); a million points take about a second.

    Args:
        cloud: input cloud of N points.
        voxel_size: voxel side in metres, > 0.

    Returns:
        ``(small, inverse)``: the down-sampled cloud (M <= N points) and int64 (N,)
        row of ``small`` holding each input point, so ``labels[inverse]`` carries
        per-voxel labels back to the input points.

    Raises:
        ValueError: ``voxel_size`` not a positive finite number, or invalid (NaN/inf) points.
    """
    if not (np.isfinite(voxel_size) and voxel_size > 0):
        raise ValueError(f"voxel_size must be a positive number of metres, got {voxel_size}")
    n = len(cloud)
    if n == 0:
        return cloud.select(np.zeros(0, np.int64)), np.zeros(0, np.int64)
    if not cloud.valid.all():
        raise ValueError("voxel_downsample needs finite points; select the valid ones first (PointCloud.valid)")
    pts = cloud.points.astype(np.float64)
    keys = np.floor((pts - pts.min(axis=0)) / voxel_size).astype(np.int64)
    dims = keys.max(axis=0) + 1
    if float(np.prod(dims.astype(np.float64))) < 2.0**62:
        _, inverse = np.unique(keys[:, 0] * (dims[1] * dims[2]) + keys[:, 1] * dims[2] + keys[:, 2],
                               return_inverse=True)
    else:  # an enormous grid: unique rows instead of a packed key (slower)
        _, inverse = np.unique(keys, axis=0, return_inverse=True)
    inverse = inverse.reshape(-1).astype(np.int64)
    m = int(inverse.max()) + 1
    count = np.bincount(inverse, minlength=m).astype(np.float64)

    def mean(a: np.ndarray) -> np.ndarray:
        a = a.reshape(n, -1).astype(np.float64)
        return np.stack([np.bincount(inverse, a[:, j], m) for j in range(a.shape[1])], axis=1) / count[:, None]

    colors = None if cloud.colors is None else np.clip(np.rint(mean(cloud.colors)), 0, 255).astype(np.uint8)
    normals = None
    if cloud.normals is not None:
        normals = mean(cloud.normals)
        length = np.linalg.norm(normals, axis=1, keepdims=True)
        normals = np.where(length > 0, normals / np.maximum(length, 1e-30), 0.0)
    fields = {k: (mean(v)[:, 0].astype(v.dtype) if v.dtype.kind == "f" else _mode(inverse, v, m))
              for k, v in cloud.fields.items()}
    return PointCloud(mean(pts).astype(cloud.points.dtype), colors, normals, fields), inverse
