"""`ClassifyPipeline`: zero-shot classification of images or camera frames.

Load once, call per image::

    from ovtools.pipelines import ClassifyPipeline
    pipe = ClassifyPipeline(labels="zebra, goat, grass plain")
    result = pipe("photo.jpg")          # Classifications, B = 1
    print(result.top1())                # ['zebra']
    pipe.set_labels("cat, dog")         # no model reload

Scores are CLIP's softmax over the class space at temperature ``logit_scale``
(Radford et al. 2021, §3.1.2); with ``reject=True`` an image whose best class
does not beat its negatives is reported as "none of these" (see DESIGN.md).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from ..errors import ConfigError
from ..heads.classify import ClassifyHead
from ..structures import Classifications
from .base import Pipeline
from .presets import COMMON_KEYS

CLASSIFY_KEYS: dict[str, Any] = {
    "top_k": 5,        # labels reported per image (clipped to the number of classes)
    "reject": False,   # open-set rejection against negatives
}


class ClassifyPipeline(Pipeline):
    """Zero-shot classifier: image → :class:`~ovtools.structures.Classifications`.

    Args:
        preset: preset name or YAML path (default ``"classify-default"``; ``None`` → built-in
            defaults only).
        encoder: share an existing :class:`~ovtools.encoders.CLIPEncoder` instead of loading one.
        **overrides: preset keys: ``model``, ``pretrained`` (``None`` = random weights), ``device``,
            ``precision``, ``labels`` / ``classes``, ``templates``, ``max_side``, ``batch_size``,
            ``cache_dir``, ``use_cache``, ``top_k`` (int ≥ 1), ``reject`` (bool).

    Raises:
        TypeError: unknown keyword argument.
        ConfigError: invalid preset file or setting (names the file and key).
        UnknownNameError: unknown preset, model, class space or template set.
        WeightsUnavailableError: weights not available offline.

    Example:
        >>> pipe = ClassifyPipeline(labels="cat, dog")          # doctest: +SKIP
        >>> pipe(np.zeros((224, 224, 3), np.uint8)).top1()      # doctest: +SKIP
        ['cat']
    """

    task = "classify"
    default_preset = "classify-default"

    @classmethod
    def _allowed_keys(cls) -> Mapping[str, Any]:
        return {**COMMON_KEYS, **CLASSIFY_KEYS}

    def _setup(self) -> None:
        s = self.settings
        k = s["top_k"]
        if isinstance(k, bool) or not isinstance(k, int) or k < 1:
            raise ConfigError(f"{self._where('top_k')}key 'top_k' must be an integer >= 1, got {k!r}")
        if not isinstance(s["reject"], bool):
            raise ConfigError(f"{self._where('reject')}key 'reject' must be true or false, got {s['reject']!r}")
        self.head = ClassifyHead(self.encoder, top_k=k, reject=s["reject"], batch_size=s["batch_size"])

    def _where(self, key: str) -> str:
        s = self.settings
        return f"{s.source}: " if s.source is not None and key not in s.explicit else ""

    def __call__(self, image) -> Classifications:
        """Classify one image.

        Args:
            image: RGB uint8 (H, W, 3) array, image path, PIL image or
                :class:`~ovtools.io.images.LoadedImage`.

        Returns:
            :class:`~ovtools.structures.Classifications` with B = 1: ``class_id`` int64 (1, k),
            ``confidence`` float32 (1, k) open-set confidence (probability × relevancy),
            ``probability`` and ``relevancy`` beside it, ranked by probability.

        Raises:
            ImageLoadError: an unreadable path.
            RuntimeError: no labels set.
        """
        return self.classify_batch([image])

    def classify_batch(self, images: Sequence) -> Classifications:
        """Classify several images in batches of ``batch_size``.

        Args:
            images: inputs as accepted by :meth:`__call__`.

        Returns:
            :class:`~ovtools.structures.Classifications` with B = ``len(images)``, in input order.

        Raises:
            ImageLoadError: an unreadable path (the whole call fails; load and skip bad
                files yourself for a fault-tolerant batch, as the CLI does).
            ValueError: ``images`` is empty.
            RuntimeError: no labels set.
        """
        if isinstance(images, (np.ndarray, str)) or not isinstance(images, Sequence):
            raise TypeError(f"classify_batch takes a list of images, got {type(images).__name__}; "
                            "call the pipeline itself for one image")
        if len(images) == 0:
            raise ValueError("classify_batch needs at least one image")
        emb = self.embeddings  # read once: a concurrent set_labels cannot mix class spaces
        return self.head([self.load(im) for im in images], emb)
