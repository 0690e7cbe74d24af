"""Output writers: atomic files, the ovtools JSON schema, COCO results.

Every file is written to a temporary file in the destination folder and moved
into place with ``os.replace`` (atomic on POSIX and Windows), so a reader never
sees half a file and a crash never leaves a truncated output.  A writer refuses
(:class:`OutputPathError`) to write over any of the input images it is given.

JSON schema (``ovtools detect/segment/classify --output out.json``)::

    {
      "ovtools_version": "0.1.0",
      "task": "detect" | "classify" | "segment",
      "model": "ViT-B-32", "pretrained": "laion2b_s34b_b79k",  # pretrained null = random weights
      "class_names": ["man in red shirt", "dog"],               # class_id indexes this list
      "results": [                                               # one record per image that worked
        # detection record
        {"image": "photos/a.jpg",          # path as given on the command line
         "image_size": [h, w],             # pixels of the EXIF-rotated original
         "detections": [
           {"label": "dog", "class_id": 1,
            "confidence": 0.83,            # in [0, 1]
            "xyxy": [x0, y0, x1, y1],      # float pixels of the original image, origin top-left
            "segmentation": {"size": [h, w], "counts": "..."},  # segment only: mask as COCO RLE
            "area": 1234}                  # segment only: mask area in pixels
         ]},
        # classification record
        {"image": "photos/b.jpg", "image_size": [h, w],
         "rejected": false,                # true: no label beat the negatives ("none of these")
         "top_k": [{"label": "zebra", "class_id": 0,   # ranked by probability, best first;
                    "confidence": 0.62,            # open-set: probability x relevancy, as boxes
                    "probability": 0.91,           # softmax over the given labels (1.0 for one label)
                    "relevancy": 0.68}, ...]}      # vs. the negatives ("object", "stuff"...); < 0.5: lost
                                           # label null / class_id -1 marks "none of these"
      ],
      "errors": [{"image": "photos/bad.jpg", "error": "photos/bad.jpg: empty file (0 bytes)"}],
      "skipped": ["photos/notes.txt"]   # files in input folders/patterns that are not images (not errors)
    }

COCO results (``ovtools detect --coco-output dets.json``) follow the format
``COCOeval`` consumes: a plain list ``[{"image_id", "category_id", "bbox":
[x, y, w, h], "score"}]`` with ``bbox`` in pixels (top-left corner, width,
height).  Next to it, ``dets.categories.json`` is a minimal COCO dataset
header (``images``, ``categories``, empty ``annotations``), so that
``COCO("dets.categories.json").loadRes("dets.json")`` works without ground
truth and a user can map ids back to names and files.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from .. import __version__
from ..errors import OvtoolsError
from ..structures import Classifications, Detections

# Official COCO 2017 category ids of the 80 detection classes, in category order
# (the order of ``configs/classes/coco.yaml``); the id space has gaps (12, 26, ...).
COCO_CATEGORY_IDS: tuple[int, ...] = (
    *range(1, 12), *range(13, 26), 27, 28, *range(31, 45), *range(46, 66), 67, 70, *range(72, 83), *range(84, 91)
)


class OutputPathError(OvtoolsError, ValueError):
    """An output path is unusable: it is one of the inputs, or it is a folder where a file is expected."""


def check_output_path(path: str | Path, inputs: Iterable[str | Path] = ()) -> Path:
    """Refuse an output path that would overwrite an input file.

    Args:
        path: where the output will go.
        inputs: the input files of the run.

    Returns:
        ``path`` as a :class:`~pathlib.Path`.

    Raises:
        OutputPathError: ``path`` resolves to one of ``inputs`` (same file, also through
            links), is an existing folder, or its folder cannot be written.
    """
    path = Path(path)
    if path.is_dir():
        raise OutputPathError(f"output {path} is a folder; give a file name")
    parent = path.expanduser().parent
    while not parent.exists() and parent != parent.parent:  # missing folders are created later
        parent = parent.parent
    if not parent.is_dir():
        raise OutputPathError(f"output {path}: {parent} is a file, not a folder")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise OutputPathError(f"output {path}: cannot write in {parent}")
    target = path.expanduser().resolve()
    for src in inputs:
        src = Path(src)
        same = src.expanduser().resolve() == target
        if not same and path.exists() and src.exists():
            try:
                same = os.path.samefile(src, path)
            except OSError:
                same = False
        if same:
            raise OutputPathError(f"output {path} is also an input; refusing to overwrite it")
    return path


@contextmanager
def atomic_output(path: str | Path, inputs: Iterable[str | Path] = ()) -> Iterator[Path]:
    """Give a temporary path in ``path``'s folder; on success move it onto ``path`` atomically.

    For writers that only take a file name (safetensors, ``torch.jit.save``, ONNX, Parquet):
    the file they write gets the usual permissions (``0o666`` minus umask; mkstemp and
    safetensors create owner-only files) and replaces ``path`` with ``os.replace``; on an error
    the temporary file is removed and ``path`` is left as it was.  Parent folders are created.

    Args:
        path: destination file.
        inputs: input files that must not be overwritten.

    Yields:
        The temporary path (an empty file the writer may replace or truncate).

    Raises:
        OutputPathError: ``path`` is an input or a folder.
        OSError: the folder is not writable (the temporary file is removed).
    """
    path = check_output_path(path, inputs)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        yield Path(tmp)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def atomic_write_bytes(path: str | Path, data: bytes, inputs: Iterable[str | Path] = ()) -> Path:
    """Write ``data`` to ``path`` atomically (temporary file in the same folder + ``os.replace``).

    Parent folders are created.  The file gets the usual permissions (``0o666`` minus umask).

    Args:
        path: destination file.
        data: the bytes.
        inputs: input files that must not be overwritten.

    Returns:
        The destination path.

    Raises:
        OutputPathError: ``path`` is an input or a folder.
        OSError: the folder is not writable (the temporary file is removed).
    """
    with atomic_output(path, inputs) as tmp:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
    return Path(path)


def atomic_write_text(path: str | Path, text: str, inputs: Iterable[str | Path] = ()) -> Path:
    """UTF-8 text version of :func:`atomic_write_bytes` (same arguments and errors)."""
    return atomic_write_bytes(path, text.encode("utf-8"), inputs)


# --------------------------------------------------------------------------- records
def detection_record(image: str | Path, det: Detections, image_size: tuple[int, int] | None = None) -> dict:
    """One image's detections as a JSON-ready dict (schema in the module docstring).

    Args:
        image: the image path as the user gave it.
        det: detections in original-image pixels.
        image_size: ``(h, w)`` of the original image; defaults to ``det.image_size``.

    Returns:
        ``{"image", "image_size", "detections": [{"label", "class_id", "confidence", "xyxy"}]}``.
    """
    body = det.to_dict()
    size = image_size or det.image_size
    return {"image": str(image), "image_size": [int(size[0]), int(size[1])] if size else None,
            "detections": body["detections"]}


def classification_record(image: str | Path, cls: Classifications, index: int = 0,
                          image_size: tuple[int, int] | None = None) -> dict:
    """Row ``index`` of a :class:`Classifications` as a JSON-ready dict (schema in the module docstring).

    Args:
        image: the image path as the user gave it.
        cls: classifications of a batch.
        index: which row of ``cls`` belongs to ``image``.
        image_size: ``(h, w)`` of the original image, if known.

    Returns:
        ``{"image", "image_size", "rejected", "top_k": [{"label", "class_id", "confidence", "probability",
        "relevancy"}]}`` (the last two when ``cls`` has them).

    Raises:
        IndexError: ``index`` is outside the batch.
    """
    if not 0 <= index < len(cls):
        raise IndexError(f"index {index} outside a batch of {len(cls)} classifications")
    return {"image": str(image), "image_size": [int(image_size[0]), int(image_size[1])] if image_size else None,
            **cls.to_dict(index)}


def results_document(task: str, records: Sequence[dict], class_names: Sequence[str], *,
                     model: str | None = None, pretrained: str | None = None,
                     errors: Sequence[dict] = (), skipped: Sequence[str | Path] = ()) -> dict:
    """The top-level JSON document (schema in the module docstring).

    ``skipped``: non-image files found in folder/pattern inputs and not processed
    (:attr:`ovtools.io.inputs.ImageInputs.skipped`), listed as given.

    Raises:
        ValueError: ``task`` is not a non-empty string (a head's name: ``"classify"``, ``"detect"``, ...).
    """
    if not isinstance(task, str) or not task:
        raise ValueError(f"task must be a head's name such as 'detect', got {task!r}")
    return {"ovtools_version": __version__, "task": task, "model": model, "pretrained": pretrained,
            "class_names": list(class_names), "results": list(records), "errors": list(errors),
            "skipped": [str(p) for p in skipped]}


def write_json(path: str | Path, document: dict | list, inputs: Iterable[str | Path] = ()) -> Path:
    """Write a JSON document atomically (UTF-8, indented, non-ASCII kept).

    Raises:
        OutputPathError: ``path`` is an input or a folder.
        TypeError: the document holds values JSON cannot encode.
    """
    return atomic_write_text(path, json.dumps(document, indent=2, ensure_ascii=False) + "\n", inputs)


# ----------------------------------------------------------------------------- COCO
def coco_category_ids(class_names: Sequence[str], space_name: str | None = None) -> list[int]:
    """Category id of each class: the official COCO ids for the built-in ``coco`` space, else 1..C.

    Args:
        class_names: names in class-id order.
        space_name: name of the class space (``"coco"`` selects the official ids when C = 80).
    """
    if space_name == "coco" and len(class_names) == len(COCO_CATEGORY_IDS):
        return list(COCO_CATEGORY_IDS)
    return list(range(1, len(class_names) + 1))


def coco_image_id(image: str | Path, index: int, used: set[int] | None = None) -> int:
    """Image id for COCO output: the number in a COCO-style file name (``000000397133.jpg`` → 397133),
    else ``index + 1``; falls back to ``index + 1`` when the number is already ``used``.
    """
    m = re.fullmatch(r"(?:COCO_[a-z0-9]+_)?0*(\d+)", Path(image).stem)
    if m and m.group(1) and (used is None or int(m.group(1)) not in used):
        return int(m.group(1))
    return index + 1


def to_coco_results(records: Sequence[dict], category_ids: Sequence[int]) -> tuple[list[dict], list[dict]]:
    """Detection records (see :func:`detection_record`) → COCO results and COCO ``images``.

    Args:
        records: detection records in run order; a record's ``"image_id"`` (any JSON number or string), when
            given, is the image's id unchanged; otherwise the id comes from the file name
            (:func:`coco_image_id`).
        category_ids: COCO category id of each class id.

    Returns:
        ``(results, images)``: ``results`` is ``[{"image_id", "category_id", "bbox": [x, y, w, h],
        "score"}]`` (pixels of the original image; plus ``"segmentation"`` RLE for masks);
        ``images`` is ``[{"id", "file_name", "height",
        "width"}]``.
    """
    results: list[dict] = []
    images: list[dict] = []
    given = [rec["image_id"] for rec in records if rec.get("image_id") is not None]
    used: set = set(given)
    for i, rec in enumerate(records):
        if rec.get("image_id") is not None:  # an id the caller knows (e.g. from a COCO file): kept unchanged
            image_id = rec["image_id"]
        else:
            image_id = coco_image_id(rec["image"], i, used)
            if image_id in used:  # a numeric stem collided with an index-based id
                image_id = max((u for u in used if isinstance(u, int)), default=0) + 1
            used.add(image_id)
        h, w = rec.get("image_size") or (0, 0)
        images.append({"id": image_id, "file_name": str(rec["image"]), "height": int(h), "width": int(w)})
        for d in rec["detections"]:
            x0, y0, x1, y1 = d["xyxy"]
            res = {"image_id": image_id, "category_id": int(category_ids[d["class_id"]]),
                   "bbox": [round(x0, 2), round(y0, 2), round(x1 - x0, 2), round(y1 - y0, 2)],
                   "score": round(float(d["confidence"]), 6)}
            if "segmentation" in d:
                res["segmentation"] = d["segmentation"]
            results.append(res)
    return results, images


def coco_header_path(path: str | Path) -> Path:
    """Where :func:`write_coco_results` puts the dataset header: ``dets.json`` → ``dets.categories.json``."""
    path = Path(path)
    return path.with_name(path.stem + ".categories.json")


def write_coco_results(path: str | Path, records: Sequence[dict], class_names: Sequence[str],
                       space_name: str | None = None, inputs: Iterable[str | Path] = ()) -> tuple[Path, Path]:
    """Write COCO results (a JSON list) and the companion dataset header.

    Args:
        path: results file, e.g. ``dets.json``.
        records: detection records (see :func:`detection_record`).
        class_names: class names in class-id order.
        space_name: class-space name (``"coco"`` → official COCO category ids).
        inputs: input files that must not be overwritten.

    Returns:
        ``(results_path, header_path)``.

    Raises:
        OutputPathError: either file is an input or a folder.
    """
    cat_ids = coco_category_ids(class_names, space_name)
    results, images = to_coco_results(records, cat_ids)
    categories = [{"id": c, "name": n, "supercategory": "object"} for c, n in zip(cat_ids, class_names)]
    return write_coco_detections(path, results, images, categories, inputs, "ovtools detections (no ground truth)")


def write_coco_detections(path: str | Path, results: Sequence[dict], images: Sequence[dict],
                          categories: Sequence[dict], inputs: Iterable[str | Path] = (),
                          description: str = "ovtools detections") -> tuple[Path, Path]:
    """Write COCO results (a JSON list) and the dataset header beside them (``dets.categories.json``).

    Ids are written exactly as given (numbers or strings), so results on a user's COCO file keep that
    file's image and category ids.

    Args:
        path: results file, e.g. ``dets.json``.
        results: ``[{"image_id", "category_id", "bbox": [x, y, w, h], "score"[, "segmentation"]}]``.
        images: COCO ``images`` entries (``id``, ``file_name``, ``height``, ``width``).
        categories: COCO ``categories`` entries (``id``, ``name``, ...).
        inputs: input files that must not be overwritten.
        description: the header's ``info.description``.

    Returns:
        ``(results_path, header_path)``.

    Raises:
        OutputPathError: either file is an input or a folder.
    """
    inputs = list(inputs)
    header_path = check_output_path(coco_header_path(path), inputs)
    check_output_path(path, inputs)
    header = {"info": {"description": description}, "images": list(images), "annotations": [],
              "categories": list(categories)}
    write_json(header_path, header, inputs)
    write_json(path, list(results), inputs)
    return Path(path), header_path
