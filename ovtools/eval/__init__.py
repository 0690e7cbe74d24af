"""Evaluation: zero-shot accuracy, linear probes, COCO AP (pycocotools), mIoU (2D and 3D).

:func:`evaluate` measures a pipeline on labelled data (ImageFolder / CSV, COCO, the 3D world);
:func:`probe_evaluation` runs the linear-probe protocol beside zero-shot.
"""

from .coco import coco_detection_metrics
from .features import image_features
from .probe import linear_probe, probe_evaluation, sample_k_shot
from .run import dataset_class_names, evaluate, read_dataset
from .zeroshot import classification_metrics, zero_shot_logits

__all__ = ["classification_metrics", "coco_detection_metrics", "dataset_class_names", "evaluate", "image_features",
           "linear_probe", "probe_evaluation", "read_dataset", "sample_k_shot", "zero_shot_logits"]
