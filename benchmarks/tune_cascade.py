"""Cascade scoring on the evaluation world: AP50 against CPU time for each ranking pass, k and NMS IoU.

    python benchmarks/tune_cascade.py WORKDIR [--seed 1000] [--scenes 40] [--image-size 192] \
        [--objects 3,6] [--sides 0,256,512] [--k 20,30,40,50] [--nms none,0.5] [--adaptive]

Scenes are generated once with ``ovtools datagen --kind scenes`` (seed 1000-1999: tuning; 2002:
the held-out scenes of ``benchmarks/bench_quality.py`` — never tune on the scenes you report).
For every scene and the ``detect-shapes`` preset (1 torch thread) the script measures, in one run,
the CPU seconds of each stage: proposals, crop features of *every* proposal, the ranking dense
pass at each side (0 = the processing frame's own size) and the post-processing (open-set
scoring, NMS).  Every cascade variant then re-uses the crop features of its candidates (crop
scoring is per box, so they are exactly the features the cascade would compute), and its time is
proposals + dense pass + k crops (at the scene's measured seconds per crop) + post-processing,
as a ratio to crop scoring's proposals + all crops + post-processing.
"""

from __future__ import annotations

import argparse
import itertools
import time
from pathlib import Path

import numpy as np
import torch
from torchvision.ops import nms

from ovtools.cli.inprocess import run_cli
from ovtools.datasets.coco import read_coco
from ovtools.eval.coco import coco_detection_metrics
from ovtools.eval.data import name_key
from ovtools.heads.frame import processing_frame
from ovtools.heads.scoring import cascade_candidates, open_set_scores
from ovtools.pipelines import DetectPipeline


def cpu(fn, *args):
    """``(result, CPU seconds)`` of ``fn(*args)``."""
    t0 = time.process_time()
    out = fn(*args)
    return out, time.process_time() - t0


def measure(pipe, data, sides: list[int]) -> list[dict]:
    """Per scene: proposals, all crop features, dense features per side, and each stage's CPU seconds."""
    head, enc, emb = pipe.head, pipe.encoder, pipe.embeddings
    scenes = []
    for img_id, path in zip(data.image_ids, data.paths):
        frame = processing_frame(enc, pipe.load(str(path)), head.config.max_side)
        boxes, t_prop = cpu(head.propose, frame.pixels)
        crops, t_crop = cpu(head.crop_features, enc.normalize(frame.x).float(), boxes)
        _, t_post = cpu(head.detections_from_features, boxes, crops, emb, frame.size, frame.original_size)
        s = {"id": img_id, "boxes": boxes, "crops": crops, "frame": frame, "t_prop": t_prop, "t_crop": t_crop,
             "t_post": t_post, "dense": {}, "t_dense": {}}
        for side in sides:
            s["dense"][side], s["t_dense"][side] = cpu(head.dense_box_features, frame.x, boxes, side or None)
        scenes.append(s)
    return scenes


def ap50(pipe, data, scenes, pick) -> float:
    """AP50 of crop scoring restricted to the proposals ``pick(scene)`` chooses."""
    head, emb = pipe.head, pipe.embeddings
    index = {name_key(n): i for i, n in enumerate(pipe.class_space.names)}
    to_cat = {index[name_key(c)]: cid for c, cid in zip(data.categories, data.category_ids)}
    results = []
    for s in scenes:
        idx = pick(s)
        det = head.detections_from_features(s["boxes"][idx], s["crops"][idx], emb, s["frame"].size,
                                            s["frame"].original_size)
        for (x0, y0, x1, y1), score, c in zip(det.xyxy.tolist(), det.confidence.tolist(), det.class_id.tolist()):
            if c in to_cat:
                results.append({"image_id": s["id"], "category_id": to_cat[c], "bbox": [x0, y0, x1 - x0, y1 - y0],
                                "score": score})
    return coco_detection_metrics(data.coco, results)["AP50"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("work", type=Path, help="work folder: the scenes are generated into WORK/scenes-SEED-SIZE[-LO-HI] "
                    "once and reused by later runs with the same seed, size, objects and --scenes")
    ap.add_argument("--seed", type=int, default=1000, help="datagen seed (1000: tuning scenes; 2002: held-out)")
    ap.add_argument("--scenes", type=int, default=40, help="number of scenes (default 40)")
    ap.add_argument("--image-size", type=int, default=192, help="scene side in pixels (default 192)")
    ap.add_argument("--objects", default="3,6", help="fewest,most objects per scene")
    ap.add_argument("--sides", default="0,256,512", help="ranking pass sides in pixels, 0 = the processing frame")
    ap.add_argument("--k", default="20,30,40,50", help="cascade budgets (crops per image)")
    ap.add_argument("--nms", default="none,0.5", help="NMS IoUs on the ranks before the budget; none = rank order")
    ap.add_argument("--adaptive", action="store_true", help="also budgets that adapt per image (ranking at the "
                    "last --sides value, NMS IoU 0.5): k from the number of NMS survivors, or every candidate "
                    "within d logits of the best")
    args = ap.parse_args()
    torch.set_num_threads(1)
    lo, hi = (int(v) for v in args.objects.split(","))
    root = args.work / f"scenes-{args.seed}-{args.image_size}" if (lo, hi) == (3, 6) else \
        args.work / f"scenes-{args.seed}-{args.image_size}-{lo}-{hi}"
    if not (root / "annotations.json").exists():
        run_cli(["datagen", root, "--kind", "scenes", "--n", args.scenes, "--seed", args.seed, "--min-objects", lo,
                 "--max-objects", hi, "--image-size", args.image_size])
    data = read_coco(root / "annotations.json")
    if len(data.image_ids) != args.scenes:
        ap.exit(2, f"tune_cascade.py: {root} holds {len(data.image_ids)} scenes, --scenes {args.scenes} asked for: "
                   "give another work folder or remove that one\n")
    pipe = DetectPipeline("detect-shapes")
    sides = [int(v) for v in args.sides.split(",")]
    scenes = measure(pipe, data, sides)
    n = len(scenes)
    mean = {k: sum(s[k] for s in scenes) / n for k in ("t_prop", "t_crop", "t_post")}
    props = sum(len(s["boxes"]) for s in scenes) / n
    crop_time = mean["t_prop"] + mean["t_crop"] + mean["t_post"]
    crop_ap = ap50(pipe, data, scenes, lambda s: torch.arange(len(s["boxes"])))
    print(f"{n} scenes (seed {args.seed}, {args.image_size} px), {props:.0f} proposals per scene; CPU ms per scene: "
          f"proposals {1000 * mean['t_prop']:.0f}, crops of every proposal {1000 * mean['t_crop']:.0f}, "
          f"post-processing {1000 * mean['t_post']:.1f}, dense pass "
          + ", ".join(f"at {side or 'frame'} {1000 * sum(s['t_dense'][side] for s in scenes) / n:.0f}"
                      for side in sides))
    print(f"\n| ranking pass | k | NMS IoU | AP50 | CPU vs crop | scoring CPU vs crop (no proposals) |\n"
          f"|---|---|---|---|---|---|\n| crop (every proposal) | {props:.0f} | | {crop_ap:.3f} | 1.00x | 1.00x |",
          flush=True)
    logit_scale, emb = pipe.encoder.logit_scale, pipe.embeddings
    for side, k, iou in itertools.product(sides, [int(v) for v in args.k.split(",")], args.nms.split(",")):
        iou = None if iou == "none" else float(iou)

        def pick(s, side=side, k=k, iou=iou):
            return cascade_candidates(s["dense"][side], emb, logit_scale, k, s["boxes"], iou)

        crops = sum(s["t_crop"] * min(k, len(s["boxes"])) / max(len(s["boxes"]), 1) for s in scenes) / n
        dense = sum(s["t_dense"][side] for s in scenes) / n
        t = mean["t_prop"] + dense + crops + mean["t_post"]
        scoring = (dense + crops + mean["t_post"]) / (mean["t_crop"] + mean["t_post"])
        print(f"| dense at {side or 'frame'} px | {k} | {iou or '-'} | {ap50(pipe, data, scenes, pick):.3f} | "
              f"{t / crop_time:.2f}x | {scoring:.2f}x |", flush=True)
    if args.adaptive:
        adaptive_budgets(pipe, data, scenes, sides[-1])


def adaptive_budgets(pipe, data, scenes, side: int) -> None:
    """AP50 and mean k of per-image budgets: k = f x (NMS-0.5 survivors) in [lo, 100], or the candidates whose
    rank logit is within d of the image's best (at least lo); candidates in cascade_candidates' order."""
    logit_scale, emb = pipe.encoder.logit_scale, pipe.embeddings
    for s in scenes:
        s["rank"] = open_set_scores(s["dense"][side], emb, logit_scale).logits.max(dim=1).values
        s["survivors"] = len(nms(s["boxes"].float(), s["rank"].float(), 0.5))
    objects = [len(data.coco.getAnnIds(imgIds=[s["id"]])) for s in scenes]
    r = np.corrcoef(objects, [s["survivors"] for s in scenes])[0, 1]
    print(f"\nadaptive budgets (ranking at {side or 'frame'} px, NMS 0.5): objects {np.mean(objects):.1f} and NMS "
          f"survivors {np.mean([s['survivors'] for s in scenes]):.1f} per scene, correlation {r:.2f}\n"
          "| budget | mean k | AP50 |\n|---|---|---|")

    def row(label, budget) -> None:
        ks = []

        def pick(s):  # the cascade itself, with this scene's budget as k
            ks.append(min(len(s["boxes"]), budget(s)))
            return cascade_candidates(s["dense"][side], emb, logit_scale, ks[-1], s["boxes"], 0.5)

        a = ap50(pipe, data, scenes, pick)
        print(f"| {label} | {np.mean(ks):.1f} | {a:.3f} |", flush=True)

    def within(s, d, lo):
        return max(lo, min(100, int((s["rank"] >= s["rank"].max() - d).sum())))

    for f, lo in itertools.product((0.5, 0.75, 1.0), (20, 30)):
        row(f"survivors x{f} in [{lo}, 100]", lambda s, f=f, lo=lo: max(lo, min(100, round(f * s["survivors"]))))
    for d, lo in itertools.product((2.0, 3.0, 4.0), (20, 30)):
        row(f"within {d} logits of the best, >= {lo}", lambda s, d=d, lo=lo: within(s, d, lo))


if __name__ == "__main__":
    main()
