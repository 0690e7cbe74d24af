"""`FeatureFieldPipeline`: query a trained language field with plain-language labels.

A run of the ``ovtools-field`` nerfstudio method (``ovtools field train``) holds a radiance field and
a scale-conditioned CLIP field (LERF, Kerr et al., ICCV 2023).  This pipeline loads it once (on the
CPU or GPU), encodes labels with the *same* CLIP text tower the field distils, and scores field
features exactly as every other ovtools head does (:mod:`ovtools.heads.scoring`: labels against their
negatives and the canonical "object", "things", "stuff", "texture"; LERF relevancy §3.4)::

    from ovtools.nerf.pipeline import FeatureFieldPipeline
    field = FeatureFieldPipeline("runs/kitchen", labels="red mug, plate, floor")
    labels = field.labels_at(points_xyz)            # PointLabels at (N, 3) points of the DATA's world frame
    rel = field.relevancy_at(points_xyz, "red mug") # float32 (N,) in [0, 1]
    maps = field.query("red mug")                   # one (H, W) relevancy map per dataset camera
    view = field.render(0)                          # rgb, depth, surface points of camera 0

Frames: points and cameras are in the data's world frame (metres, the poses of the RGB-D folder or of
``transforms.json``); the run's ``dataparser_transform`` and ``dataparser_scale`` move them into the
field (:func:`~ovtools.nerf.dataparser.to_model_frame`).  Cameras are ovtools
:class:`~ovtools.scene3d.Camera` s (OpenCV axes, pixel centres at integers).

Scales: the language field is conditioned on a crop size.  Features are read at each of
``scales_m`` (metres; default: the model's ``default_query_scale``) and, per point, the scale where the
best label is most relevant is kept (LERF picks the most relevant scale, §3.4).  A field trained on
mask targets (the default) has one scale, the model's ``default_query_scale``: keep the default.  With
crop-pyramid targets, on the 3D world the smallest scale always won and per-point mIoU rose as the
scale fell to ~0.07 m (0.02 model units: 0.445 vs 0.232 at 0.1 units, a 600-step run).
Relevancy maps score the field at the rendered surface (expected depth) of each pixel.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..config import Config, configure, setting
from ..encoders import CLIPEncoder
from ..heads.scoring import open_set_scores
from ..prompts import ClassEmbeddings, ClassSpace, EmbeddingCache, build_class_embeddings, parse_labels
from ..scene3d import Camera, scale_intrinsics
from ..structures import PointLabels
from .dataparser import cameras_to_ovtools, from_model_frame, nerfstudio_cameras, to_model_frame
from .train import data_folder, load_run

CHUNK = 1 << 15  # points read from the field at once


@dataclass(frozen=True)
class FieldQueryConfig(Config):
    """Settings of :class:`FeatureFieldPipeline` (distances in the data's metres).

    Raises:
        TypeError / ValueError: on construction, for a value of the wrong type or out of range.
    """

    scales_m: tuple | None = setting(
        None, "Crop sizes in metres the field is read at; per point the most relevant one is kept; null = the "
        "model's default query scale.", cli=False)
    render_side: int = setting(160, "Longer side in pixels of rendered relevancy maps and depth (dataset cameras "
                               "are scaled down to it).", minimum=8)
    min_accumulation: float = setting(0.5, "Pixels whose rendered opacity is below this show nothing (relevancy "
                                      "0, no surface point).", minimum=0.0, maximum=1.0)
    score_threshold: float = setting(0.0, "Smallest confidence a point's label is reported with, in [0, 1]; a "
                                     "label must also beat its negatives.", minimum=0.0, maximum=1.0)
    templates: str | None = setting(None, "Prompt template set; null = the class space's own.")
    use_cache: bool = setting(True, "Cache text embeddings on disk.")

    def check(self) -> None:
        if self.scales_m is not None and (not self.scales_m or any(not float(s) > 0 for s in self.scales_m)):
            raise ValueError(f"scales_m must be a non-empty list of sizes > 0 metres, got {self.scales_m}")


@dataclass
class FieldRender:
    """One rendered view of the field.

    Attributes:
        rgb: uint8 (H, W, 3).
        depth: float32 (H, W) metres along the optical axis (data frame); 0 where opacity < ``min_accumulation``.
        accumulation: float32 (H, W) rendered opacity in [0, 1].
        points: float32 (H, W, 3) surface point of each pixel in the data's world frame (NaN where empty).
        camera: the :class:`~ovtools.scene3d.Camera` rendered (data frame; K at the rendered size).
    """

    rgb: np.ndarray
    depth: np.ndarray
    accumulation: np.ndarray
    points: np.ndarray
    camera: Camera


class FeatureFieldPipeline:
    """A trained ``ovtools-field`` run → labels and relevancy at 3D points and in views.

    Args:
        run: run folder (holding ``config.yml``, ``dataparser_transforms.json``, ``nerfstudio_models/``).
        labels: optional labels (``"red mug, plate"``, a list, or a :class:`~ovtools.prompts.ClassSpace`).
        classes: optional class-space name or YAML path instead of ``labels``.
        encoder: an existing :class:`~ovtools.encoders.CLIPEncoder` of the field's CLIP (else built from
            the run's ``encoder_model`` / ``encoder_pretrained``).
        config: :class:`FieldQueryConfig`; ``**overrides`` replace its fields.

    Raises:
        FileNotFoundError: no run folder or no ``config.yml`` in it, or the run's data folder is gone.
        ValueError: both ``labels`` and ``classes``, invalid settings, or a run that is not an
            ``ovtools-field`` run (no language field).
        ovtools.errors.WeightsUnavailableError: the field's CLIP is not available offline.
    """

    def __init__(self, run, labels=None, *, classes: str | None = None, encoder: CLIPEncoder | None = None,
                 config: FieldQueryConfig | None = None, **overrides) -> None:
        self.config = configure(FieldQueryConfig, config, **overrides)
        if labels is not None and classes is not None:
            raise ValueError("give labels or classes, not both")
        self.run = Path(run).expanduser()
        if not self.run.exists():
            raise FileNotFoundError(f"run {self.run} does not exist")
        if self.run.is_dir() and not (self.run / "config.yml").is_file():
            raise FileNotFoundError(f"{self.run} holds no config.yml: not a run folder (train one with "
                                    "`ovtools field train DATA --out RUN`)")
        self.nerf, self.step = load_run(self.run)
        self.model = self.nerf.model
        if not hasattr(self.model, "language_at"):
            raise ValueError(f"{self.run} is a {type(self.model).__name__} run without a language field; train "
                             "it with the ovtools-field method")
        outputs = self.nerf.datamanager.train_dataparser_outputs
        self.transform = outputs.dataparser_transform.double().numpy()
        self.scale = float(outputs.dataparser_scale)
        self.cameras = outputs.cameras  # dataset (training) cameras, model frame
        self.scene_box = outputs.scene_box.aabb.double().cpu().numpy()  # (2, 3) model frame
        self.data = data_folder(self.nerf.datamanager.config)  # the folder the run was trained on (an input)
        mc = self.model.config
        self.encoder = encoder if encoder is not None else CLIPEncoder(
            mc.encoder_model, mc.encoder_pretrained, device="cpu", precision=getattr(mc, "encoder_precision", "fp32"))
        self.cache = EmbeddingCache(enabled=self.config.use_cache)
        self._memo: dict[tuple, ClassEmbeddings] = {}
        self._lock = threading.Lock()
        self._emb: ClassEmbeddings | None = None
        if labels is not None or classes is not None:
            self.set_labels(ClassSpace.load(classes) if classes is not None else labels)

    # ------------------------------------------------------------------ labels
    def embed(self, labels) -> ClassEmbeddings:
        """Class embeddings of ``labels`` (a comma-separated string, a list or a ClassSpace), memoised.

        Raises:
            ValueError: empty labels.  TypeError: another type.
        """
        if isinstance(labels, ClassSpace):
            space = labels
        elif isinstance(labels, str):
            space = ClassSpace.from_labels(labels)
        elif isinstance(labels, Sequence):
            space = ClassSpace.from_names(parse_labels(list(labels)))
        else:
            raise TypeError(f"labels must be a string, a list of strings or a ClassSpace, got {type(labels).__name__}")
        key = (space.fingerprint(), self.config.templates)
        with self._lock:
            if key not in self._memo:
                self._memo[key] = build_class_embeddings(self.encoder, space, self.config.templates, self.cache)
            return self._memo[key]

    def set_labels(self, labels) -> ClassEmbeddings:
        """Change the current labels without reloading anything (arguments as :meth:`embed`)."""
        self._emb = self.embed(labels)
        return self._emb

    @property
    def labels(self) -> list[str]:
        """Current class names (empty before any labels)."""
        return [] if self._emb is None else self._emb.names

    def _current(self, labels) -> ClassEmbeddings:
        if labels is not None:
            return self.embed(labels)
        if self._emb is None:
            raise RuntimeError("FeatureFieldPipeline has no labels yet: pass labels= or call set_labels(...)")
        return self._emb

    def _phrase(self, text: str | ClassSpace) -> ClassEmbeddings:
        """Embeddings of one phrase, or of a one-class :class:`~ovtools.prompts.ClassSpace` (its synonyms, prompts
        and negatives)."""
        if isinstance(text, ClassSpace):
            if len(text) != 1:
                raise ValueError(f"a query is one class; the class space {text.name!r} has {len(text)}")
            return self.embed(text)
        if not isinstance(text, str) or not text.strip():
            raise ValueError("query text must be a non-empty phrase")
        return self.embed(ClassSpace.from_names([text.strip()]))

    # ------------------------------------------------------------------ points
    @property
    def scales_model(self) -> list[float]:
        """The crop sizes read, in model-frame units."""
        if self.config.scales_m is not None:
            return [float(s) * self.scale for s in self.config.scales_m]
        return [float(self.model.config.default_query_scale)]

    def features_at(self, points_xyz, emb: ClassEmbeddings | None = None) -> torch.Tensor:
        """float32 (N, D) L2-normalised field features at data-frame points (N, 3), per point at the scale of
        :attr:`scales_model` where the best label of ``emb`` (default: the current labels) is most relevant;
        with one scale or no labels, at the middle scale.

        Raises:
            ValueError: points not (N, 3) or not finite.
        """
        pts = np.asarray(points_xyz, np.float64)
        if pts.ndim != 2 or pts.shape[1] != 3:
            raise ValueError(f"points must have shape (N, 3), got {pts.shape}")
        if not np.isfinite(pts).all():
            raise ValueError("points must be finite (NaN/inf rows found)")
        emb = emb if emb is not None else self._emb
        scales = self.scales_model if emb is not None else [self.scales_model[len(self.scales_model) // 2]]
        model_pts = torch.from_numpy(to_model_frame(pts, self.transform, self.scale)).float()
        out = []
        for s in range(0, len(pts), CHUNK):
            p = model_pts[s : s + CHUNK]
            best, keep = None, None
            for scale in scales:
                f = self.model.language_at(p, scale).float().cpu()
                if len(scales) == 1:
                    best = f
                    break
                key = open_set_scores(f, emb, self.encoder.logit_scale).relevancy.max(1).values
                if best is None:
                    best, keep = f, key
                else:
                    better = key > keep
                    best, keep = torch.where(better[:, None], f, best), torch.maximum(key, keep)
            out.append(best)
        return torch.cat(out) if out else torch.zeros(0, self.encoder.embed_dim)

    def labels_at(self, points_xyz, labels=None) -> PointLabels:
        """Label 3D points with the current labels (or ``labels`` for this call).

        Args:
            points_xyz: float (N, 3) points in the data's world frame (metres), e.g. a robot's map.
            labels: optional labels for this call only.

        Returns:
            :class:`~ovtools.structures.PointLabels`: ``class_id`` (-1 = no label beat the negatives),
            ``confidence``; ``seen`` is not set (the field answers everywhere).

        Raises:
            ValueError: points not (N, 3) or not finite.  RuntimeError: no labels.
        """
        emb = self._current(labels)
        sc = open_set_scores(self.features_at(points_xyz, emb), emb, self.encoder.logit_scale)
        class_id, conf = sc.best(self.config.score_threshold)
        return PointLabels(class_id.numpy(), conf.numpy(), emb.names)

    def relevancy_at(self, points_xyz, text: str | ClassSpace) -> np.ndarray:
        """LERF relevancy of 3D points (data frame, (N, 3)) to one phrase: float32 (N,) in [0, 1]; > 0.5 beats
        every canonical negative.  ``text`` may also be a one-class ClassSpace (synonyms, prompts, negatives).

        Raises:
            ValueError: an empty phrase, or bad points.
        """
        emb = self._phrase(text)
        sc = open_set_scores(self.features_at(points_xyz, emb), emb, self.encoder.logit_scale)
        return sc.relevancy[:, 0].numpy().astype(np.float32)

    def in_scene_box(self, points_xyz) -> np.ndarray:
        """bool (N,): which data-frame points (N, 3) lie in the run's scene box (nerfstudio's ``scene_box``; what lies
        beyond it is the contracted background of the field)."""
        m = to_model_frame(np.asarray(points_xyz, np.float64).reshape(-1, 3), self.transform, self.scale)
        return ((m >= self.scene_box[0]) & (m <= self.scene_box[1])).all(axis=1)

    # ------------------------------------------------------------------ views
    def dataset_cameras(self) -> list[Camera]:
        """The run's training cameras as ovtools :class:`~ovtools.scene3d.Camera` s in the data frame."""
        return cameras_to_ovtools(self.cameras, self.transform, self.scale)

    def render(self, camera: int | Camera) -> FieldRender:
        """Render one view: a dataset camera index or a :class:`~ovtools.scene3d.Camera` (data frame).

        The view is scaled so that its longer side is ``render_side`` pixels.

        Raises:
            IndexError: a camera index out of range.  TypeError: another type.
        """
        if isinstance(camera, (int, np.integer)):
            cams = self.dataset_cameras()
            if not -len(cams) <= int(camera) < len(cams):
                raise IndexError(f"camera {camera} out of range: the run has {len(cams)} dataset cameras")
            camera = cams[int(camera)]
        if not isinstance(camera, Camera):
            raise TypeError(f"camera must be a dataset camera index or an ovtools Camera, got {type(camera).__name__}")
        cam = _fit(camera, self.config.render_side)
        ns = nerfstudio_cameras([cam], self.transform, self.scale).to(self.model.device)
        language = getattr(self.model, "render_language", None)
        try:  # renders need rgb, depth and opacity only: language is read at the surface points
            if language is not None:
                self.model.render_language = False
            with torch.no_grad():
                out = self.model.get_outputs_for_camera(ns)
        finally:
            if language is not None:
                self.model.render_language = language
        h, w = cam.size
        acc = out["accumulation"].reshape(h, w).float().cpu().numpy()
        t = out["depth"].reshape(h, w).double().cpu().numpy()  # distance along unit rays, model units
        ray = ns.generate_rays(camera_indices=0)
        o = ray.origins.reshape(h, w, 3).double().cpu().numpy()
        d = ray.directions.reshape(h, w, 3).double().cpu().numpy()
        solid = acc >= self.config.min_accumulation
        pts = from_model_frame((o + t[..., None] * d).reshape(-1, 3), self.transform, self.scale).reshape(h, w, 3)
        pts[~solid] = np.nan
        cam_pts = (pts.reshape(-1, 3) - cam.pose[:3, 3]) @ cam.pose[:3, :3]
        depth = np.where(solid, cam_pts[:, 2].reshape(h, w), 0.0).astype(np.float32)
        rgb = (out["rgb"].reshape(h, w, 3).clamp(0, 1).cpu().numpy() * 255).round().astype(np.uint8)
        return FieldRender(rgb, depth, acc, pts.astype(np.float32), cam)

    def query(self, text: str, cameras: Sequence[int | Camera] | None = None) -> list[np.ndarray]:
        """LERF relevancy maps of one phrase, one per camera.

        Args:
            text: the phrase (``"red mug"``), scored against the canonical negatives.
            cameras: dataset camera indices or :class:`~ovtools.scene3d.Camera` s (data frame); ``None`` =
                every dataset camera.

        Returns:
            float32 (H, W) maps in [0, 1] at the rendered size (longer side ``render_side``); 0 where the
            view shows nothing.

        Raises:
            ValueError: an empty phrase.  IndexError / TypeError: a bad camera.
        """
        self._phrase(text)  # checks the phrase before any rendering
        cams = range(len(self.cameras)) if cameras is None else cameras
        return [self.relevancy_map(self.render(c), text) for c in cams]

    def relevancy_map(self, view: FieldRender, text: str | ClassSpace) -> np.ndarray:
        """float32 (H, W) relevancy of ``text`` at the surface points of a rendered view (0 where empty)."""
        h, w = view.depth.shape
        solid = np.isfinite(view.points[..., 0])
        out = np.zeros((h, w), np.float32)
        if solid.any():
            out[solid] = self.relevancy_at(view.points[solid], text)
        return out


def _fit(camera: Camera, side: int) -> Camera:
    """``camera`` with its image scaled so that the longer side is ``side`` pixels (never up-scaled)."""
    h, w = camera.size
    f = min(1.0, side / max(h, w))
    if f >= 1.0:
        return camera
    size = (max(1, round(h * f)), max(1, round(w * f)))
    return Camera(scale_intrinsics(camera.K, (h, w), size), camera.pose, size, camera.name)
