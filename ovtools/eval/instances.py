"""Detection and instance-segmentation evaluation on a COCO instances file.

A :class:`~ovtools.pipelines.DetectPipeline` (box AP) or
:class:`~ovtools.pipelines.SegmentPipeline` (mask AP, ``COCOeval`` ``segm``, and the
semantic ``mIoU`` of the label maps, :mod:`ovtools.eval.segmentation`) runs on every
image of the file; results keep the file's own image and category ids and are scored
with :func:`~ovtools.eval.coco.coco_detection_metrics`.

Labels absent from an image must not be reported: for each image one category that does
not occur in it is queried alone (with its synonyms and the class space's negatives), and
the share of images where nothing is reported is ``absent_label_rejection``.  The hard case
is a *look-alike*: the absent category whose class embedding is closest to one of the
present categories (same colour or same shape in the evaluation world, "cat" beside a
"dog"), queried as a user types it (``labels=[name]``: a plain label, which inherits what the
pipeline's ``classes`` setting knows about that name, :meth:`~ovtools.prompts.ClassSpace.from_names`);
``lookalike_label_rejection`` is the same share for those queries.  At the
preset's threshold, :mod:`ovtools.eval.operating_point` gives precision, recall and
duplicates per object of exactly what the pipeline reports.

Everything ``COCOeval`` needs is checked before the first image is encoded (the reader
completes and checks the file, :mod:`ovtools.datasets.coco`; here: categories against the
class space, masks for segmentation, at least one annotation and one image file).
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from ..datasets.coco import CocoData
from ..io.images import load_image
from ..io.writers import write_coco_detections
from ..prompts import ClassSpace
from ..structures import masks_to_rle
from ..io.images import error_entry
from .classification import OnError, Progress
from .coco import coco_detection_metrics
from .data import name_key
from .operating_point import operating_point_metrics
from .segmentation import ConfusionMatrix, check_segmentations, coco_label_map


def _single_class(space: ClassSpace, class_id: int) -> ClassSpace:
    """The class space reduced to one class, keeping its synonyms, prompts and negatives."""
    spec = space.classes[class_id]
    return ClassSpace(name=f"{space.name}:{spec.name}", classes=(spec,), negatives=space.negatives,
                      templates=space.templates)


def check_instances(pipe, data: CocoData) -> dict:
    """Check that ``data`` can be evaluated with ``pipe`` (before any image is encoded).

    Returns:
        ``{class id: category id}`` for the categories of the file, matched by name
        (:func:`~ovtools.eval.data.name_key`).

    Raises:
        ValueError: a category is not in the class space; the file has no annotation; (segmentation) an
            annotation without a decodable mask of its image's size; none of the image files exists.
    """
    src = data.annotation_file
    space = pipe.class_space
    index = {name_key(n): i for i, n in enumerate(space.names)}
    missing = [c for c in data.categories if name_key(c) not in index]
    if missing:
        raise ValueError(f"{src}: categories not in the class space {space.name!r}: {missing[:10]}")
    if not data.coco.dataset.get("annotations"):
        raise ValueError(f"{src}: no annotations to evaluate against")
    if pipe.task == "segment":
        check_segmentations(data.coco, str(src))
    if data.paths and not any(p.is_file() for p in data.paths):
        raise ValueError(f"{src}: none of its {len(data.paths)} images exists (the first is {data.paths[0]}); "
                         "file_name entries are relative to the JSON's folder unless an image folder is given "
                         "(--image-dir)")
    return {index[name_key(c)]: cid for c, cid in zip(data.categories, data.category_ids)}


def evaluate_instances(pipe, data: CocoData, absent: bool = True, seed: int = 0, progress: Progress | None = None,
                       on_error: OnError | None = None, coco_output: str | Path | None = None,
                       protect: Iterable[str | Path] = ()) -> dict:
    """Box AP (detect pipeline) or mask AP + semantic mIoU (segment pipeline) on a COCO file.

    Args:
        pipe: a :class:`~ovtools.pipelines.DetectPipeline` or :class:`~ovtools.pipelines.SegmentPipeline`.
        data: the file (:func:`~ovtools.datasets.coco.read_coco`).
        absent: also query one absent category per image alone (``absent_label_rejection``).
        seed: seed for choosing the absent categories.
        progress: called with the number of images just finished.
        on_error: called with each ``errors`` entry (an image that cannot be read) as it happens.
        coco_output: also write the COCO results (the file's image and category ids) to this JSON, with a
            ``.categories.json`` header beside it (:func:`~ovtools.io.writers.write_coco_detections`).
        protect: input files ``coco_output`` must not overwrite.

    Returns:
        ``{"task": "detection" | "segmentation", "n_images", [mIoU, background_IoU, pixel_accuracy,
        classes_in_gt, mask_AP ..., per_class_IoU,] AP, AP50, ..., "n_detections", "seconds_per_image",
        "errors", "at_threshold": {precision, recall, duplicates_per_object, ...},
        ["absent_label_rejection", "absent_label_checks", "lookalike_label_rejection", "lookalike_label_checks"]}``.

    Raises:
        ValueError: see :func:`check_instances`; an image whose size differs from its file entry (segmentation).
    """
    to_cat = check_instances(pipe, data)
    space = pipe.class_space
    segment = pipe.task == "segment"
    to_class = {cid: k for k, cid in to_cat.items()}
    index = {name_key(n): i for i, n in enumerate(space.names)}
    confusion = ConfusionMatrix(len(space.names)) if segment else None
    rng = np.random.default_rng(seed)
    results, errors, absent_ok, absent_n, alike_ok, alike_n = [], [], 0, 0, 0, 0
    emb = pipe.embeddings.classes.float()
    similar = (emb @ emb.T).numpy()  # class-embedding cosine similarity, for the look-alike queries
    t0 = time.perf_counter()
    for img_id, path in zip(data.image_ids, data.paths):
        try:
            image = load_image(path, pipe.settings["max_side"])
        except Exception as e:  # noqa: BLE001 - ImageLoadError, or anything else a broken file triggers
            errors.append(error_entry(path, e))
            if on_error is not None:
                on_error(errors[-1])
            if progress is not None:
                progress(1)
            continue
        det = pipe(image)
        rles = masks_to_rle(det.mask) if segment else [None] * len(det)
        for box, score, c, rle in zip(det.xyxy, det.confidence, det.class_id, rles):
            if int(c) in to_cat:
                x0, y0, x1, y1 = (float(v) for v in box)
                res = {"image_id": img_id, "category_id": to_cat[int(c)], "bbox": [x0, y0, x1 - x0, y1 - y0],
                       "score": float(score)}
                if rle is not None:
                    res["segmentation"] = {"size": rle["size"], "counts": rle["counts"]}
                results.append(res)
        if segment:
            try:
                gt = coco_label_map(data.coco, img_id, to_class, image.original_size)
            except ValueError as e:  # the annotation file's image size is not the image's
                raise ValueError(f"{data.annotation_file}: {e}") from None
            confusion.update(gt, det.label_map())
        if absent:
            present = {a["category_id"] for a in data.coco.imgToAnns.get(img_id, [])}
            candidates = [c for c, cid in zip(data.categories, data.category_ids) if cid not in present]
            if candidates:
                label = candidates[int(rng.integers(len(candidates)))]
                absent_n += 1
                absent_ok += len(pipe(image, labels=_single_class(space, index[name_key(label)]))) == 0
                present_k = [to_class[c] for c in present if c in to_class]
                if present_k:
                    absent_k = [index[name_key(c)] for c in candidates]
                    alike = absent_k[int(similar[np.ix_(absent_k, present_k)].max(1).argmax())]
                    alike_n += 1
                    # as a user types it: a plain label (it inherits the preset class space's negatives)
                    alike_ok += len(pipe(image, labels=[space.names[alike]])) == 0
        if progress is not None:
            progress(1)
    seconds = time.perf_counter() - t0
    out = {"task": "segmentation" if segment else "detection", "n_images": len(data.paths)}
    if segment:
        sem = confusion.metrics(space.names)
        out.update({k: sem[k] for k in ("mIoU", "background_IoU", "pixel_accuracy", "classes_in_gt")})
        out.update({f"mask_{k}": v for k, v in coco_detection_metrics(data.coco, results, "segm").items()})
        out["per_class_IoU"] = sem["per_class_IoU"]
    out.update(coco_detection_metrics(data.coco, results))
    out["at_threshold"] = {"score_threshold": pipe.config.score_threshold,
                           **operating_point_metrics(data.coco, results, segm=segment)}
    out.update({"n_detections": len(results), "seconds_per_image": round(seconds / max(len(data.paths), 1), 4),
                "errors": errors})
    if absent:
        out["absent_label_rejection"] = absent_ok / absent_n if absent_n else None
        out["absent_label_checks"] = absent_n
        out["lookalike_label_rejection"] = alike_ok / alike_n if alike_n else None
        out["lookalike_label_checks"] = alike_n
    if coco_output is not None:
        d = data.coco.dataset
        write_coco_detections(coco_output, results, d["images"], d["categories"],
                              [*protect, data.annotation_file], f"ovtools detections on {data.annotation_file}")
    return out
