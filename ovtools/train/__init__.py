"""Contrastive training and fine-tuning of open_clip models (``ovtools train``).

Not imported by the inference path; import :func:`train` and :class:`TrainConfig` from here.
"""

from .loss import LOSSES, SupConClipLoss, build_loss, label_targets, resolve_loss
from .regions import RegionDataConfig, region_labels, write_region_data
from .trainer import TrainConfig, TrainResult, is_coco_file, save_weights, train

__all__ = ["LOSSES", "RegionDataConfig", "SupConClipLoss", "TrainConfig", "TrainResult", "build_loss", "is_coco_file",
           "label_targets", "region_labels", "resolve_loss", "save_weights", "train", "write_region_data"]
