"""Zero-shot classification metrics (CLIP paper §3.1; reported like CLIP_benchmark).

Top-1 and top-5 accuracy over all images, and mean per-class recall (the
average over classes of the fraction of that class's images ranked first),
which is the metric CLIP reports for unbalanced datasets.
"""

from __future__ import annotations

import numpy as np
import torch


def classification_metrics(logits: torch.Tensor | np.ndarray, targets, class_names: list[str]) -> dict:
    """Top-1, top-5 and mean per-class recall from logits.

    Args:
        logits: float (N, C) scores, higher is better.
        targets: int (N,) true class ids in [0, C).
        class_names: C names (for the per-class table).

    Returns:
        ``{"n", "top1", "top5", "mean_per_class_recall", "per_class_recall": {name: recall}}``;
        classes without images are left out of the mean.

    Raises:
        ValueError: shapes disagree or a target is out of range.
    """
    logits = torch.as_tensor(np.asarray(logits), dtype=torch.float32)
    targets = torch.as_tensor(np.asarray(targets), dtype=torch.int64)
    if logits.ndim != 2 or logits.shape[0] != targets.shape[0] or logits.shape[1] != len(class_names):
        raise ValueError(f"logits {tuple(logits.shape)} must be (N, C) with N={targets.shape[0]} targets and "
                         f"C={len(class_names)} classes")
    if len(targets) and (targets.min() < 0 or targets.max() >= len(class_names)):
        raise ValueError("targets out of range")
    k = min(5, logits.shape[1])
    topk = logits.topk(k, dim=1).indices
    hit1 = topk[:, 0] == targets
    hit5 = (topk == targets[:, None]).any(dim=1)
    per_class = {}
    for c, name in enumerate(class_names):
        sel = targets == c
        if sel.any():
            per_class[name] = float(hit1[sel].float().mean())
    n = len(targets)
    return {
        "n": n,
        "top1": float(hit1.float().mean()) if n else 0.0,
        "top5": float(hit5.float().mean()) if n else 0.0,
        "mean_per_class_recall": float(np.mean(list(per_class.values()))) if per_class else 0.0,
        "per_class_recall": per_class,
    }


def zero_shot_logits(features: torch.Tensor, class_embeddings: torch.Tensor, logit_scale: float) -> torch.Tensor:
    """``logit_scale * features @ class_embeddings.T``: (N, D) × (C, D) → (N, C)."""
    return logit_scale * features.float() @ class_embeddings.float().T
