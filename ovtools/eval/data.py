"""Labelled classification data for ``ovtools eval`` / ``ovtools probe``, matched to a class space.

Accepts the standard layouts a user brings: an ImageFolder tree
(``ROOT/<class>/<image>``) or an image-caption CSV whose ``label`` column (or,
without one, ``caption`` column) names each image's class.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..datasets.readers import CaptionData, ImageFolderData, read_caption_csv, read_image_folder


@dataclass(frozen=True)
class LabelledImages:
    """Images with class ids.

    Attributes:
        paths: image files.
        targets: int64 (N,) class ids into ``class_names``.
        class_names: the dataset's own class names (folder names or CSV labels), sorted.
        source: the folder or CSV read (``None`` when built in memory).
    """

    paths: list[Path]
    targets: np.ndarray
    class_names: list[str]
    source: Path | None = None

    def __len__(self) -> int:
        return len(self.paths)


def as_labelled(data: ImageFolderData | CaptionData) -> LabelledImages:
    """An ImageFolder or caption-CSV reader object as :class:`LabelledImages` (folder names with ``_`` read as
    spaces; a CSV's ``label`` column, else its captions, as class names)."""
    if isinstance(data, ImageFolderData):
        return LabelledImages(list(data.paths), data.labels, [c.replace("_", " ") for c in data.classes], data.root)
    names = data.labels if data.labels is not None else data.captions
    classes = sorted(set(names))
    index = {c: i for i, c in enumerate(classes)}
    return LabelledImages(list(data.paths), np.array([index[n] for n in names], np.int64), classes, data.csv_path)


def read_labelled_images(path: str | Path) -> LabelledImages:
    """Read an ImageFolder tree or a CSV (``filepath,caption[,label]``).

    Raises:
        FileNotFoundError: nothing at ``path``.
        ValueError: malformed data (names the file and row).
    """
    path = Path(path)
    if path.is_dir():
        return as_labelled(read_image_folder(path))
    if path.suffix.lower() == ".csv":
        return as_labelled(read_caption_csv(path))
    if not path.exists():
        raise FileNotFoundError(f"dataset {path} does not exist")
    raise ValueError(f"dataset {path}: expected an ImageFolder directory or a .csv file")


def name_key(name: str) -> str:
    """How dataset class names are matched to class-space labels: case-insensitive, ``_`` read as a space,
    runs of white space as one (``"Traffic_Light"`` matches ``"traffic light"``)."""
    return " ".join(name.replace("_", " ").split()).casefold()


def map_to_space(data: LabelledImages, space_names: list[str]) -> np.ndarray:
    """Translate dataset class ids to class-space ids by name (:func:`name_key`).

    Returns:
        int64 (N,) targets indexing ``space_names``.

    Raises:
        ValueError: a dataset class has no class of that name in the space (all such names listed).
    """
    index = {name_key(n): i for i, n in enumerate(space_names)}
    missing = [c for c in data.class_names if name_key(c) not in index]
    if missing:
        raise ValueError(f"dataset classes not in the class space: {missing[:20]}"
                         f"{' ...' if len(missing) > 20 else ''}; class space has {space_names[:10]} ...")
    lut = np.array([index[name_key(c)] for c in data.class_names], np.int64)
    return lut[data.targets]
