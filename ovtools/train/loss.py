"""Contrastive losses for image-caption training.

* ``"clip"`` — open_clip's :class:`~open_clip.loss.ClipLoss` (Radford et al.
  2021): row ``i``'s image matches only row ``i``'s caption.  Right for
  ordinary image-caption data where every caption is different.
* ``"supcon-clip"`` — :class:`SupConClipLoss`, a symmetric supervised
  contrastive form (Khosla et al. 2020, Eq. 2, with text and image views):
  every caption whose *label* the image carries is a positive.  Plain
  ``ClipLoss`` treats two identical captions ("a photo of a red star") in a
  batch as negatives of each other's images and pushes equal things apart;
  with labels they pull together.  Images may carry secondary labels (a red
  star is also a "star", a "red shape" and an "object") that count as weaker
  positives with weight ``secondary_weight`` < 1, so the specific caption
  stays the best match while generic ones still rank above wrong classes.

``resolve_loss("auto", ...)`` picks ``supcon-clip`` when the data has labels
or repeated captions, ``clip`` otherwise.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from open_clip.loss import ClipLoss
from torch import nn

LOSSES = ("auto", "clip", "supcon-clip")


def resolve_loss(name: str, has_labels: bool, captions_repeat: bool) -> str:
    """Map ``"auto"`` to a concrete loss name.

    Raises:
        ValueError: unknown loss name.
    """
    if name not in LOSSES:
        raise ValueError(f"unknown loss {name!r}; valid: {list(LOSSES)}")
    if name == "auto":
        return "supcon-clip" if (has_labels or captions_repeat) else "clip"
    return name


def label_targets(caption_labels: torch.Tensor, image_labels: torch.Tensor, secondary_weight: float) -> torch.Tensor:
    """Positive weights between the images and captions of a batch.

    Args:
        caption_labels: int64 (B,) label id of each row's caption.
        image_labels: int64 (B, K) label ids each row's image carries, primary
            first, padded with -1.
        secondary_weight: weight of a non-primary label, in [0, 1].

    Returns:
        float32 (B, B): ``[i, j]`` = 1 when caption ``j`` names image ``i``'s
        primary label, ``secondary_weight`` when it names another of its labels,
        else 0.

    Raises:
        ValueError: mismatched shapes, or a row whose image does not carry its
            own caption's label (it would have no positive).
    """
    if caption_labels.ndim != 1 or image_labels.ndim != 2 or image_labels.shape[0] != caption_labels.shape[0]:
        raise ValueError(f"expected caption_labels (B,) and image_labels (B, K), got {tuple(caption_labels.shape)} "
                         f"and {tuple(image_labels.shape)}")
    primary = image_labels[:, :1] == caption_labels[None, :]  # (B, B)
    member = (image_labels[:, :, None] == caption_labels[None, None, :]).any(1)  # (B, B)
    if not bool(member.diagonal().all()):
        bad = int((~member.diagonal()).nonzero()[0, 0])
        raise ValueError(f"row {bad}: the image does not carry its caption's label {int(caption_labels[bad])}")
    return primary.float() + (member & ~primary).float() * float(secondary_weight)


class SupConClipLoss(nn.Module):
    """Symmetric cross-entropy of CLIP logits against soft multi-positive targets.

    Image→text: row ``i`` of the logits against ``targets[i] / targets[i].sum()``;
    text→image: column ``j`` against ``targets[:, j] / targets[:, j].sum()``.
    With ``targets = eye(B)`` this equals :class:`open_clip.loss.ClipLoss`.
    """

    def forward(self, image_features: torch.Tensor, text_features: torch.Tensor, logit_scale: torch.Tensor,
                targets: torch.Tensor) -> torch.Tensor:
        """Loss value (scalar).

        Args:
            image_features: (B, D) L2-normalised.
            text_features: (B, D) L2-normalised.
            logit_scale: scalar, the multiplier (``model.logit_scale.exp()``).
            targets: (B, B) non-negative weights, positive diagonal (see :func:`label_targets`).
        """
        logits = logit_scale * image_features @ text_features.T
        t = targets.to(logits.dtype)
        q_img = t / t.sum(1, keepdim=True)
        q_txt = t.T / t.T.sum(1, keepdim=True)
        loss_i = -(q_img * F.log_softmax(logits, dim=1)).sum(1).mean()
        loss_t = -(q_txt * F.log_softmax(logits.T, dim=1)).sum(1).mean()
        return (loss_i + loss_t) / 2


def build_loss(name: str) -> nn.Module:
    """``"clip"`` → open_clip ``ClipLoss``; ``"supcon-clip"`` → :class:`SupConClipLoss`.

    Raises:
        ValueError: unknown or unresolved (``"auto"``) name.
    """
    if name == "clip":
        return ClipLoss()
    if name == "supcon-clip":
        return SupConClipLoss()
    raise ValueError(f"loss must be 'clip' or 'supcon-clip' (resolve 'auto' first), got {name!r}")
