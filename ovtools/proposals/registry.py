"""The proposal-source registry (plug-ins through the ``ovtools.proposals`` entry-point group).

A proposal source is a callable object built with keyword options::

    source = create_proposals("windows", scales=(0.2, 0.4), overlap=0.5)
    boxes = source(image)        # RGB uint8 (H, W, 3) -> float32 (N, 4) xyxy pixels

Box sources return float32 ``(N, 4)`` boxes ``x_min, y_min, x_max, y_max`` in
pixel coordinates of the array they were given (origin top-left, inside
``[0, W] x [0, H]``), possibly ``(0, 4)``.  Mask sources have the class
attribute ``output = "masks"`` and return bool ``(N, H, W)`` masks at the
given array's size, best first, possibly ``(0, H, W)``.  Sources are
deterministic.
"""

from __future__ import annotations

import inspect
from typing import Any

from ..registry import Registry

PROPOSALS = Registry("proposal source", group="ovtools.proposals")

#: Class decorator adding a proposal source under a name (``ValueError`` if the name is taken).
register_proposals = PROPOSALS.register


def available_proposals(output: str | None = None) -> list[str]:
    """Sorted names of the registered proposal sources (plug-ins included).

    Args:
        output: ``"boxes"`` or ``"masks"`` to list only sources of that kind; ``None``: all.
    """
    names = PROPOSALS.names()
    if output is None:
        return names
    return [n for n in names if getattr(PROPOSALS.get(n), "output", "boxes") == output]


def create_proposals(name: str, *, default_device: Any = None, **kwargs: Any):
    """Build a registered proposal source.

    Args:
        name: registry key, e.g. ``"windows"``, ``"segments"``, ``"hybrid"``, ``"regions"``, ``"sam"``.
        default_device: where a source that runs a network (one whose constructor takes ``device``,
            such as ``"sam"``) runs when ``kwargs`` names no ``device``: the heads pass their encoder's
            device, so Segment Anything runs on the GPU the CLIP encoder runs on.  Ignored by the
            other sources.
        **kwargs: options of that source's constructor.

    Returns:
        A callable ``source(image: np.ndarray (H, W, 3) uint8)`` → float32 (N, 4) boxes or bool (N, H, W) masks.

    Raises:
        UnknownNameError: ``name`` is not registered; the message lists the valid names.
        TypeError / ValueError: invalid options for that source.
    """
    factory = PROPOSALS.get(name)
    if default_device is not None and "device" not in kwargs and takes_device(factory):
        kwargs["device"] = default_device
    return factory(**kwargs)


def takes_device(factory: Any) -> bool:
    """Whether ``factory`` (a proposal source class or function) accepts a ``device`` keyword."""
    try:
        return "device" in inspect.signature(factory).parameters
    except (TypeError, ValueError):  # a builtin or C callable without a signature
        return False
