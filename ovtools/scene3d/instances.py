"""Instances from per-point class labels: per-class connected components and their boxes.

Two points of the same class belong to one instance when a chain of points of
that class, each within ``radius`` of the next, joins them — single-linkage
clustering, i.e. the connected components of the class's radius graph (the
Euclidean clustering of PCL's ``EuclideanClusterExtraction``; Rusu, "Semantic
3D Object Maps for Everyday Manipulation in Human Living Environments", PhD
thesis, TU München 2009, §4.2).  The graph's edges come from
``scipy.spatial.cKDTree.query_pairs`` and its components from
``scipy.sparse.csgraph.connected_components``.
"""

from __future__ import annotations

import numpy as np
import torch
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components
from scipy.spatial import cKDTree


def _np(x) -> np.ndarray:
    return x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x)


def _points(points, used: np.ndarray | None = None) -> np.ndarray:
    """float64 (N, 3) points; the rows in ``used`` (bool (N,), default all) must be finite."""
    p = _np(points)
    if p.ndim != 2 or p.shape[1] != 3:
        raise ValueError(f"points must have shape (N, 3), got {p.shape}")
    p = p.astype(np.float64, copy=False)
    rows = p if used is None or used.shape != (len(p),) else p[used]
    if not np.isfinite(rows).all():
        raise ValueError("points contains NaN or infinite values" + ("" if used is None else
                         " where labels / instance ids are set (give invalid points -1)"))
    return p


def connected_instances(points, labels, radius: float, min_points: int = 1) -> np.ndarray:
    """Split each class into spatially connected instances.

    Args:
        points: float (N, 3) world metres (numpy or torch, any device); float64 survey
            coordinates are used as they are (boxes come back in the input's coordinates).
        labels: int (N,) class id per point; negative = unlabelled (never in an instance;
            such rows may hold NaN coordinates, as invalid points of an organized scan).
        radius: link distance in metres (> 0); about 2–3 times the point spacing.  Points are linked
            through occupied grid cells of side ``radius / 2`` at most two cells apart per axis, so
            two points closer than ``radius`` are always in one instance and points farther than
            ``~2.6 * radius`` are never linked directly; the cost grows with the occupied cells,
            not with duplicated points.
        min_points: components with fewer points get -1.

    Returns:
        int32 (N,) instance id per point, -1 = none.  Ids are consecutive from 0, ordered by
        class id, then by the component's smallest point index (deterministic).

    Raises:
        ValueError: shapes disagree, non-finite labelled points, ``radius <= 0`` or ``min_points < 1``.

    Example:
        >>> pts = [[0, 0, 0], [0.1, 0, 0], [5, 0, 0], [5.1, 0, 0], [9, 9, 9]]
        >>> connected_instances(pts, [1, 1, 1, 1, -1], radius=0.2).tolist()
        [0, 0, 1, 1, -1]
    """
    lab = _np(labels)
    p = _points(points, lab >= 0 if lab.ndim == 1 and lab.dtype.kind in "iu" else None)
    if lab.shape != (len(p),):
        raise ValueError(f"labels must have shape ({len(p)},), got {lab.shape}")
    if not np.issubdtype(lab.dtype, np.integer):
        raise ValueError(f"labels must be integers, got dtype {lab.dtype}")
    if not radius > 0:
        raise ValueError(f"radius must be > 0, got {radius}")
    if min_points < 1:
        raise ValueError(f"min_points must be >= 1, got {min_points}")
    out = np.full(len(p), -1, dtype=np.int32)
    next_id = 0
    for c in np.unique(lab[lab >= 0]):
        members = np.flatnonzero(lab == c)
        # Link occupied cells of side radius / 2 at most 2 cells apart along each axis, not points: the work
        # grows with the occupied cells, so duplicated or very dense points cost nothing extra (a scan with
        # 25k copies of one point took 16 GB through point pairs).  Two points closer than radius are always
        # linked (their cells are at most 2 apart); points farther than ~2.6 x radius are never linked directly.
        cells = np.floor(p[members] / (radius / 2.0)).astype(np.int64)
        uniq, cell_of = np.unique(cells, axis=0, return_inverse=True)
        cell_of = cell_of.reshape(-1)
        k = len(uniq)
        pairs = cKDTree(uniq).query_pairs(2.0, p=np.inf, output_type="ndarray")
        graph = coo_matrix((np.ones(len(pairs), dtype=np.int8), (pairs[:, 0], pairs[:, 1])), shape=(k, k))
        _, cell_comp = connected_components(graph, directed=False)
        comp = cell_comp[cell_of]
        sizes = np.bincount(comp)
        # Renumber components by their first member (members is sorted, so this is the smallest index).
        _, first = np.unique(comp, return_index=True)
        order = np.argsort(first, kind="stable")
        order = order[sizes[order] >= min_points]
        new_id = np.full(len(sizes), -1, dtype=np.int32)
        new_id[order] = next_id + np.arange(len(order), dtype=np.int32)
        next_id += len(order)
        out[members] = new_id[comp]
    return out


def instance_boxes(points, instance_id, labels=None) -> list[dict]:
    """Axis-aligned bounding boxes of instances.

    Args:
        points: float (N, 3) world metres (rows with instance id -1 may be NaN).
        instance_id: int (N,) from :func:`connected_instances`; negative = none.
        labels: optional int (N,) class ids; adds each instance's majority ``"label"``.

    Returns:
        One dict per instance id, ascending, JSON-ready: ``instance_id`` int, ``n_points`` int,
        ``min``, ``max``, ``centre`` (box centre) and ``size`` (max - min): lists of 3 floats
        in metres; plus ``label`` int when ``labels`` is given.

    Raises:
        ValueError: shapes disagree or non-finite points in an instance.

    Example:
        >>> b = instance_boxes([[0, 0, 0], [1, 2, 3], [9, 9, 9]], [0, 0, -1])
        >>> b[0]["centre"], b[0]["size"], b[0]["n_points"]
        ([0.5, 1.0, 1.5], [1.0, 2.0, 3.0], 2)
    """
    ids = _np(instance_id)
    p = _points(points, ids >= 0 if ids.ndim == 1 else None)
    if ids.shape != (len(p),):
        raise ValueError(f"instance_id must have shape ({len(p)},), got {ids.shape}")
    lab = None
    if labels is not None:
        lab = _np(labels)
        if lab.shape != (len(p),):
            raise ValueError(f"labels must have shape ({len(p)},), got {lab.shape}")
    keep = np.flatnonzero(ids >= 0)
    if keep.size == 0:
        return []
    order = keep[np.argsort(ids[keep], kind="stable")]
    sorted_ids = ids[order]
    uniq, start, counts = np.unique(sorted_ids, return_index=True, return_counts=True)
    q = p[order]
    los, his = np.minimum.reduceat(q, start, axis=0), np.maximum.reduceat(q, start, axis=0)
    boxes = []
    for k, i in enumerate(uniq):
        lo, hi = los[k], his[k]
        box = {"instance_id": int(i), "n_points": int(counts[k]), "min": lo.tolist(), "max": hi.tolist(),
               "centre": ((lo + hi) / 2).tolist(), "size": (hi - lo).tolist()}
        if lab is not None:
            vals, c = np.unique(lab[order[start[k] : start[k] + counts[k]]], return_counts=True)
            box["label"] = int(vals[np.argmax(c)])
        boxes.append(box)
    return boxes
