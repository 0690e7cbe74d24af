"""Zero-shot image classification with optional open-set rejection.

Radford et al. 2021 (CLIP), §3.1.2: the image embedding is compared with the
class embeddings by cosine similarity, scaled by the model's learned
temperature ``logit_scale`` and turned into probabilities with a softmax over
the class space; the top-k labels are ranked by that probability.  Each is
reported with the open-set confidence of :func:`~ovtools.heads.scoring.open_set_scores`
(probability × relevancy against the negatives, as detections are scored), so a
single label on an image that does not show it is never reported as certain.
With ``reject=True`` an image whose best class does not beat that class's
negatives is flagged ``rejected`` ("none of these").
"""

from __future__ import annotations

import numpy as np
import torch

from dataclasses import dataclass
from typing import Any

from ..config import Config, configure, setting
from ..io.images import LoadedImage
from ..structures import Classifications
from .registry import HeadSpec, register_head
from .scoring import open_set_scores


@dataclass(frozen=True)
class ClassifyConfig(Config):
    """Settings of :class:`ClassifyHead`; each is also a preset key, a pipeline keyword and a ``classify`` option.

    Raises:
        TypeError / ValueError: on construction, for a value of the wrong type or out of range.
    """

    top_k: int = setting(5, "Labels reported per image, best first (clipped to the number of classes).",
                         minimum=1, short="-k")
    reject: bool = setting(
        False, "Report 'none of these' when the best label does not beat its negatives (generic phrases such as "
        "'object', 'texture', and the class space's own).")
    batch_size: int = setting(32, "Images per encoder forward pass.", minimum=1, short="-b")


def _as_arrays(images) -> list[np.ndarray]:
    if isinstance(images, (np.ndarray, LoadedImage)):
        images = [images]
    out = []
    for i, im in enumerate(images):
        a = im.pixels if isinstance(im, LoadedImage) else im
        if not isinstance(a, np.ndarray) or a.ndim != 3 or a.shape[2] != 3 or a.dtype != np.uint8 or 0 in a.shape:
            desc = f"{a.dtype} {a.shape}" if isinstance(a, np.ndarray) else type(a).__name__
            raise ValueError(f"images[{i}] must be an RGB uint8 (H, W, 3) array or LoadedImage, got {desc}")
        out.append(a)
    return out


class ClassifyHead:
    """Zero-shot top-k classification (CLIP §3.1.2) with optional "none of these".

    Args:
        encoder: a :class:`~ovtools.encoders.CLIPEncoder`.
        config: :class:`ClassifyConfig` (``top_k``, ``reject``, ``batch_size``); ``None`` → defaults.
            With ``reject``, an image whose top class does not beat all of its applicable
            negatives gets ``rejected=True`` (its top-k ids are kept, so the runner-up labels
            stay inspectable; ``top1()`` gives ``None``).
        **overrides: fields of :class:`ClassifyConfig` replacing those of ``config``.

    Raises:
        TypeError / ValueError: an invalid setting (e.g. ``top_k < 1``).

    Example:
        >>> head = ClassifyHead(encoder, top_k=3, reject=True)          # doctest: +SKIP
        >>> head(image, build_class_embeddings(encoder, space)).top1()  # doctest: +SKIP
        ['dog']
    """

    def __init__(self, encoder, config: ClassifyConfig | None = None, **overrides: Any) -> None:
        config = configure(ClassifyConfig, config, **overrides)
        self.encoder, self.config = encoder, config
        self.top_k, self.reject, self.batch_size = config.top_k, config.reject, config.batch_size

    def __call__(self, images, emb) -> Classifications:
        """Classify one image or a batch.

        Args:
            images: an RGB uint8 (H, W, 3) array, a :class:`LoadedImage`, or a sequence of them
                (any sizes; each is resized and centre-cropped as open_clip does).
            emb: :class:`~ovtools.prompts.ClassEmbeddings` from the same encoder.

        Returns:
            :class:`Classifications` with B rows (B = 1 for a single image): ``class_id``
            (B, k) with ``k = min(top_k, C)`` ranked by softmax probability over the class space;
            aligned with it ``confidence`` (open-set: probability × relevancy), ``probability``
            and ``relevancy``; ``logits`` (B, C); ``rejected`` (B,).

        Raises:
            ValueError: an image is not RGB uint8 (H, W, 3); embedding dims disagree.
        """
        arrays = _as_arrays(images)
        feats = self.encoder.encode_images(arrays, batch_size=self.batch_size)
        return self.classify_features(feats, emb)

    def classify_features(self, features: torch.Tensor, emb) -> Classifications:
        """Classify precomputed image features.

        Args:
            features: float (B, D) L2-normalised image embeddings.
            emb: :class:`~ovtools.prompts.ClassEmbeddings`.

        Returns:
            :class:`Classifications` as in :meth:`__call__`.

        Raises:
            TypeError / ValueError: see :func:`~ovtools.heads.scoring.open_set_scores`.
        """
        s = open_set_scores(features, emb, self.encoder.logit_scale)
        b, c = s.logits.shape
        names = list(emb.names) if hasattr(emb, "names") else [str(i) for i in range(c)]
        k = min(self.top_k, c)
        prob, idx = s.class_probs.topk(k, dim=-1) if k else (torch.zeros(b, 0), torch.zeros(b, 0, dtype=torch.long))
        if not self.reject:
            rejected = torch.zeros(b, dtype=torch.bool)
        elif c == 0:  # no label can be reported: every image is "none of these"
            rejected = torch.ones(b, dtype=torch.bool)
        else:
            rejected = ~s.beats_negatives.gather(1, idx[:, :1]).squeeze(1)
        return Classifications(idx.numpy(), s.confidence.gather(1, idx).numpy(), names, s.logits.numpy(),
                               rejected.numpy(), probability=prob.numpy(), relevancy=s.relevancy.gather(1, idx).numpy())


SPEC = register_head(HeadSpec(
    "classify", ClassifyConfig, ClassifyHead, Classifications,
    "Classify images zero-shot against labels in plain language or a class space."))
