"""Heads: take CLIP features and class embeddings, return a result structure.

Each head is declared once as a :class:`~ovtools.heads.registry.HeadSpec` (name,
config dataclass, head class, result type) in :mod:`ovtools.heads.registry`::

    head = create_head("detect", encoder, scoring="dense")
    detections = head(image, class_embeddings)

Built-ins: ``"classify"`` (:class:`~ovtools.heads.classify.ClassifyHead` →
:class:`~ovtools.structures.Classifications`), ``"detect"``
(:class:`~ovtools.heads.detect.DetectHead` → :class:`~ovtools.structures.Detections`),
``"segment"`` (:class:`~ovtools.heads.segment.SegmentHead` → ``Detections`` with masks)
and ``"segment3d"`` (:class:`~ovtools.heads.segment3d.Segment3DHead` →
:class:`~ovtools.structures.PointLabels`); other packages add heads through the
``ovtools.heads`` entry-point group.  Every head scores against labels *and*
negatives with :func:`~ovtools.heads.scoring.open_set_scores`.
"""

from __future__ import annotations

from .classify import ClassifyConfig, ClassifyHead
from .detect import DetectConfig, DetectHead
from .registry import HEADS, HeadSpec, available_heads, create_head, head_spec, register_head
from .scoring import OpenSetScores, open_set_scores
from .segment import SegmentConfig, SegmentHead
from .segment3d import Segment3DConfig, Segment3DHead

__all__ = [
    "ClassifyConfig", "ClassifyHead", "DetectConfig", "DetectHead", "HEADS", "HeadSpec", "OpenSetScores",
    "Segment3DConfig", "Segment3DHead", "SegmentConfig", "SegmentHead", "available_heads", "create_head",
    "head_spec", "open_set_scores", "register_head",
]
