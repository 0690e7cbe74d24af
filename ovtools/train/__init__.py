"""Contrastive training and fine-tuning of open_clip models (``ovtools train``).

Not imported by the inference path; import :func:`train` and :class:`TrainConfig` from here.
"""

from .loss import LOSSES, SupConClipLoss, build_loss, label_targets, resolve_loss
from .trainer import TrainConfig, TrainResult, save_weights, train

__all__ = ["LOSSES", "SupConClipLoss", "TrainConfig", "TrainResult", "build_loss", "label_targets", "resolve_loss",
           "save_weights", "train"]
