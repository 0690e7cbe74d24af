"""Region-level training data: proposal crops of COCO images labelled by their overlap with the boxes.

A detector over CLIP crops (:mod:`ovtools.heads.detect`) sees the *proposals* of an image,
not whole objects: most are parts of an object, fragments of an occluded one, or loose boxes
around it.  A CLIP trained on whole images scores a star's corner or half a hexagon as the
class, and the head reports it.  Region-text pre-training teaches the crops themselves
(RegionCLIP, Zhong et al. CVPR 2022 §3.2: region-concept pairs; OWL-ViT, Minderer et al.
ECCV 2022 §3: box-level contrastive fine-tuning; Fast R-CNN, Girshick ICCV 2015 §2.3:
proposals with IoU >= 0.5 are the class, IoU in [0.1, 0.5) background).  Here, for every
image of a COCO instances file:

* the detector's own proposal source (default ``segments``) gives boxes on the processing
  frame; a few jittered ground-truth boxes are added, and shifted / rescaled ones (loose and
  off-centre boxes, which the crop's context padding makes look like the object);
* a proposal with IoU >= ``positive_iou`` with an object becomes a row captioned with the
  object's category in a prompt template; its secondary labels are the category's
  ``supercategory`` and the generic "object" (:func:`ovtools.train.loss.label_targets`);
* a proposal that is a *part* (at least ``inside`` of its area within an object box, IoU
  below ``negative_iou``) or a *loose box* (IoU in [``min_negative_iou``, ``negative_iou``))
  becomes a negative row captioned with a non-object word ("background", "texture",
  "stuff", "things", "clutter": the class-space and canonical negatives every head scores
  against, :mod:`ovtools.heads.scoring`); at most ``negatives_per_object`` per object;
* proposals in between are left out (ambiguous).

Each crop is made exactly as the head scores it: square context box
(:func:`~ovtools.geometry.square_context_boxes`, ``context_padding``), resampled with
``roi_align`` to the model's input, outside-image samples at the mean colour; with
``masked=True`` the crop is the segment head's masked crop (:func:`~ovtools.geometry.masked_roi_crops`,
mean fill) of a mask proposal, labelled by mask IoU.  Rows go to a caption CSV
(``filepath,caption,label,image_labels``) that :func:`ovtools.train.trainer.train` reads;
batches are drawn at random over all rows, so a row's look-alike classes (same colour or
shape) are in its batch as negatives whenever the data has them.

Example:
    >>> write_region_data("scenes/annotations.json", "runs/regions", image_size=64)  # doctest: +SKIP
    PosixPath('runs/regions/regions.csv')
"""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from pycocotools import mask as mask_utils
from torchvision.ops import box_iou, roi_align

from ..datasets.coco import read_coco
from ..datasets.export import EXTRA_TEMPLATES, GENERIC_LABEL, NEGATIVE_LABEL, NEGATIVE_WORDS, SHAPES_TEMPLATES
from ..geometry import boxes_from_masks, mask_iou, masked_roi_crops, square_context_boxes
from ..io.images import load_image
from ..proposals.registry import create_proposals

CSV_NAME = "regions.csv"


@dataclass(frozen=True)
class RegionDataConfig:
    """How region rows are made from a COCO file (see the module docstring).

    Attributes:
        proposals: proposal source name (:mod:`ovtools.proposals`); a mask source gives its masks' boxes.
        proposal_options: keyword options of the source.
        masked: masked crops of mask proposals (segmentation) instead of box crops (detection).
        context_padding: crop context, fraction of the box's longer side per side (the head's setting).
        max_side: processing size bound in pixels (the preset's ``max_side``).
        positive_iou: IoU with an object from which a proposal is that object.
        negative_iou: IoU below which a part / loose box is a negative.
        min_negative_iou: smallest IoU of a loose-box negative (parts inside an object count at any IoU).
        inside: a proposal lying at least this fraction inside an object box is a part of it.
        jittered: jittered ground-truth boxes added per object (positives when they keep ``positive_iou``).
        shifted: shifted and rescaled ground-truth boxes added per object (box crops only): mostly loose or
            off-centre boxes that the context padding makes look like the object, labelled by their IoU.
        negatives_per_object: at most this many negatives per object of the image.
        background_per_image: proposals overlapping no object (IoU < ``min_negative_iou``, not a part) kept as
            background rows per image.
        min_box_size: proposals with a shorter side (processing pixels) are dropped, as in the head.
        seed: sampling seed (jitter, template choice, negative subsampling).
    """

    proposals: str = "segments"
    proposal_options: dict | None = None
    masked: bool = False
    context_padding: float = 0.3
    max_side: int = 512
    positive_iou: float = 0.7
    negative_iou: float = 0.5
    min_negative_iou: float = 0.1
    inside: float = 0.6
    jittered: int = 2
    shifted: int = 3
    negatives_per_object: int = 4
    background_per_image: int = 1
    min_box_size: float = 6.0
    seed: int = 0

    def __post_init__(self) -> None:
        if not 0 < self.negative_iou <= self.positive_iou <= 1:
            raise ValueError(f"need 0 < negative_iou <= positive_iou <= 1, got {self.negative_iou}, "
                             f"{self.positive_iou}")
        if not 0 <= self.min_negative_iou < self.negative_iou:
            raise ValueError(f"need 0 <= min_negative_iou < negative_iou, got {self.min_negative_iou}")
        if self.context_padding < 0 or self.max_side < 16:
            raise ValueError(f"context_padding must be >= 0 and max_side >= 16, got {self.context_padding}, "
                             f"{self.max_side}")


def _template(rng: np.random.Generator) -> str:
    pool = SHAPES_TEMPLATES if rng.random() < 0.7 else EXTRA_TEMPLATES
    return pool[int(rng.integers(len(pool)))]


def region_labels(iou: np.ndarray, inside: np.ndarray, cfg: RegionDataConfig) -> np.ndarray:
    """Which object each proposal is, or that it is a negative.

    Args:
        iou: float (P, G) IoU of each proposal with each object (boxes, or masks when ``cfg.masked``).
        inside: float (P, G) fraction of each proposal's box area inside each object's box.
        cfg: the thresholds.

    Returns:
        int64 (P,): object index ``g`` (IoU >= ``positive_iou``), ``-1`` part or loose box (a negative),
        ``-2`` background (overlaps nothing), ``-3`` ambiguous (left out).
    """
    p = iou.shape[0]
    out = np.full(p, -3, dtype=np.int64)
    if iou.shape[1] == 0:
        out[:] = -2
        return out
    best, arg = iou.max(1), iou.argmax(1)
    part = (inside >= cfg.inside).any(1)
    out[best >= cfg.positive_iou] = arg[best >= cfg.positive_iou]
    neg = (best < cfg.negative_iou) & ((best >= cfg.min_negative_iou) | part)
    out[neg] = -1
    out[(best < cfg.min_negative_iou) & ~part] = -2
    return out


def _inside_fraction(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    lt = torch.maximum(a[:, None, :2], b[None, :, :2])
    rb = torch.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = (rb - lt).clamp(min=0).prod(-1)
    area = ((a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])).clamp(min=1e-6)
    return inter / area[:, None]


def _jitter(rng: np.random.Generator, box: np.ndarray, n: int) -> list[np.ndarray]:
    w, h = box[2] - box[0], box[3] - box[1]
    return [box + rng.normal(0, 0.06, 4) * np.array([w, h, w, h]) for _ in range(n)]


def _shift(rng: np.random.Generator, box: np.ndarray, n: int) -> list[np.ndarray]:
    """Boxes shifted by ~25 % of the side and rescaled by 0.75-1.8x (loose and off-centre boxes)."""
    w, h = box[2] - box[0], box[3] - box[1]
    out = []
    for _ in range(n):
        cx, cy = (box[0] + box[2]) / 2 + rng.normal(0, 0.25) * w, (box[1] + box[3]) / 2 + rng.normal(0, 0.25) * h
        sw, sh = w * np.exp(rng.uniform(-0.3, 0.6)), h * np.exp(rng.uniform(-0.3, 0.6))
        out.append(np.array([cx - sw / 2, cy - sh / 2, cx + sw / 2, cy + sh / 2]))
    return out


def _png(img: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(img).save(buf, format="PNG", compress_level=1)
    return buf.getvalue()


def _to_uint8(crops: torch.Tensor, mean: torch.Tensor, std: torch.Tensor) -> np.ndarray:
    x = crops * std.view(1, 3, 1, 1) + mean.view(1, 3, 1, 1)
    return (x.clamp(0, 1) * 255).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()


def write_region_data(annotations: str | Path, out_dir: str | Path, image_size: int = 64,
                      mean: Sequence[float] = (0.48145466, 0.4578275, 0.40821073),
                      std: Sequence[float] = (0.26862954, 0.26130258, 0.27577711),
                      config: RegionDataConfig | None = None, image_dir: str | Path | None = None) -> Path:
    """Write region crops of every image of a COCO instances file and their caption CSV.

    Args:
        annotations: COCO instances JSON (``bbox`` xywh pixels; ``segmentation`` needed with ``masked``).
        out_dir: output folder (``OUT/crops/*.png``, ``OUT/regions.csv``); must not hold a ``regions.csv``.
        image_size: crop side in pixels (the model's input size).
        mean, std: the model's normalisation (RGB, [0, 1] units); outside-image samples get ``mean``.
        config: :class:`RegionDataConfig` (default: detection crops of ``segments`` proposals).
        image_dir: folder the ``file_name`` entries are relative to (default: the JSON's).

    Returns:
        The CSV's path (columns ``filepath,caption,label,image_labels``, paths relative to ``out_dir``).

    Raises:
        FileNotFoundError: ``annotations`` missing.
        FileExistsError: ``out_dir`` already holds region data.
        ValueError: unreadable COCO file, no annotation, or no row could be made (the message names the file).
    """
    cfg = config or RegionDataConfig()
    out = Path(out_dir)
    if (out / CSV_NAME).exists():
        raise FileExistsError(f"{out / CSV_NAME} exists; give an empty output folder")
    data = read_coco(annotations, image_dir)
    coco = data.coco
    if not coco.dataset.get("annotations"):
        raise ValueError(f"{annotations}: no annotations to train regions on")
    cats = {c["id"]: c for c in coco.dataset["categories"]}
    source = create_proposals(cfg.proposals, **dict(cfg.proposal_options or {}))
    mask_source = getattr(source, "output", "boxes") == "masks"
    if cfg.masked and not mask_source:
        raise ValueError(f"masked crops need a mask proposal source, got {cfg.proposals!r}")
    mean_t, std_t = torch.tensor(mean, dtype=torch.float32), torch.tensor(std, dtype=torch.float32)
    rng = np.random.default_rng(cfg.seed)
    (out / "crops").mkdir(parents=True, exist_ok=True)
    rows: list[tuple[str, str, str, str]] = []
    for img_id, path in zip(data.image_ids, data.paths):
        anns = [a for a in coco.imgToAnns.get(img_id, []) if not a.get("iscrowd", 0)]
        image = load_image(path, cfg.max_side)
        pixels = image.pixels
        h, w = pixels.shape[:2]
        oh, ow = image.original_size
        scale = np.array([w / ow, h / oh, w / ow, h / oh], dtype=np.float32)
        gt = np.array([[a["bbox"][0], a["bbox"][1], a["bbox"][0] + a["bbox"][2], a["bbox"][1] + a["bbox"][3]]
                       for a in anns], dtype=np.float32).reshape(-1, 4) * scale
        found = source(pixels)
        masks = None
        if mask_source:
            masks = np.asarray(found, dtype=bool).reshape(-1, h, w)
            found = boxes_from_masks(masks)
        boxes = np.asarray(found, dtype=np.float32).reshape(-1, 4)
        if not cfg.masked:
            extra = [b for g in gt for b in (*_jitter(rng, g, cfg.jittered), *_shift(rng, g, cfg.shifted))]
            if extra:
                boxes = np.concatenate([boxes, np.clip(np.stack(extra), 0, [w, h, w, h]).astype(np.float32)])
        keep = ((boxes[:, 2] - boxes[:, 0]) >= cfg.min_box_size) & ((boxes[:, 3] - boxes[:, 1]) >= cfg.min_box_size)
        boxes = boxes[keep]
        masks = masks[keep] if masks is not None and cfg.masked else None
        if len(boxes) == 0:
            continue
        bt, gtt = torch.from_numpy(boxes), torch.from_numpy(gt)
        if cfg.masked and len(gt):
            gm = np.stack([mask_utils.decode(coco.annToRLE(a)).astype(bool) for a in anns])
            if gm.shape[1:] != (h, w):
                gm = np.stack([np.asarray(Image.fromarray(m).resize((w, h), Image.Resampling.NEAREST)) for m in gm])
            iou = mask_iou(torch.from_numpy(masks), torch.from_numpy(gm)).numpy()
        else:
            iou = box_iou(bt, gtt).numpy() if len(gt) else np.zeros((len(boxes), 0), np.float32)
        inside = _inside_fraction(bt, gtt).numpy() if len(gt) else np.zeros((len(boxes), 0), np.float32)
        label = region_labels(iou, inside, cfg)
        pos = np.flatnonzero(label >= 0)
        neg = np.flatnonzero(label == -1)
        neg = rng.permutation(neg)[: cfg.negatives_per_object * len(gt)]
        bg = rng.permutation(np.flatnonzero(label == -2))[: cfg.background_per_image]
        chosen = np.concatenate([pos, neg, bg]).astype(np.int64)
        if len(chosen) == 0:
            continue
        x = (torch.from_numpy(pixels).permute(2, 0, 1)[None].float() / 255 - mean_t.view(1, 3, 1, 1)) / std_t.view(
            1, 3, 1, 1)
        rois = square_context_boxes(bt[chosen], cfg.context_padding)
        if cfg.masked:
            crops = masked_roi_crops(x, rois, image_size, torch.from_numpy(masks[chosen]))
        else:
            crops = roi_align(x, [rois], output_size=image_size, spatial_scale=1.0, sampling_ratio=-1, aligned=True)
        for k, (i, img) in enumerate(zip(chosen.tolist(), _to_uint8(crops, mean_t, std_t))):
            rel = f"crops/{img_id}_{k}.png"
            (out / rel).write_bytes(_png(img))
            if label[i] >= 0:
                cat = cats[anns[label[i]]["category_id"]]
                name = cat["name"]
                extra_labels = [s for s in (cat.get("supercategory"), GENERIC_LABEL) if s and s != name]
                rows.append((rel, _template(rng).replace("{}", name), name, "|".join([name, *extra_labels])))
            else:
                word = NEGATIVE_WORDS[int(rng.integers(len(NEGATIVE_WORDS)))]
                rows.append((rel, _template(rng).replace("{}", word), NEGATIVE_LABEL, NEGATIVE_LABEL))
    if not rows:
        raise ValueError(f"{annotations}: no proposal overlapped an object or a part of one; no region rows")
    tmp = out / (CSV_NAME + ".tmp")
    with open(tmp, "w", newline="") as f:
        wr = csv.writer(f)
        wr.writerow(("filepath", "caption", "label", "image_labels"))
        wr.writerows(rows)
    tmp.replace(out / CSV_NAME)
    return out / CSV_NAME
