#!/usr/bin/env python
"""Quick quality check of the evaluation-world model on held-out generated data.

    python scripts/eval_shapes_model.py [--checkpoint PATH] [--n-cls 1280] [--n-scenes 150] [--ap-scenes 30]

Reports:
  * zero-shot top-1 over the 64 classes on single-object images (one template, and the shapes template set);
  * crop top-1 on ground-truth boxes of scenes (box + 15 % context, squared, resized by the encoder);
  * how often a GT crop's true class beats every negative phrase, how often a background crop
    (IoU < 0.3 with every object) is won by a negative phrase, and how often "object" beats the best
    wrong class on GT crops (absent labels are then not reported);
  * detection AP50 of ovtools' DetectPipeline with the detect-shapes preset (crop and dense scoring).
Held-out seeds differ from the training seed (0).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import time

import numpy as np
import torch

from ovtools.datasets.export import (
    SHAPES_TEMPLATES,
    box_iou,
    coco_categories,
    context_square,
    scene_annotations,
)
from ovtools.datasets.shapes import CLASS_NAMES, generate_classification, generate_scenes, item_rng
from ovtools.encoders import CLIPEncoder

NEGATIVES = ("object", "things", "stuff", "texture", "background")


def text_bank(enc: CLIPEncoder, phrases, templates) -> torch.Tensor:
    embs = []
    for p in phrases:
        e = enc.encode_texts([t.replace("{}", p) for t in templates]).mean(0)
        embs.append(e / e.norm())
    return torch.stack(embs)


def crops(image: np.ndarray, boxes, context=0.15):
    out = []
    for b in boxes:
        x1, y1, x2, y2 = context_square(b, image.shape, context)
        out.append(image[int(round(y1)) : max(int(round(y2)), int(round(y1)) + 1),
                         int(round(x1)) : max(int(round(x2)), int(round(x1)) + 1)])
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--checkpoint", default=None, help="model .safetensors (default: the shipped one)")
    ap.add_argument("--n-cls", type=int, default=1280)
    ap.add_argument("--n-scenes", type=int, default=150)
    ap.add_argument("--ap-scenes", type=int, default=30)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--scoring", default="crop,dense", help="DetectPipeline scorings to measure AP with")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    t0 = time.time()
    enc = CLIPEncoder("ovtools-shapes", args.checkpoint or "shapes", device="cpu")
    single = ["a photo of a {}."]
    cls_single = text_bank(enc, CLASS_NAMES, single)
    cls_ens = text_bank(enc, CLASS_NAMES, SHAPES_TEMPLATES)
    neg_ens = text_bank(enc, NEGATIVES, SHAPES_TEMPLATES)

    scenes = list(generate_classification(args.n_cls, seed=101))
    y = torch.tensor([s.objects[0].class_id for s in scenes])
    f = enc.encode_images([s.image for s in scenes])
    acc1 = float(((f @ cls_single.T).argmax(1) == y).float().mean())
    acc_e = float(((f @ cls_ens.T).argmax(1) == y).float().mean())
    print(f"zero-shot single-object top-1 (1 template): {acc1:.4f}   (shapes templates): {acc_e:.4f}   n={len(y)}")

    scenes = list(generate_scenes(args.n_scenes, seed=202))
    gt_crops, gt_y, bg_crops = [], [], []
    for i, s in enumerate(scenes):
        gt_crops += crops(s.image, s.boxes)
        gt_y += [o.class_id for o in s.objects]
        rng = item_rng(303, i)
        for _ in range(3):
            for _try in range(30):
                side = rng.uniform(16, 90)
                x, y0 = rng.uniform(0, 192 - side), rng.uniform(0, 192 - side)
                b = np.array([x, y0, x + side, y0 + side])
                if box_iou(b, s.boxes).max() < 0.3:
                    bg_crops += crops(s.image, [b])
                    break
    gy = torch.tensor(gt_y)
    fg = enc.encode_images(gt_crops)
    fb = enc.encode_images(bg_crops)
    from torchvision.ops import roi_align

    roi_feats = []
    for s in scenes:
        b = torch.from_numpy(s.boxes)
        c, half = (b[:, :2] + b[:, 2:]) / 2, (b[:, 2:] - b[:, :2]).max(1).values[:, None] * 1.4 / 2
        x = enc.normalize(enc.to_float(s.image))
        crops_t = roi_align(x, [torch.cat([c - half, c + half], 1)], output_size=enc.image_size, aligned=True)
        roi_feats.append(enc.encode_pixels(crops_t))
    fr = torch.cat(roi_feats)
    print(f"GT-crop top-1 (roi_align, padding 0.2/side, shapes templates): "
          f"{float(((fr @ cls_ens.T).argmax(1) == gy).float().mean()):.4f}")
    for name, bank in (("1 template", cls_single), ("shapes templates", cls_ens)):
        print(f"GT-crop top-1 ({name}): {float(((fg @ bank.T).argmax(1) == gy).float().mean()):.4f}  n={len(gy)}")
    sc, sn = fg @ cls_ens.T, fg @ neg_ens.T
    true = sc[torch.arange(len(gy)), gy]
    print(f"GT crops: true class beats every negative: {float((true > sn.max(1).values).float().mean()):.4f}")
    wrong = sc.clone()
    wrong[torch.arange(len(gy)), gy] = -9
    best_wrong = wrong.max(1).values
    print(f"GT crops: 'object' beats best wrong class: {float((sn[:, 0] > best_wrong).float().mean()):.4f}"
          f"   any negative beats best wrong class: {float((sn.max(1).values > best_wrong).float().mean()):.4f}")
    bsc, bsn = fb @ cls_ens.T, fb @ neg_ens.T
    print(f"background crops won by a negative: {float((bsn.max(1).values > bsc.max(1).values).float().mean()):.4f}"
          f"  n={len(fb)}")
    scale = enc.logit_scale
    print(f"logit scale {scale:.1f}; mean cos true {float(true.mean()):.3f}, "
          f"best neg on GT {float(sn.max(1).values.mean()):.3f}")

    if args.ap_scenes:
        from ovtools.eval.coco import coco_detection_metrics
        from ovtools.pipelines import DetectPipeline
        from pycocotools.coco import COCO

        gt = {"images": [], "annotations": [], "categories": coco_categories()}
        for i, s in enumerate(scenes[: args.ap_scenes]):
            gt["images"].append({"id": i + 1, "height": 192, "width": 192, "file_name": f"{i}.png"})
            gt["annotations"] += scene_annotations(s, i + 1, len(gt["annotations"]) + 1)
        with contextlib.redirect_stdout(io.StringIO()):
            cg = COCO()
            cg.dataset = gt
            cg.createIndex()
        for scoring in args.scoring.split(","):
            t1 = time.time()
            pipe = DetectPipeline("detect-shapes", encoder=enc, scoring=scoring, use_cache=False)
            dets = []
            for i, s in enumerate(scenes[: args.ap_scenes]):
                d = pipe(s.image)
                for (x1, y1, x2, y2), c, k in zip(d.xyxy.tolist(), d.confidence.tolist(), d.class_id.tolist()):
                    cat = CLASS_NAMES.index(pipe.labels[k]) + 1
                    dets.append({"image_id": i + 1, "category_id": cat, "bbox": [x1, y1, x2 - x1, y2 - y1],
                                 "score": c})
            m = coco_detection_metrics(cg, dets)
            print(f"DetectPipeline(detect-shapes, scoring={scoring}): AP50 {m['AP50']:.4f}  AP {m['AP']:.4f}  "
                  f"AR100 {m['AR100']:.4f}  ({len(dets)} detections on {args.ap_scenes} scenes, "
                  f"{time.time() - t1:.0f} s)")
    print(f"eval time {time.time() - t0:.0f} s")


if __name__ == "__main__":
    main()
