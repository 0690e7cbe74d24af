"""Semantic label maps as PNG files (``ovtools segment --save-labels labels.png``).

Pixel values: ``0`` is background (no label), ``k`` (1..C) is class id ``k - 1`` of the
run's class space (the ``class_names`` list of the JSON output).

* C <= 255: an 8-bit **palette** PNG ("P" mode).  Palette entry 0 is black; entry ``k`` is
  :func:`ovtools.io.vis.class_color` of class ``k - 1`` (the colours of the overlays), so
  the file is readable both as class indices (``np.asarray(Image.open(p))``) and as a
  coloured picture in any viewer.
* C > 255: a 16-bit grayscale PNG ("I;16") with the same values and no palette.
"""

from __future__ import annotations

import io
from collections.abc import Iterable
from pathlib import Path

import numpy as np
from PIL import Image

from .vis import class_color
from .writers import atomic_write_bytes


def label_png(label_map: np.ndarray, num_classes: int) -> Image.Image:
    """PIL image of a label map (values as in the module docs).

    Args:
        label_map: int (H, W) class ids, ``-1`` = background (:meth:`Detections.label_map`).
        num_classes: C, the size of the class space.

    Returns:
        A "P" image (C <= 255) or an "I;16" image.

    Raises:
        ValueError: ``label_map`` is not 2-D or holds ids outside ``[-1, C)``.
    """
    lm = np.asarray(label_map)
    if lm.ndim != 2:
        raise ValueError(f"label_map must have shape (H, W), got {lm.shape}")
    if lm.size and (lm.min() < -1 or lm.max() >= num_classes):
        raise ValueError(f"label_map holds ids outside [-1, {num_classes}): {int(lm.min())}..{int(lm.max())}")
    values = lm.astype(np.int64) + 1
    if num_classes <= 255:
        img = Image.fromarray(values.astype(np.uint8), mode="P")
        palette = [0, 0, 0] + [v for k in range(num_classes) for v in class_color(k)]
        img.putpalette(palette + [0] * (768 - len(palette)))
        return img
    if num_classes > 65535:
        raise ValueError(f"a label PNG holds at most 65535 classes, got {num_classes}")
    h, w = values.shape
    return Image.frombytes("I;16", (w, h), values.astype("<u2").tobytes())


def save_label_png(label_map: np.ndarray, num_classes: int, path: str | Path,
                   inputs: Iterable[str | Path] = ()) -> Path:
    """Write :func:`label_png` atomically to ``path``.

    Raises:
        OutputPathError: ``path`` is one of ``inputs`` or a folder.
        ValueError: see :func:`label_png`.
    """
    buf = io.BytesIO()
    label_png(label_map, num_classes).save(buf, format="PNG")
    return atomic_write_bytes(path, buf.getvalue(), inputs)


def read_label_png(path: str | Path) -> np.ndarray:
    """int32 (H, W) class ids (``-1`` = background) from a PNG written by :func:`save_label_png`."""
    with Image.open(path) as img:
        return np.asarray(img).astype(np.int32) - 1
