"""``proposals="detect"``: a mask source that labels its own masks — detect, then segment each box.

The detection head (:class:`~ovtools.heads.detect.DetectHead`) finds labelled boxes; Segment
Anything's box prompts (Kirillov et al. 2023, §7.4; :class:`~ovtools.proposals.sam.SamBoxSegmenter`)
turn each box into a mask.  Registered in the proposals registry under ``"detect"`` with
``output = "labelled_masks"``: such a source is built with the encoder and called with the
class embeddings, and its :class:`~ovtools.structures.Detections` are the segmentation result.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import torch

from ..geometry import boxes_from_masks, resize_masks
from ..proposals.registry import register_proposals
from ..proposals.sam import SamBoxSegmenter
from ..structures import Detections
from .detect import DetectConfig, DetectHead, empty_detections
from .frame import Frame


@register_proposals("detect")
class DetectThenSegment:
    """Detection boxes segmented by Segment Anything box prompts.

    Args:
        encoder: the :class:`~ovtools.encoders.CLIPEncoder` the detector scores with.
        detect_options: fields of :class:`~ovtools.heads.detect.DetectConfig` (``max_side`` is
            forced to ``None``: the segment head already works on its processing frame).
        **sam_options: :class:`~ovtools.proposals.sam.SamBoxSegmenter` options (``checkpoint``,
            ``model_type``, ``model``, ``device``: by default the encoder's).

    Raises:
        TypeError / ValueError: invalid detection settings.
        WeightsUnavailableError: the Segment Anything checkpoint cannot be loaded.
    """

    output = "labelled_masks"

    def __init__(self, encoder, detect_options: Mapping[str, Any] | None = None, **sam_options: Any) -> None:
        self.detector = DetectHead(encoder, DetectConfig(**{**dict(detect_options or {}), "max_side": None}))
        sam_options.setdefault("device", encoder.device)  # Segment Anything beside the CLIP encoder
        self.box_segmenter = SamBoxSegmenter(**sam_options)

    def __call__(self, frame: Frame, emb) -> Detections:
        """Labelled masks for one processing frame.

        Args:
            frame: the segment head's :class:`~ovtools.heads.frame.Frame`.
            emb: :class:`~ovtools.prompts.ClassEmbeddings`.

        Returns:
            :class:`Detections` with ``mask`` bool (N, H, W) and ``xyxy`` in pixels of the original
            image (``frame.original_size``); a box where Segment Anything finds nothing keeps the
            detector's box and an empty mask.
        """
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
