"""Per-point outputs of 3D segmentation: labelled and relevancy PLYs, per-point feature arrays.

* :func:`write_point_labels` — the input points, coloured by class (a class's overlay colour,
  :func:`~ovtools.io.vis.class_color`; "nothing" dark grey), with PLY properties ``label``
  (int, class id; -1 = nothing) and ``score`` (float, confidence).
* :func:`write_relevancy` — the input points with a ``relevancy`` property (float in [0, 1])
  and a blue (0) → red (1) heat-map colour (:func:`heat_colors`).
* :func:`write_point_features` — (N, D) features as a float16 ``.npy``.
* :func:`heat_overlay` — a relevancy map (H, W) over its view, as a picture.

Every file is written atomically and never over an input (:mod:`ovtools.io.writers`).
Coordinates are written as :func:`~ovtools.io.ply.write_ply` writes the points given.
"""

from __future__ import annotations

import io
from collections.abc import Iterable
from pathlib import Path

import numpy as np
from PIL import Image

from ..structures import PointLabels
from .ply import PointCloud, write_ply
from .vis import class_color
from .writers import atomic_write_bytes

NOTHING_COLOR = (60, 60, 60)
HEAT_LOW = (40, 60, 230)   # relevancy 0: blue
HEAT_HIGH = (230, 40, 40)  # relevancy 1: red


def heat_colors(values: np.ndarray) -> np.ndarray:
    """uint8 (N, 3) RGB of values in [0, 1] (clipped), blended linearly from blue (0) to red (1)."""
    v = np.clip(np.asarray(values, np.float64), 0, 1)[:, None]
    return (np.array([HEAT_LOW]) * (1 - v) + np.array([HEAT_HIGH]) * v).round().astype(np.uint8)


def heat_overlay(rgb: np.ndarray, relevancy: np.ndarray, alpha: float = 0.6) -> Image.Image:
    """A relevancy map over its view: ``(1 - a) * rgb + a * heat`` with ``a = alpha * relevancy``.

    Args:
        rgb: uint8 (H, W, 3) view.
        relevancy: float (H, W) in [0, 1] (clipped).
        alpha: heat opacity where relevancy is 1.

    Raises:
        ValueError: the two sizes differ.
    """
    rgb, rel = np.asarray(rgb), np.asarray(relevancy, np.float64)
    if rgb.shape[:2] != rel.shape:
        raise ValueError(f"relevancy has shape {rel.shape}, the view {rgb.shape[:2]}")
    heat = heat_colors(rel.reshape(-1)).reshape(*rel.shape, 3).astype(np.float64)
    a = alpha * np.clip(rel, 0, 1)[..., None]
    return Image.fromarray(((1 - a) * rgb + a * heat).round().clip(0, 255).astype(np.uint8))


def class_colors(class_id: np.ndarray) -> np.ndarray:
    """uint8 (N, 3) RGB per point: the class's overlay colour, :data:`NOTHING_COLOR` for -1."""
    class_id = np.asarray(class_id)
    palette = np.array([class_color(i) for i in range(int(class_id.max(initial=-1)) + 1)] + [NOTHING_COLOR],
                       np.uint8)
    return palette[np.where(class_id < 0, len(palette) - 1, class_id)]


def _check_rows(points: np.ndarray, n: int, what: str) -> None:
    if len(points) != n:
        raise ValueError(f"{what} has {n} rows for {len(points)} points")


def write_point_labels(path: str | Path, points: np.ndarray, labels: PointLabels,
                       protect: Iterable[str | Path] = (), organized: tuple[int, int] | None = None) -> Path:
    """Write labelled points as a binary PLY (module docs).

    Args:
        path: destination ``.ply``.
        points: (N, 3) coordinates, the input's own (written as given).
        labels: :class:`~ovtools.structures.PointLabels` of the N points.
        protect: input files that must not be overwritten.
        organized: ``(height, width)`` of an organized input cloud, kept in the output.

    Returns:
        The destination path.

    Raises:
        ValueError: ``labels`` does not have N rows.
        OutputPathError: ``path`` is an input or a folder.
    """
    _check_rows(points, len(labels), "labels")
    fields = {"label": labels.class_id.astype(np.int32), "score": labels.confidence.astype(np.float32)}
    return write_ply(path, PointCloud(points, class_colors(labels.class_id), fields=fields, organized=organized),
                     protect=protect)


def write_relevancy(path: str | Path, points: np.ndarray, relevancy: np.ndarray,
                    protect: Iterable[str | Path] = (), organized: tuple[int, int] | None = None) -> Path:
    """Write points with their relevancy to a phrase as a binary PLY (module docs).

    Args:
        path: destination ``.ply``.
        points: (N, 3) coordinates, the input's own.
        relevancy: float (N,) in [0, 1].
        protect: input files that must not be overwritten.
        organized: ``(height, width)`` of an organized input cloud, kept in the output.

    Raises:
        ValueError: ``relevancy`` does not have N rows.
        OutputPathError: ``path`` is an input or a folder.
    """
    relevancy = np.asarray(relevancy)
    _check_rows(points, len(relevancy), "relevancy")
    return write_ply(path, PointCloud(points, heat_colors(relevancy), fields={"relevancy": relevancy.astype(np.float32)},
                                      organized=organized), protect=protect)


def write_point_features(path: str | Path, features: np.ndarray, protect: Iterable[str | Path] = ()) -> Path:
    """Write (N, D) per-point features as a float16 ``.npy``, atomically.

    Raises:
        ValueError: ``features`` is not 2-D.
        OutputPathError: ``path`` is an input or a folder.
    """
    features = np.asarray(features)
    if features.ndim != 2:
        raise ValueError(f"features must have shape (N, D), got {features.shape}")
    buf = io.BytesIO()
    np.save(buf, features.astype(np.float16))
    return atomic_write_bytes(path, buf.getvalue(), protect)
