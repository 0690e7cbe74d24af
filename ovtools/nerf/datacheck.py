"""Check a field's training data before nerfstudio reads it: every image and depth file readable, one size.

nerfstudio reports unreadable or mismatched inputs deep inside its loaders (``AttributeError:
'NoneType' object has no attribute 'astype'`` for a missing depth PNG, ``stack expects each tensor
to be equal size``, a division by zero for one view); :func:`check_field_data` names the file and
what is wrong instead.  It reads image headers only (Pillow), no pixels.  Imports no nerfstudio.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

from PIL import Image, UnidentifiedImageError

from ..scene3d import RGBDFolder

__all__ = ["check_field_data"]


def _size(path: Path, what: str) -> tuple[int, int]:
    if not path.is_file():
        raise ValueError(f"{what} {path} does not exist")
    try:
        with Image.open(path) as im:
            return im.size
    except (UnidentifiedImageError, OSError) as e:
        raise ValueError(f"{what} {path} cannot be read as an image ({type(e).__name__})") from None


def check_field_data(data: str | Path) -> int:
    """Check the images (and depth images) a field would train on.

    Args:
        data: a nerfstudio folder with ``transforms.json`` (its frames' ``file_path`` and
            ``depth_file_path``) or a ScanNet-layout RGB-D folder (the colour and depth files of the
            frames :class:`~ovtools.scene3d.RGBDFolder` reads; it skips unmatched ones with a warning).

    Returns:
        The number of colour images.

    Raises:
        ValueError: an unreadable ``transforms.json``, fewer than 2 images, an image or a depth image
            that is missing or unreadable, or images of different sizes (naming the file and both sizes);
            an RGB-D folder :class:`~ovtools.scene3d.RGBDFolder` refuses (its ValueError).
        FileNotFoundError: an RGB-D folder without its intrinsics file.
    """
    data = Path(data)
    depths: list[Path] = []
    if (data / "transforms.json").is_file():
        try:
            meta = json.loads((data / "transforms.json").read_text())
            frames = meta["frames"]
            images = [data / f["file_path"] for f in frames]
            depths = [data / f["depth_file_path"] for f in frames if f.get("depth_file_path")]
        except (OSError, ValueError, KeyError, TypeError) as e:
            raise ValueError(f"{data / 'transforms.json'} cannot be read as nerfstudio's transforms "
                             f"({type(e).__name__}: {e})") from None
    else:
        with warnings.catch_warnings():  # unmatched frames: the dataparser warns about them when it reads the folder
            warnings.simplefilter("ignore")
            scan = RGBDFolder(data)
        images, depths = (list(paths) for paths in zip(*(scan.files(i) for i in range(len(scan)))))
    if len(images) < 2:
        raise ValueError(f"{data} holds {len(images)} image(s); a field needs at least 2 posed views (24-40 suit it)")
    first = _size(images[0], "image")
    for p in images[1:]:
        size = _size(p, "image")
        if size != first:
            raise ValueError(f"image {p} is {size[0]}x{size[1]} but {images[0].name} is {first[0]}x{first[1]}; "
                             "all views of a field need one size")
    for p in depths:
        _size(p, "depth image")
    return len(images)
