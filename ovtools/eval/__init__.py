"""Evaluation with the metric code a user runs on real data.

Zero-shot top-1/top-5 (:mod:`.zeroshot`), linear probes (:mod:`.probe`), COCO box and mask
AP through pycocotools (:mod:`.coco`), semantic-segmentation mIoU (:mod:`.segmentation`),
3D point-cloud mIoU (:mod:`.scenes3d`) and the evaluation-world quality report (:mod:`.report`).
"""

from .coco import coco_detection_metrics
from .features import image_features
from .probe import linear_probe, sample_k_shot
from .zeroshot import classification_metrics, zero_shot_logits

__all__ = ["classification_metrics", "coco_detection_metrics", "image_features", "linear_probe", "sample_k_shot",
           "zero_shot_logits"]
