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
     (:func:`~ovtools.heads.scoring.cascade_candidates`; NMS at ``cascade_nms_iou`` on the ranks
     puts one box per object ahead of near-duplicates), crop scoring re-scores the best
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
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import torch
import torch.nn.functional as F
from torchvision.ops import batched_nms, box_iou, roi_align

from ..config import Config, configure, setting
from ..geometry import boxes_from_masks, greedy_keep, square_context_boxes
from ..io.images import LoadedImage
from ..proposals.registry import available_proposals, create_proposals
from ..structures import Detections
from .frame import processing_frame, resize_float
from .registry import HeadSpec, register_head
from .scoring import cascade_candidates, open_set_scores

CASCADE_K = 40  # cascade: crops per image (evaluation world, 40 held-out scenes: AP50 0.830 vs crop 0.836)


@dataclass(frozen=True)
class DetectConfig(Config):
    """Settings of :class:`DetectHead`; each is also a preset key, a pipeline keyword and a ``detect`` option.

    Raises:
        TypeError / ValueError: on construction, for a value of the wrong type, an unknown choice or an
            out-of-range number (the message names the field).
    """

    proposals: str = setting(
        "segments", "Box proposal source: segments (colour-coherent regions), windows (multi-scale sliding "
        "windows), hybrid (both), or a mask source (regions, sam) giving its masks' tight boxes; "
        "see ovtools.proposals.available_proposals().")
    proposal_options: Mapping[str, Any] = setting(
        default_factory=dict, help="Keyword options of the proposal source, e.g. {scales: [0.15, 0.25], overlap: "
        "0.75} for windows.", cli=False)
    max_proposals: int = setting(
        500, "At most this many proposals are scored (the source's best-ranked first); bounds the cost of crop "
        "scoring.", minimum=1)
    scoring: Literal["crop", "dense", "cascade"] = setting(
        "crop", "Region scoring. crop: encode a context crop per proposal (R-CNN-style, ViLD-image teacher, Gu et "
        "al. 2022 §3.2; accurate); dense: one MaskCLIP dense pass per image (Zhou et al. 2022 §3.2), pooled per "
        "box (fast); cascade: the dense pass ranks every box, crops re-score the best cascade-k.")
    cascade_k: int = setting(CASCADE_K, "Cascade scoring: the dense pass's best-ranked proposals re-scored by "
                             "crops.", minimum=1)
    cascade_side: int | None = setting(
        None, "Cascade scoring: longer side in pixels of the ranking dense pass (upscaling helps small models "
        "rank); null = dense-side.", minimum=1)
    cascade_nms_iou: float | None = setting(
        0.5, "Cascade scoring: the best-ranked box of each group overlapping above this IoU is re-scored before "
        "any near-duplicate (NMS on the ranks), so the crops cover more objects; null = rank order only.",
        minimum=0.0, maximum=1.0, exclusive_minimum=True)
    score_threshold: float = setting(
        0.5, "Smallest confidence reported, in [0, 1]; confidence = label probability x LERF relevancy against "
        "the label's negatives, and a label must also beat every negative.", minimum=0.0, maximum=1.0,
        flag="--threshold")
    nms_iou: float = setting(
        0.5, "Per-class NMS IoU: of two same-label boxes overlapping more than this, the weaker is removed.",
        minimum=0.0, maximum=1.0, exclusive_minimum=True)
    class_agnostic_iou: float | None = setting(
        0.5, "Cross-label suppression IoU: a detection overlapping a stronger one of another label more than "
        "this is removed (one object, one label); null = off.", minimum=0.0, maximum=1.0, exclusive_minimum=True)
    contained_fraction: float | None = setting(
        0.6, "A detection lying at least this fraction inside a larger kept detection of the same label, at most "
        "0.1 more confident, is removed as a part of it; null = off.", minimum=0.0, maximum=1.0,
        exclusive_minimum=True)
    contained_margin: float = setting(
        0.1, "A larger detection absorbs a part lying inside it (contained-fraction) if its confidence is at most "
        "this much lower than the part's (1 = whatever the confidences).", minimum=0.0, maximum=1.0)
    contained_any_label: bool = setting(
        False, "Apply contained-fraction whatever the larger detection's label (scenes where objects never "
        "contain other objects); off for photographs.")
    negatives_absorb_parts: bool = setting(
        True, "A proposal won by one of a class's own negatives ('blue cross' for 'blue square') also absorbs "
        "the detections inside it (needs contained-fraction).")
    max_detections: int = setting(100, "At most this many detections per image, most confident first.", minimum=1)
    multi_label: bool = setting(
        False, "Report every label of a box that reaches the threshold, not only its most confident one.")
    context_padding: float = setting(
        0.3, "Crop scoring: each side of a box grows by this fraction of its longer side before it is made "
        "square (0.3: the object fills 1/1.6 of the crop).", minimum=0.0, maximum=2.0)
    crop_batch_size: int = setting(
        64, "Crop scoring: crops per roi_align + forward pass.", minimum=1, flag="--batch-size", short="-b")
    dense_side: int | None = setting(
        None, "Dense scoring: longer side in pixels of the dense pass input (a multiple of the patch size); "
        "null = the processing size.", minimum=1)
    dense_pool: Literal["roi_align", "mean"] = setting(
        "roi_align", "Dense scoring: pool patch features per box by roi_align (bilinear 2x2 bins) or the mean "
        "of the cells the box overlaps.")
    min_box_size: float = setting(
        6.0, "Proposals with a side shorter than this many processing-frame pixels are dropped.", minimum=0.0)
    max_side: int | None = setting(
        640, "The image is downscaled so its longer side is at most this many pixels before proposals and "
        "scoring (null: never); boxes are still reported in original-image pixels.", minimum=16)

    def check(self) -> None:
        sources = available_proposals("boxes") + available_proposals("masks")
        if self.proposals not in sources:
            raise ValueError(f"proposals must be one of {', '.join(sorted(sources))}; got {self.proposals!r}")


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
        config = configure(DetectConfig, config, **overrides)
        if config.scoring in ("dense", "cascade") and not encoder.supports_dense:
            raise ValueError(f"scoring={config.scoring!r} needs dense features, which {encoder!r} does not support; "
                             "use scoring='crop'")
        self.encoder = encoder
        self.config = config
        self.proposal_source = create_proposals(config.proposals, default_device=encoder.device,
                                                **dict(config.proposal_options))

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
            top = cascade_candidates(ranked, emb, enc.logit_scale, cfg.cascade_k, boxes, cfg.cascade_nms_iou)
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
            inside = _contained(kb, kb, kc, cfg.contained_fraction, cfg.contained_margin)
            if not cfg.contained_any_label:
                inside &= kl[:, None] == kl[None, :]
            drop = inside.any(1)
            if cfg.negatives_absorb_parts:
                nb, nc = _negative_regions(boxes, s, emb)
                if len(nb):
                    drop |= _contained(kb, nb, kc, cfg.contained_fraction, cfg.contained_margin, nc).any(1)
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


def _contained(inner: torch.Tensor, outer: torch.Tensor, inner_conf: torch.Tensor, fraction: float, margin: float,
               outer_conf: torch.Tensor | None = None) -> torch.Tensor:
    """bool (I, O): inner box i lies >= ``fraction`` of its area inside the larger outer box o,
    whose confidence is at most ``margin`` lower (``outer_conf`` defaults to ``inner_conf``)."""
    outer_conf = inner_conf if outer_conf is None else outer_conf
    area_i = (inner[:, 2] - inner[:, 0]) * (inner[:, 3] - inner[:, 1])
    area_o = (outer[:, 2] - outer[:, 0]) * (outer[:, 3] - outer[:, 1])
    lt = torch.maximum(inner[:, None, :2], outer[None, :, :2])
    rb = torch.minimum(inner[:, None, 2:], outer[None, :, 2:])
    inter = (rb - lt).clamp(min=0).prod(-1)
    return ((inter >= fraction * area_i[:, None]) & (area_o[None, :] > area_i[:, None])
            & (outer_conf[None, :] >= inner_conf[:, None] - margin))


def _negative_regions(boxes: torch.Tensor, s, emb) -> tuple[torch.Tensor, torch.Tensor]:
    """Proposals that show a whole object of a class's own negative: (M, 4) boxes and (M,) scores
    ``sigmoid(s_neg - s_label)``.

    The own negative must beat the label *and* every shared negative (canonical and space-level:
    "background", "things", ...): a loose box around a red star and a red circle, where "red circle"
    beats "red star" but "things" fits better still, is no red circle and must not absorb the red star
    inside it.
    """
    shared = emb.space.shared_negatives()
    own = torch.tensor([n not in shared for n in emb.negative_names], dtype=torch.bool)
    if not bool(own.any()):
        return boxes[:0], torch.zeros(0)
    mask = emb.negative_mask & own[None, :]                      # (C, K): class c's own negatives
    neg = s.negative_logits[:, None, :].masked_fill(~mask[None], float("-inf")).amax(-1)  # (N, C)
    margin = neg - s.logits                                      # own negative over label, per class
    best, arg = margin.max(dim=1)
    score = torch.sigmoid(best)
    sel = torch.isfinite(best) & (score > 0.5)
    if not bool(own.all()):
        generic = s.negative_logits[:, ~own].amax(-1)            # (N,) the strongest shared negative
        sel &= neg.gather(1, arg[:, None])[:, 0] > generic
    return boxes[sel], score[sel]


SPEC = register_head(HeadSpec(
    "detect", DetectConfig, DetectHead, Detections,
    "Detect objects described in plain language in images (boxes)."))
