"""Open-vocabulary 3D segmentation: 2D CLIP features fused onto points, distilled, then labelled.

:class:`Segment3DHead` computes per-point features once per scene
(:meth:`Segment3DHead.features`) and labels them for any class space
(:meth:`Segment3DHead.label`) or scores one phrase (:meth:`Segment3DHead.relevancy`):

1. **Views.** A bare cloud is rendered from virtual cameras around (and, for rooms,
   inside) the scene with the z-buffered point splatting of :mod:`ovtools.scene3d.render`
   (pure torch: per-pixel point indices and depth, CPU and GPU alike; open3d's
   offscreen renderer needs EGL/Vulkan and gives no point indices).  A posed RGB-D
   folder uses its real frames and depth maps.
2. **2D features per view**, as a partition of the image: ``"masks"`` — class-agnostic
   masks (``regions`` by default, or Segment Anything) each encoded as a masked crop
   (:mod:`ovtools.heads.mask_features`), every pixel taking the feature of the
   smallest mask covering it (OpenMask3D / ConceptFusion style); ``"dense"`` —
   MaskCLIP patch features (:func:`~ovtools.scene3d.fuse.dense_partition`).
3. **Fusion** (OpenScene, Peng et al. CVPR 2023, §3.1): every point is projected into
   every view; where it passes the depth test it receives that pixel's feature; the
   mean over views, L2-normalised, is stored as float16 (:func:`~ovtools.scene3d.fuse.fuse_features`).
4. **Distillation** (§3.2): a small pure-torch 3D network regresses the fused features
   from position and colour, so points no view saw get features too.
5. **Labels**: ``mode="fusion"`` (fused features; unseen points are "nothing"),
   ``"distill"`` or ``"ensemble"`` (§3.3: per point the feature that is more confident
   about some class).  Scores are the open-set scores of every head
   (:mod:`ovtools.heads.scoring`): a point gets a label only if it beats the negatives.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, get_args

import numpy as np
import torch

from ..config import Config, configure, setting
from ..proposals.registry import available_proposals, create_proposals
from ..scene3d import (
    FeaturePartition,
    FusionView,
    dense_partition,
    ensemble_features,
    estimate_point_spacing,
    fuse_features,
    plan_views,
    render_points,
    train_distill,
)
from ..scene3d.frame import UpAxis
from ..structures import PointLabels
from .mask_features import MaskFeatures
from .registry import HeadSpec, register_head
from .scoring import open_set_scores

#: Which per-point features are labelled (OpenScene §3.1-3.3).
Mode3D = Literal["fusion", "distill", "ensemble"]
MODES = get_args(Mode3D)
LABEL_CHUNK = 1 << 16  # points scored at once: bounds labelling's float32 working set (64Ki x D x 4 bytes)


@dataclass(frozen=True)
class Segment3DConfig(Config):
    """Settings of :class:`Segment3DHead`; each is also a preset key, a pipeline keyword and (scalars) a
    ``segment3d`` option.  Distances are in the scene's units (metres), angles in degrees.

    Raises:
        TypeError / ValueError: on construction, for a value of the wrong type, an unknown choice, an
            out-of-range number, or a mode that needs distillation with ``distill_steps=0``.
    """

    features: Literal["masks", "dense"] = setting(
        "masks", "2D features fused per view: masks (masked crops of class-agnostic masks; sharp boundaries) or "
        "dense (MaskCLIP patch features; one pass per view).", flag="--2d-features")
    mask_proposals: str = setting("regions", "Mask source for --2d-features masks: regions or sam.")
    proposal_options: Mapping[str, Any] = setting(
        default_factory=dict, help="Options of the mask source (sam: checkpoint, model_type, ...).", cli=False)
    min_mask_area: int = setting(64, "Masks smaller than this many view pixels are ignored.", minimum=0)
    context_padding: float = setting(0.2, "Masked crops: context per side, fraction of the mask box's longer side.",
                                     minimum=0.0, maximum=2.0)
    crop_batch_size: int = setting(64, "Masked crops per forward pass.", minimum=1)
    dense_side: int = setting(224, "Dense features: shorter side of the dense pass input in pixels.", minimum=16)
    n_around: int = setting(6, "Virtual cameras per elevation ring around a bare cloud.", minimum=0)
    elevations: tuple = setting((30.0, 55.0), "Ring elevations in degrees above the horizontal, each in (-90, 90).",
                                cli=False)
    inside_views: int | None = setting(
        None, "Virtual cameras inside the scene looking outward; null = 4 for clouds that look like a room, else 0.",
        minimum=0)
    top_down: bool = setting(True, "Add one virtual camera above the scene looking straight down.")
    view_size: tuple = setting((480, 640), "(H, W) of the rendered views in pixels, sides >= 16.", cli=False)
    fov_deg: float = setting(60.0, "Horizontal field of view of the virtual cameras in degrees, in (0, 180).",
                             minimum=0.0, maximum=180.0, exclusive_minimum=True)
    splat_scale: float = setting(1.5, "Rendered point size, in multiples of the estimated point spacing.",
                                 minimum=0.0, exclusive_minimum=True)
    depth_tolerance: float | None = setting(
        None, "Occlusion test in metres; null = 4 x point spacing, at least 2 cm.", minimum=0.0,
        exclusive_minimum=True)
    frame_skip: int = setting(1, "RGB-D folders: use every frame-skip-th frame.", minimum=1)
    max_frames: int = setting(60, "RGB-D folders: at most this many frames, evenly spread.", minimum=1)
    distill_steps: int = setting(
        300, "3D distillation steps (OpenScene §3.2); 0 = no 3D network (then mode must be fusion; about 2-3x "
        "faster).", minimum=0)
    distill_batch: int = setting(8192, "Points per distillation step.", minimum=1)
    mode: Mode3D = setting(
        "ensemble", "Per-point features labelled: fusion (2D features averaged over views), distill (3D network) "
        "or ensemble (per point the more confident of both, OpenScene §3.3).")
    score_threshold: float = setting(
        0.0, "Smallest confidence a point's label is reported with, in [0, 1]; a label must also beat its "
        "negatives.", minimum=0.0, maximum=1.0, flag="--threshold")
    voxel_size: float | None = setting(
        None, "Down-sample to voxels of this edge in metres first (labels still reach every input point); "
        "null = every point.", minimum=0.0, exclusive_minimum=True)
    instance_radius: float | None = setting(
        None, "Link distance of instances (connected components per class) in metres; null = 3 x point spacing.",
        minimum=0.0, exclusive_minimum=True)
    min_instance_points: int = setting(20, "Smaller components are not reported as instances.", minimum=1)
    seed: int = setting(0, "Seed of the distillation.")
    depth_scale: float | None = setting(
        None, "RGB-D folders: stored depth units per metre of integer depth maps (ScanNet 1000, TUM 5000; float "
        "maps are metres); null = the folder's _info.txt m_depthShift, else 1000.", minimum=0.0,
        exclusive_minimum=True)
    up_axis: UpAxis = setting(
        "auto", "The input's up axis (+x, -x, +y, -y, +z, -z), or auto: found from the floor (says which in one "
        "line when it is not +z); views are planned with it up.")

    def check(self) -> None:
        if self.mask_proposals not in available_proposals("masks"):
            raise ValueError(f"mask_proposals must be one of {', '.join(available_proposals('masks'))}; "
                             f"got {self.mask_proposals!r}")
        if self.mode != "fusion" and self.distill_steps == 0:
            raise ValueError(f"mode {self.mode!r} needs distillation: set distill_steps > 0 or mode 'fusion'")
        if len(self.view_size) != 2 or min(int(v) for v in self.view_size) < 16:
            raise ValueError(f"view_size must be (H, W) with sides >= 16 pixels, got {self.view_size}")
        if not self.elevations or any(not -90 < float(e) < 90 for e in self.elevations):
            raise ValueError(f"elevations must be a non-empty list of degrees in (-90, 90), got {self.elevations}")


@dataclass
class SceneFeatures:
    """Per-point features of one scene, computed once and labelled any number of times.

    Attributes:
        scene: the :class:`~ovtools.scene3d.scene.Scene3DInput` they belong to.
        fused: float16 (M, D) fused 2D features, L2-normalised; zero rows for unseen points.
        count: int32 (M,) views that saw each point.
        distilled: float16 (M, D) features of the 3D network, or ``None`` without distillation.
        spacing: estimated point spacing in metres.
        n_views: views fused.
        seconds: wall time of each stage (``views``, ``fusion``, ``distill``).
    """

    scene: Any
    fused: torch.Tensor
    count: torch.Tensor
    distilled: torch.Tensor | None
    spacing: float
    n_views: int
    seconds: dict = field(default_factory=dict)

    def select(self, mode: str, class_embeddings: torch.Tensor, logit_scale: float) -> torch.Tensor:
        """float16 (M, D) features of ``mode`` (``"ensemble"`` picks per point against ``class_embeddings``)."""
        if mode not in MODES:
            raise ValueError(f"mode must be one of {list(MODES)}, got {mode!r}")
        if mode == "fusion":
            return self.fused
        if self.distilled is None:
            raise ValueError(f"mode {mode!r} needs distilled features; this scene was computed without "
                             "distillation (distill_steps=0)")
        if mode == "distill":
            return self.distilled
        return ensemble_features(self.fused, self.distilled, class_embeddings, logit_scale, seen=self.count > 0)

    def select_rows(self, mode: str, class_embeddings: torch.Tensor, logit_scale: float, start: int,
                    stop: int) -> torch.Tensor:
        """float32 (stop - start, D) features of ``mode`` for points ``start:stop`` only.

        The same rows as ``select(...)[start:stop]`` (the ensemble's choice is per point), without
        building any (M, D) array: labelling reads the float16 features chunk by chunk.

        Raises:
            ValueError: unknown mode, or a mode that needs distillation without it.
        """
        if mode not in MODES:
            raise ValueError(f"mode must be one of {list(MODES)}, got {mode!r}")
        if mode == "fusion":
            return self.fused[start:stop].float()
        if self.distilled is None:
            raise ValueError(f"mode {mode!r} needs distilled features; this scene was computed without "
                             "distillation (distill_steps=0)")
        if mode == "distill":
            return self.distilled[start:stop].float()
        from ..scene3d import ensemble_features

        return ensemble_features(self.fused[start:stop], self.distilled[start:stop], class_embeddings, logit_scale,
                                 seen=self.count[start:stop] > 0).float()


class Segment3DHead:
    """Per-point open-vocabulary labels for point clouds and posed RGB-D scans.

    Args:
        encoder: a :class:`~ovtools.encoders.CLIPEncoder`.
        config: :class:`Segment3DConfig`; ``None`` → defaults.
        **overrides: fields of :class:`Segment3DConfig`.

    Raises:
        ValueError: invalid config, or ``features="dense"`` with an encoder without a dense path.
    """

    def __init__(self, encoder, config: Segment3DConfig | None = None, **overrides: Any) -> None:
        config = configure(Segment3DConfig, config, **overrides)
        if config.features == "dense" and not encoder.supports_dense:
            raise ValueError(f"features='dense' needs dense features, which {encoder!r} does not support; "
                             "use features='masks'")
        self.encoder, self.config = encoder, config
        self.masks = self.mask_features = None
        if config.features == "masks":
            self.masks = create_proposals(config.mask_proposals, default_device=encoder.device,
                                          **dict(config.proposal_options))
            if getattr(self.masks, "output", "boxes") != "masks":
                raise ValueError(f"mask_proposals={config.mask_proposals!r} gives boxes, not masks")
            self.mask_features = MaskFeatures(encoder, "crop", "mean", config.context_padding, config.crop_batch_size)

    # ------------------------------------------------------------------------ 2D
    def partition(self, rgb: np.ndarray, valid: np.ndarray | None = None):
        """2D features of one view as a :class:`~ovtools.scene3d.fuse.FeaturePartition`.

        Args:
            rgb: uint8 (H, W, 3) view.
            valid: optional bool (H, W) pixels that show the scene (renders: where a point was
                drawn); masks lying mostly outside it are ignored.

        Returns:
            ``FeaturePartition(index int64 (H, W) or (gh, gw), feats float32 (M, D))``.
        """
        cfg = self.config
        if cfg.features == "dense":
            return dense_partition(self.encoder, rgb, side=cfg.dense_side)
        h, w = rgb.shape[:2]
        m = torch.as_tensor(np.asarray(self.masks(np.ascontiguousarray(rgb)), bool))
        area = m.flatten(1).sum(1)
        keep = area >= max(cfg.min_mask_area, 1)
        if valid is not None:
            v = torch.as_tensor(np.asarray(valid, bool))
            keep &= (m & v).flatten(1).sum(1) >= 0.5 * area
        m, area = m[keep], area[keep]
        index = torch.full((h, w), -1, dtype=torch.long)
        if len(m) == 0:
            return FeaturePartition(index, torch.zeros(0, self.encoder.embed_dim))
        for i in area.argsort(descending=True).tolist():  # smallest mask painted last: the most specific
            index[m[i]] = i
        feats = self.mask_features(self.encoder.to_float(np.ascontiguousarray(rgb)), m)
        return FeaturePartition(index, feats.float().cpu())

    def _views(self, scene, spacing: float) -> tuple[int, Any]:
        """``(number of views, iterator of (rgb uint8 (H, W, 3), valid bool or None, K, pose, depth float32,
        (K_color, (H, W), color_from_depth) of the rgb's own camera or Nones)))`` in the scene's local frame."""
        cfg = self.config
        if scene.rgbd is not None:
            n = len(scene.rgbd)
            picks = np.unique(np.linspace(0, n - 1, min(n, cfg.max_frames)).round().astype(int)).tolist()

            def frames():
                for i in picks:
                    f = scene.rgbd[i]  # poses move into the scene's local frame; colour has its own camera
                    yield f.color, None, f.K_depth, scene.to_local @ f.pose, f.depth, \
                        (f.K_color, f.color.shape[:2], f.color_from_depth)
            return len(picks), frames()
        cams = plan_views(scene.points, n_around=cfg.n_around, elevations=tuple(cfg.elevations),
                          n_inside=cfg.inside_views, size=tuple(int(v) for v in cfg.view_size), fov_deg=cfg.fov_deg,
                          top_down=cfg.top_down)

        def renders():
            for cam in cams:
                r = render_points(scene.points, scene.colors, cam.K, cam.pose, cam.size,
                                  point_size_m=cfg.splat_scale * spacing, background=(0, 0, 0)).cpu()
                yield r.rgb.numpy(), (r.index >= 0).numpy(), cam.K, cam.pose, r.depth, (None, None, None)
        return len(cams), renders()

    def features(self, scene, progress: Callable[[str], None] | None = None) -> SceneFeatures:
        """Fused (and distilled) per-point features of a scene (module docs, steps 1–4).

        Args:
            scene: a :class:`~ovtools.scene3d.scene.Scene3DInput` (:func:`~ovtools.scene3d.scene.load_scene`).
            progress: optional callable receiving a short message at each stage and view.

        Returns:
            :class:`SceneFeatures` for the scene's M (possibly down-sampled) points.

        Raises:
            ValueError: no view saw any point (e.g. degenerate coordinates, or RGB-D frames of
                another scene); the message names the scene and its extent.
        """
        cfg = self.config
        spacing = float(estimate_point_spacing(scene.points))
        tol = cfg.depth_tolerance or max(0.02, 4.0 * spacing)
        say = progress or (lambda message: None)
        t0 = time.perf_counter()
        views = []
        try:
            n_views, view_iter = self._views(scene, spacing)
        except ValueError as e:  # degenerate extents (e.g. coordinates ~1e20) fail in view planning
            raise ValueError(f"{scene.source}: cannot plan views of this cloud ({e})") from None
        for i, (rgb, valid, K, pose, depth, colour_camera) in enumerate(view_iter):
            say(f"2D features of view {i + 1}/{n_views} ({cfg.features})")
            views.append(FusionView(K, pose, depth, self.partition(rgb, valid), *colour_camera))
        t1 = time.perf_counter()
        say(f"fusing {n_views} views onto {len(scene.points)} points")
        fused = fuse_features(scene.points, views, depth_tolerance=tol, feature_dim=self.encoder.embed_dim)
        t2 = time.perf_counter()
        if not bool(fused.seen.any()):
            valid = scene.original_points[scene.valid]
            lo, hi = valid.min(0), valid.max(0)
            raise ValueError(f"{scene.source}: no view saw any point (points span {lo.round(3).tolist()} to "
                             f"{hi.round(3).tolist()} m" + (")" if scene.rgbd is None else
                             "; do the RGB-D poses and depth maps belong to this cloud, in these units? "
                             f"depth_scale: {scene.rgbd.unit_scale:g} per metre)"))
        distilled = None
        if cfg.distill_steps > 0:
            say(f"distilling into the 3D network ({cfg.distill_steps} steps)")
            model = train_distill(scene.points, scene.colors, fused.features, fused.seen, steps=cfg.distill_steps,
                                  batch=cfg.distill_batch, seed=cfg.seed, progress=progress)
            distilled = model.predict(scene.points, scene.colors).to(torch.float16).cpu()
        t3 = time.perf_counter()
        return SceneFeatures(scene, fused.features.cpu(), fused.count.cpu(), distilled, spacing, len(views),
                             {"views": t1 - t0, "fusion": t2 - t1, "distill": t3 - t2})

    # --------------------------------------------------------------------- labels
    def label(self, sf: SceneFeatures, emb, mode: str | None = None) -> PointLabels:
        """Label every input point of the scene.

        Args:
            sf: :class:`SceneFeatures` of the scene.
            emb: :class:`~ovtools.prompts.ClassEmbeddings`.
            mode: ``"fusion"``, ``"distill"`` or ``"ensemble"`` (default: the config's).

        Returns:
            :class:`~ovtools.structures.PointLabels` for all N input rows (down-sampled
            results carried back through ``scene.inverse``; invalid rows: -1, confidence 0).

        Raises:
            ValueError: unknown mode, or a mode that needs distillation without it.
        """
        mode = mode or self.config.mode
        if mode not in MODES:
            raise ValueError(f"mode must be one of {list(MODES)}, got {mode!r}")
        names = list(emb.names)
        m = sf.fused.shape[0]
        class_id = np.full(m, -1, np.int64)
        conf = np.zeros(m, np.float32)
        if emb.classes.shape[0]:
            seen = (sf.count > 0) if mode == "fusion" else torch.ones(m, dtype=torch.bool)
            for s in range(0, m, LABEL_CHUNK):  # float32 copies of one chunk at a time, never of (M, D)
                f = sf.select_rows(mode, emb.classes, self.encoder.logit_scale, s, s + LABEL_CHUNK)
                best, c = open_set_scores(f, emb, self.encoder.logit_scale).best(self.config.score_threshold)
                conf[s : s + len(best)] = c.numpy()
                class_id[s : s + len(best)] = torch.where(seen[s : s + len(best)], best, -1).numpy()
                del f
        inv = sf.scene.inverse
        ok = inv >= 0  # invalid input rows (NaN/inf coordinates): "nothing", score 0, unseen
        n = len(inv)
        out_id, out_conf, seen = np.full(n, -1, np.int64), np.zeros(n, np.float32), np.zeros(n, bool)
        out_id[ok], out_conf[ok], seen[ok] = class_id[inv[ok]], conf[inv[ok]], (sf.count > 0).numpy()[inv[ok]]
        return PointLabels(out_id, out_conf, names, seen=seen)

    def relevancy(self, sf: SceneFeatures, emb, mode: str | None = None) -> np.ndarray:
        """LERF relevancy (:mod:`ovtools.heads.scoring`) of every input point to ``emb``'s first label.

        Returns:
            float32 (N,) in [0, 1]: ``sigmoid(l_query - max_k l_negative_k)``; > 0.5 means the
            phrase beats every negative; 0 for points no view saw in ``fusion`` mode.

        Raises:
            ValueError: unknown mode, or a mode that needs distillation without it.
        """
        mode = mode or self.config.mode
        m = sf.fused.shape[0]
        out = np.zeros(m, np.float32)
        for s in range(0, m, LABEL_CHUNK):
            f = sf.select_rows(mode, emb.classes[:1], self.encoder.logit_scale, s, s + LABEL_CHUNK)
            sc = open_set_scores(f, emb, self.encoder.logit_scale)
            out[s : s + sc.relevancy.shape[0]] = sc.relevancy[:, 0].numpy()
        if mode == "fusion":
            out[(sf.count == 0).numpy()] = 0.0
        inv = sf.scene.inverse
        return np.where(inv >= 0, out[np.maximum(inv, 0)], np.float32(0.0)).astype(np.float32)


SPEC = register_head(HeadSpec(
    "segment3d", Segment3DConfig, Segment3DHead, PointLabels,
    "Label point clouds and posed RGB-D scans with plain-language classes.", inputs="scene"))
