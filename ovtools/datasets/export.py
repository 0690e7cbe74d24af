"""Write the generated world to disk: ImageFolder trees, COCO instances, image-caption CSVs.

Three dataset kinds (``ovtools datagen --kind``):

* ``classification`` — :func:`write_classification`: single-object images in an
  ImageFolder tree ``OUT/<class name>/<index>.png`` (classes balanced).
* ``scenes`` — :func:`write_scenes`: multi-object scenes ``OUT/images/*.png``,
  COCO instances ``OUT/annotations.json`` (masks as RLE) and whole-scene
  captions ``OUT/captions.csv``.
* ``captions`` — :func:`write_captions`: the contrastive training mix
  ``OUT/images/*.png`` + ``OUT/captions.csv`` with columns
  ``filepath,caption,label,image_labels``: whole single-object images, object
  crops out of cluttered scenes (box jittered, context padding, neighbours
  partly visible), and *negative* crops (background, partial or several
  objects: IoU < 0.3 with every object) captioned "background", "texture",
  "stuff", "things" or "clutter".  ``label`` names what the caption says;
  ``image_labels`` lists (``|``-separated, primary first) every label the
  image satisfies — a red-star crop also matches "star", "red shape" and the
  generic "object" (see :mod:`ovtools.train.loss`).

Every item depends only on ``(seed, index)``; ``workers > 1`` renders in
processes and writes the same bytes.
"""

from __future__ import annotations

import csv
import io
import json
import multiprocessing
from collections.abc import Callable, Iterable
from pathlib import Path

import numpy as np
from PIL import Image
from pycocotools import mask as mask_utils

from .shapes import (
    CLASS_NAMES,
    COLOURS,
    SHAPES,
    Scene,
    describe_object,
    describe_scene,
    generate_classification,
    generate_scenes,
    item_rng,
    render_object_image,
    render_scene,
)

# Prompt wordings used for training captions; configs/templates/shapes.yaml is the first six.
SHAPES_TEMPLATES: tuple[str, ...] = (
    "a {}.",
    "a photo of a {}.",
    "a drawing of a {}.",
    "a picture of a {}.",
    "a cropped photo of a {}.",
    "a close-up photo of a {}.",
)
EXTRA_TEMPLATES: tuple[str, ...] = (
    "a {}", "a photo of the {}.", "a good photo of a {}.", "there is a {} in the scene.", "a photo of one {}.",
    "this is a {} in the scene.", "a photo of a small {}.", "a photo of a large {}.", "a blurry photo of a {}.",
    "a cropped photo of the {}.",
)
NEGATIVE_WORDS: tuple[str, ...] = ("background", "texture", "stuff", "things", "clutter")
NEGATIVE_LABEL = "background"
GENERIC_LABEL = "object"
CAPTION_COLUMNS = ("filepath", "caption", "label", "image_labels")


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of xyxy boxes a (N, 4) and b (M, 4) → (N, M) float64."""
    a, b = np.asarray(a, np.float64).reshape(-1, 4), np.asarray(b, np.float64).reshape(-1, 4)
    lt = np.maximum(a[:, None, :2], b[None, :, :2])
    rb = np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.prod(np.clip(rb - lt, 0, None), axis=2)
    area_a = np.prod(a[:, 2:] - a[:, :2], axis=1)
    area_b = np.prod(b[:, 2:] - b[:, :2], axis=1)
    return inter / np.maximum(area_a[:, None] + area_b[None, :] - inter, 1e-9)


def context_square(box, image_shape: tuple[int, ...], context: float = 0.15,
                   inside: bool = True) -> tuple[float, float, float, float]:
    """The square region a crop classifier sees for a box.

    The box's longer side is enlarged by ``context`` (0.15 → 15 %) and the
    square is centred on the box.  With ``inside`` it is then shrunk to fit the
    image if larger and shifted inside the image; otherwise it may extend
    beyond the image (as :func:`ovtools.geometry.square_context_boxes` with
    ``padding = context / 2``).

    Args:
        box: xyxy in pixels.
        image_shape: (H, W[, C]).
        context: relative enlargement, >= 0.
        inside: keep the square inside the image.

    Returns:
        (x1, y1, x2, y2) float pixel edges of a square.
    """
    h, w = image_shape[:2]
    x1, y1, x2, y2 = (float(v) for v in box)
    side = max(x2 - x1, y2 - y1, 2.0) * (1.0 + context)
    cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
    if not inside:
        return cx - side / 2, cy - side / 2, cx + side / 2, cy + side / 2
    side = min(side, float(min(h, w)))
    left = min(max(cx - side / 2, 0.0), w - side)
    top = min(max(cy - side / 2, 0.0), h - side)
    return left, top, left + side, top + side


# What parts of a crop outside the image read as: the CLIP normalisation mean (0 after normalising),
# as in roi_align on a normalised image.
PAD_RGB = (123, 117, 104)


def context_crop(image: np.ndarray, box, context: float = 0.15, size: int = 64, inside: bool = True) -> np.ndarray:
    """Crop :func:`context_square` of ``box`` and resize it (bicubic) to ``size × size``.

    Args:
        image: uint8 (H, W, 3) RGB.
        box: xyxy in pixels.
        context: relative enlargement of the longer box side.
        size: output side in pixels.
        inside: keep the square inside the image; otherwise pixels outside it are :data:`PAD_RGB`.

    Returns:
        uint8 (size, size, 3).
    """
    x1, y1, x2, y2 = context_square(box, image.shape, context, inside)
    pil = Image.fromarray(image)
    if not inside:
        h, w = image.shape[:2]
        pad = int(np.ceil(max(0.0, -x1, -y1, x2 - w, y2 - h))) + 1
        if pad > 1:
            canvas = Image.new("RGB", (w + 2 * pad, h + 2 * pad), PAD_RGB)
            canvas.paste(pil, (pad, pad))
            pil, x1, y1, x2, y2 = canvas, x1 + pad, y1 + pad, x2 + pad, y2 + pad
    return np.asarray(pil.resize((size, size), Image.Resampling.BICUBIC, box=(x1, y1, x2, y2)))


# ------------------------------------------------------------------ training mix
def _template(rng: np.random.Generator) -> str:
    pool = SHAPES_TEMPLATES if rng.random() < 0.7 else EXTRA_TEMPLATES
    return pool[int(rng.integers(len(pool)))]


def object_rows(rng: np.random.Generator, name: str) -> tuple[str, str, str]:
    """(caption, label, image_labels) for an image showing one object of class ``name``.

    Mostly the class name in a template; sometimes the shape alone ("a star"),
    the colour alone ("a red shape") or the generic "object".
    """
    colour, shape = name.split(" ")
    image_labels = "|".join([name, shape, f"{colour} shape", GENERIC_LABEL])
    u = rng.random()
    label = name if u < 0.78 else shape if u < 0.86 else f"{colour} shape" if u < 0.93 else GENERIC_LABEL
    return _template(rng).replace("{}", label), label, image_labels


def negative_row(rng: np.random.Generator) -> tuple[str, str, str]:
    """(caption, label, image_labels) for a background / clutter / partial-object crop."""
    word = NEGATIVE_WORDS[int(rng.integers(len(NEGATIVE_WORDS)))]
    return _template(rng).replace("{}", word), NEGATIVE_LABEL, NEGATIVE_LABEL


def _jitter_positive(rng, box: np.ndarray, min_iou: float = 0.65) -> np.ndarray:
    w, h = box[2] - box[0], box[3] - box[1]
    for _ in range(10):
        cand = box + rng.normal(0, 0.08, 4) * np.array([w, h, w, h])
        if cand[2] - cand[0] > 2 and cand[3] - cand[1] > 2 and box_iou(cand, box)[0, 0] >= min_iou:
            return cand
    return box.copy()


def _sample_negative(rng, boxes: np.ndarray, shape: tuple[int, ...], max_iou: float = 0.3) -> np.ndarray | None:
    h, w = shape[:2]
    for _ in range(30):
        if len(boxes) and rng.random() < 0.5:  # near an object: partial, too large, or between objects
            b = boxes[int(rng.integers(len(boxes)))]
            bw, bh = (b[2] - b[0]) * rng.uniform(0.3, 2.5), (b[3] - b[1]) * rng.uniform(0.3, 2.5)
            cx = (b[0] + b[2]) / 2 + rng.uniform(-0.8, 0.8) * bw
            cy = (b[1] + b[3]) / 2 + rng.uniform(-0.8, 0.8) * bh
        else:
            side = rng.uniform(12, 0.6 * min(h, w))
            aspect = np.exp(rng.uniform(-0.7, 0.7))
            bw, bh = side * aspect, side / aspect
            cx, cy = rng.uniform(0, w), rng.uniform(0, h)
        cand = np.array([max(cx - bw / 2, 0), max(cy - bh / 2, 0), min(cx + bw / 2, w), min(cy + bh / 2, h)])
        if cand[2] - cand[0] < 8 or cand[3] - cand[1] < 8:
            continue
        if not len(boxes) or box_iou(cand, boxes).max() < max_iou:
            return cand
    return None


def training_unit(seed: int, unit: int, crop_size: int = 64, scene_size: int = 192,
                  singles: int = 4, negatives: int = 3) -> list[tuple[np.ndarray, str, str, str]]:
    """Samples of the contrastive training mix produced by unit ``unit``.

    Even units: ``singles`` whole single-object images (classes balanced).
    Odd units: one scene of 2-7 objects, giving one jittered crop per object
    (IoU >= 0.65 with its box) and ``negatives`` crops with IoU < 0.3 to every
    object.  Crops enlarge the box side by 5-60 %; half stay inside the image,
    half are centred with :data:`PAD_RGB` outside it (as the detect head's roi_align).

    Returns:
        list of (image uint8 (crop_size, crop_size, 3), caption, label, image_labels).
    """
    rng = item_rng(seed, unit, 3)
    out = []
    if unit % 2 == 0:
        for k in range(singles):
            name = CLASS_NAMES[((unit // 2) * singles + k) % len(CLASS_NAMES)]
            img = render_object_image(rng, crop_size, name).image
            out.append((img, *object_rows(rng, name)))
        return out
    scene = render_scene(rng, scene_size, int(rng.integers(2, 8)))
    boxes = scene.boxes
    for obj in scene.objects:
        box = _jitter_positive(rng, obj.box)
        crop = context_crop(scene.image, box, rng.uniform(0.05, 0.6), crop_size, inside=rng.random() < 0.5)
        out.append((crop, *object_rows(rng, obj.name)))
    for _ in range(negatives):
        box = _sample_negative(rng, boxes, scene.image.shape)
        if box is not None:
            crop = context_crop(scene.image, box, rng.uniform(0.05, 0.6), crop_size, inside=rng.random() < 0.5)
            out.append((crop, *negative_row(rng)))
    return out


# ------------------------------------------------------------------------ writers
def png_bytes(image: np.ndarray) -> bytes:
    """PNG bytes of an RGB uint8 (H, W, 3) image (fast compression: the generated world is rewritten often)."""
    buf = io.BytesIO()
    Image.fromarray(image).save(buf, format="PNG", compress_level=1)
    return buf.getvalue()


def parallel_map(fn: Callable, items: Iterable, workers: int):
    """``map(fn, items)`` in order, over ``workers`` forked processes when ``workers > 1`` (chunks of 8).

    ``fn`` must be a module-level function (it is pickled by name); results are yielded as they come, in order.
    """
    if workers <= 1:
        yield from map(fn, items)
        return
    with multiprocessing.get_context("fork").Pool(workers) as pool:
        yield from pool.imap(fn, items, chunksize=8)


def _check(n: int, out_dir) -> Path:
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    return out


def _class_job(args):
    seed, i, size = args
    scene = next(generate_classification(1, seed, size, start=i))
    return scene.objects[0].name, png_bytes(scene.image)


def write_classification(out_dir: str | Path, n: int, seed: int = 0, size: int = 64, workers: int = 1) -> Path:
    """Single-object images as an ImageFolder tree ``OUT/<class name>/<index:06d>.png``.

    Item ``i`` shows ``CLASS_NAMES[i % 64]``; ``OUT/classes.txt`` lists the classes.

    Returns:
        The output folder.

    Raises:
        ValueError: ``n < 0``.
    """
    out = _check(n, out_dir)
    for name in CLASS_NAMES:
        (out / name).mkdir(exist_ok=True)
    for i, (name, png) in enumerate(parallel_map(_class_job, ((seed, i, size) for i in range(n)), workers)):
        (out / name / f"{i:06d}.png").write_bytes(png)
    (out / "classes.txt").write_text("\n".join(CLASS_NAMES) + "\n")
    return out


def coco_categories() -> list[dict]:
    """COCO ``categories``: id = index in :data:`CLASS_NAMES` + 1, supercategory = shape."""
    return [{"id": i + 1, "name": n, "supercategory": n.split(" ")[1]} for i, n in enumerate(CLASS_NAMES)]


def scene_annotations(scene: Scene, image_id: int, first_ann_id: int) -> list[dict]:
    """COCO instance annotations of a scene (masks as compressed RLE with ``counts`` as str)."""
    anns = []
    for k, obj in enumerate(scene.objects):
        rle = mask_utils.encode(np.asfortranarray(obj.mask.astype(np.uint8)))
        rle["counts"] = rle["counts"].decode("ascii")
        x1, y1, x2, y2 = (float(v) for v in obj.box)
        anns.append({
            "id": first_ann_id + k, "image_id": image_id, "category_id": obj.class_id + 1,
            "bbox": [x1, y1, x2 - x1, y2 - y1], "area": float(obj.area), "iscrowd": 0, "segmentation": rle,
        })
    return anns


def _scene_job(args):
    seed, i, size, lo, hi = args
    scene = next(generate_scenes(1, seed, size, lo, hi, start=i))
    captions = [describe_scene(scene)] + [describe_object(o, scene.image.shape, "full") for o in scene.objects]
    return scene, png_bytes(scene.image), captions


def write_scenes(out_dir: str | Path, n: int, seed: int = 0, size: int = 192, min_objects: int = 3,
                 max_objects: int = 6, workers: int = 1) -> Path:
    """Multi-object scenes with COCO instances and captions.

    Writes ``OUT/images/<index:06d>.png``, ``OUT/annotations.json`` (COCO
    instances: bbox [x, y, w, h] pixels, masks of visible parts as RLE, category
    ids 1..64 in :data:`CLASS_NAMES` order) and ``OUT/captions.csv``
    (``filepath,caption``: one whole-scene caption per image, then one detailed
    caption per object, e.g. "a small red star in the top left corner").

    Returns:
        The output folder.

    Raises:
        ValueError: ``n < 0`` or a bad object-count range.
    """
    out = _check(n, out_dir)
    if not 0 <= min_objects <= max_objects:
        raise ValueError(f"need 0 <= min_objects <= max_objects, got {min_objects}, {max_objects}")
    (out / "images").mkdir(exist_ok=True)
    images, anns, rows = [], [], []
    jobs = ((seed, i, size, min_objects, max_objects) for i in range(n))
    for i, (scene, png, captions) in enumerate(parallel_map(_scene_job, jobs, workers)):
        rel = f"images/{i:06d}.png"
        (out / rel).write_bytes(png)
        h, w = scene.image.shape[:2]
        images.append({"id": i + 1, "file_name": rel, "height": h, "width": w, "background": scene.background})
        anns.extend(scene_annotations(scene, i + 1, len(anns) + 1))
        rows.extend((rel, c) for c in captions)
    coco = {"info": {"description": f"ovtools shapes scenes (seed {seed})", "version": "1"},
            "images": images, "annotations": anns, "categories": coco_categories()}
    (out / "annotations.json").write_text(json.dumps(coco))
    with open(out / "captions.csv", "w", newline="") as f:
        wr = csv.writer(f)
        wr.writerow(["filepath", "caption"])
        wr.writerows(rows)
    return out


def _mix_job(args):
    seed, unit, crop_size, scene_size = args
    return [(png_bytes(img), c, lab, il) for img, c, lab, il in training_unit(seed, unit, crop_size, scene_size)]


def write_captions(out_dir: str | Path, n: int, seed: int = 0, size: int = 64, scene_size: int = 192,
                   workers: int = 1) -> Path:
    """The contrastive training mix (see the module docstring): ``n`` rows of ``OUT/captions.csv``.

    About 36 % whole single-object images, 40 % object crops from scenes, 24 %
    negative crops; all images are ``size × size``.

    Returns:
        The output folder.

    Raises:
        ValueError: ``n < 0``.
    """
    out = _check(n, out_dir)
    (out / "images").mkdir(exist_ok=True)
    rows: list[tuple[str, str, str, str]] = []
    pool = multiprocessing.get_context("fork").Pool(workers) if workers > 1 else None
    try:
        unit = 0
        while len(rows) < n:
            chunk = max(1, min(64, (n - len(rows)) // 4 + 1))
            jobs = [(seed, u, size, scene_size) for u in range(unit, unit + chunk)]
            results = pool.imap(_mix_job, jobs, chunksize=4) if pool else map(_mix_job, jobs)
            for u, samples in zip(range(unit, unit + chunk), results):
                for k, (png, caption, label, image_labels) in enumerate(samples):
                    if len(rows) < n:
                        rel = f"images/{u:06d}_{k}.png"
                        (out / rel).write_bytes(png)
                        rows.append((rel, caption, label, image_labels))
            unit += chunk
    finally:
        if pool is not None:
            pool.terminate()
    with open(out / "captions.csv", "w", newline="") as f:
        wr = csv.writer(f)
        wr.writerow(CAPTION_COLUMNS)
        wr.writerows(rows)
    return out


__all__ = [
    "CAPTION_COLUMNS", "NEGATIVE_LABEL", "NEGATIVE_WORDS", "SHAPES_TEMPLATES", "box_iou", "coco_categories",
    "PAD_RGB", "context_crop", "context_square", "scene_annotations", "training_unit", "write_captions",
    "write_classification", "write_scenes", "COLOURS", "SHAPES", "parallel_map", "png_bytes",
]
