"""Open-vocabulary segmentation: mask proposals → CLIP features per mask → open-set labels.

Pipeline of :class:`SegmentHead` for one image:

1. the image is downscaled so its longer side is at most ``max_side`` (the processing frame);
2. class-agnostic masks from a registered mask source (``"regions"``: Felzenszwalb +
   selective-search merges, no weights; ``"sam"``: Segment Anything's automatic mask
   generator), or ``proposals="detect"``: boxes found by the detection head, turned into
   masks by Segment Anything's box prompts ("detect, then segment");
3. one L2-normalised CLIP feature per mask, by one of four scorings
   (:mod:`ovtools.heads.mask_features`): ``"crop"`` (masked crops), ``"dense"`` (mask pooling
   of MaskCLIP patch features, one forward pass), ``"fusion"`` (ConceptFusion's blend of
   the global image feature with each mask's crop feature) or ``"cascade"`` (the dense pass
   ranks every mask, :func:`~ovtools.heads.scoring.cascade_candidates`; masked crops re-score
   the best ``cascade_k``, and only those can be reported);
4. :func:`~ovtools.heads.scoring.open_set_scores` against labels *and* negatives: a mask keeps
   its best label only if that label beats its negatives and reaches ``score_threshold``;
   masks that name nothing are background;
5. per-class greedy NMS on mask IoU, the ``max_detections`` best; masks are upsampled to
   the original image (bilinear, > 0.5) and their boxes recomputed there.

The semantic label map of the result is :meth:`Detections.label_map`: each pixel takes
the class of the most confident mask covering it, ``-1`` (background) where none does.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Literal

import numpy as np
import torch

from ..io.images import LoadedImage
from ..proposals.regions import greedy_keep, mask_iou, resize_masks
from ..structures import Detections, boxes_from_masks
from . import register_head
from .detect import empty_detections
from .frame import check_field_types, processing_frame
from .mask_features import MASK_FILLS, MaskFeatures
from .scoring import cascade_candidates, open_set_scores

SEGMENT_SCORINGS = ("crop", "dense", "fusion", "cascade")
CASCADE_K = 32  # cascade: masked crops per image (mIoU within 0.02 of crop on the evaluation world; benchmarks/)


@dataclass(frozen=True)
class SegmentConfig:
    """Settings of :class:`SegmentHead` (a preset sets these).

    Attributes:
        proposals: ``"regions"`` (classical, no weights), ``"sam"`` (Segment Anything automatic
            masks; needs ``proposal_options={"checkpoint": path}``) or ``"detect"`` (detection
            boxes → Segment Anything box prompts).
        proposal_options: keyword options of the mask source (``"sam"``: ``checkpoint``,
            ``model_type``, ``points_per_side``, ``pred_iou_thresh``, ...; ``"detect"``: the
            SAM box segmenter's ``checkpoint`` / ``model_type`` / ``model``).
        detect_options: ``proposals="detect"`` only: fields of
            :class:`~ovtools.heads.detect.DetectConfig` for the detection step.
        max_proposals: at most this many masks are scored (the source's best-ranked first).
        scoring: ``"crop"`` | ``"dense"`` | ``"fusion"`` (see :mod:`ovtools.heads.mask_features`) |
            ``"cascade"`` (dense ranks every mask, masked crops re-score the best ``cascade_k``).
        cascade_k: ``"cascade"`` only: how many of the dense pass's best-ranked masks are
            re-scored by masked crops.
        cascade_side: ``"cascade"`` only: longer side of the ranking dense pass's input in pixels
            (``None``: ``dense_side``).
        score_threshold: smallest reported ``confidence`` in [0, 1] (label probability × LERF
            relevancy against the label's negatives, :mod:`ovtools.heads.scoring`).
        mask_fill: ``"crop"`` / ``"fusion"``: what replaces pixels outside the mask in its crop:
            ``"mean"`` (the encoder's mean colour), ``"blur"`` (a strongly blurred image) or
            ``"none"`` (keep the context).
        context_padding: each side of a mask's box grows by this fraction of its longer side
            before the crop is made square.
        crop_batch_size: crops per forward pass.
        fusion_temperature: ``"fusion"``: temperature of ConceptFusion's softmax over masks.
        dense_side: ``"dense"``: longer side of the dense pass input (``None``: the processing frame).
        nms_iou: per-class greedy NMS threshold on mask IoU.
        min_mask_area: masks smaller than this many processing-frame pixels are dropped.
        max_detections: at most this many masks are returned, most confident first.
        max_side: processing size bound in pixels (``None``: never downscale).

    Raises:
        ValueError / TypeError: on construction, for an unknown mode or an out-of-range value.
    """

    proposals: str = "regions"
    proposal_options: Mapping[str, Any] = field(default_factory=dict)
    detect_options: Mapping[str, Any] = field(default_factory=dict)
    max_proposals: int = 300
    scoring: Literal["crop", "dense", "fusion", "cascade"] = "crop"
    cascade_k: int = field(default=CASCADE_K, metadata={
        "help": "cascade scoring: the dense pass's best-ranked masks re-scored by masked crops"})
    cascade_side: int | None = field(default=None, metadata={
        "help": "cascade scoring: longer side of the ranking dense pass in pixels; null = dense_side"})
    score_threshold: float = 0.3
    mask_fill: str = "mean"
    context_padding: float = 0.2
    crop_batch_size: int = 64
    fusion_temperature: float = 1.0
    dense_side: int | None = None
    nms_iou: float = 0.5
    min_mask_area: int = 16
    max_detections: int = 100
    max_side: int | None = 640

    def __post_init__(self) -> None:
        check_field_types(self, _KINDS)
        if self.scoring not in SEGMENT_SCORINGS:
            raise ValueError(f"scoring must be one of {list(SEGMENT_SCORINGS)}, got {self.scoring!r}")
        if self.mask_fill not in MASK_FILLS:
            raise ValueError(f"mask_fill must be one of {list(MASK_FILLS)}, got {self.mask_fill!r}")
        if not 0.0 <= self.score_threshold <= 1.0:
            raise ValueError(f"score_threshold must be in [0, 1], got {self.score_threshold}")
        if not 0.0 < self.nms_iou <= 1.0:
            raise ValueError(f"nms_iou must be in (0, 1], got {self.nms_iou}")
        for name in ("max_proposals", "max_detections", "crop_batch_size", "cascade_k"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if not 0.0 <= self.context_padding <= 2.0:
            raise ValueError(f"context_padding must be in [0, 2], got {self.context_padding}")
        if self.fusion_temperature <= 0:
            raise ValueError(f"fusion_temperature must be > 0, got {self.fusion_temperature}")
        if self.min_mask_area < 0:
            raise ValueError(f"min_mask_area must be >= 0 pixels, got {self.min_mask_area}")
        if self.max_side is not None and self.max_side < 16:
            raise ValueError(f"max_side must be >= 16 pixels or None, got {self.max_side}")
        for name in ("dense_side", "cascade_side"):
            if getattr(self, name) is not None and getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1 pixel or None, got {getattr(self, name)}")


_KINDS = {
    "proposals": (str, False), "proposal_options": (Mapping, False), "detect_options": (Mapping, False),
    "max_proposals": (int, False), "scoring": (str, False), "cascade_k": (int, False), "cascade_side": (int, True), "score_threshold": (float, False),
    "mask_fill": (str, False), "context_padding": (float, False), "crop_batch_size": (int, False),
    "fusion_temperature": (float, False), "dense_side": (int, True), "nms_iou": (float, False),
    "min_mask_area": (int, False), "max_detections": (int, False), "max_side": (int, True),
}


def mask_nms(masks: torch.Tensor, scores: torch.Tensor, class_id: torch.Tensor, iou: float) -> torch.Tensor:
    """Per-class greedy NMS on mask IoU.

    Args:
        masks: bool (N, H, W); scores: float (N,); class_id: int (N,).
        iou: of two same-class masks with IoU above this, the lower-scoring one is removed.

    Returns:
        int64 (K,) kept indices, by decreasing score.
    """
    order = scores.argsort(descending=True)
    if len(order) == 0:
        return order
    same = class_id[order][:, None] == class_id[order][None, :]
    return order[greedy_keep((mask_iou(masks[order], masks[order]) > iou) & same)]


@register_head("segment")
class SegmentHead:
    """Open-vocabulary instance and semantic segmentation over a shared CLIP encoder.

    Args:
        encoder: a :class:`~ovtools.encoders.CLIPEncoder`.
        config: :class:`SegmentConfig`; ``None`` → defaults.
        **overrides: fields of :class:`SegmentConfig` replacing those of ``config``.

    Raises:
        ValueError: invalid config, ``scoring="dense"`` / ``"cascade"`` with an encoder without a dense path,
            or a box proposal source given as ``proposals``.
        UnknownNameError: unknown proposal source.
        WeightsUnavailableError: Segment Anything weights missing (``"sam"`` / ``"detect"``).

    Example:
        >>> head = SegmentHead(encoder, SegmentConfig(scoring="dense"))      # doctest: +SKIP
        >>> det = head(load_image("kitchen.jpg"), class_embeddings)         # doctest: +SKIP
        >>> det.mask.shape, det.label_map().shape                           # doctest: +SKIP
        ((3, 480, 640), (480, 640))
    """

    def __init__(self, encoder, config: SegmentConfig | None = None, **overrides: Any) -> None:
        from ..proposals import create_proposals

        config = config or SegmentConfig()
        if overrides:
            config = replace(config, **overrides)
        if config.scoring in ("dense", "cascade") and not encoder.supports_dense:
            raise ValueError(f"scoring={config.scoring!r} needs dense features, which {encoder!r} does not support; "
                             "use scoring='crop' or 'fusion'")
        self.encoder, self.config = encoder, config
        mode = "crop" if config.scoring == "cascade" else config.scoring  # cascade: dense() ranks, crops score
        self.features = MaskFeatures(encoder, mode, config.mask_fill, config.context_padding,
                                     config.crop_batch_size, config.fusion_temperature, config.dense_side)
        self.detector = self.box_segmenter = self.source = None
        if config.proposals == "detect":
            from ..proposals.sam import SamBoxSegmenter
            from .detect import DetectConfig, DetectHead

            opts = {k: tuple(v) if isinstance(v, list) else v for k, v in config.detect_options.items()}
            self.detector = DetectHead(encoder, DetectConfig(**{"max_side": None, **opts}))
            self.box_segmenter = SamBoxSegmenter(**dict(config.proposal_options))
        else:
            self.source = create_proposals(config.proposals, **dict(config.proposal_options))
            if getattr(self.source, "output", "boxes") != "masks":
                raise ValueError(f"proposals={config.proposals!r} gives boxes, not masks; use a mask source "
                                 "('regions', 'sam') or 'detect' (boxes → Segment Anything)")

    def propose(self, pixels: np.ndarray) -> torch.Tensor:
        """Masks of the configured source on the processing frame.

        Args:
            pixels: RGB uint8 (h, w, 3).

        Returns:
            bool (N, h, w), ``N <= max_proposals``, masks of at least ``min_mask_area`` pixels.
        """
        cfg = self.config
        m = torch.as_tensor(np.asarray(self.source(pixels), dtype=bool))
        m = m[m.flatten(1).sum(1) >= max(cfg.min_mask_area, 1)]
        return m[: cfg.max_proposals]

    def __call__(self, image: LoadedImage | np.ndarray, emb) -> Detections:
        """Segment the labels of ``emb`` in one image.

        Args:
            image: a :class:`LoadedImage` (possibly downscaled from ``original_size``) or an RGB
                uint8 (H, W, 3) array.
            emb: :class:`~ovtools.prompts.ClassEmbeddings` from the same encoder.

        Returns:
            :class:`Detections` with ``mask`` bool (N, H, W) at the original image's size,
            ``xyxy`` float32 (N, 4) the masks' tight boxes in original pixels, ``confidence``
            float32 (N,), ``class_id`` into ``emb.names``, ``data["logits"]`` float32 (N, C),
            ``data["relevancy"]`` float32 (N,); sorted by decreasing confidence.  N = 0 when no
            mask names any label (the label map is then all background).

        Raises:
            ValueError / TypeError: ``image`` is not an RGB uint8 image; embedding dims disagree.
        """
        cfg = self.config
        frame = processing_frame(self.encoder, image, cfg.max_side)
        names = list(emb.names)
        if self.detector is not None:
            return self._detect_then_segment(frame, emb)
        masks = self.propose(frame.pixels) if emb.classes.shape[0] else torch.zeros(0, *frame.size, dtype=torch.bool)
        if cfg.scoring == "cascade" and len(masks):
            ranked = self.features.dense(frame.x, masks, cfg.cascade_side)
            top = cascade_candidates(ranked, emb, self.encoder.logit_scale, cfg.cascade_k)
            masks = masks[top]
        feats = self.features(frame.x, masks)
        return self.detections_from_features(masks, feats, emb, frame.original_size, names)

    def detections_from_features(self, masks: torch.Tensor, feats: torch.Tensor, emb,
                                 original_size: tuple[int, int], names: list[str] | None = None) -> Detections:
        """Open-set scoring, label choice, mask NMS and mapping to original pixels (steps 4–5).

        Args:
            masks: bool (N, h, w) on the processing frame.
            feats: float (N, D) L2-normalised mask features.
            emb: :class:`~ovtools.prompts.ClassEmbeddings`.
            original_size: ``(H, W)`` the masks are returned at.
            names: class names (default ``emb.names``).

        Returns:
            :class:`Detections` as in :meth:`__call__`.
        """
        cfg = self.config
        names = list(emb.names) if names is None else names
        if len(masks) == 0 or emb.classes.shape[0] == 0:
            return empty_detections(names, original_size, masks=True)
        s = open_set_scores(feats, emb, self.encoder.logit_scale)
        best = s.confidence.argmax(dim=1)
        idx = torch.arange(len(best))
        ok = s.reportable(cfg.score_threshold)[idx, best]
        mi, ci = ok.nonzero(as_tuple=True)[0], best[ok]
        if len(mi) == 0:
            return empty_detections(names, original_size, masks=True)
        conf = s.confidence[mi, ci]
        keep = mask_nms(masks[mi], conf, ci, cfg.nms_iou)[: cfg.max_detections]
        mi, ci = mi[keep], ci[keep]
        full = resize_masks(masks[mi], original_size)
        return Detections(boxes_from_masks(full), s.confidence[mi, ci].numpy(), ci.numpy(), names, mask=full,
                          data={"logits": s.logits[mi].numpy(), "relevancy": s.relevancy[mi, ci].numpy()},
                          image_size=tuple(original_size))

    def _detect_then_segment(self, frame, emb) -> Detections:
        det = self.detector(frame.pixels, emb)  # boxes in processing-frame pixels
        h, w = frame.size
        if len(det) == 0:
            return empty_detections(list(emb.names), frame.original_size, masks=True)
        masks = torch.as_tensor(self.box_segmenter(frame.pixels, det.xyxy))
        full = resize_masks(masks, frame.original_size)
        oh, ow = frame.original_size
        boxes = det.xyxy * np.array([ow / w, oh / h, ow / w, oh / h], np.float32)
        empty = ~full.reshape(len(full), -1).any(1)
        tight = boxes_from_masks(full)
        tight[empty] = boxes[empty]  # SAM found nothing in a box: keep the detector's box
        return Detections(tight, det.confidence, det.class_id, det.class_names, mask=full, data=dict(det.data),
                          image_size=tuple(frame.original_size))
