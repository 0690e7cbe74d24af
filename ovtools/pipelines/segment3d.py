"""`Segment3DPipeline`: open-vocabulary labels for point clouds and posed RGB-D scans.

Features are computed once per scene; any number of label sets or phrase queries
then cost only a matrix product::

    from ovtools.pipelines import Segment3DPipeline
    pipe = Segment3DPipeline(labels="chair, table, mug")
    labels = pipe("scene.ply")                    # PointLabels: class_id (N,), confidence (N,)
    labels = pipe("scene.ply", labels="sofa")     # same scene: no re-rendering, no re-fusion
    rel = pipe.query("scene.ply", "a red mug")    # float32 (N,) LERF relevancy per point

Fusion, distillation and labelling settings are the fields of
:class:`~ovtools.heads.segment3d.Segment3DConfig` (every one is a preset key and a
keyword argument).  The last scenes' features are kept in memory (``keep_scenes``),
keyed by path and modification time; :meth:`Segment3DPipeline.features` returns them
for callers that want the (N, D) arrays.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..heads.segment3d import SceneFeatures
from ..io.ply import PointCloud, colors_to_uint8
from ..prompts import ClassSpace
from ..scene3d.scene import Scene3DInput, load_scene, scene_from_cloud
from ..structures import PointLabels
from .base import Pipeline

_KEEP_SCENES = 2


def _scene_key(path: str | Path) -> tuple | None:
    """Identity of a scene on disk: a file's (path, mtime, size), or for a folder the newest mtime, total
    size and file count of everything inside (a rewritten frame or PLY changes it)."""
    p = Path(path).resolve()
    if not p.exists():
        return None
    if p.is_file():
        st = p.stat()
        return (str(p), st.st_mtime_ns, st.st_size)
    stats = [f.stat() for f in p.rglob("*") if f.is_file()]
    return (str(p), max((st.st_mtime_ns for st in stats), default=0), sum(st.st_size for st in stats), len(stats))


class Segment3DPipeline(Pipeline):
    """Point cloud or RGB-D scan → :class:`~ovtools.structures.PointLabels`.

    Args:
        preset: preset name or YAML path (default ``"segment3d-default"``; ``None`` → built-in
            defaults only).
        encoder: share an existing :class:`~ovtools.encoders.CLIPEncoder`.
        **overrides: common preset keys and every field of
            :class:`~ovtools.heads.segment3d.Segment3DConfig` (``features``, ``mode``,
            ``distill_steps``, ``voxel_size``, ...).

    Raises:
        TypeError: unknown keyword argument.
        ConfigError: invalid preset file or setting.
        UnknownNameError: unknown preset, model, class space or template set.
        WeightsUnavailableError: weights not available offline.
    """

    head_name = "segment3d"

    def _setup(self) -> None:
        super()._setup()
        self._scenes: OrderedDict[tuple, Any] = OrderedDict()
        self._scene_lock = threading.Lock()

    # ------------------------------------------------------------------ scenes
    def scene(self, scene):
        """Read a scene (path, :class:`~ovtools.io.ply.PointCloud`, ``(points, colors)`` or a
        :class:`~ovtools.scene3d.scene.Scene3DInput`) with this pipeline's ``voxel_size``,
        ``up_axis`` and (RGB-D folders) ``frame_skip`` and ``depth_scale``.  Rows with NaN/inf
        coordinates are kept as invalid points (labelled "nothing").

        Raises:
            FileNotFoundError, PointCloudError, ValueError: see :func:`~ovtools.scene3d.scene.load_scene`.
            TypeError: an unsupported object.
        """
        cfg = self.config
        if isinstance(scene, Scene3DInput):
            return scene
        if isinstance(scene, (str, Path)):
            return load_scene(scene, voxel_size=cfg.voxel_size, frame_skip=cfg.frame_skip,
                              depth_scale=cfg.depth_scale, up_axis=cfg.up_axis)
        if isinstance(scene, tuple) and len(scene) == 2:
            # floats in [0, 1] (as render_points takes them) or 0-255, as the PLY reader understands them
            colors = None if scene[1] is None else colors_to_uint8(scene[1])
            pts = np.asarray(scene[0])
            scene = PointCloud(pts if pts.dtype == np.float64 else pts.astype(np.float32), colors)
        if isinstance(scene, PointCloud):
            return scene_from_cloud(scene, Path("<array>"), cfg.voxel_size, up_axis=cfg.up_axis)
        raise TypeError(f"scene must be a path, PointCloud, (points, colors) or Scene3DInput, "
                        f"got {type(scene).__name__}")

    def features(self, scene, progress=None):
        """Per-point features of ``scene`` (:class:`~ovtools.heads.segment3d.SceneFeatures`),
        computed once: a path is remembered by its resolved name, modification time and size
        (for a folder: of every file inside).  ``progress``: optional callable receiving stage messages."""
        key = _scene_key(scene) if isinstance(scene, (str, Path)) else None
        with self._scene_lock:
            if key is not None and key in self._scenes:
                self._scenes.move_to_end(key)
                return self._scenes[key]
        sf = self.head.features(self.scene(scene), progress)
        if key is not None:
            with self._scene_lock:
                self._scenes[key] = sf
                while len(self._scenes) > _KEEP_SCENES:
                    self._scenes.popitem(last=False)
        return sf

    # ------------------------------------------------------------------ labels
    def __call__(self, scene, labels: str | Sequence[str] | ClassSpace | None = None,
                 mode: str | None = None) -> PointLabels:
        """Label every point of ``scene`` with the current labels (or ``labels``, for this call only).

        Args:
            scene: a path (PLY or RGB-D folder), a PointCloud, ``(points, colors)``, a
                Scene3DInput, or :class:`~ovtools.heads.segment3d.SceneFeatures` from :meth:`features`.
            labels: optional labels for this call only.
            mode: ``"fusion"``, ``"distill"`` or ``"ensemble"`` (default: the ``mode`` setting).

        Returns:
            :class:`~ovtools.structures.PointLabels` for every input point (N = points of the input).

        Raises:
            RuntimeError: no labels set.
        """
        emb = self.embeddings if labels is None else self.embed(labels)
        sf = scene if isinstance(scene, SceneFeatures) else self.features(scene)
        return self.head.label(sf, emb, mode)

    def query(self, scene, phrase: str, mode: str | None = None) -> np.ndarray:
        """Relevancy of every point to one phrase (against the canonical negatives, as LERF).

        Returns:
            float32 (N,) in [0, 1]; > 0.5 where the phrase beats every negative (0 for points
            no view saw, in ``fusion`` mode).

        Raises:
            ValueError: an empty phrase, or an unknown mode.
        """
        if not isinstance(phrase, str) or not phrase.strip():
            raise ValueError("query phrase must be a non-empty string")
        sf = scene if isinstance(scene, SceneFeatures) else self.features(scene)
        emb = self.embed(ClassSpace.from_names([phrase.strip()]))
        return self.head.relevancy(sf, emb, mode)

    # ------------------------------------------------------------------ summaries
    def instances(self, scene, labels: PointLabels) -> list[dict]:
        """Instances of labelled points: connected components per class with axis-aligned 3D boxes.

        Points of one class closer than ``instance_radius`` (default 3 × the point spacing) are one
        instance; instances smaller than ``min_instance_points`` are left out
        (:func:`~ovtools.scene3d.connected_instances`, :func:`~ovtools.scene3d.instance_boxes`).

        Args:
            scene: :class:`~ovtools.heads.segment3d.SceneFeatures` (or anything :meth:`features` takes).
            labels: the scene's :class:`~ovtools.structures.PointLabels` (N = input points).

        Returns:
            ``[{"label", "class_name", "n_points", "min", "max", "centre", "size", ...}]``; boxes in the
            input's coordinates (metres).
        """
        from ..heads.segment3d import SceneFeatures
        from ..scene3d import connected_instances, instance_boxes

        sf = scene if isinstance(scene, SceneFeatures) else self.features(scene)
        cfg = self.config
        pts = sf.scene.original_points
        radius = cfg.instance_radius or 3.0 * sf.spacing
        inst = connected_instances(pts, labels.class_id, radius, cfg.min_instance_points)
        boxes = instance_boxes(pts, inst, labels.class_id)
        for b in boxes:
            b["class_name"] = labels.class_names[b["label"]] if b.get("label", -1) >= 0 else None
        return boxes

    def summary(self, scene, labels: PointLabels, seconds: float | None = None, mode: str | None = None) -> dict:
        """The JSON summary of a labelled scene (what ``ovtools segment3d --summary`` writes).

        Args:
            scene: :class:`~ovtools.heads.segment3d.SceneFeatures` (or anything :meth:`features` takes).
            labels: its :class:`~ovtools.structures.PointLabels`.
            seconds: total wall time to report (default: the sum of the feature stages).
            mode: the mode ``labels`` were computed with (default: the ``mode`` setting).

        Returns:
            ``{"scene", "n_points", "n_points_processed", "model", "pretrained", "class_names", "mode",
            "points_per_class", "n_views", "seen_fraction", "instances" (:meth:`instances`),
            "seconds": {stage: s, "total": s}}``.
        """
        sf = scene if isinstance(scene, SceneFeatures) else self.features(scene)
        total = sum(sf.seconds.values()) if seconds is None else seconds
        return {"scene": str(sf.scene.source), "n_points": len(labels), "n_points_processed": int(len(sf.scene.points)),
                "model": self.encoder.name, "pretrained": self.encoder.pretrained, "class_names": labels.class_names,
                "mode": mode or self.config.mode, "points_per_class": labels.counts(), "n_views": sf.n_views,
                "seen_fraction": round(float((sf.count > 0).float().mean()), 6),
                "instances": self.instances(sf, labels),
                "seconds": {**{k: round(v, 3) for k, v in sf.seconds.items()}, "total": round(total, 3)}}

    @staticmethod
    def query_summary(scene, phrase: str, relevancy: np.ndarray) -> dict:
        """The JSON summary of a relevancy query (what ``ovtools segment3d --query`` prints).

        Args:
            scene: :class:`~ovtools.heads.segment3d.SceneFeatures` or a Scene3DInput (for its ``source``).
            phrase: the query.
            relevancy: float (N,) from :meth:`query`.

        Returns:
            ``{"scene", "query", "n_points", "points_relevant" (relevancy > 0.5), "max_relevancy"}``.
        """
        source = getattr(scene, "scene", scene).source
        return {"scene": str(source), "query": phrase, "n_points": int(len(relevancy)),
                "points_relevant": int((relevancy > 0.5).sum()), "max_relevancy": round(float(relevancy.max()), 6)}

    def point_features(self, scene, mode: str | None = None) -> np.ndarray:
        """float16 (N, D) features of every input point: those the labels are computed from (``ensemble``
        picks per point against the current class embeddings; without labels, the fused features);
        invalid input rows (NaN/inf coordinates, kept in place) get zero rows.

        Args:
            scene: :class:`~ovtools.heads.segment3d.SceneFeatures` (or anything :meth:`features` takes).
            mode: ``"fusion"``, ``"distill"`` or ``"ensemble"`` (default: the ``mode`` setting).
        """
        sf = scene if isinstance(scene, SceneFeatures) else self.features(scene)
        feats = sf.select(mode or self.config.mode, self.embeddings.classes, self.encoder.logit_scale) \
            if self.labels else sf.fused
        inv = sf.scene.inverse
        rows = feats.cpu().numpy().astype(np.float16)[np.maximum(inv, 0)]
        rows[inv < 0] = 0
        return rows
