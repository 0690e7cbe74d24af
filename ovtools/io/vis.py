"""Annotated images: boxes (and masks) with label and score, or a top-k banner, saved as PNG.

Drawing uses Pillow's ``ImageDraw`` with the bundled scalable font; line width
and font size scale with the image (about 3 % of the shorter side, at least
12 px), so labels stay readable on both thumbnails and 24-megapixel photos.
Each class gets its own colour (evenly spread hues by class id), the same in
every image of a run.
"""

from __future__ import annotations

import colorsys
import io
from functools import lru_cache
from pathlib import Path
from typing import Iterable

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from ..structures import Classifications, Detections
from .images import LoadedImage, as_loaded
from .writers import atomic_write_bytes

_GOLDEN = 0.618033988749895


def class_color(class_id: int) -> tuple[int, int, int]:
    """A distinct, saturated RGB colour for a class id (stable across images and runs).

    Args:
        class_id: class index (``-1`` → grey, for "none of these").

    Returns:
        ``(r, g, b)`` uint8 values.
    """
    if class_id < 0:
        return (128, 128, 128)
    r, g, b = colorsys.hsv_to_rgb((0.03 + class_id * _GOLDEN) % 1.0, 0.85, 0.95)
    return int(r * 255), int(g * 255), int(b * 255)


def _text_color(bg: tuple[int, int, int]) -> tuple[int, int, int]:
    luma = 0.299 * bg[0] + 0.587 * bg[1] + 0.114 * bg[2]
    return (0, 0, 0) if luma > 140 else (255, 255, 255)


@lru_cache(maxsize=32)
def _font(size: int) -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    try:
        return ImageFont.load_default(size=size)
    except (TypeError, OSError, ImportError):  # Pillow without FreeType: fixed-size bitmap font
        return ImageFont.load_default()


def font_size_for(height: int, width: int) -> int:
    """Font size in pixels for an image of ``height`` × ``width`` pixels (≥ 12, ≈ 3 % of the shorter side)."""
    return max(12, round(0.03 * min(height, width)), round(0.015 * max(height, width)))


def _canvas(image) -> tuple[Image.Image, LoadedImage]:
    loaded = as_loaded(image)
    return Image.fromarray(loaded.pixels).convert("RGB"), loaded


def _label_box(draw: ImageDraw.ImageDraw, xy: tuple[float, float], text: str, font,
               color: tuple[int, int, int], canvas_size: tuple[int, int]) -> None:
    """Filled label tag whose bottom-left corner sits at ``xy`` (moved inside the canvas)."""
    x0, y0, x1, y1 = draw.textbbox((0, 0), text, font=font)
    pad = max(2, (y1 - y0) // 5)
    tw, th = x1 - x0 + 2 * pad, y1 - y0 + 2 * pad
    w, h = canvas_size
    x = min(max(0.0, xy[0]), max(0.0, w - tw))
    y = xy[1] - th if xy[1] - th >= 0 else xy[1]  # above the box, or inside it at the top edge
    y = min(max(0.0, y), max(0.0, h - th))
    draw.rectangle([x, y, x + tw, y + th], fill=color)
    draw.text((x + pad - x0, y + pad - y0), text, font=font, fill=_text_color(color))


def draw_detections(image, detections: Detections) -> Image.Image:
    """Draw boxes with ``label score`` tags, over translucent class-coloured masks when there are masks.

    Args:
        image: RGB uint8 (H, W, 3) array, PIL image, path or :class:`LoadedImage`.  The
            drawing is made on its pixels (a :class:`LoadedImage` decoded with ``max_side``
            is drawn at its reduced size).
        detections: boxes in pixels of the *original* image (``LoadedImage.original_size``);
            they are rescaled to the drawn pixels.

    Returns:
        A new RGB PIL image; the input is not modified.

    Raises:
        ImageLoadError / TypeError / ValueError: see :func:`ovtools.io.images.as_loaded`.
    """
    canvas, loaded = _canvas(image)
    sy, sx = loaded.scale
    w, h = canvas.size
    order = np.argsort(detections.confidence, kind="stable")  # best drawn last, on top
    if detections.mask is not None and len(detections):
        canvas = _blend_masks(canvas, detections, order)
    draw = ImageDraw.Draw(canvas)
    font = _font(font_size_for(h, w))
    width = max(1, round(min(h, w) / 200))
    for i in order.tolist():
        x0, y0, x1, y1 = detections.xyxy[i].tolist()
        box = [x0 / sx, y0 / sy, max(x0 / sx, x1 / sx - 1), max(y0 / sy, y1 / sy - 1)]
        cid = int(detections.class_id[i])
        color = class_color(cid)
        draw.rectangle(box, outline=color, width=width)
        name = detections.class_names[cid] if detections.class_names else str(cid)
        _label_box(draw, (box[0], box[1]), f"{name} {detections.confidence[i]:.2f}", font, color, (w, h))
    return canvas


def _blend_masks(canvas: Image.Image, detections: Detections, order: np.ndarray, alpha: float = 0.45) -> Image.Image:
    """Tint each mask's pixels with its class colour (masks resized to the canvas, nearest)."""
    w, h = canvas.size
    px = np.asarray(canvas).astype(np.float32)
    for i in order.tolist():
        m = detections.mask[i]
        if m.shape != (h, w):
            m = np.asarray(Image.fromarray(m).resize((w, h), Image.Resampling.NEAREST))
        px[m] = (1 - alpha) * px[m] + alpha * np.asarray(class_color(int(detections.class_id[i])), np.float32)
    return Image.fromarray(px.round().clip(0, 255).astype(np.uint8))


def draw_classifications(image, classifications: Classifications, index: int = 0) -> Image.Image:
    """Add a banner with the top-k labels and probabilities above the image.

    Args:
        image: RGB uint8 (H, W, 3) array, PIL image, path or :class:`LoadedImage`.
        classifications: the batch's classifications.
        index: which row of ``classifications`` belongs to ``image``.

    Returns:
        A new RGB PIL image, taller than the input by the banner's height.

    Raises:
        IndexError: ``index`` is outside the batch.
    """
    if not 0 <= index < len(classifications):
        raise IndexError(f"index {index} outside a batch of {len(classifications)} classifications")
    picture, _ = _canvas(image)
    w, h = picture.size
    # The banner is at least 320 px wide so that text stays legible on thin images (1×N).
    bw = max(w, 320)
    font = _font(font_size_for(max(h, 240), bw))
    lines = []
    for rank, (cid, p) in enumerate(zip(classifications.class_id[index].tolist(),
                                        classifications.confidence[index].tolist())):
        name = "none of these" if cid < 0 else classifications.class_names[cid]
        lines.append((f"{rank + 1}. {name}  {p:.1%}", class_color(cid)))
    if bool(classifications.rejected[index]):
        lines.insert(0, ("rejected: no label beats the negatives", (128, 128, 128)))
    probe = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    line_h = probe.textbbox((0, 0), "Ag", font=font)[3] + max(2, font.size // 4 if hasattr(font, "size") else 3)
    pad = max(4, line_h // 3)
    banner_h = pad * 2 + line_h * len(lines)
    out = Image.new("RGB", (bw, banner_h + h), (24, 24, 24))
    out.paste(picture, ((bw - w) // 2, banner_h))
    draw = ImageDraw.Draw(out)
    sw = max(4, line_h // 2)
    for j, (text, color) in enumerate(lines):
        y = pad + j * line_h
        draw.rectangle([pad, y + line_h // 4, pad + sw, y + line_h // 4 + sw], fill=color)
        draw.text((pad * 2 + sw, y), text, font=font, fill=(240, 240, 240))
    return out


def save_png(image: Image.Image, path: str | Path, inputs: Iterable[str | Path] = ()) -> Path:
    """Save a PIL image as PNG atomically.

    Args:
        image: the picture.
        path: destination (``.png`` is not enforced, the content is PNG).
        inputs: input files that must not be overwritten.

    Returns:
        The destination path.

    Raises:
        OutputPathError: ``path`` is an input or a folder.
    """
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    return atomic_write_bytes(path, buf.getvalue(), inputs)


def vis_path_for(image_path: str | Path, folder: str | Path, used: set[str] | None = None, tag: str = "") -> Path:
    """File name in ``folder`` for the visualisation of ``image_path`` (``a.jpg`` → ``a<tag>.png``;
    ``a_1<tag>.png``, ``a_2<tag>.png``, ... when the name was ``used`` already; updates ``used``)."""
    stem = Path(image_path).stem or "image"
    name, k = f"{stem}{tag}.png", 0
    while used is not None and name in used:
        k += 1
        name = f"{stem}_{k}{tag}.png"
    if used is not None:
        used.add(name)
    return Path(folder) / name
