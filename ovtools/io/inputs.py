"""Image arguments as users give them — files, folders, glob patterns — turned into the files to process.

A folder or a pattern takes every file whose suffix (case-insensitive) is one the image decoder
opens (:func:`~ovtools.io.images.image_suffixes`: Pillow's registered formats, ``.jpg``, ``.JPG``,
``.jfif``, ``.jpe``, ``.avif``, ``.tif``, ...); other files found there are returned as
``skipped`` (so a caller can say how many non-images it ignored: "no errors" then means every
image was processed).  A file named explicitly is always taken — if it is not an image it fails
by name when decoded.  Hidden files and folders (``.name``) inside a folder are ignored.

Example:
    >>> found = expand_image_inputs(["photos/", "scans/*.png", "extra.jpg"], recursive=True)  # doctest: +SKIP
    >>> found.files, found.problems, found.skipped  # doctest: +SKIP
"""

from __future__ import annotations

import glob
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from .images import image_suffixes


@dataclass(frozen=True)
class ImageInputs:
    """What a list of image arguments names.

    Attributes:
        files: unique files to process, in argument order (a folder's files sorted).
        problems: ``(argument, reason)`` for arguments that yield nothing: a missing path, a
            pattern without image matches, a folder without images.
        skipped: files found in folders or matched by patterns that are not images (by suffix),
            sorted per argument; never also in ``files``.
        many: the arguments could name several images (more than one argument, a folder or a
            pattern), so per-image outputs need per-image names.
    """

    files: list[Path] = field(default_factory=list)
    problems: list[tuple[str, str]] = field(default_factory=list)
    skipped: list[Path] = field(default_factory=list)
    many: bool = False


def is_pattern(item: str) -> bool:
    """Whether an argument is a glob pattern (contains ``*``, ``?`` or ``[``)."""
    return any(ch in item for ch in "*?[")


def is_image_file(path: Path) -> bool:
    """Whether ``path``'s suffix (case-insensitive) is one the image decoder opens."""
    return path.suffix.lower() in image_suffixes()


def files_in(folder: Path, recursive: bool) -> list[Path]:
    """Regular files in ``folder`` (and its sub-folders with ``recursive``), sorted, hidden ones excluded."""
    it = folder.rglob("*") if recursive else folder.iterdir()
    return sorted(p for p in it if p.is_file() and not any(part.startswith(".")
                                                          for part in p.relative_to(folder).parts))


def expand_image_inputs(items: Sequence[str | Path], recursive: bool = False) -> ImageInputs:
    """Turn image arguments into files.

    Args:
        items: files (kept even without an image suffix: they fail by name if not images),
            folders (their image files, sorted; hidden files skipped) and glob patterns
            (``**`` crosses folders; matched folders are expanded like folder arguments).
        recursive: descend into sub-folders of folder arguments.

    Returns:
        :class:`ImageInputs`.  Nothing is raised for bad arguments: they are listed in
        ``problems`` so a batch run can report them and carry on.
    """
    files: list[Path] = []
    skipped: list[Path] = []
    problems: list[tuple[str, str]] = []
    taken: set[Path] = set()  # resolved paths in files
    ignored: set[Path] = set()  # resolved paths in skipped

    def take(candidates: list[Path], nothing: str, hint: str = "") -> str | None:
        """Add the images among ``candidates`` to ``files``, the others to ``skipped``; why it is a problem."""
        n_other = 0
        for p in candidates:
            key = p.resolve()
            if key in taken or key in ignored:
                continue
            if is_image_file(p):
                taken.add(key)
                files.append(p)
            else:
                ignored.add(key)
                skipped.append(p)
                n_other += 1
        if any(is_image_file(p) for p in candidates):
            return None
        notes = [f"{n_other} other file(s) skipped: not an image suffix"] * bool(n_other) + [hint] * bool(hint)
        return nothing + (f" ({'; '.join(notes)})" if notes else "")

    for item in items:
        item = str(item)
        p = Path(item).expanduser()
        if p.is_file():  # named explicitly: taken whatever its suffix
            key = p.resolve()
            if key not in taken:
                taken.add(key)
                files.append(p)
                skipped[:] = [f for f in skipped if f.resolve() != key]
            continue
        if p.is_dir():
            why = take(files_in(p, recursive), "folder has no image files", "" if recursive else "try --recursive")
        elif is_pattern(item):
            matches = [Path(m) for m in sorted(glob.glob(os.path.expanduser(item), recursive=True))]
            why = take([f for m in matches for f in (files_in(m, recursive) if m.is_dir() else [m] if m.is_file()
                                                     else [])], "pattern matches no image files")
        else:
            why = "no such file or folder"
        if why:
            problems.append((item, why))
    many = len(items) > 1 or any(Path(str(i)).expanduser().is_dir() or is_pattern(str(i)) for i in items)
    return ImageInputs(files, problems, skipped, many)


def skipped_summary(skipped: Sequence[Path], shown: int = 3) -> str:
    """One line counting non-image files skipped, naming the first ``shown`` and their suffixes.

    Example:
        >>> skipped_summary([Path("a/notes.txt"), Path("a/b.csv")])
        'skipped 2 non-image file(s) (.csv, .txt): a/notes.txt, a/b.csv'
    """
    suffixes = sorted({p.suffix.lower() or "no suffix" for p in skipped})
    names = ", ".join(str(p) for p in skipped[:shown]) + (", ..." if len(skipped) > shown else "")
    return f"skipped {len(skipped)} non-image file(s) ({', '.join(suffixes)}): {names}"


__all__ = ["ImageInputs", "expand_image_inputs", "files_in", "is_image_file", "is_pattern", "skipped_summary"]
