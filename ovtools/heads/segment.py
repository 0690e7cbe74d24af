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
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import torch

from ..config import Config, configure, setting
from ..geometry import boxes_from_masks, mask_nms, resize_masks
from ..io.images import LoadedImage
from ..proposals.registry import PROPOSALS, available_proposals, create_proposals
from ..structures import Detections
from .detect import empty_detections
from .detect_segment import DetectThenSegment
from .frame import processing_frame
from .mask_features import MaskFeatures, MaskFill, MaskScoring
from .registry import HeadSpec, register_head
from .scoring import cascade_candidates, open_set_scores

CASCADE_K = 40  # cascade: masked crops per image


@dataclass(frozen=True)
class SegmentConfig(Config):
    """Settings of :class:`SegmentHead`; each is also a preset key, a pipeline keyword and a ``segment`` option.

    Raises:
        TypeError / ValueError: on construction, for a value of the wrong type, an unknown choice or an
            out-of-range number (the message names the field).
    """

    proposals: str = setting(
        "regions", "Mask source: regions (Felzenszwalb + selective search, no weights), sam (Segment Anything "
        "automatic masks; checkpoint in proposal-options or --sam-checkpoint) or detect (detector boxes "
        "segmented by Segment Anything box prompts).")
    proposal_options: Mapping[str, Any] = setting(
        default_factory=dict, help="Keyword options of the mask source (sam: checkpoint, model_type, "
        "points_per_side, pred_iou_thresh, ...; detect: the SAM box segmenter's checkpoint / model_type).",
        cli=False)
    detect_options: Mapping[str, Any] = setting(
        default_factory=dict, help="proposals=detect only: DetectConfig fields for the detection step.", cli=False)
    max_proposals: int = setting(300, "At most this many masks are scored (the source's best-ranked first).",
                                 minimum=1)
    scoring: Literal[MaskScoring, "cascade"] = setting(
        "crop", "How masks are named: crop (encode a masked crop per mask; accurate), dense (pool MaskCLIP patch "
        "features in one pass; fast), fusion (ConceptFusion §3.2 blend of global and crop features) or cascade "
        "(the dense pass ranks every mask, masked crops re-score the best cascade-k).")
    cascade_k: int = setting(CASCADE_K, "Cascade scoring: the dense pass's best-ranked masks re-scored by masked "
                             "crops.", minimum=1)
    cascade_side: int | None = setting(
        None, "Cascade scoring: longer side in pixels of the ranking dense pass; null = dense-side.", minimum=1)
    cascade_nms_iou: float | None = setting(
        0.3, "Cascade scoring: the best-ranked mask of each group overlapping above this mask IoU is re-scored "
        "before any near-duplicate, so the crops cover more objects; null = rank order only.",
        minimum=0.0, maximum=1.0, exclusive_minimum=True)
    score_threshold: float = setting(
        0.3, "Smallest confidence reported, in [0, 1] (label probability x LERF relevancy against the label's "
        "negatives).", minimum=0.0, maximum=1.0, flag="--threshold")
    mask_fill: MaskFill = setting(
        "mean", "Crop and fusion scoring: what replaces pixels outside the mask in its crop: mean (the "
        "encoder's mean colour), blur (a strongly blurred image) or none (keep the context).")
    context_padding: float = setting(
        0.2, "Each side of a mask's box grows by this fraction of its longer side before the crop is made square.",
        minimum=0.0, maximum=2.0)
    crop_batch_size: int = setting(
        64, "Crops per forward pass.", minimum=1, flag="--batch-size", short="-b")
    fusion_temperature: float = setting(1.0, "Fusion scoring: temperature of ConceptFusion's softmax over masks.",
                                        minimum=0.0, exclusive_minimum=True)
    dense_side: int | None = setting(
        None, "Dense scoring: longer side of the dense pass input in pixels (null: the processing frame).",
        minimum=1)
    nms_iou: float = setting(0.5, "Per-class greedy NMS threshold on mask IoU.", minimum=0.0, maximum=1.0,
                             exclusive_minimum=True)
    min_mask_area: int = setting(16, "Masks smaller than this many processing-frame pixels are dropped.",
                                 minimum=0)
    max_detections: int = setting(100, "At most this many masks per image, most confident first.", minimum=1)
    max_side: int | None = setting(
        640, "Processing size bound in pixels (null: never downscale); masks are returned at the original size.",
        minimum=16)

    def check(self) -> None:
        sources = available_proposals("masks") + available_proposals("labelled_masks")
        if self.proposals not in sources:
            raise ValueError(f"proposals must be a mask source, one of {', '.join(sorted(sources))}; "
                             f"got {self.proposals!r}")


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
        config = configure(SegmentConfig, config, **overrides)
        if config.scoring in ("dense", "cascade") and not encoder.supports_dense:
            raise ValueError(f"scoring={config.scoring!r} needs dense features, which {encoder!r} does not support; "
                             "use scoring='crop' or 'fusion'")
        self.encoder, self.config = encoder, config
        mode = "crop" if config.scoring == "cascade" else config.scoring  # cascade: dense() ranks, crops score
        self.features = MaskFeatures(encoder, mode, config.mask_fill, config.context_padding,
                                     config.crop_batch_size, config.fusion_temperature, config.dense_side)
        options = dict(config.proposal_options)
        if getattr(PROPOSALS.get(config.proposals), "output", "boxes") == "labelled_masks":
            options.update(encoder=encoder, detect_options=config.detect_options)
        self.source = create_proposals(config.proposals, default_device=encoder.device, **options)

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
        if getattr(self.source, "output", "masks") == "labelled_masks":  # e.g. "detect": labels its own masks
            return self.source(frame, emb)
        masks = self.propose(frame.pixels) if emb.classes.shape[0] else torch.zeros(0, *frame.size, dtype=torch.bool)
        if cfg.scoring == "cascade" and len(masks):
            ranked = self.features.dense(frame.x, masks, cfg.cascade_side)
            top = cascade_candidates(ranked, emb, self.encoder.logit_scale, cfg.cascade_k, nms_iou=cfg.cascade_nms_iou,
                                     masks=masks)
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


SPEC = register_head(HeadSpec(
    "segment", SegmentConfig, SegmentHead, Detections,
    "Segment things described in plain language in images (masks and label maps).", masks=True))

__all__ = ["DetectThenSegment", "SegmentConfig", "SegmentHead", "mask_nms"]
