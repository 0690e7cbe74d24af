"""Decoding the images users actually send into RGB uint8 (H, W, 3).

Handles EXIF orientation (``ImageOps.exif_transpose``, in JPEG, PNG, WebP, TIFF and
AVIF alike), RGBA/LA/palette images with transparency (composited on white), 16-bit
images (rescaled to 8 bit), float and 32-bit integer images (their finite range
stretched to 0–255; NaN black), grayscale, CMYK, multi-frame files (animated
GIF/WebP/APNG, multi-page TIFF, MPO: the first frame), and very large
images (decoded at reduced size with JPEG draft mode where possible, so memory
stays bounded).  Every failure is an :class:`~ovtools.errors.ImageLoadError`
naming the file.
"""

from __future__ import annotations

import sys
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
from PIL import EpsImagePlugin, Image, ImageOps, UnidentifiedImageError, features

from ..errors import ImageLoadError

#: Pillow formats it identifies but cannot decode without a handler the user registers (BUFR, GRIB, HDF5 stubs),
#: at all (MPEG: size only), off Windows (WMF/EMF) or without Ghostscript (EPS); and Kodak PhotoCD, whose
#: ``.pcd`` suffix ovtools reads as a point cloud (:mod:`ovtools.io.ply`).
UNDECODABLE_FORMATS = frozenset({"BUFR", "GRIB", "HDF5", "MPEG", "PCD"})
#: formats whose decoder is an optional part of a Pillow build → the :func:`PIL.features.check` name
OPTIONAL_CODECS = {"JPEG2000": "jpg_2000", "WEBP": "webp", "AVIF": "avif"}


@lru_cache(maxsize=1)
def image_suffixes() -> frozenset[str]:
    """Lower-case file suffixes (``".jpg"``, ``".jfif"``, ``".avif"``, ...) of every format the decoder opens.

    Taken from Pillow's registry (:func:`PIL.Image.registered_extensions`, which includes plug-ins
    registered before the first call, e.g. a HEIF opener), keeping the formats Pillow can open
    (:data:`PIL.Image.OPEN`, plus MPO, which the JPEG plug-in opens) and dropping
    :data:`UNDECODABLE_FORMATS`, WMF/EMF off Windows, EPS without Ghostscript and the
    :data:`OPTIONAL_CODECS` this Pillow build lacks (JPEG 2000, WebP, AVIF).  Folder and
    glob inputs (:func:`ovtools.io.inputs.expand_image_inputs`) take files by these suffixes,
    compared case-insensitively.

    Returns:
        frozenset of suffixes with the leading dot, lower case.
    """
    registered = Image.registered_extensions()  # runs Image.init(): every plug-in is loaded
    skip = set(UNDECODABLE_FORMATS)
    if sys.platform != "win32":
        skip.add("WMF")
    if not EpsImagePlugin.has_ghostscript():
        skip.add("EPS")
    skip.update(fmt for fmt, codec in OPTIONAL_CODECS.items() if not features.check(codec))
    openable = (set(Image.OPEN) | {"MPO"}) - skip
    return frozenset(ext.lower() for ext, fmt in registered.items() if fmt in openable)


@dataclass(frozen=True)
class LoadedImage:
    """A decoded image.

    Attributes:
        pixels: RGB uint8 (H', W', 3), possibly downscaled to ``max_side``.
        original_size: ``(H, W)`` of the full, EXIF-corrected image; boxes are reported in this frame.
        path: the source file, if any.
    """

    pixels: np.ndarray
    original_size: tuple[int, int]
    path: Path | None = None

    @property
    def scale(self) -> tuple[float, float]:
        """``(sy, sx)``: multiply pixel coordinates of ``pixels`` by these to get original pixels."""
        h, w = self.pixels.shape[:2]
        return self.original_size[0] / h, self.original_size[1] / w


def _to_rgb(img: Image.Image) -> Image.Image:
    mode = img.mode
    if mode in ("RGBA", "LA", "PA") or (mode == "P" and "transparency" in img.info):
        rgba = img.convert("RGBA")
        bg = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(bg, rgba).convert("RGB")
    if mode in ("I", "I;16", "I;16B", "I;16L", "I;16N", "F"):
        a = np.asarray(img, dtype=np.float64)
        finite = np.isfinite(a)
        if mode == "F" or (mode == "I" and finite.any() and (a.min() < 0 or a.max() > 65535)):
            # float or 32-bit data (depth, scientific): stretch the finite range to 0-255; NaN and -inf
            # become black, +inf white (a NaN "no data" value must not turn the whole image to noise)
            lo, hi = (float(a[finite].min()), float(a[finite].max())) if finite.any() else (0.0, 1.0)
            a = (np.where(finite, a, np.where(a > 0, hi, lo)) - lo) / (hi - lo or 1.0) * 255.0
        else:
            hi = 65535.0 if mode.startswith("I;16") or (mode == "I" and a.max() > 255) else 255.0
            a = a / hi * 255.0
        return Image.fromarray(np.clip(a + 0.5, 0, 255).astype(np.uint8), "L").convert("RGB")
    if mode != "RGB":
        return img.convert("RGB")
    return img


def from_pil(img: Image.Image, max_side: int | None = None, path: Path | None = None) -> LoadedImage:
    """Convert an open PIL image (first frame, EXIF-corrected, RGB) to a :class:`LoadedImage`."""
    if getattr(img, "n_frames", 1) > 1:
        img.seek(0)
    full = _oriented_size(img)
    img = ImageOps.exif_transpose(img)
    img = _to_rgb(img)
    if max_side and max(img.size) > max_side:
        img = img.copy()
        img.thumbnail((max_side, max_side), Image.Resampling.LANCZOS)
    pixels = np.array(img, dtype=np.uint8)  # a writable copy (np.asarray of a PIL image is read-only)
    if pixels.ndim != 3 or pixels.shape[2] != 3:
        raise ImageLoadError(f"{path or 'image'}: decoded to unexpected shape {pixels.shape}")
    return LoadedImage(np.ascontiguousarray(pixels), full, path)


def _oriented_size(img: Image.Image) -> tuple[int, int]:
    """(H, W) of the full-resolution image after EXIF rotation (before any draft scaling)."""
    w, h = getattr(img, "_size_before_draft", img.size)
    try:
        orientation = img.getexif().get(0x0112, 1)
    except Exception:
        orientation = 1
    return (w, h) if orientation in (5, 6, 7, 8) else (h, w)


def load_image(path: str | Path, max_side: int | None = None) -> LoadedImage:
    """Read an image file as RGB uint8.

    Args:
        path: image file (any format Pillow reads).
        max_side: if set, the returned ``pixels`` are downscaled so that their longer side is at
            most this many pixels; ``original_size`` still gives the full size.

    Returns:
        :class:`LoadedImage`.

    Raises:
        ImageLoadError: missing, empty, truncated or corrupt file, not an image, or larger than
            Pillow's decompression-bomb limit; the message names the file.
    """
    path = Path(path)
    if not path.exists():
        raise ImageLoadError(f"{path}: no such file")
    if path.is_dir():
        raise ImageLoadError(f"{path}: is a folder, not an image")
    if path.stat().st_size == 0:
        raise ImageLoadError(f"{path}: empty file (0 bytes)")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as img:
                size_before = img.size
                img._size_before_draft = size_before  # type: ignore[attr-defined]
                if max_side and img.format == "JPEG":
                    img.draft("RGB", (max_side, max_side))  # decode at 1/2..1/8 scale: bounded memory
                img.load()
                return from_pil(img, max_side, path)
    except UnidentifiedImageError:
        raise ImageLoadError(f"{path}: not an image (Pillow cannot identify the format)") from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
        raise ImageLoadError(f"{path}: too large to decode safely ({e})") from None
    except (OSError, SyntaxError, ValueError, EOFError) as e:
        raise ImageLoadError(f"{path}: cannot decode image ({e})") from None


def as_loaded(image, max_side: int | None = None) -> LoadedImage:
    """Accept a path, a PIL image, a :class:`LoadedImage` or an RGB uint8 (H, W, 3) array.

    Raises:
        ImageLoadError: a path that cannot be read.
        TypeError: an unsupported object.
        ValueError: an array that is not (H, W, 3) / (H, W) uint8 or is empty.
    """
    if isinstance(image, LoadedImage):
        return image
    if isinstance(image, (str, Path)):
        return load_image(image, max_side)
    if isinstance(image, Image.Image):
        return from_pil(image, max_side)
    if isinstance(image, np.ndarray):
        a = image
        if a.ndim == 2:
            a = np.repeat(a[:, :, None], 3, axis=2)
        if a.ndim != 3 or a.shape[2] not in (3, 4) or a.shape[0] == 0 or a.shape[1] == 0:
            raise ValueError(f"image array must be RGB (H, W, 3) uint8 with H, W > 0, got shape {image.shape}")
        if a.dtype != np.uint8:
            raise ValueError(f"image array must be uint8 in [0, 255], got dtype {a.dtype}")
        a = np.ascontiguousarray(a[:, :, :3])
        full = a.shape[:2]
        if max_side and max(full) > max_side:
            pil = Image.fromarray(a)
            pil.thumbnail((max_side, max_side), Image.Resampling.LANCZOS)
            a = np.array(pil)
        return LoadedImage(a, (int(full[0]), int(full[1])))
    raise TypeError(f"expected an image path, PIL image or numpy array, got {type(image).__name__}")


def error_entry(path: str | Path, error: BaseException | str) -> dict:
    """The ``errors`` entry of a skipped image: ``{"image": path, "error": reason}`` (the reason without
    a leading ``"<path>: "``, which :class:`~ovtools.errors.ImageLoadError` messages carry)."""
    msg = str(error)
    prefix = f"{path}: "
    return {"image": str(path), "error": msg[len(prefix):] if msg.startswith(prefix) else msg}


def load_batches(paths: Sequence[Path], batch_size: int, max_side: int | None, errors: list[dict],
                 progress: Callable[[int], None] | None = None,
                 on_error: Callable[[dict], None] | None = None) -> Iterator[list[tuple[int, LoadedImage]]]:
    """Decode ``paths`` in chunks of ``batch_size``; an unreadable file is appended to ``errors`` (and passed to
    ``on_error``) and counted on ``progress``; the caller counts the rest.

    Yields:
        Non-empty lists of ``(index into paths, LoadedImage)``.
    """
    for start in range(0, len(paths), batch_size):
        loaded = []
        for i in range(start, min(start + batch_size, len(paths))):
            try:
                loaded.append((i, load_image(paths[i], max_side)))
            except Exception as e:  # noqa: BLE001 - ImageLoadError, or anything else a broken file triggers
                errors.append(error_entry(paths[i], e))
                if on_error is not None:
                    on_error(errors[-1])
                if progress is not None:
                    progress(1)
        if loaded:
            yield loaded
