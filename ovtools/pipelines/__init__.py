"""What robotics scripts import: load once, call per frame, change classes without reloading.

    from ovtools.pipelines import ClassifyPipeline, DetectPipeline, Segment3DPipeline, SegmentPipeline
    det = DetectPipeline(labels="man in red shirt, dog")             # preset detect-default
    clf = ClassifyPipeline("classify-default", encoder=det.encoder)  # one model, two pipelines
    seg3d = Segment3DPipeline(labels="chair, table")                  # point clouds, RGB-D folders
    Toy = pipeline_class("toy")                                      # a head added by a plug-in

One pipeline per head: :class:`ClassifyPipeline` (→ ``Classifications``),
:class:`DetectPipeline` (→ ``Detections``), :class:`SegmentPipeline` (→ ``Detections``
with masks) and :class:`Segment3DPipeline` (→ ``PointLabels``); :func:`pipeline_class` gives
the pipeline of any registered head.

Presets live in ``pipelines/*.yaml`` (:func:`available_presets`); keyword
arguments override preset values.
"""

from __future__ import annotations

from ..heads.registry import head_spec
from .base import Pipeline
from .image import ClassifyPipeline, DetectPipeline, ImagePipeline, SegmentPipeline
from .presets import CommonConfig, available_presets, preset_path
from .segment3d import Segment3DPipeline

_BUILT_IN: dict[str, type[Pipeline]] = {
    p.head_name: p for p in (ClassifyPipeline, DetectPipeline, SegmentPipeline, Segment3DPipeline)}


def pipeline_class(name: str) -> type[Pipeline]:
    """The pipeline class of a registered head: a built-in one, or a generic
    :class:`ImagePipeline` for an image head added by a plug-in.

    Raises:
        UnknownNameError: no head of that name (the message lists the registered ones).
        ValueError: a plug-in head whose inputs are not images (it must bring its own pipeline).
    """
    if name in _BUILT_IN:
        return _BUILT_IN[name]
    spec = head_spec(name)
    if spec.inputs != "images":
        raise ValueError(f"head {name!r} takes {spec.inputs} inputs; only image heads get a generic pipeline")
    camel = "".join(part.capitalize() for part in name.replace("-", "_").split("_"))
    cls = type(f"{camel}Pipeline", (ImagePipeline,), {"head_name": name, "__doc__": spec.summary,
                                                      "__module__": __name__})
    _BUILT_IN[name] = cls
    return cls


__all__ = [
    "ClassifyPipeline", "CommonConfig", "DetectPipeline", "ImagePipeline", "Pipeline", "Segment3DPipeline",
    "SegmentPipeline", "available_presets", "pipeline_class", "preset_path",
]
