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
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..prompts import ClassSpace
from ..structures import PointLabels
from .base import Pipeline, config_defaults
from .presets import COMMON_KEYS

_KEEP_SCENES = 2


def segment3d_config_keys() -> dict[str, Any]:
    """Every :class:`~ovtools.heads.segment3d.Segment3DConfig` field with its default."""
    from ..heads.segment3d import Segment3DConfig

    return config_defaults(Segment3DConfig)


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

    task = "segment3d"
    default_preset = "segment3d-default"

    @classmethod
    def _allowed_keys(cls) -> Mapping[str, Any]:
        return {**COMMON_KEYS, **segment3d_config_keys()}

    def _setup(self) -> None:
        from ..heads.segment3d import Segment3DConfig, Segment3DHead

        self.config = self._build_config(Segment3DConfig, "3D segmentation")
        self.head = Segment3DHead(self.encoder, self.config)
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
        from ..io.ply import PointCloud, colors_to_uint8
        from ..scene3d.scene import Scene3DInput, load_scene, scene_from_cloud

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
        from ..heads.segment3d import SceneFeatures

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
        from ..heads.segment3d import SceneFeatures

        if not isinstance(phrase, str) or not phrase.strip():
            raise ValueError("query phrase must be a non-empty string")
        sf = scene if isinstance(scene, SceneFeatures) else self.features(scene)
        emb = self.embed(ClassSpace.from_names([phrase.strip()]))
        return self.head.relevancy(sf, emb, mode)
