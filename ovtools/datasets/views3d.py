"""Training crops from rendered views of the 3D world, and posed RGB-D folders of its scenes.

The 3D segmentation pipeline renders a bare point cloud from virtual cameras
(:func:`ovtools.scene3d.plan_views`, :func:`ovtools.scene3d.render_points`),
proposes class-agnostic masks on every view and encodes each mask as a
*masked crop* (:class:`ovtools.heads.mask_features.MaskFeatures`, ``"crop"``
scoring, ``mask_fill="mean"``, ``context_padding=0.2``).  A CLIP trained on the
2D world has never seen such renders, so :func:`write_views3d` writes the crops
it must learn, in the contrastive-mix format of
:func:`ovtools.datasets.export.write_captions`:

* **object crops**: for every instance with >= :data:`MIN_PIXELS` visible pixels in
  a view (mask = ``scene.instance_id[render.index]``), a masked crop made exactly
  as ``MaskFeatures`` makes it (:func:`masked_crops`), its mask sometimes dilated,
  eroded or cut by a half-plane (proposal masks are imperfect), and half the
  time also a plain crop of a jittered box with 15-35 % context per side;
* **floor crops**: masked crops of the whole visible floor or of a random part of
  it, and plain crops where the floor fills >= 60 % and objects < 3 % of the box;
* a few **background** crops (masked crops of the empty render background),
  captioned like the 2D world's negatives.

Views vary per scene: 3 cameras, 480 × 640, at random azimuths and elevations 20-60°
or a rotated top view (:func:`random_views`).

Captions reuse the 2D machinery (:func:`~ovtools.datasets.export.object_rows`):
an object is captioned by its class name (sometimes a synonym from
``configs/classes/shapes3d.yaml``: "a red ball"), its shape, "<colour> shape" or
"object", in the 2D templates or the ``objects`` templates the ``shapes3d``
class space is scored with; ``image_labels`` = ``"<colour> <shape>|<shape>|<colour>
shape|object"``.  The floor is ``label = image_labels = "floor"`` (captions use
"floor", "ground" or "floor plane").

Scene ``i``'s crops are a pure function of ``(seed, i)``; ``workers > 1`` writes the same bytes.
"""

from __future__ import annotations

import csv
import math
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from ..geometry import boxes_from_masks, masked_roi_crops, square_context_boxes
from ..prompts import ClassSpace, load_templates
from ..scene3d import (
    Camera,
    RGBDFrame,
    estimate_point_spacing,
    plan_views,
    render_points,
    write_rgbd_folder,
)
from ..scene3d.transforms import write_transforms_json
from .export import (
    CAPTION_COLUMNS,
    EXTRA_TEMPLATES,
    SHAPES_TEMPLATES,
    context_crop,
    negative_row,
    object_rows,
    parallel_map,
    png_bytes,
)
from .scenes3d import Scene3D, generate_scenes3d
from .shapes import item_rng

VIEW_SIZE = (480, 640)  # (H, W) of the pipeline's renders
CROP_SIZE = 64          # ovtools-shapes input side
MASK_PADDING = 0.2      # MaskFeatures(context_padding=0.2)
MIN_PIXELS = 80         # smallest visible instance that gives crops
FLOOR_NAME = "floor"
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)  # open_clip.OPENAI_DATASET_MEAN: the mask_fill="mean" colour
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)   # open_clip.OPENAI_DATASET_STD
_STREAM = 14  # item_rng stream of the view crops (scenes3d uses 13)


@lru_cache(maxsize=1)
def _synonyms() -> dict[str, tuple[str, ...]]:
    """Class name → synonyms of the ``shapes3d`` class space."""
    return {c.name: tuple(c.synonyms) for c in ClassSpace.load("shapes3d").classes}


@lru_cache(maxsize=1)
def _object_templates() -> tuple[str, ...]:
    return tuple(load_templates("objects").templates)


def _caption(rng: np.random.Generator, name: str) -> tuple[str, str, str]:
    """(caption, label, image_labels) for a crop of class ``name`` (an object or the floor)."""
    if name == FLOOR_NAME:
        label, image_labels = FLOOR_NAME, FLOOR_NAME
    else:
        caption, label, image_labels = object_rows(rng, name)
        if rng.random() < 0.5:
            return caption, label, image_labels  # the 2D wording as it is
    text = label
    syn = _synonyms().get(label, ())
    if syn and rng.random() < (0.5 if label == FLOOR_NAME else 0.35):
        text = syn[int(rng.integers(len(syn)))]
    u = rng.random()
    pool = _object_templates() if u < 0.6 else SHAPES_TEMPLATES if u < 0.85 else EXTRA_TEMPLATES
    return pool[int(rng.integers(len(pool)))].replace("{}", text), label, image_labels


# ------------------------------------------------------------------------ crops
def masked_crops(image, masks, padding: float = MASK_PADDING, size: int = CROP_SIZE) -> np.ndarray:
    """Masked crops as :meth:`MaskFeatures.crops` builds them before encoding, as images.

    Each mask's tight box is made square and enlarged by ``padding`` × its longer side
    per side (:func:`~ovtools.geometry.square_context_boxes`); the normalised image
    and the mask are resampled to ``size × size`` with ``roi_align`` (aligned, 2 × 2
    samples per bin; outside the image reads as 0 = the mean colour); pixels are
    blended with the CLIP mean colour by the resampled soft mask.

    Args:
        image: uint8 (H, W, 3) RGB, numpy or torch.
        masks: bool (N, H, W), each with at least one pixel.
        padding: context per side, fraction of the box's longer side (>= 0).
        size: output side in pixels.

    Returns:
        uint8 (N, size, size, 3); (0, size, size, 3) for N = 0.

    Raises:
        ValueError: shapes disagree or a mask is empty.
    """
    img = torch.as_tensor(np.asarray(image))
    m = torch.as_tensor(np.asarray(masks)).bool()
    if img.ndim != 3 or img.shape[2] != 3 or img.dtype != torch.uint8:
        raise ValueError(f"image must be uint8 (H, W, 3), got {img.dtype} {tuple(img.shape)}")
    if m.ndim != 3 or tuple(m.shape[1:]) != tuple(img.shape[:2]):
        raise ValueError(f"masks must have shape (N, {img.shape[0]}, {img.shape[1]}), got {tuple(m.shape)}")
    if m.shape[0] == 0:
        return np.zeros((0, size, size, 3), np.uint8)
    if not bool(m.flatten(1).any(1).all()):
        raise ValueError("every mask needs at least one pixel")
    mean = torch.tensor(CLIP_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(CLIP_STD).view(1, 3, 1, 1)
    xn = (img.permute(2, 0, 1)[None].float() / 255.0 - mean) / std
    rois = square_context_boxes(torch.from_numpy(boxes_from_masks(m)), padding)
    crops = masked_roi_crops(xn, rois, size, m)  # outside the mask: 0 = the mean colour
    pixels = crops * std + mean
    return (pixels * 255).round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).numpy()


def _alter_mask(rng: np.random.Generator, mask: np.ndarray) -> np.ndarray:
    """Imperfect proposal: the mask dilated, eroded or cut by a half-plane (or unchanged); never tiny."""
    u = rng.random()
    t = torch.from_numpy(mask)[None, None].float()
    if u < 0.15:  # dilated by 1-2 px: a rim of floor
        k = 2 * int(rng.integers(1, 3)) + 1
        out = (F.max_pool2d(t, k, 1, k // 2)[0, 0] > 0).numpy()
    elif u < 0.25:  # eroded by 1 px
        out = (-F.max_pool2d(-t, 3, 1, 1)[0, 0] > 0).numpy()
    elif u < 0.4:  # partial: a half-plane keeps 55-90 % of it
        ys, xs = np.nonzero(mask)
        a = rng.uniform(0, 2 * math.pi)
        proj = xs * math.cos(a) + ys * math.sin(a)
        keep = proj >= np.quantile(proj, rng.uniform(0.1, 0.45))
        out = np.zeros_like(mask)
        out[ys[keep], xs[keep]] = True
    else:
        return mask
    return out if out.sum() >= MIN_PIXELS // 2 else mask


def _jitter(rng: np.random.Generator, box: np.ndarray, sigma: float = 0.06) -> np.ndarray:
    w, h = box[2] - box[0], box[3] - box[1]
    out = box + rng.normal(0, sigma, 4) * np.array([w, h, w, h])
    return out if out[2] - out[0] > 2 and out[3] - out[1] > 2 else box


def _random_box(rng: np.random.Generator, shape: tuple[int, int], lo: float, hi: float) -> tuple[int, ...]:
    h, w = shape
    side = rng.uniform(lo, hi)
    bw, bh = side * math.exp(rng.uniform(-0.4, 0.4)), side * math.exp(rng.uniform(-0.4, 0.4))
    x0, y0 = rng.uniform(0, max(1.0, w - bw)), rng.uniform(0, max(1.0, h - bh))
    return int(x0), int(y0), int(min(w, x0 + bw)), int(min(h, y0 + bh))


# ------------------------------------------------------------------------ views
def random_views(rng: np.random.Generator, points: np.ndarray, n_views: int = 3, size=VIEW_SIZE) -> list:
    """Cameras at random azimuths and elevations 20-60° (or, one time in eight, a rotated top view).

    Each is framed as :func:`~ovtools.scene3d.plan_views` frames the cloud seen from
    that azimuth (bounding box of every 16th point, rotated by it; margin 1.0-1.4, 60° FOV).

    Args:
        rng: generator of the azimuths, elevations and margins.
        points: float (N, 3) world metres, z up.
        n_views: cameras to make.
        size: ``(H, W)`` of the images in pixels.

    Returns:
        ``n_views`` :class:`~ovtools.scene3d.Camera` s, poses in the world frame.
    """
    frame_pts = np.asarray(points, np.float32)[::16]  # plan_views only needs the bounding box
    cams = []
    for _ in range(n_views):
        a = rng.uniform(0, 2 * math.pi)
        c, s = math.cos(a), math.sin(a)
        rot = np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]], np.float32)
        top = rng.random() < 0.125
        elev = (rng.uniform(20, 60),)
        cam = plan_views(frame_pts @ rot, n_around=0 if top else 1, elevations=elev, size=size, top_down=top,
                         n_inside=0, margin=rng.uniform(1.0, 1.4))[0]
        pose, rot64 = np.eye(4), rot.astype(np.float64)
        pose[:3, :3], pose[:3, 3] = rot64 @ cam.pose[:3, :3], rot64 @ cam.pose[:3, 3]
        cams.append(Camera(cam.K, pose, cam.size, cam.name))
    return cams


def view_crops(rng: np.random.Generator, scene: Scene3D, rgb: np.ndarray, index: np.ndarray,
               size: int = CROP_SIZE) -> list[tuple[np.ndarray, str, str, str]]:
    """Crops of one rendered view (see the module docs).

    Args:
        rng: generator of every random choice.
        scene: the scene rendered.
        rgb: uint8 (H, W, 3) the render's colours.
        index: int64 (H, W) the render's point index (-1 = empty).
        size: crop side in pixels.

    Returns:
        list of (uint8 (size, size, 3) crop, caption, label, image_labels).
    """
    shown = index >= 0
    inst = np.where(shown, scene.instance_id[np.maximum(index, 0)], -1)
    hw = inst.shape
    masks, rows, plain = [], [], []
    for k, obj in enumerate(scene.objects, start=1):
        mask = inst == k
        if mask.sum() < MIN_PIXELS:
            continue
        masks.append(_alter_mask(rng, mask))
        rows.append(_caption(rng, obj.name))
        if rng.random() < 0.5:
            ys, xs = np.nonzero(mask)
            box = _jitter(rng, np.array([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1], np.float64))
            crop = context_crop(rgb, box, 2 * rng.uniform(0.15, 0.35), size, inside=rng.random() < 0.5)
            plain.append((crop, *_caption(rng, obj.name)))
    floor = inst == 0
    if floor.sum() >= 4 * MIN_PIXELS:
        if rng.random() < 0.4:  # the whole visible floor
            masks.append(floor)
            rows.append(_caption(rng, FLOOR_NAME))
        for _ in range(10):  # a part of it
            x0, y0, x1, y1 = _random_box(rng, hw, 40, 260)
            part = np.zeros_like(floor)
            part[y0:y1, x0:x1] = floor[y0:y1, x0:x1]
            if part.sum() >= 4 * MIN_PIXELS:
                masks.append(part)
                rows.append(_caption(rng, FLOOR_NAME))
                break
        for _ in range(20):  # a plain crop where the floor dominates
            x0, y0, x1, y1 = _random_box(rng, hw, 48, 200)
            win = inst[y0:y1, x0:x1]
            if win.size and (win == 0).mean() >= 0.6 and (win > 0).mean() < 0.03:
                crop = context_crop(rgb, (x0, y0, x1, y1), 0.0, size)
                plain.append((crop, *_caption(rng, FLOOR_NAME)))
                break
    if rng.random() < 0.2:  # the empty background around the floor
        x0, y0, x1, y1 = _random_box(rng, hw, 60, 300)
        part = np.zeros_like(shown)
        part[y0:y1, x0:x1] = ~shown[y0:y1, x0:x1]
        if part.sum() >= 4 * MIN_PIXELS:
            masks.append(part)
            rows.append(negative_row(rng))
    crops = masked_crops(rgb, np.stack(masks), MASK_PADDING, size) if masks else []
    return [(c, *r) for c, r in zip(crops, rows)] + plain


def scene_crops(seed: int, index: int, n_views: int = 3, points: int = 150_000, size=VIEW_SIZE,
                crop_size: int = CROP_SIZE) -> list[tuple[np.ndarray, str, str, str]]:
    """Every crop of scene ``index`` of the 3D world of ``seed`` (about 20-30 at the defaults).

    Args:
        seed: dataset seed (the scenes of :func:`~ovtools.datasets.scenes3d.generate_scenes3d`).
        index: scene index.
        n_views: views rendered.
        points: points per scene.
        size: ``(H, W)`` of the renders in pixels.
        crop_size: crop side in pixels.

    Returns:
        list of (uint8 (crop_size, crop_size, 3), caption, label, image_labels), a pure
        function of the arguments.
    """
    scene = next(generate_scenes3d(1, seed, start=index, points=points))
    rng = item_rng(seed, index, _STREAM)
    spacing = estimate_point_spacing(scene.points)
    out = []
    for cam in random_views(rng, scene.points, n_views, size):
        r = render_points(scene.points, scene.colors, cam.K, cam.pose, cam.size, point_size_m=1.5 * spacing)
        out.extend(view_crops(rng, scene, r.rgb.numpy(), r.index.numpy(), crop_size))
    return out


def _views_job(args):
    seed, i, n_views, points, size = args
    torch.set_num_threads(1)  # one process per core
    return [(png_bytes(img), c, lab, il) for img, c, lab, il in scene_crops(seed, i, n_views, points, size)]


def write_views3d(out_dir: str | Path, n_scenes: int, seed: int = 0, workers: int = 1, *, n_views: int = 3,
                  points: int = 150_000, size=VIEW_SIZE) -> Path:
    """Crops of rendered 3D scenes as a contrastive training set.

    Writes ``OUT/images/<scene:06d>_<k:02d>.png`` (64 × 64) and ``OUT/captions.csv``
    with columns ``filepath,caption,label,image_labels`` (as
    :func:`~ovtools.datasets.export.write_captions`; paths relative to ``OUT``).

    Args:
        out_dir: output folder (created).
        n_scenes: scenes ``0 .. n_scenes - 1`` of ``seed``.
        seed: dataset seed.
        workers: rendering processes (the output does not depend on it).
        n_views, points, size: see :func:`scene_crops`.

    Returns:
        The output folder.

    Raises:
        ValueError: ``n_scenes < 0``, ``n_views < 1`` or ``points < 1``.
    """
    if n_scenes < 0 or n_views < 1 or points < 1:
        raise ValueError(f"need n_scenes >= 0, n_views >= 1, points >= 1; got {n_scenes}, {n_views}, {points}")
    out = Path(out_dir)
    (out / "images").mkdir(parents=True, exist_ok=True)
    rows = []
    jobs = ((seed, i, n_views, points, tuple(size)) for i in range(n_scenes))
    for i, samples in enumerate(parallel_map(_views_job, jobs, workers)):
        for k, (png, caption, label, image_labels) in enumerate(samples):
            rel = f"images/{i:06d}_{k:02d}.png"
            (out / rel).write_bytes(png)
            rows.append((rel, caption, label, image_labels))
    with open(out / "captions.csv", "w", newline="") as f:
        wr = csv.writer(f)
        wr.writerow(CAPTION_COLUMNS)
        wr.writerows(rows)
    return out


# ------------------------------------------------------------------------ RGB-D
def write_scene_rgbd(scene: Scene3D, out_dir: str | Path, n_views: int, size=VIEW_SIZE) -> Path:
    """Render ``n_views`` planned views of a scene into a ScanNet-layout posed RGB-D folder.

    Cameras: :func:`~ovtools.scene3d.plan_views` with ``ceil(n_views / 2)`` azimuths on
    the 30° and 55° rings (no top view), taken azimuth by azimuth, alternating rings,
    the first ``n_views``; splats of 1.5 × the point spacing.  Frames ``0 .. n_views - 1``:
    ``color/<k>.jpg``, ``depth/<k>.png`` (uint16 millimetres, 0 = empty),
    ``pose/<k>.txt`` (camera-to-world), ``intrinsic/intrinsic_{color,depth}.txt``
    (:func:`~ovtools.scene3d.write_rgbd_folder`; read back with :class:`~ovtools.scene3d.RGBDFolder`),
    and nerfstudio's ``transforms.json`` for the same frames (OpenGL camera-to-world poses, depth
    referenced by ``depth_file_path``; :func:`~ovtools.scene3d.transforms.write_transforms_json`), so
    the folder also trains a NeRF (``ns-train ovtools-field --data OUT``; 24-40 views suit a NeRF).

    Args:
        scene: the scene.
        out_dir: folder to create or fill.
        n_views: frames to write (>= 1).
        size: ``(H, W)`` in pixels.

    Returns:
        ``out_dir`` as a ``Path``.

    Raises:
        ValueError: ``n_views < 1``.
    """
    if n_views < 1:
        raise ValueError(f"n_views must be >= 1, got {n_views}")
    n_around = math.ceil(n_views / 2)
    cams = plan_views(scene.points, n_around=n_around, elevations=(30.0, 55.0), size=size, top_down=False,
                      n_inside=0)
    order = [cams[ring * n_around + k] for k in range(n_around) for ring in (0, 1)][:n_views]
    spacing = estimate_point_spacing(scene.points)

    def frames():
        for k, cam in enumerate(order):
            r = render_points(scene.points, scene.colors, cam.K, cam.pose, cam.size, point_size_m=1.5 * spacing)
            yield RGBDFrame(r.rgb.numpy(), r.depth.numpy(), cam.pose, cam.K, cam.K, str(k))

    out = write_rgbd_folder(out_dir, frames())
    names = [str(k) for k in range(len(order))]
    write_transforms_json(out, order, [f"color/{k}.jpg" for k in names], [f"depth/{k}.png" for k in names], 1000.0)
    return out


__all__ = ["CLIP_MEAN", "CLIP_STD", "CROP_SIZE", "FLOOR_NAME", "MASK_PADDING", "MIN_PIXELS", "VIEW_SIZE",
           "masked_crops", "random_views", "scene_crops", "view_crops", "write_scene_rgbd", "write_views3d"]
