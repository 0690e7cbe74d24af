"""Zero-shot classification evaluation of a :class:`~ovtools.pipelines.ClassifyPipeline` on labelled images.

The pipeline classifies every image of an ImageFolder tree or image-caption CSV
(:mod:`ovtools.eval.data`) in batches; dataset classes are matched to the
pipeline's class space by name; metrics are :func:`~ovtools.eval.zeroshot.classification_metrics`
(top-1, top-5, mean per-class recall; CLIP paper §3.1).  Unreadable images are
reported and skipped, as in every batch run.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from ..io.images import error_entry, load_batches
from .data import LabelledImages, map_to_space
from .zeroshot import classification_metrics

Progress = Callable[[int], None]
OnError = Callable[[dict], None]

__all__ = ["OnError", "Progress", "error_entry", "evaluate_classification"]


def evaluate_classification(pipe, data: LabelledImages, progress: Progress | None = None,
                            on_error: OnError | None = None) -> dict:
    """Top-1 / top-5 / mean per-class recall of a classification pipeline on labelled images.

    Args:
        pipe: a :class:`~ovtools.pipelines.ClassifyPipeline` (batch size and ``max_side`` from its settings).
        data: the images and their classes (:func:`~ovtools.eval.data.read_labelled_images`).
        progress: called with the number of images just finished (read or skipped).
        on_error: called with each ``errors`` entry as it happens.

    Returns:
        ``{"task": "zeroshot_classification", "n", "top1", "top5", "mean_per_class_recall",
        "per_class_recall", "errors": [{"image", "error"}]}``.

    Raises:
        ValueError: a dataset class is not in the pipeline's class space, or no image could be read.
    """
    targets = map_to_space(data, pipe.labels)
    logits, kept, errors = [], [], []
    for loaded in load_batches(data.paths, pipe.settings["batch_size"], pipe.settings["max_side"], errors,
                                 progress, on_error):
        res = pipe.classify_batch([im for _, im in loaded])
        logits.append(res.logits)
        kept.extend(i for i, _ in loaded)
        if progress is not None:
            progress(len(loaded))
    if not kept:
        raise ValueError(f"{data.source or 'dataset'}: no image could be read")
    m = classification_metrics(np.concatenate(logits), targets[kept], pipe.labels)
    return {"task": "zeroshot_classification", **m, "errors": errors}
