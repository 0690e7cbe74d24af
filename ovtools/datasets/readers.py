"""Dataset readers: ImageFolder trees, image-caption CSVs, COCO instance files.

Readers return file paths and labels only; images are decoded by whoever
consumes them (:func:`ovtools.io.images.load_image`).
"""

from __future__ import annotations

import contextlib
import csv
import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from pycocotools.coco import COCO

from ..io.inputs import files_in, is_image_file


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


@dataclass(frozen=True)
class CocoData:
    """A COCO instances file and where its images are.

    Attributes:
        annotation_file: the JSON file.
        coco: the ``pycocotools.coco.COCO`` index.
        image_ids: image ids, sorted.
        paths: image file per id (``file_name`` resolved against ``image_dir``).
        category_ids: category ids, sorted.
        categories: category names, in ``category_ids`` order.
    """

    annotation_file: Path
    coco: object
    image_ids: list[int]
    paths: list[Path]
    category_ids: list[int]
    categories: list[str]

    def __len__(self) -> int:
        return len(self.image_ids)


def read_coco(annotation_file: str | Path, image_dir: str | Path | None = None) -> CocoData:
    """Load COCO instances with pycocotools.

    Args:
        annotation_file: COCO JSON.
        image_dir: folder ``file_name`` is relative to (default: the JSON's folder).

    Raises:
        FileNotFoundError: the JSON does not exist.
        ValueError: the JSON is not a COCO instances file (names the file).
    """

    annotation_file = Path(annotation_file)
    if not annotation_file.is_file():
        raise FileNotFoundError(f"COCO annotation file {annotation_file} does not exist")
    try:
        with contextlib.redirect_stdout(io.StringIO()):  # pycocotools prints progress
            coco = COCO(str(annotation_file))
    except Exception as e:  # pycocotools asserts, indexes and converts without checks
        raise ValueError(f"{annotation_file}: not a COCO instances file ({type(e).__name__}: {e})") from None
    if "images" not in coco.dataset or "categories" not in coco.dataset:
        raise ValueError(f"{annotation_file}: COCO file needs 'images' and 'categories'")
    _check_coco(coco.dataset, annotation_file)
    base = Path(image_dir) if image_dir is not None else annotation_file.parent
    ids = sorted(coco.getImgIds())
    cat_ids = sorted(coco.getCatIds())
    return CocoData(annotation_file, coco, ids, [base / coco.imgs[i]["file_name"] for i in ids], cat_ids,
                    [coco.cats[c]["name"] for c in cat_ids])


def _check_coco(d: dict, path: Path) -> None:
    """Raise ``ValueError`` naming the file and entry for what pycocotools would choke on later."""
    cats = set()
    for i, c in enumerate(d["categories"]):
        if not isinstance(c, dict) or "id" not in c or not isinstance(c.get("name"), str):
            raise ValueError(f"{path}: categories[{i}] needs an 'id' and a 'name'")
        cats.add(c["id"])
    for i, im in enumerate(d["images"]):
        if not isinstance(im, dict) or "id" not in im or not isinstance(im.get("file_name"), str):
            raise ValueError(f"{path}: images[{i}] needs an 'id' and a 'file_name'")
    for i, a in enumerate(d.get("annotations", [])):
        box = a.get("bbox") if isinstance(a, dict) else None
        if (not isinstance(box, list) or len(box) != 4
                or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in box)
                or box[2] < 0 or box[3] < 0):
            raise ValueError(f"{path}: annotations[{i}].bbox must be [x, y, w, h] numbers with w, h >= 0, got {box!r}")
        if a.get("category_id") not in cats:
            raise ValueError(f"{path}: annotations[{i}].category_id {a.get('category_id')!r} is not in categories")
