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
import math
import numbers
import os
from collections.abc import Mapping
from typing import Any

import numpy as np

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
        TypeError: an option the source does not have, or of the wrong type (see :func:`check_options`).
        ValueError: an option out of range (the source's own check; its message starts with the source's name).
    """
    factory = PROPOSALS.get(name)
    check_options(name, factory, kwargs)
    if default_device is not None and "device" not in kwargs and takes_device(factory):
        kwargs["device"] = default_device
    return factory(**kwargs)


def takes_device(factory: Any) -> bool:
    """Whether ``factory`` (a proposal source class or function) accepts a ``device`` keyword."""
    try:
        return "device" in inspect.signature(factory).parameters
    except (TypeError, ValueError):  # a builtin or C callable without a signature
        return False


def _matches(value: Any, kind: str) -> bool | None:
    """Whether ``value`` is of the annotated ``kind`` (one ``|``-part of an annotation string); ``None``: unknown kind."""
    def real(v: Any) -> bool:  # numpy scalars too
        return isinstance(v, numbers.Real) and not isinstance(v, (bool, np.bool_))

    def sequence(v: Any) -> bool:  # lists, tuples and 1-D numpy arrays (Python callers pass np.array scales)
        return isinstance(v, (list, tuple)) or (isinstance(v, np.ndarray) and v.ndim == 1)

    checks = {
        "None": value is None,
        "int": isinstance(value, numbers.Integral) and not isinstance(value, (bool, np.bool_)),
        "float": real(value),
        "bool": isinstance(value, (bool, np.bool_)),
        "str": isinstance(value, str),
        "Path": isinstance(value, (str, os.PathLike)),
        "dict": isinstance(value, Mapping),
        "Sequence[float]": sequence(value) and all(real(v) for v in value),
        "Sequence[str]": sequence(value) and all(isinstance(v, str) for v in value),
    }
    return checks.get(kind.strip())


def check_number(label: str, value: Any, *, low: float | None = None, high: float | None = None,
                 low_open: bool = False, infinite: bool = False, none: bool = False) -> Any:
    """Check a numeric option's range before a source is built (its type is :func:`check_options`' job).

    Args:
        label: how the message names the option, e.g. ``"segments: dedup_iou"``.
        value: the option's value.
        low: smallest allowed value (exclusive with ``low_open``); ``None``: no lower bound.
        high: largest allowed value (inclusive); ``None``: no upper bound.
        infinite: allow ``inf`` (e.g. "no limit"); NaN is never allowed.
        none: allow ``None``.

    Returns:
        ``value`` unchanged.

    Raises:
        ValueError: ``value`` is NaN, infinite (unless allowed), out of range or not a number.
    """
    if value is None and none:
        return value
    ok = isinstance(value, numbers.Real) and not isinstance(value, (bool, np.bool_))
    if ok and not isinstance(value, numbers.Integral):  # ints are finite (and may not fit a float)
        ok = not math.isnan(value) and (infinite or math.isfinite(value))
    ok = ok and (low is None or (value > low if low_open else value >= low)) and (high is None or value <= high)
    if not ok:
        bounds = [f"{'>' if low_open else '>='} {low:g}" if low is not None else "",
                  f"<= {high:g}" if high is not None else ""]
        want = " and ".join(b for b in bounds if b)
        kind = "a number" if infinite else "a finite number"
        raise ValueError(f"{label} must be {kind} {want}{' or None' if none else ''}, got {value!r}")
    return value


def check_options(name: str, factory: Any, options: Mapping[str, Any]) -> None:
    """Check ``options`` against the parameters of proposal source ``factory`` before building it.

    Every option must be a parameter (unless the factory takes ``**kwargs``), and a value must match
    the parameter's annotation where it is built of ``int``, ``float``, ``bool``, ``str``, ``dict``,
    ``None``, ``Sequence[float]`` and ``Sequence[str]`` (``1.5`` or ``true`` for an ``int`` option is an
    error, not 1; other annotations are left to the source).  Options usually come from a preset's
    ``proposal_options``, so the message names the source, the option and the value.

    Raises:
        TypeError: an unknown option or a value of the wrong type.
    """
    try:
        params = inspect.signature(factory).parameters
    except (TypeError, ValueError):  # no signature to check against
        return
    if any(p.kind is p.VAR_KEYWORD for p in params.values()):
        return
    names = [k for k, p in params.items() if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]
    for key, value in options.items():
        if key not in names:  # also a *args or positional-only name, which no keyword can fill
            raise TypeError(f"proposal source {name!r} has no option {key!r}; its options: {names}")
        annotation = params[key].annotation
        if not isinstance(annotation, str):
            annotation = getattr(annotation, "__name__", str(annotation))
        verdicts = [_matches(value, kind) for kind in annotation.split("|")]
        if None not in verdicts and not any(verdicts):
            raise TypeError(f"proposal source {name!r}: option {key}={value!r} must be {annotation}")
