"""Evaluation: zero-shot accuracy, linear probes, COCO AP (pycocotools)."""

from .coco import coco_detection_metrics
from .features import image_features
from .probe import linear_probe, sample_k_shot
from .zeroshot import classification_metrics, zero_shot_logits

__all__ = ["classification_metrics", "coco_detection_metrics", "image_features", "linear_probe", "sample_k_shot",
           "zero_shot_logits"]
