"""COCO instance files as other tools write them: read, check and complete before any image is encoded.

The COCO format (cocodataset.org/#format-data) names what ``COCOeval`` reads; files from
converters and other tools differ in ways pycocotools accepts when loading and fails on
later (after a whole model pass) or, worse, evaluates wrongly.  :func:`read_coco` takes
them as they are and leaves a dataset pycocotools can evaluate:

* ids are kept unchanged: image and category ids may be integers or strings
  (``"0000001_02999_d_0000005"``, ``"1"``; ``1`` and ``"1"`` are different ids, as in
  pycocotools); they pass through to every output.  Category ids need not start at 1
  nor be contiguous.
* defaults the format defines are filled, with **one** warning per file naming what was
  filled: ``iscrowd`` 0; ``area`` from the mask (RLE or polygons, via pycocotools) or,
  without a mask, the box (w × h); ``bbox`` from the mask when absent; annotation ``id``
  when absent or repeated (``COCOeval`` matches by it); ``segmentation`` given as one flat
  polygon ``[x1, y1, x2, y2, ...]`` is wrapped into a list of polygons; numbers written
  as strings (``"12.5"``) in ``bbox``/``area`` are read as numbers; ``file_name`` with
  Windows separators (``images\\a.jpg``) is read with ``/``; image ``height``/``width``
  written as text are read as numbers and, when absent, read from the image file's header
  (after EXIF orientation, as ovtools decodes it);
* a category that is never annotated and only names the ``supercategory`` of other
  categories (Roboflow exports the dataset's name as category 0) is left out;
* annotations of an image id that is not in ``images`` cannot be evaluated: they are
  dropped (counted in the warning);
* anything else ``COCOeval`` would trip on (a duplicate image or category id, an id that
  is not a number or a string, a box that is not 4 numbers with w, h >= 0, a category id
  not in ``categories``) raises :class:`ValueError` naming the file and the entry.

``info`` and ``licenses`` are optional.
"""

from __future__ import annotations

import contextlib
import copy
import io
import json
import os
import warnings
from dataclasses import dataclass
from pathlib import Path

from PIL import Image
from pycocotools import mask as mask_utils
from pycocotools.coco import COCO

EXIF_ORIENTATION = 0x0112


@dataclass(frozen=True)
class CocoData:
    """A COCO instances file and where its images are.

    Attributes:
        annotation_file: the JSON file.
        coco: the ``pycocotools.coco.COCO`` index of the completed dataset (see module docs).
        image_ids: image ids as the file gives them (int or str), sorted (numbers first).
        paths: image file per id (``file_name`` resolved against ``image_dir``).
        category_ids: category ids as the file gives them, sorted (numbers first).
        categories: category names, in ``category_ids`` order.
        filled: what :func:`read_coco` completed, e.g. ``{"iscrowd": 12, "area": 12}`` (counts).
    """

    annotation_file: Path
    coco: object
    image_ids: list
    paths: list[Path]
    category_ids: list
    categories: list[str]
    filled: dict

    def __len__(self) -> int:
        return len(self.image_ids)


def id_order(value) -> tuple:
    """Sort key for COCO ids of mixed types: numbers (by value) before strings (by text)."""
    return (0, value, "") if isinstance(value, (int, float)) else (1, 0, str(value))


def _is_id(value) -> bool:
    return isinstance(value, (int, float, str)) and not isinstance(value, bool) and value != ""


def _number(value):
    """A JSON number, or a string holding one (converted); ``None`` for anything else."""
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return value
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return None
    return None


def _rle(segmentation, height, width):
    """One compressed RLE of a COCO segmentation (polygons, uncompressed or compressed RLE), or None."""
    if isinstance(segmentation, list):
        if not segmentation or height is None or width is None:
            return None
        return mask_utils.merge(mask_utils.frPyObjects(segmentation, int(height), int(width)))
    if isinstance(segmentation, dict) and "size" in segmentation and "counts" in segmentation:
        h, w = segmentation["size"]
        if isinstance(segmentation["counts"], list):
            return mask_utils.frPyObjects(segmentation, int(h), int(w))
        return segmentation
    return None


def complete_coco(dataset: dict, source: str | Path = "COCO file", image_dir: str | Path | None = None
                  ) -> tuple[dict, dict]:
    """Check a COCO instances dataset and fill the defaults the format defines (module docs).

    Args:
        dataset: the parsed JSON (not modified).
        source: the file name, for messages.
        image_dir: folder ``file_name`` is relative to; an image entry without ``height``/``width`` gets
            them from its file there (``None``: left as they are).

    Returns:
        ``(completed, filled)``: a completed copy, and what was filled or changed (name → count;
        empty when the file needed nothing).

    Raises:
        ValueError: the file cannot be evaluated as it is (names the file and the entry).
    """
    src = str(source)
    if not isinstance(dataset, dict) or not isinstance(dataset.get("images"), list) \
            or not isinstance(dataset.get("categories"), list):
        raise ValueError(f"{src}: not a COCO instances file (it needs 'images' and 'categories' lists)")
    d = copy.deepcopy(dataset)
    anns = d.get("annotations", [])
    if not isinstance(anns, list):
        raise ValueError(f"{src}: 'annotations' must be a list")
    filled: dict[str, int] = {}

    def count(key: str) -> None:
        filled[key] = filled.get(key, 0) + 1

    cats = set()
    for i, c in enumerate(d["categories"]):
        if not isinstance(c, dict) or not _is_id(c.get("id")) or not isinstance(c.get("name"), str) \
                or not c["name"].strip():
            raise ValueError(f"{src}: categories[{i}] needs an 'id' (a number or a string) and a non-empty 'name'")
        if c["id"] in cats:
            raise ValueError(f"{src}: category id {c['id']!r} appears twice in 'categories'")
        cats.add(c["id"])
    images = {}
    for i, im in enumerate(d["images"]):
        if not isinstance(im, dict) or not _is_id(im.get("id")) or not isinstance(im.get("file_name"), str):
            raise ValueError(f"{src}: images[{i}] needs an 'id' (a number or a string) and a 'file_name'")
        if im["id"] in images:
            raise ValueError(f"{src}: image id {im['id']!r} appears twice in 'images'")
        as_text = [key for key in ("height", "width") if isinstance(im.get(key), str)]
        for key in as_text:
            value = _number(im[key])
            if value is None or value != int(value) or value < 1:
                raise ValueError(f"{src}: images[{i}].{key} must be a positive integer, got {im[key]!r}")
            im[key] = int(value)
        if as_text:
            count("height/width (numbers written as text)")
        if "\\" in im["file_name"] and os.sep != "\\":
            im["file_name"] = im["file_name"].replace("\\", "/")
            count("file_name separators")
        if image_dir is not None and not all(isinstance(im.get(k), int) for k in ("height", "width")):
            size = image_size(Path(image_dir) / im["file_name"])
            if size is not None:
                im["height"], im["width"] = size
                count("height/width (from the image file)")
        images[im["id"]] = im
    kept, orphans = [], set()
    for i, a in enumerate(anns):
        if not isinstance(a, dict):
            raise ValueError(f"{src}: annotations[{i}] must be a mapping")
        if a.get("image_id") not in images:
            orphans.add(repr(a.get("image_id")))
            continue
        if a.get("category_id") not in cats:
            raise ValueError(f"{src}: annotations[{i}].category_id {a.get('category_id')!r} is not in categories")
        _complete_annotation(a, images[a["image_id"]], f"{src}: annotations[{i}]", count)
        kept.append(a)
    if orphans:
        filled[f"dropped, image id not in 'images' ({', '.join(sorted(orphans)[:3])})"] = len(anns) - len(kept)
    used: set = set()
    next_id = 1 + max((a["id"] for a in kept if isinstance(a.get("id"), int) and not isinstance(a["id"], bool)),
                      default=0)
    for a in kept:
        if not _is_id(a.get("id")) or a["id"] in used:
            count("id" if not _is_id(a.get("id")) else "id (repeated)")
            a["id"], next_id = next_id, next_id + 1
        used.add(a["id"])
    d["annotations"] = kept
    used_cats = {a["category_id"] for a in kept}
    grouping = [c for c in d["categories"] if c["id"] not in used_cats
                and any(o.get("supercategory") == c["name"] for o in d["categories"] if o is not c)]
    if grouping:  # e.g. Roboflow's category 0, the dataset's name, parent of every class and never annotated
        d["categories"] = [c for c in d["categories"] if all(c is not g for g in grouping)]
        filled[f"categories left out, only the supercategory of others ({', '.join(g['name'] for g in grouping)})"] \
            = len(grouping)
    return d, filled


def _complete_annotation(a: dict, image: dict, where: str, count) -> None:
    """Fill one annotation in place (``count(key)`` per filled field)."""
    seg = a.get("segmentation")
    if isinstance(seg, list) and seg and all(_number(v) is not None for v in seg):
        a["segmentation"] = seg = [[float(_number(v)) for v in seg]]
        count("segmentation (flat polygon wrapped)")
    h, w = image.get("height"), image.get("width")
    rle = None
    if "bbox" not in a or "area" not in a:
        try:
            rle = _rle(seg, h, w)
        except Exception:  # noqa: BLE001 - pycocotools raises many types; a bad mask is reported where it is used
            rle = None
    box = a.get("bbox")
    if box is None and rle is not None:
        a["bbox"] = box = [float(v) for v in mask_utils.toBbox(rle)]
        count("bbox (from the mask)")
    if not isinstance(box, list) or len(box) != 4:
        raise ValueError(f"{where}.bbox must be [x, y, w, h] (4 numbers), got {box!r}")
    nums = [_number(v) for v in box]
    if any(v is None for v in nums) or nums[2] < 0 or nums[3] < 0:
        raise ValueError(f"{where}.bbox must be [x, y, w, h] numbers with w, h >= 0, got {box!r}")
    if any(isinstance(v, str) for v in box):
        a["bbox"] = nums
        count("bbox (numbers written as text)")
    if "iscrowd" not in a:
        a["iscrowd"] = 0
        count("iscrowd")
    if "area" not in a:
        a["area"] = float(mask_utils.area(rle)) if rle is not None else float(nums[2] * nums[3])
        count("area (from the mask)" if rle is not None else "area (from the box)")
    elif isinstance(a["area"], str) or _number(a["area"]) is None:
        area = _number(a["area"])
        if area is None:
            raise ValueError(f"{where}.area must be a number, got {a['area']!r}")
        a["area"] = area
        count("area (number written as text)")


def image_size(path: Path) -> tuple[int, int] | None:
    """``(height, width)`` of an image file as ovtools decodes it (after EXIF orientation), from its header
    only; ``None`` when it cannot be opened."""
    try:
        with Image.open(path) as img:
            w, h = img.size
            if img.getexif().get(EXIF_ORIENTATION) in (5, 6, 7, 8):  # rotated by 90 degrees
                w, h = h, w
    except (OSError, ValueError):
        return None
    return int(h), int(w)


def coco_index(dataset: dict) -> COCO:
    """A ``pycocotools.coco.COCO`` over an in-memory dataset (no file, no printing)."""
    coco = COCO()
    coco.dataset = dataset
    with contextlib.redirect_stdout(io.StringIO()):
        coco.createIndex()
    return coco


def read_coco(annotation_file: str | Path, image_dir: str | Path | None = None) -> CocoData:
    """Read a COCO instances file, check it and fill the format's defaults (module docs).

    Args:
        annotation_file: COCO JSON.
        image_dir: folder ``file_name`` is relative to (default: the JSON's folder).

    Returns:
        :class:`CocoData`; when something was filled, one ``UserWarning`` names the file and
        the counts.

    Raises:
        FileNotFoundError: the JSON does not exist.
        ValueError: the JSON is not a COCO instances file, or an entry cannot be evaluated
            (names the file and the entry).
    """
    annotation_file = Path(annotation_file)
    if not annotation_file.is_file():
        raise FileNotFoundError(f"COCO annotation file {annotation_file} does not exist")
    try:
        raw = json.loads(annotation_file.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ValueError(f"{annotation_file}: not a COCO instances file (not JSON: {e})") from None
    base = Path(image_dir) if image_dir is not None else annotation_file.parent
    dataset, filled = complete_coco(raw, annotation_file, base)
    if filled:
        what = ", ".join(f"{k}: {n}" for k, n in filled.items())
        warnings.warn(f"{annotation_file}: completed as the COCO format defines ({what}; counts of entries)",
                      UserWarning, stacklevel=2)
    coco = coco_index(dataset)
    ids = sorted(coco.imgs, key=id_order)
    cat_ids = sorted(coco.cats, key=id_order)
    return CocoData(annotation_file, coco, ids, [base / coco.imgs[i]["file_name"] for i in ids], cat_ids,
                    [coco.cats[c]["name"] for c in cat_ids], filled)
