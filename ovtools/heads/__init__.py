"""Heads: take CLIP features and class embeddings, return a result structure.

One registry for every head::

    head = create_head("detect", encoder, config=DetectConfig(scoring="dense"))
    detections = head(image, class_embeddings)

Built-ins: ``"classify"`` (:class:`~ovtools.heads.classify.ClassifyHead`),
``"detect"`` (:class:`~ovtools.heads.detect.DetectHead`), ``"segment"``
(:class:`~ovtools.heads.segment.SegmentHead`) and ``"segment3d"``
(:class:`~ovtools.heads.segment3d.Segment3DHead`).  Every head scores
against labels *and* negatives with :func:`~ovtools.heads.scoring.open_set_scores`.
"""

from __future__ import annotations

from typing import Any

from ..registry import Registry

_REGISTRY = Registry("head")

#: Class decorator adding a head under a name (``ValueError`` if the name is taken).
register_head = _REGISTRY.register


def available_heads() -> list[str]:
    """Sorted names of the registered heads."""
    return _REGISTRY.names()


def create_head(name: str, *args: Any, **kwargs: Any):
    """Build a registered head.

    Args:
        name: registry key, e.g. ``"classify"`` or ``"detect"``.
        *args, **kwargs: the head's constructor arguments (the encoder first).

    Returns:
        The head instance.

    Raises:
        UnknownNameError: ``name`` is not registered; the message lists the valid names.
    """
    return _REGISTRY.create(name, *args, **kwargs)


from .classify import ClassifyHead  # noqa: E402
from .detect import DetectConfig, DetectHead  # noqa: E402
from .scoring import OpenSetScores, open_set_scores  # noqa: E402
from .segment import SegmentConfig, SegmentHead  # noqa: E402
from .segment3d import Segment3DConfig, Segment3DHead  # noqa: E402

__all__ = [
    "ClassifyHead", "DetectConfig", "DetectHead", "OpenSetScores", "available_heads", "create_head",
    "open_set_scores", "register_head", "SegmentConfig", "SegmentHead", "Segment3DConfig",
    "Segment3DHead",
]
