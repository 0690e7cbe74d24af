"""Image pipelines: one generic pipeline for every image head, and the built-in ones by name.

Load once, call per frame::

    from ovtools.pipelines import DetectPipeline, SegmentPipeline, ClassifyPipeline
    pipe = DetectPipeline(labels="man in red shirt, dog")   # preset detect-default
    dets = pipe(frame)                  # RGB uint8 (H, W, 3) -> Detections
    dets.xyxy                           # float32 (N, 4) pixels of the original frame
    pipe.set_labels("mug, kettle")      # no model reload
    seg = SegmentPipeline(encoder=pipe.encoder, labels="mug")(frame)   # masks; one model, two pipelines
    seg.label_map()                     # int32 (H, W) class ids, -1 = background
    ClassifyPipeline(labels="zebra, goat")("photo.jpg").top1()        # ['zebra']

Every field of the head's config dataclass (:class:`~ovtools.heads.detect.DetectConfig`,
:class:`~ovtools.heads.segment.SegmentConfig`, :class:`~ovtools.heads.classify.ClassifyConfig`)
is a preset key and a keyword argument (``DetectPipeline(scoring="dense", score_threshold=0.3)``);
:func:`~ovtools.pipelines.pipeline_class` gives the same pipeline for a head added by a plug-in.

Threads: a call reads the current class embeddings once; the heads hold no per-call
state (Segment Anything's predictor is locked by its mask source), so one pipeline may
be called from several threads.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ..prompts import ClassSpace
from ..structures import Classifications, Detections
from .base import Pipeline

LabelsArg = str | Sequence[str] | ClassSpace | None


class ImagePipeline(Pipeline):
    """A pipeline for any image head: image → the head's result structure.

    Args:
        preset: preset name or YAML path (default ``"<head>-default"`` where shipped; ``None`` →
            built-in defaults only).
        encoder: share an existing :class:`~ovtools.encoders.CLIPEncoder` instead of loading one.
        **overrides: common preset keys (``model``, ``pretrained`` (``None`` = random weights),
            ``device``, ``precision``, ``labels`` / ``classes``, ``templates``, ``max_side``,
            ``batch_size``, ``cache_dir``, ``use_cache``) and every field of the head's config.

    Raises:
        TypeError: unknown keyword argument.
        ConfigError: invalid preset file or head setting (names the file and key).
        UnknownNameError: unknown preset, model, class space, template set or proposal source.
        WeightsUnavailableError: weights not available offline.
    """

    def __call__(self, image, labels: LabelsArg = None):
        """Run the head on one image with the current labels (or ``labels``, for this call only).

        Args:
            image: RGB uint8 (H, W, 3) array, image path, PIL image or
                :class:`~ovtools.io.images.LoadedImage`.
            labels: optional labels for this call only (as :meth:`set_labels` takes them);
                the pipeline's own labels stay as they are.

        Returns:
            The head's result for the original (EXIF-rotated) image: :class:`~ovtools.structures.Detections`
            (``xyxy`` float32 (N, 4) pixels, ``confidence`` float32 (N,) in [0, 1], ``class_id`` int64 (N,)
            into :attr:`labels`, ``mask`` bool (N, H, W) for segmentation, ``image_size`` = ``(H, W)``), or
            :class:`~ovtools.structures.Classifications` with B = 1.

        Raises:
            ImageLoadError: an unreadable path.
            RuntimeError: no labels set.
        """
        # read once: a concurrent set_labels cannot mix class spaces
        emb = self.embeddings if labels is None else self.embed(labels)
        loaded = self.load(image)
        result = self.head(loaded, emb)
        if isinstance(result, Detections) and result.image_size is None:
            result.image_size = tuple(loaded.original_size)
        return result


class ClassifyPipeline(ImagePipeline):
    """Zero-shot classifier: image → :class:`~ovtools.structures.Classifications`.

    Scores are CLIP's softmax over the class space at temperature ``logit_scale``
    (Radford et al. 2021, §3.1.2); with ``reject=True`` an image whose best class does
    not beat its negatives is reported as "none of these".  Settings: the common keys and
    :class:`~ovtools.heads.classify.ClassifyConfig` (``top_k``, ``reject``, ``batch_size``).

    Example:
        >>> pipe = ClassifyPipeline(labels="cat, dog")          # doctest: +SKIP
        >>> pipe(np.zeros((224, 224, 3), np.uint8)).top1()      # doctest: +SKIP
        ['cat']
    """

    head_name = "classify"

    def classify_batch(self, images: Sequence, labels: LabelsArg = None) -> Classifications:
        """Classify several images in batches of ``batch_size``.

        Args:
            images: inputs as accepted by :meth:`__call__`.
            labels: optional labels for this call only.

        Returns:
            :class:`~ovtools.structures.Classifications` with B = ``len(images)``, in input order.

        Raises:
            ImageLoadError: an unreadable path (the whole call fails; load and skip bad
                files yourself for a fault-tolerant batch, as the CLI does).
            TypeError: ``images`` is not a list.
            ValueError: ``images`` is empty.
            RuntimeError: no labels set.
        """
        if isinstance(images, (np.ndarray, str)) or not isinstance(images, Sequence):
            raise TypeError(f"classify_batch takes a list of images, got {type(images).__name__}; "
                            "call the pipeline itself for one image")
        if len(images) == 0:
            raise ValueError("classify_batch needs at least one image")
        emb = self.embeddings if labels is None else self.embed(labels)
        return self.head([self.load(im) for im in images], emb)


class DetectPipeline(ImagePipeline):
    """Open-vocabulary detector: image → :class:`~ovtools.structures.Detections` (boxes).

    Settings: the common keys and :class:`~ovtools.heads.detect.DetectConfig` (``proposals``,
    ``scoring``, ``score_threshold``, ``nms_iou``, ``max_detections``, ...).
    """

    head_name = "detect"


class SegmentPipeline(ImagePipeline):
    """Open-vocabulary segmenter: image → :class:`~ovtools.structures.Detections` with masks.

    Settings: the common keys and :class:`~ovtools.heads.segment.SegmentConfig` (``proposals``,
    ``scoring``, ``score_threshold``, ``mask_fill``, ...).  With ``proposals="sam"`` (Segment
    Anything's automatic masks) or ``proposals="detect"`` (detect, then segment each box) give
    the checkpoint in ``proposal_options={"checkpoint": "sam_vit_b_01ec64.pth", "model_type": "vit_b"}``.
    A label that matches nothing gives N = 0.
    """

    head_name = "segment"
