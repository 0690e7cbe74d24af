"""Dataset readers: ImageFolder trees, image-caption CSVs, COCO instance files (:mod:`ovtools.datasets.coco`).

Readers return file paths and labels only; images are decoded by whoever
consumes them (:func:`ovtools.io.images.load_image`).
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..io.inputs import files_in, is_image_file
from .coco import CocoData, read_coco

__all__ = ["CaptionData", "CocoData", "ImageFolderData", "read_caption_csv", "read_coco", "read_image_folder"]


@dataclass(frozen=True)
class ImageFolderData:
    """An ImageFolder tree ``ROOT/<class name>/**/<image>``.

    Attributes:
        root: the folder.
        paths: image files, sorted by class then path.
        labels: int64 (N,) index into ``classes`` per path.
        classes: class names (sub-folder names holding at least one image), sorted.
    """

    root: Path
    paths: list[Path]
    labels: np.ndarray
    classes: list[str]

    def __len__(self) -> int:
        return len(self.paths)


def read_image_folder(root: str | Path) -> ImageFolderData:
    """List an ImageFolder tree (images found recursively under each class folder).

    Raises:
        FileNotFoundError: ``root`` is not a folder.
        ValueError: no class folder holds an image.
    """
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"image folder {root} does not exist or is not a folder")
    classes, paths, labels = [], [], []
    for sub in sorted(p for p in root.iterdir() if p.is_dir()):
        files = [f for f in files_in(sub, recursive=True) if is_image_file(f)]
        if not files:
            continue
        labels.extend([len(classes)] * len(files))
        classes.append(sub.name)
        paths.extend(files)
    if not paths:
        raise ValueError(f"image folder {root}: no sub-folder holds an image (a file with a suffix Pillow opens: "
                         ".jpg, .png, .webp, ...)")
    return ImageFolderData(root, paths, np.asarray(labels, dtype=np.int64), classes)


@dataclass(frozen=True)
class CaptionData:
    """Rows of an image-caption CSV.

    Attributes:
        csv_path: the file.
        paths: image files (relative entries resolved against the CSV's folder).
        captions: one caption per row.
        labels: the label each caption names (column ``label``), or ``None`` when absent.
        image_labels: labels each row's image carries (column ``image_labels``,
            ``|``-separated, primary first), or ``None`` when absent.
    """

    csv_path: Path
    paths: list[Path]
    captions: list[str]
    labels: list[str] | None = None
    image_labels: list[tuple[str, ...]] | None = None

    def __len__(self) -> int:
        return len(self.paths)


def read_caption_csv(path: str | Path) -> CaptionData:
    """Read a CSV with header ``filepath,caption`` (optional ``label``, ``image_labels``; other columns ignored).

    Raises:
        FileNotFoundError: no such file.
        ValueError: a required column is missing, a row has an empty path or
            caption, or the file has no rows; the message names the file and row.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"caption CSV {path} does not exist")
    base = path.parent
    paths, captions, labels, image_labels = [], [], [], []
    with open(path, newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        cols = reader.fieldnames or []
        missing = [c for c in ("filepath", "caption") if c not in cols]
        if missing:
            raise ValueError(f"{path}: missing column(s) {missing}; header is {cols}, expected filepath,caption")
        has_label, has_image_labels = "label" in cols, "image_labels" in cols
        for line, row in enumerate(reader, start=2):
            fp, cap = (row.get("filepath") or "").strip(), (row.get("caption") or "").strip()
            if not fp or not cap:
                raise ValueError(f"{path}:{line}: empty filepath or caption")
            p = Path(fp)
            paths.append(p if p.is_absolute() else base / p)
            captions.append(cap)
            if has_label:
                labels.append((row.get("label") or "").strip() or cap)
            if has_image_labels:
                image_labels.append(tuple(s.strip() for s in (row.get("image_labels") or "").split("|") if s.strip()))
    if not paths:
        raise ValueError(f"{path}: no rows")
    return CaptionData(path, paths, captions, labels if has_label else None,
                       image_labels if has_image_labels else None)
