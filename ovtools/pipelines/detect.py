"""`DetectPipeline`: open-vocabulary detection on images or camera frames.

Load once, call per frame::

    from ovtools.pipelines import DetectPipeline
    pipe = DetectPipeline(labels="man in red shirt, dog")
    dets = pipe(frame)                  # RGB uint8 (H, W, 3) -> Detections
    dets.xyxy                           # float32 (N, 4) pixels of the original frame
    pipe.set_labels("mug, kettle")      # no model reload

Proposals, scoring and thresholds are the fields of
:class:`~ovtools.heads.detect.DetectConfig`; every one of them is also a preset
key and a keyword argument (``DetectPipeline(scoring="dense", score_threshold=0.3)``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from ..heads.detect import DetectConfig, DetectHead
from ..prompts import ClassSpace
from ..structures import Detections
from .base import Pipeline, config_defaults
from .presets import COMMON_KEYS


def detect_config_keys() -> dict[str, Any]:
    """Every :class:`~ovtools.heads.detect.DetectConfig` field with its default."""
    return config_defaults(DetectConfig)


class DetectPipeline(Pipeline):
    """Open-vocabulary detector: image → :class:`~ovtools.structures.Detections`.

    Args:
        preset: preset name or YAML path (default ``"detect-default"``; ``None`` → built-in
            defaults only).
        encoder: share an existing :class:`~ovtools.encoders.CLIPEncoder` instead of loading one.
        **overrides: common preset keys (``model``, ``pretrained`` (``None`` = random weights),
            ``device``, ``precision``, ``labels`` / ``classes``, ``templates``, ``max_side``,
            ``batch_size``, ``cache_dir``, ``use_cache``) and every field of
            :class:`~ovtools.heads.detect.DetectConfig` (``proposals``, ``scoring``,
            ``score_threshold``, ``nms_iou``, ``max_detections``, ...).

    Raises:
        TypeError: unknown keyword argument.
        ConfigError: invalid preset file or head setting (names the file and key).
        UnknownNameError: unknown preset, model, class space or template set.
        WeightsUnavailableError: weights not available offline.
    """

    task = "detect"
    default_preset = "detect-default"

    @classmethod
    def _allowed_keys(cls) -> Mapping[str, Any]:
        return {**COMMON_KEYS, **detect_config_keys()}

    def _setup(self) -> None:
        self.config = self._build_config(DetectConfig, "detection")
        self.head = DetectHead(self.encoder, self.config)

    def __call__(self, image, labels: str | Sequence[str] | ClassSpace | None = None) -> Detections:
        """Detect the current labels (or ``labels``, for this call only) in one image.

        Args:
            image: RGB uint8 (H, W, 3) array, image path, PIL image or
                :class:`~ovtools.io.images.LoadedImage`.
            labels: optional labels for this call only (as :meth:`set_labels` takes them);
                the pipeline's own labels stay as they are.

        Returns:
            :class:`~ovtools.structures.Detections`: ``xyxy`` float32 (N, 4) in pixels of the
            original (EXIF-rotated) image, ``confidence`` float32 (N,) in [0, 1], ``class_id``
            int64 (N,) into :attr:`labels`; ``image_size`` = ``(H, W)`` of the original.

        Raises:
            ImageLoadError: an unreadable path.
            RuntimeError: no labels set.
        """
        # read once: a concurrent set_labels cannot mix class spaces
        emb = self.embeddings if labels is None else self.embed(labels)
        loaded = self.load(image)
        det = self.head(loaded, emb)
        if det.image_size is None:
            det.image_size = tuple(loaded.original_size)
        return det
