"""Quality of a trained language field on a scene with exact ground truth (the generated 3D world).

Two figures, measured with the code users run:

* **Per-point mIoU** — the field is queried at the ground-truth points of the scene
  (:meth:`FeatureFieldPipeline.labels_at`) and scored with the same
  :class:`~ovtools.eval.segmentation.ConfusionMatrix` and class matching as ``ovtools eval`` on a
  3D world (:mod:`ovtools.eval.scenes3d`).  Optionally ``segment3d`` labels the same points with a
  preset, for a side-by-side figure.
* **Localisation accuracy** (LERF, Kerr et al. ICCV 2023, §4.2): on held-out views — cameras on a ring
  at ``elevation`` degrees, between the training rings (30°, 55°) of ``ovtools datagen --rgbd-views``,
  so no training image shows them — every object whose mask covers at least ``min_area`` of the view is
  queried by its class (name, synonyms and templates of the class space); the query counts as found
  when the highest-relevancy pixel lies in the mask of an object of that class.  Masks come from the
  ground-truth cloud rendered with the same camera (:func:`ovtools.scene3d.render_points`).

The scene of a run is found from its data folder: ``DATA/<name>.ply`` or ``DATA/../<name>.ply`` with
``DATA/../scenes3d.json`` (what ``ovtools datagen --kind scenes3d --rgbd-views N`` writes).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from ..eval.scenes3d import class_mapping, ground_truth
from ..eval.segmentation import ConfusionMatrix
from ..io.ply import read_point_cloud
from ..pipelines import Segment3DPipeline
from ..prompts import ClassSpace
from ..scene3d import estimate_point_spacing, plan_views, render_points
from .pipeline import FeatureFieldPipeline


def run_scene(field_pipe: FeatureFieldPipeline, scene: str | Path | None = None) -> tuple[Path, Path]:
    """``(ground-truth PLY, scenes3d.json)`` of a run's scene: ``scene`` if given, else found from the run's data.

    Raises:
        FileNotFoundError: no PLY or manifest found (the message says where it looked).
    """
    if scene is not None:
        ply = Path(scene)
        if not ply.is_file():
            raise FileNotFoundError(f"ground-truth scene {ply} does not exist")
        candidates = [ply]
    else:
        data = Path(field_pipe.nerf.datamanager.config.data or field_pipe.nerf.datamanager.config.dataparser.data)
        candidates = [data / f"{data.name}.ply", data.parent / f"{data.name}.ply"]
        ply = next((p for p in candidates if p.is_file()), None)
        if ply is None:
            raise FileNotFoundError(f"no ground-truth point cloud for {data}: looked for "
                                    f"{', '.join(map(str, candidates))}; pass the scene's .ply")
    manifests = [ply.parent / "scenes3d.json", ply.parent.parent / "scenes3d.json"]
    man = next((m for m in manifests if m.is_file()), None)
    if man is None:
        raise FileNotFoundError(f"no scenes3d.json beside {ply} or one folder up: the class names are unknown")
    return ply, man


def _space(labels, class_names: list[str]) -> ClassSpace:
    if labels is None:
        return ClassSpace.from_names(class_names, name="scenes3d")
    if isinstance(labels, ClassSpace):
        return labels
    return ClassSpace.from_labels(labels) if isinstance(labels, str) else ClassSpace.from_names(list(labels))


def point_miou(pred: np.ndarray, gt_space: np.ndarray, names: list[str]) -> dict:
    """``{"mIoU", "point_accuracy", "per_class_IoU", "classes_in_gt"}`` of predicted vs ground-truth class ids
    (both in class-space ids; ground truth < 0 is ignored)."""
    keep = gt_space >= 0
    cm = ConfusionMatrix(len(names))
    cm.update(gt_space[keep], pred[keep])
    r = cm.metrics(names)
    return {"mIoU": r["mIoU"], "point_accuracy": r["pixel_accuracy"], "per_class_IoU": r["per_class_IoU"],
            "classes_in_gt": r["classes_in_gt"]}


def localisation(field_pipe: FeatureFieldPipeline, cloud, gt: np.ndarray, space: ClassSpace, to_space: np.ndarray,
                 n_views: int = 6, elevation: float = 42.5, min_area: float = 0.003,
                 progress: Callable[[str], None] | None = None) -> dict:
    """LERF localisation accuracy on held-out views (module docs).

    Args:
        field_pipe: the loaded field.
        cloud: the ground-truth :class:`~ovtools.io.ply.PointCloud` (fields ``class_id``, ``instance_id``).
        gt: int64 (N,) its manifest class ids; ``to_space`` maps them to ``space`` ids.
        n_views: held-out cameras on the ring.
        elevation: their elevation in degrees.
        min_area: an object covering less than this fraction of a view is not queried there.

    Returns:
        ``{"accuracy", "n_queries", "n_found", "n_views", "per_class": {name: [found, queries]}}``.
    """
    inst = np.asarray(cloud.fields.get("instance_id", np.zeros(len(gt), np.int32)))
    h, w = _view_size(field_pipe)
    cams = plan_views(cloud.points, n_around=n_views, elevations=(elevation,), size=(h, w), top_down=False,
                      n_inside=0)
    spacing = estimate_point_spacing(cloud.points)
    found = total = 0
    per: dict[str, list[int]] = {}
    for k, cam in enumerate(cams):
        view = field_pipe.render(cam)
        r = render_points(cloud.points, cloud.colors, view.camera.K, view.camera.pose, view.camera.size,
                          point_size_m=1.5 * spacing)
        idx = r.index.numpy()
        seen = idx >= 0
        cls_map = np.full(idx.shape, -1, np.int64)
        cls_map[seen] = gt[idx[seen]]
        ins_map = np.full(idx.shape, -1, np.int64)
        ins_map[seen] = inst[idx[seen]]
        for i in np.unique(ins_map[seen]).tolist():
            if i <= 0:  # 0 = the floor: LERF queries objects
                continue
            mask = ins_map == i
            if mask.sum() < max(1.0, min_area * mask.size):
                continue
            c = int(cls_map[mask][0])
            spec = space.classes[int(to_space[c])]
            one = ClassSpace(space.name, (spec,), space.negatives, space.templates)
            rel = field_pipe.relevancy_map(view, one)
            hit = bool(cls_map.reshape(-1)[int(rel.argmax())] == c)
            found, total = found + hit, total + 1
            per.setdefault(spec.name, [0, 0])
            per[spec.name][0] += hit
            per[spec.name][1] += 1
        if progress is not None:
            progress(f"held-out view {k + 1}/{len(cams)}: {found}/{total} objects found so far")
    return {"accuracy": round(found / total, 6) if total else None, "n_queries": total, "n_found": found,
            "n_views": len(cams), "elevation": elevation, "per_class": per}


def _view_size(field_pipe: FeatureFieldPipeline) -> tuple[int, int]:
    """(H, W) of the held-out views: the dataset cameras' aspect, longer side ``render_side``."""
    h, w = int(field_pipe.cameras.height[0]), int(field_pipe.cameras.width[0])
    f = field_pipe.config.render_side / max(h, w)
    return max(1, round(h * f)), max(1, round(w * f))


def evaluate_field(field_pipe: FeatureFieldPipeline, scene: str | Path | None = None, labels=None, *,
                   localise: bool = True, n_views: int = 6, min_area: float = 0.003,
                   segment3d_preset: str | None = None, progress: Callable[[str], None] | None = None) -> dict:
    """mIoU at the ground-truth points and LERF localisation accuracy of a field (module docs).

    Args:
        field_pipe: the loaded field.
        scene: the ground-truth PLY (default: found from the run's data, :func:`run_scene`).
        labels: class space or labels to score with (default: the manifest's class names); every manifest
            class must be in it (by name).
        localise: also measure localisation on ``n_views`` held-out views.
        segment3d_preset: also label the same points with ``ovtools segment3d`` and this preset
            (e.g. ``"segment3d-shapes"``) for a side-by-side mIoU.
        progress: called with stage messages.

    Returns:
        ``{"task": "field3d", "run", "scene", "n_points", "mIoU", "point_accuracy", "per_class_IoU",
        "localisation": {...}, "segment3d": {"preset", "mIoU", ...}, "seconds": {...}}``.

    Raises:
        FileNotFoundError: no ground truth found.  ValueError: a manifest class missing from ``labels``, or a
            scene without an integer ``class_id`` property.
    """
    ply, man_path = run_scene(field_pipe, scene)
    names = json.loads(man_path.read_text())["class_names"]
    cloud = read_point_cloud(ply)
    gt = ground_truth(cloud, ply, len(names))
    space = _space(labels, names)
    to_space = class_mapping(names, space.names, space.name, man_path)
    gt_space = np.where(gt >= 0, to_space[np.clip(gt, 0, None)], -1)
    t0 = time.perf_counter()
    pred = field_pipe.labels_at(cloud.points, space).class_id
    out = {"task": "field3d", "run": str(field_pipe.run), "scene": str(ply), "n_points": int(len(gt)),
           **point_miou(pred, gt_space, space.names)}
    seconds = {"labels_at": round(time.perf_counter() - t0, 3)}
    if progress is not None:
        progress(f"mIoU {out['mIoU']:.3f} at {len(gt)} ground-truth points")
    if localise:
        t0 = time.perf_counter()
        out["localisation"] = localisation(field_pipe, cloud, gt, space, to_space, n_views=n_views,
                                           min_area=min_area, progress=progress)
        seconds["localisation"] = round(time.perf_counter() - t0, 3)
    if segment3d_preset is not None:
        t0 = time.perf_counter()
        seg = Segment3DPipeline(segment3d_preset)
        seg.set_labels(space)
        seg_pred = seg(ply).class_id
        out["segment3d"] = {"preset": segment3d_preset, **point_miou(seg_pred, gt_space, space.names)}
        seconds["segment3d"] = round(time.perf_counter() - t0, 3)
    out["seconds"] = seconds
    return out
