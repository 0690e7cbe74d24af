"""What robotics scripts import: load once, call per frame, change classes without reloading.

    from ovtools.pipelines import ClassifyPipeline, DetectPipeline, Segment3DPipeline, SegmentPipeline
    det = DetectPipeline(labels="man in red shirt, dog")             # preset detect-default
    clf = ClassifyPipeline("classify-default", encoder=det.encoder)  # one model, two pipelines
    seg3d = Segment3DPipeline(labels="chair, table")                  # point clouds, RGB-D folders

One pipeline per head: :class:`ClassifyPipeline` (→ ``Classifications``),
:class:`DetectPipeline` (→ ``Detections``), :class:`SegmentPipeline` (→ ``Detections``
with masks) and :class:`Segment3DPipeline` (→ ``PointLabels``).

Presets live in ``pipelines/*.yaml`` (:func:`available_presets`); keyword
arguments override preset values.
"""

from .base import Pipeline
from .classify import ClassifyPipeline
from .detect import DetectPipeline
from .presets import available_presets, preset_path
from .segment import SegmentPipeline
from .segment3d import Segment3DPipeline

__all__ = [
    "ClassifyPipeline", "DetectPipeline", "Pipeline", "Segment3DPipeline",
    "SegmentPipeline", "available_presets", "preset_path",
]
