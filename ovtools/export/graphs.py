"""The exported graphs: CLIP's image tower with the rest of the computation baked in.

* :class:`ImageEmbedder` — pixels → L2-normalised embedding (CLIP's image branch).
* :class:`ZeroShotClassifier` — pixels → class probabilities: the embedding, its cosine
  similarity to the class embeddings (C, D) (prompt ensembles, computed once at export),
  times ``logit_scale``, softmax over the C classes (Radford et al. 2021, §3.1.2) — the
  ``class_probs`` the classify pipeline reports (open-set rejection is not part of the graph).

Input of both: float32 (B, 3, S, S), the RGB image resized (shortest side to S, bicubic)
and centre-cropped to the model's input size S, scaled to [0, 1] and normalised with the
model's mean and std per channel — what :meth:`ovtools.encoders.CLIPEncoder.preprocess`
returns.  Mean, std and S are written into the exported file's metadata.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class ImageEmbedder(nn.Module):
    """float32 (B, 3, S, S) normalised pixels → float32 (B, D) L2-normalised embeddings.

    Args:
        visual: the open_clip image tower (``model.visual``), in float32 eval mode.
    """

    def __init__(self, visual: nn.Module) -> None:
        super().__init__()
        self.visual = visual

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.visual(pixels).float(), dim=-1)


class ZeroShotClassifier(nn.Module):
    """float32 (B, 3, S, S) normalised pixels → float32 (B, C) class probabilities (rows sum to 1).

    Args:
        visual: the open_clip image tower.
        class_embeddings: float32 (C, D), L2-normalised rows in class-id order.
        logit_scale: the temperature (``CLIPEncoder.logit_scale``, ≈100 for OpenAI CLIP).

    Raises:
        ValueError: ``class_embeddings`` is not (C, D) with C ≥ 1, or ``logit_scale`` ≤ 0.
    """

    def __init__(self, visual: nn.Module, class_embeddings: torch.Tensor, logit_scale: float) -> None:
        super().__init__()
        if class_embeddings.ndim != 2 or class_embeddings.shape[0] < 1:
            raise ValueError(f"class_embeddings must be (C, D) with C >= 1, got {tuple(class_embeddings.shape)}")
        if not logit_scale > 0:
            raise ValueError(f"logit_scale must be > 0, got {logit_scale}")
        self.embedder = ImageEmbedder(visual)
        self.register_buffer("class_embeddings", class_embeddings.detach().float().clone())
        self.register_buffer("logit_scale", torch.tensor(float(logit_scale)))

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        f = self.embedder(pixels)
        return (self.logit_scale * f @ self.class_embeddings.T).softmax(dim=-1)
