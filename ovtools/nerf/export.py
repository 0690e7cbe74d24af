"""Export a trained language field as a labelled point cloud, in ``ovtools segment3d``'s PLY schema.

1. **Surface.**  The field is rendered from dataset cameras (:meth:`FeatureFieldPipeline.render`:
   expected depth, pixels with opacity >= ``min_accumulation``); each pixel's surface point is
   back-projected into the data's world frame and kept if it lies in the run's scene box (beyond it
   nerfacto models contracted background: on the 3D world 12 % of the pixels, 0.1-1 m off the scene).
2. **Fusion.**  The points of every view are merged per voxel of ``voxel_size`` metres (mean position
   and colour; :func:`ovtools.scene3d.voxels.voxel_downsample`).
3. **Labels.**  The fused points are labelled by the field (:meth:`FeatureFieldPipeline.labels_at`)
   or scored against one phrase (:meth:`FeatureFieldPipeline.relevancy_at`).
4. **Output.**  :mod:`ovtools.io.pointlabels` writes the PLY as ``ovtools segment3d`` does: colours by
   class and properties ``label`` (int, -1 = nothing) and ``score`` (float) — or ``relevancy`` (float in
   [0, 1]) with a heat-map colour for a query.  The summary lists instances as connected components
   per class with axis-aligned 3D boxes (:func:`ovtools.scene3d.connected_instances`,
   :func:`ovtools.scene3d.instance_boxes`), as ``segment3d --summary`` does.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..io.ply import PointCloud
from ..io.pointlabels import write_point_labels, write_relevancy
from ..io.writers import write_json
from ..scene3d import connected_instances, instance_boxes
from ..scene3d.voxels import voxel_downsample
from ..structures import PointLabels
from .pipeline import FeatureFieldPipeline


@dataclass
class FieldSurface:
    """Surface points of a field, fused over views.

    Attributes:
        points: float32 (M, 3) data-frame metres.
        colors: uint8 (M, 3) rendered colours.
        voxel_size: the fusion voxel in metres.
        n_views: views rendered.
        seconds: wall time of ``render`` and ``fuse``.
    """

    points: np.ndarray
    colors: np.ndarray
    voxel_size: float
    n_views: int
    seconds: dict = field(default_factory=dict)


def pick_views(n: int, max_views: int) -> list[int]:
    """At most ``max_views`` dataset camera indices, evenly spread over ``0 .. n - 1``."""
    if n <= 0:
        return []
    return np.unique(np.linspace(0, n - 1, min(n, max(1, max_views))).round().astype(int)).tolist()


def field_surface(field_pipe: FeatureFieldPipeline, views: Iterable[int] | None = None, max_views: int = 12,
                  voxel_size: float | None = None, background: bool = False,
                  progress: Callable[[str], None] | None = None) -> FieldSurface:
    """Back-project the field's rendered depth from dataset cameras and fuse it per voxel.

    Args:
        field_pipe: the loaded field.
        views: dataset camera indices; ``None`` = ``max_views`` of them, evenly spread.
        max_views: how many cameras when ``views`` is ``None`` (>= 1).
        voxel_size: fusion voxel in metres; ``None`` = 1/256 of the diagonal of the views' surface.
        background: also keep surface points beyond the run's scene box (nerfacto's contracted background).
        progress: called with a message after each view.

    Returns:
        :class:`FieldSurface` (possibly empty when no pixel is opaque).

    Raises:
        ValueError: ``voxel_size <= 0`` or ``max_views < 1``.  IndexError: a view index out of range.
    """
    if voxel_size is not None and not voxel_size > 0:
        raise ValueError(f"voxel_size must be > 0 metres, got {voxel_size}")
    if max_views < 1:
        raise ValueError(f"max_views must be >= 1, got {max_views}")
    views = pick_views(len(field_pipe.cameras), max_views) if views is None else list(views)
    t0 = time.perf_counter()
    pts, cols = [], []
    for k, i in enumerate(views):
        v = field_pipe.render(i)
        solid = np.isfinite(v.points[..., 0])
        if not background:  # beyond the box: the contracted background
            solid[solid] = field_pipe.in_scene_box(v.points[solid])
        pts.append(v.points[solid])
        cols.append(v.rgb[solid])
        if progress is not None:
            progress(f"rendered view {k + 1}/{len(views)}: {int(solid.sum())} surface pixels")
    t1 = time.perf_counter()
    points = np.concatenate(pts) if pts else np.zeros((0, 3), np.float32)
    colors = np.concatenate(cols) if cols else np.zeros((0, 3), np.uint8)
    if len(points) == 0:
        return FieldSurface(points, colors, voxel_size or 0.0, len(views), {"render": t1 - t0, "fuse": 0.0})
    if voxel_size is None:
        voxel_size = float(np.linalg.norm(points.max(0) - points.min(0))) / 256 or 1e-3
    small, _ = voxel_downsample(PointCloud(points.astype(np.float32), colors), voxel_size)
    return FieldSurface(small.points, small.colors, float(voxel_size), len(views),
                        {"render": t1 - t0, "fuse": time.perf_counter() - t1})


def surface_instances(surface: FieldSurface, labels: PointLabels, radius: float | None = None,
                      min_points: int = 20) -> list[dict]:
    """Instances of labelled surface points: connected components per class with axis-aligned 3D boxes.

    Args:
        surface: the fused surface.
        labels: its :class:`~ovtools.structures.PointLabels`.
        radius: link distance in metres; ``None`` = 3 voxels.
        min_points: smaller components are left out.

    Returns:
        ``[{"instance_id", "label", "class_name", "n_points", "min", "max", "centre", "size"}]``, metres.
    """
    radius = radius or 3.0 * max(surface.voxel_size, 1e-6)
    inst = connected_instances(surface.points, labels.class_id, radius, min_points)
    boxes = instance_boxes(surface.points, inst, labels.class_id)
    for b in boxes:
        b["class_name"] = labels.class_names[b["label"]] if b.get("label", -1) >= 0 else None
    return boxes


def export_field(field_pipe: FeatureFieldPipeline, output: str | Path | None, *, labels=None,
                 query: str | None = None, summary: str | Path | None = None, max_views: int = 12,
                 voxel_size: float | None = None, background: bool = False, instance_radius: float | None = None,
                 min_instance_points: int = 20, protect: Iterable[str | Path] = (),
                 progress: Callable[[str], None] | None = None) -> dict:
    """Label (or score) the field's surface and write it like ``ovtools segment3d`` (module docs).

    Args:
        field_pipe: the loaded field.
        output: destination ``.ply`` (``None``: no file).
        labels: labels for this export (default: the pipeline's current labels); not with ``query``.
        query: score the surface against this phrase instead (``relevancy`` property).
        summary: optional JSON summary path.
        max_views, voxel_size, background: see :func:`field_surface`.
        instance_radius, min_instance_points: see :func:`surface_instances`.
        protect: input files that must not be overwritten (the run's files).
        progress: called with stage messages.

    Returns:
        The summary document: ``{"run", "n_points", "model", "pretrained", "n_views", "voxel_size", "seconds",
        ...}`` plus ``"class_names", "points_per_class", "instances"`` for labels, or ``"query",
        "points_relevant", "max_relevancy"`` for a query.

    Raises:
        ValueError: both ``labels`` and ``query``, an empty query, no labels, bad settings, or no surface point
            in the rendered views (an untrained field, or everything beyond the scene box).
        OutputPathError: an output that is an input or a folder.
    """
    if labels is not None and query is not None:
        raise ValueError("give labels or a query, not both")
    t0 = time.perf_counter()
    emb = field_pipe.embed(labels) if labels is not None else None
    if query is not None and not query.strip():
        raise ValueError("query must be a non-empty phrase")
    if query is None and emb is None and not field_pipe.labels:
        raise ValueError("no labels: pass labels= (or set them on the pipeline) or a query")
    surf = field_surface(field_pipe, max_views=max_views, voxel_size=voxel_size, background=background,
                         progress=progress)
    if len(surf.points) == 0:
        raise ValueError(f"{field_pipe.run}: no surface in the {surf.n_views} rendered views" + (
            "" if background else " inside the scene box (is the field trained? --keep-background keeps what "
            "lies beyond the box)"))
    doc = {"run": str(field_pipe.run), "n_points": int(len(surf.points)), "model": field_pipe.encoder.name,
           "pretrained": field_pipe.encoder.pretrained, "n_views": surf.n_views,
           "voxel_size": round(surf.voxel_size, 6)}
    t1 = time.perf_counter()
    if query is not None:
        rel = field_pipe.relevancy_at(surf.points, query)
        if output is not None:
            write_relevancy(output, surf.points, rel, protect=protect)
        doc.update(query=query, points_relevant=int((rel > 0.5).sum()),
                   max_relevancy=round(float(rel.max(initial=0.0)), 6))
    else:
        pl = field_pipe.labels_at(surf.points, emb.space if emb is not None else None)
        if output is not None:
            write_point_labels(output, surf.points, pl, protect=protect)
        doc.update(class_names=pl.class_names, points_per_class=pl.counts(),
                   instances=surface_instances(surf, pl, instance_radius, min_instance_points))
    doc["seconds"] = {**{k: round(v, 3) for k, v in surf.seconds.items()},
                      "label": round(time.perf_counter() - t1, 3), "total": round(time.perf_counter() - t0, 3)}
    if summary is not None:
        write_json(summary, doc, protect)
    return doc
