"""Open-vocabulary box detection: proposals → CLIP scoring → per-class NMS.

Pipeline of :class:`DetectHead` for one image:

1. the image is downscaled so its longer side is at most ``max_side`` (the
   *processing frame*);
2. a registered proposal source (:mod:`ovtools.proposals`) gives boxes;
3. every box gets an L2-normalised CLIP feature, by one of three scorings that
   share the proposals:

   * ``"crop"`` (R-CNN-style region classification with CLIP, as in ViLD's
     "ViLD-image" teacher, Gu et al. ICLR 2022 §3.2): each box is enlarged by
     ``context_padding``, made square around its centre, and cropped+resized
     to the encoder's input size in one batched
     :func:`torchvision.ops.roi_align` call on the normalised image tensor
     (samples outside the image read 0, i.e. the dataset mean colour); the
     crops are encoded in batches of ``crop_batch_size``;
   * ``"dense"`` (MaskCLIP, Zhou et al. ECCV 2022 §3.2): one forward pass of
     :meth:`CLIPEncoder.dense_features` on the image resized to multiples of
     the patch size, then per-box pooling of the patch features
     (``roi_align`` on the (1, D, h, w) map, or the mean of the cells the box
     covers), renormalised;
   * ``"cascade"``: the dense pass ranks every box
     (:func:`~ovtools.heads.scoring.cascade_candidates`), crop scoring re-scores the best
     ``cascade_k``; only those can become detections (one dense pass + ``cascade_k`` crops);

4. :func:`~ovtools.heads.scoring.open_set_scores` against labels and negatives;
   a box keeps its best label (``multi_label=False``) if that label beats its
   negatives and reaches ``score_threshold``;
5. per-class NMS (:func:`torchvision.ops.batched_nms`), optional cross-class
   suppression, removal of boxes lying inside a larger detection (object parts),
   the ``max_detections`` best;
6. boxes are mapped to the original image's pixels and clipped to it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import torch
import torch.nn.functional as F
from torchvision.ops import batched_nms, box_iou, roi_align

from ..io.images import LoadedImage
from ..proposals.regions import greedy_keep
from ..structures import Detections, boxes_from_masks
from . import register_head
from .frame import check_field_types, processing_frame, resize_float
from .scoring import cascade_candidates, open_set_scores


SCORINGS = ("crop", "dense", "cascade")
CASCADE_K = 40  # cascade: crops per image (evaluation world: AP50 0.846 vs crop 0.818 with cascade_side 512)
CONTAINED_MARGIN = 0.1  # a containing detection may be this much less confident and still absorb a part


@dataclass(frozen=True)
class DetectConfig:
    """Settings of :class:`DetectHead` (a preset sets these).

    Attributes:
        proposals: name of a registered proposal source (``"segments"``, ``"windows"``,
            ``"hybrid"``; see :func:`ovtools.proposals.available_proposals`); a mask source
            (``"regions"``, ``"sam"``) gives the tight boxes of its masks.
        proposal_options: keyword options of that source, e.g.
            ``{"scales": (0.15, 0.25, 0.4), "overlap": 0.75}`` for ``"windows"``.
        max_proposals: at most this many proposals are scored (the source's first ones,
            which are its best-ranked); bounds the cost of ``"crop"`` scoring.
        scoring: ``"crop"`` (encode a crop per box; accurate, one forward pass per box),
            ``"dense"`` (one dense forward pass per image, pool per box; fast) or ``"cascade"``
            (dense ranks every box, crops re-score the best ``cascade_k``).
        cascade_k: ``"cascade"`` only: how many of the dense pass's best-ranked proposals are
            re-scored by crops.
        cascade_side: ``"cascade"`` only: longer side in pixels of the ranking dense pass's input
            (``None``: ``dense_side``).  Upscaling helps small models rank: the shipped 64-px
            model ranks best at 512 px for 192-px scenes, where its dense labels are poor.
        score_threshold: smallest ``confidence`` reported, in [0, 1].  ``confidence`` =
            softmax probability of the label among the labels × LERF relevancy against
            the label's negatives (see :mod:`ovtools.heads.scoring`); a label must also
            beat every applicable negative, whatever this threshold.
        nms_iou: per-class NMS IoU threshold: of two same-label boxes overlapping by more
            than this, the lower-scoring one is removed.
        class_agnostic_iou: if set, after per-class NMS a detection overlapping a
            higher-scoring detection of *another* label by more than this IoU is removed
            (one object, one label).  ``None`` disables it.
        contained_fraction: if set, a detection whose box lies at least this fraction (of its
            own area) inside the box of a *larger* kept detection with the same label and a
            confidence at most 0.1 lower is removed as a part of that object (crops of object
            parts look like the object to CLIP).
            ``None`` disables it.
        negatives_absorb_parts: with ``contained_fraction`` set, a proposal won by one of a
            class's *own* negatives (a named confusable thing, e.g. "blue cross" for
            "blue square"; not the generic canonical or space-level phrases) also absorbs the
            detections lying inside it: the arm of a cross is not reported as a square
            when only "blue square" is asked for.  The proposal's negative score is
            ``sigmoid(s_neg - s_label)`` for the best own negative and best label logits.
        contained_any_label: apply ``contained_fraction`` whatever the larger detection's label
            (for scenes where objects do not contain other objects, e.g. the generated world);
            leave ``False`` for photographs (a cup inside a person's box must survive).
        max_detections: at most this many detections are returned (highest confidence first).
        multi_label: if ``False`` each box is assigned only its most confident label; if
            ``True`` every reportable label of a box becomes a detection.
        context_padding: ``"crop"`` only: each side of a box is extended by this fraction
            of the box's longer side before the box is made square (0.3 → the object fills
            1 / 1.6 of the crop).
        crop_batch_size: ``"crop"`` only: crops per roi_align + forward pass.
        dense_side: ``"dense"`` only: longer side in pixels of the dense pass's input (rounded
            to a multiple of the patch size); ``None`` keeps the processing frame's size.
        dense_pool: ``"dense"`` only: ``"roi_align"`` (bilinear 2×2 bins averaged) or
            ``"mean"`` (mean over every patch cell the box overlaps).
        min_box_size: proposals with a side shorter than this many processing-frame pixels
            are dropped.
        max_side: the image is downscaled so its longer side is at most this many pixels
            before proposals and scoring (``None``: never).  Boxes are still reported in
            the original image's pixels.

    Raises:
        ValueError: on construction, for an unknown ``scoring`` / ``dense_pool`` or an
            out-of-range number.
    """

    proposals: str = "segments"
    proposal_options: Mapping[str, Any] = field(default_factory=dict)
    max_proposals: int = 500
    scoring: Literal["crop", "dense", "cascade"] = "crop"
    cascade_k: int = field(default=CASCADE_K, metadata={
        "help": "cascade scoring: the dense pass's best-ranked proposals re-scored by crops"})
    cascade_side: int | None = field(default=None, metadata={
        "help": "cascade scoring: longer side of the ranking dense pass in pixels; null = dense_side"})
    score_threshold: float = 0.5
    nms_iou: float = 0.5
    class_agnostic_iou: float | None = 0.5
    contained_fraction: float | None = 0.6
    contained_any_label: bool = False
    negatives_absorb_parts: bool = True
    max_detections: int = 100
    multi_label: bool = False
    context_padding: float = 0.3
    crop_batch_size: int = 64
    dense_side: int | None = None
    dense_pool: str = "roi_align"
    min_box_size: float = 6.0
    max_side: int | None = 640

    def __post_init__(self) -> None:
        check_field_types(self, _KINDS)
        if self.scoring not in SCORINGS:
            raise ValueError(f"scoring must be one of {list(SCORINGS)}, got {self.scoring!r}")
        if self.dense_pool not in ("roi_align", "mean"):
            raise ValueError(f"dense_pool must be 'roi_align' or 'mean', got {self.dense_pool!r}")
        if not 0.0 <= self.score_threshold <= 1.0:
            raise ValueError(f"score_threshold must be in [0, 1], got {self.score_threshold}")
        for name in ("nms_iou", "class_agnostic_iou", "contained_fraction"):
            v = getattr(self, name)
            if v is not None and not 0.0 < v <= 1.0:
                raise ValueError(f"{name} must be in (0, 1], got {v}")
        for name in ("max_proposals", "max_detections", "crop_batch_size", "cascade_k"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if not 0.0 <= self.context_padding <= 2.0:
            raise ValueError(f"context_padding must be in [0, 2], got {self.context_padding}")
        if self.min_box_size < 0:
            raise ValueError(f"min_box_size must be >= 0 pixels, got {self.min_box_size}")
        if self.max_side is not None and self.max_side < 16:
            raise ValueError(f"max_side must be >= 16 pixels or None, got {self.max_side}")
        for name in ("dense_side", "cascade_side"):
            if getattr(self, name) is not None and getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1 pixel or None, got {getattr(self, name)}")


_KINDS = {  # field → (accepted types, may be None)
    "proposals": (str, False), "proposal_options": (Mapping, False), "max_proposals": (int, False),
    "scoring": (str, False), "cascade_k": (int, False), "cascade_side": (int, True), "score_threshold": (float, False), "nms_iou": (float, False),
    "class_agnostic_iou": (float, True), "contained_fraction": (float, True), "contained_any_label": (bool, False),
    "negatives_absorb_parts": (bool, False), "max_detections": (int, False), "multi_label": (bool, False),
    "context_padding": (float, False), "crop_batch_size": (int, False), "dense_side": (int, True),
    "dense_pool": (str, False), "min_box_size": (float, False), "max_side": (int, True),
}


def square_context_boxes(boxes: torch.Tensor, padding: float) -> torch.Tensor:
    """Enlarge boxes by ``padding`` × their longer side on every side and make them square.

    Args:
        boxes: float (N, 4) xyxy pixels.
        padding: fraction of the longer side added on each side (>= 0).

    Returns:
        float32 (N, 4) square xyxy boxes with the same centres, side
        ``max(w, h) * (1 + 2 * padding)``; they may extend beyond the image.
    """
    boxes = boxes.float()
    c = (boxes[:, :2] + boxes[:, 2:]) / 2
    side = (boxes[:, 2:] - boxes[:, :2]).max(dim=1).values.clamp(min=1.0) * (1 + 2 * padding)
    half = (side / 2)[:, None]
    return torch.cat([c - half, c + half], dim=1)


@register_head("detect")
class DetectHead:
    """Open-vocabulary detector over a shared CLIP encoder.

    Args:
        encoder: a :class:`~ovtools.encoders.CLIPEncoder`.
        config: :class:`DetectConfig`; ``None`` → defaults.
        **overrides: fields of :class:`DetectConfig` replacing those of ``config``.

    Raises:
        ValueError: invalid config values, or ``scoring="dense"`` / ``"cascade"`` with an encoder
            that has no dense path.
        UnknownNameError: unknown proposal source name.

    Example:
        >>> head = DetectHead(encoder, DetectConfig(scoring="dense"))         # doctest: +SKIP
        >>> det = head(load_image("kitchen.jpg", max_side=640), class_embeddings)  # doctest: +SKIP
        >>> det.xyxy.dtype, det.labels[:2]                                    # doctest: +SKIP
        (dtype('float32'), ['mug', 'kettle'])
    """

    def __init__(self, encoder, config: DetectConfig | None = None, **overrides: Any) -> None:
        from dataclasses import replace

        from ..proposals import create_proposals

        config = config or DetectConfig()
        if overrides:
            config = replace(config, **overrides)
        if config.scoring in ("dense", "cascade") and not encoder.supports_dense:
            raise ValueError(f"scoring={config.scoring!r} needs dense features, which {encoder!r} does not support; "
                             "use scoring='crop'")
        self.encoder = encoder
        self.config = config
        self.proposal_source = create_proposals(config.proposals, **dict(config.proposal_options))

    # ---------------------------------------------------------------- features
    def crop_features(self, x: torch.Tensor, boxes: torch.Tensor) -> torch.Tensor:
        """CLIP features of square context crops.

        Args:
            x: float32 (1, 3, H, W) normalised image (see :meth:`CLIPEncoder.normalize`).
            boxes: float (N, 4) xyxy pixels of ``x``.

        Returns:
            float32 (N, D) L2-normalised features on the encoder's device.
        """
        enc, cfg = self.encoder, self.config
        rois = square_context_boxes(boxes, cfg.context_padding).to(x.device)
        feats = []
        for i in range(0, len(rois), cfg.crop_batch_size):
            crops = roi_align(x, [rois[i : i + cfg.crop_batch_size]], output_size=enc.image_size,
                              spatial_scale=1.0, sampling_ratio=-1, aligned=True)
            feats.append(enc.encode_pixels(crops, batch_size=cfg.crop_batch_size))
        return torch.cat(feats) if feats else torch.zeros(0, enc.embed_dim, device=enc.device)

    def dense_box_features(self, image: torch.Tensor, boxes: torch.Tensor, side: int | None = None) -> torch.Tensor:
        """Per-box pooled MaskCLIP features from one dense forward pass.

        Args:
            image: float32 (1, 3, H, W) in [0, 1] (not normalised), the processing frame.
            boxes: float (N, 4) xyxy pixels of ``image``.
            side: longer side of the dense pass's input in pixels (default: ``dense_side``; ``None``
                there: the frame's own size).

        Returns:
            float32 (N, D) L2-normalised features on the encoder's device.
        """
        enc, cfg = self.encoder, self.config
        ps = enc.patch_size
        h, w = image.shape[-2:]
        side = side or cfg.dense_side
        f = (side / max(h, w)) if side else 1.0
        dh, dw = max(ps, round(h * f / ps) * ps), max(ps, round(w * f / ps) * ps)
        fmap = enc.dense_features(enc.normalize(resize_float(image, (dh, dw))))  # (1, gh, gw, D)
        fmap = fmap[0].float()
        gh, gw, d = fmap.shape
        # box → dense-input pixels (per axis), then cells of ps pixels
        scale = torch.tensor([dw / w, dh / h, dw / w, dh / h], device=fmap.device)
        b = boxes.float().to(fmap.device) * scale
        if cfg.dense_pool == "roi_align":
            pooled = roi_align(fmap.permute(2, 0, 1)[None], [b], output_size=(2, 2), spatial_scale=1.0 / ps,
                               sampling_ratio=2, aligned=True).mean(dim=(2, 3))
        else:
            cells = b / ps
            x0 = cells[:, 0].floor().clamp(0, gw - 1).long()
            y0 = cells[:, 1].floor().clamp(0, gh - 1).long()
            x1 = torch.maximum(cells[:, 2].ceil().clamp(1, gw).long(), x0 + 1)
            y1 = torch.maximum(cells[:, 3].ceil().clamp(1, gh).long(), y0 + 1)
            integral = F.pad(fmap.cumsum(0).cumsum(1), (0, 0, 1, 0, 1, 0))  # (gh+1, gw+1, D)
            pooled = integral[y1, x1] - integral[y0, x1] - integral[y1, x0] + integral[y0, x0]
        return F.normalize(pooled, dim=-1)

    # --------------------------------------------------------------------- call
    def __call__(self, image: LoadedImage | np.ndarray, emb) -> Detections:
        """Detect the labels of ``emb`` in one image.

        Args:
            image: a :class:`LoadedImage` (``pixels`` possibly downscaled from ``original_size``)
                or an RGB uint8 (H, W, 3) array.
            emb: :class:`~ovtools.prompts.ClassEmbeddings` from the same encoder.

        Returns:
            :class:`Detections`: ``xyxy`` float32 (N, 4) in pixels of ``image.original_size``
            (the array's own size for arrays), clipped to the image; ``confidence`` float32 (N,)
            as defined in :mod:`ovtools.heads.scoring`; ``class_id`` into ``emb.names``;
            ``data["logits"]`` float32 (N, C) ``logit_scale * cos`` of the box to every label;
            ``data["relevancy"]`` float32 (N,) LERF relevancy of the reported label;
            ``image_size`` = original ``(H, W)``.  ``N <= max_detections``, sorted by
            decreasing confidence.  With zero labels, or no proposal, N = 0.

        Raises:
            ValueError / TypeError: ``image`` is not an RGB uint8 image; embedding dims disagree.
        """
        cfg, enc = self.config, self.encoder
        frame = processing_frame(enc, image, cfg.max_side)
        pixels, x, (h, w), (oh, ow) = frame.pixels, frame.x, frame.size, frame.original_size
        if emb.classes.shape[0] == 0:
            return self.detections_from_features(torch.zeros(0, 4), torch.zeros(0, enc.embed_dim), emb, (h, w), (oh, ow))
        boxes = self.propose(pixels)
        if len(boxes) == 0:
            feats = torch.zeros(0, enc.embed_dim)
        elif cfg.scoring == "crop":
            feats = self.crop_features(enc.normalize(x).float(), boxes)
        elif cfg.scoring == "dense":
            feats = self.dense_box_features(x, boxes)
        else:
            ranked = self.dense_box_features(x, boxes, cfg.cascade_side)
            top = cascade_candidates(ranked, emb, enc.logit_scale, cfg.cascade_k)
            boxes = boxes[top]
            feats = self.crop_features(enc.normalize(x).float(), boxes)
        return self.detections_from_features(boxes, feats, emb, (h, w), (oh, ow))

    def propose(self, pixels: np.ndarray) -> torch.Tensor:
        """Proposals of the configured source, filtered by ``min_box_size`` and capped at ``max_proposals``.

        Args:
            pixels: RGB uint8 (H, W, 3), the processing frame.

        Returns:
            float32 (N, 4) xyxy boxes in pixels of ``pixels``.
        """
        cfg = self.config
        found = self.proposal_source(pixels)
        if getattr(self.proposal_source, "output", "boxes") == "masks":  # a mask source: its masks' boxes
            found = boxes_from_masks(found)
        boxes = torch.as_tensor(found, dtype=torch.float32).reshape(-1, 4)
        bw, bh = boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]
        return boxes[(bw >= cfg.min_box_size) & (bh >= cfg.min_box_size)][: cfg.max_proposals]

    def detections_from_features(self, boxes: torch.Tensor, feats: torch.Tensor, emb,
                                 frame_size: tuple[int, int], original_size: tuple[int, int]) -> Detections:
        """Open-set scoring, label choice, NMS and mapping to original pixels (steps 4-6).

        Separate from feature extraction so that features can be reused with other labels.

        Args:
            boxes: float (N, 4) xyxy pixels of the processing frame.
            feats: float (N, D) L2-normalised box features.
            emb: :class:`~ovtools.prompts.ClassEmbeddings`.
            frame_size: ``(h, w)`` of the processing frame in pixels.
            original_size: ``(H, W)`` of the original image; boxes are returned in its pixels.

        Returns:
            :class:`Detections` as described in :meth:`__call__`.
        """
        cfg, enc = self.config, self.encoder
        names = list(emb.names)
        (h, w), (oh, ow) = frame_size, original_size
        empty = empty_detections(names, (oh, ow))
        if emb.classes.shape[0] == 0 or len(boxes) == 0:
            return empty
        boxes = boxes.float().cpu()
        s = open_set_scores(feats, emb, enc.logit_scale)
        ok = s.reportable(cfg.score_threshold)
        if cfg.multi_label:
            bi, ci = ok.nonzero(as_tuple=True)
        else:
            best = s.confidence.argmax(dim=1)
            bi = ok[torch.arange(len(best)), best].nonzero(as_tuple=True)[0]
            ci = best[bi]
        if len(bi) == 0:
            return empty
        cand, conf = boxes[bi], s.confidence[bi, ci]
        keep = batched_nms(cand, conf, ci, cfg.nms_iou)  # sorted by decreasing score
        if cfg.class_agnostic_iou is not None and len(keep) > 1:
            keep = keep[greedy_keep(box_iou(cand[keep], cand[keep]) > cfg.class_agnostic_iou)]  # in score order
        if cfg.contained_fraction is not None and len(keep) > 0:
            kb, kc, kl = cand[keep], conf[keep], ci[keep]
            inside = _contained(kb, kb, kc, cfg.contained_fraction)
            if not cfg.contained_any_label:
                inside &= kl[:, None] == kl[None, :]
            drop = inside.any(1)
            if cfg.negatives_absorb_parts:
                nb, nc = _negative_regions(boxes, s, emb)
                if len(nb):
                    drop |= _contained(kb, nb, kc, cfg.contained_fraction, nc).any(1)
            keep = keep[~drop]
        keep = keep[: cfg.max_detections]
        bi, ci = bi[keep], ci[keep]
        xyxy = boxes[bi] * torch.tensor([ow / w, oh / h, ow / w, oh / h])
        xyxy[:, 0::2] = xyxy[:, 0::2].clamp(0, ow)
        xyxy[:, 1::2] = xyxy[:, 1::2].clamp(0, oh)
        return Detections(
            xyxy.numpy().astype(np.float32), s.confidence[bi, ci].numpy(), ci.numpy(), names,
            data={"logits": s.logits[bi].numpy(), "relevancy": s.relevancy[bi, ci].numpy()},
            image_size=(oh, ow),
        )


def empty_detections(names: list[str], size: tuple[int, int], masks: bool = False) -> Detections:
    """No detections, with the per-detection arrays every head reports (``logits`` (0, C), ``relevancy``
    (0,)) and, with ``masks``, a (0, H, W) mask array."""
    det = Detections.empty(names, tuple(size))
    if masks:
        det.mask = np.zeros((0, *size), bool)
    det.data["logits"] = np.zeros((0, len(names)), np.float32)
    det.data["relevancy"] = np.zeros(0, np.float32)
    return det


def _contained(inner: torch.Tensor, outer: torch.Tensor, inner_conf: torch.Tensor, fraction: float,
               outer_conf: torch.Tensor | None = None) -> torch.Tensor:
    """bool (I, O): inner box i lies >= ``fraction`` of its area inside the larger outer box o,
    whose confidence is at most ``CONTAINED_MARGIN`` lower (``outer_conf`` defaults to ``inner_conf``)."""
    outer_conf = inner_conf if outer_conf is None else outer_conf
    area_i = (inner[:, 2] - inner[:, 0]) * (inner[:, 3] - inner[:, 1])
    area_o = (outer[:, 2] - outer[:, 0]) * (outer[:, 3] - outer[:, 1])
    lt = torch.maximum(inner[:, None, :2], outer[None, :, :2])
    rb = torch.minimum(inner[:, None, 2:], outer[None, :, 2:])
    inter = (rb - lt).clamp(min=0).prod(-1)
    return ((inter >= fraction * area_i[:, None]) & (area_o[None, :] > area_i[:, None])
            & (outer_conf[None, :] >= inner_conf[:, None] - CONTAINED_MARGIN))


def _negative_regions(boxes: torch.Tensor, s, emb) -> tuple[torch.Tensor, torch.Tensor]:
    """Proposals won by a class's own negative: (M, 4) boxes and (M,) scores ``sigmoid(s_neg - s_label)``."""
    shared = emb.space.shared_negatives()
    own = torch.tensor([n not in shared for n in emb.negative_names], dtype=torch.bool)
    if not bool(own.any()):
        return boxes[:0], torch.zeros(0)
    mask = emb.negative_mask & own[None, :]                      # (C, K): class c's own negatives
    neg = s.negative_logits[:, None, :].masked_fill(~mask[None], float("-inf")).amax(-1)  # (N, C)
    margin = neg - s.logits                                      # own negative over label, per class
    best, _ = margin.max(dim=1)
    score = torch.sigmoid(best)
    sel = torch.isfinite(best) & (score > 0.5)
    return boxes[sel], score[sel]
