"""`SegmentPipeline`: open-vocabulary instance and semantic segmentation of images or frames.

Load once, call per frame::

    from ovtools.pipelines import SegmentPipeline
    pipe = SegmentPipeline(labels="mug, kettle, countertop")
    seg = pipe(frame)                   # RGB uint8 (H, W, 3) -> Detections with masks
    seg.mask                            # bool (N, H, W) at the original frame's size
    seg.label_map()                     # int32 (H, W) class ids, -1 = background
    pipe.set_labels("chair, table")     # no model reload

Mask source, scoring and thresholds are the fields of
:class:`~ovtools.heads.segment.SegmentConfig`; every one of them is also a preset key
and a keyword argument (``SegmentPipeline(scoring="dense")``).  With
``proposals="sam"`` (Segment Anything's automatic masks) or ``proposals="detect"``
(detect, then segment each box with Segment Anything) give the checkpoint in
``proposal_options={"checkpoint": "sam_vit_b_01ec64.pth", "model_type": "vit_b"}``.

Threads: the head holds no per-call state; Segment Anything's predictor keeps per-image
state, so the mask sources built on it serialise their ``set_image`` + predict steps
with a lock.  One pipeline may be called from several threads.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from ..heads.segment import SegmentConfig, SegmentHead
from ..prompts import ClassSpace
from ..structures import Detections
from .base import Pipeline, config_defaults
from .presets import COMMON_KEYS


def segment_config_keys() -> dict[str, Any]:
    """Every :class:`~ovtools.heads.segment.SegmentConfig` field with its default."""
    return config_defaults(SegmentConfig)


class SegmentPipeline(Pipeline):
    """Open-vocabulary segmenter: image → :class:`~ovtools.structures.Detections` with masks.

    Args:
        preset: preset name or YAML path (default ``"segment-default"``; ``None`` → built-in
            defaults only).
        encoder: share an existing :class:`~ovtools.encoders.CLIPEncoder` instead of loading one.
        **overrides: common preset keys (``model``, ``pretrained``, ``device``, ``labels`` /
            ``classes``, ``templates``, ``max_side``, ...) and every field of
            :class:`~ovtools.heads.segment.SegmentConfig` (``proposals``, ``scoring``,
            ``score_threshold``, ``mask_fill``, ...).

    Raises:
        TypeError: unknown keyword argument.
        ConfigError: invalid preset file or head setting (names the file and key).
        UnknownNameError: unknown preset, model, class space, template set or mask source.
        WeightsUnavailableError: CLIP or Segment Anything weights not available offline.
    """

    task = "segment"
    default_preset = "segment-default"

    @classmethod
    def _allowed_keys(cls) -> Mapping[str, Any]:
        return {**COMMON_KEYS, **segment_config_keys()}

    def _setup(self) -> None:
        self.config = self._build_config(SegmentConfig, "segmentation")
        self.head = SegmentHead(self.encoder, self.config)

    def __call__(self, image, labels: str | Sequence[str] | ClassSpace | None = None) -> Detections:
        """Segment the current labels (or ``labels``, for this call only) in one image.

        Args:
            image: RGB uint8 (H, W, 3) array, image path, PIL image or
                :class:`~ovtools.io.images.LoadedImage`.
            labels: optional labels for this call only; the pipeline's own labels stay as they are.

        Returns:
            :class:`~ovtools.structures.Detections` with ``mask`` bool (N, H, W) and ``xyxy``
            float32 (N, 4) in pixels of the original (EXIF-rotated) image, ``confidence`` float32
            (N,) in [0, 1], ``class_id`` into :attr:`labels`.  ``label_map()`` gives the
            semantic map.  A label that matches nothing gives N = 0.

        Raises:
            ImageLoadError: an unreadable path.
            RuntimeError: no labels set.
        """
        emb = self.embeddings if labels is None else self.embed(labels)
        loaded = self.load(image)
        return self.head(loaded, emb)
