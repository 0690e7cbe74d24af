"""Detection latency at 640×480: dense vs crop scoring with the same proposals.

    python benchmarks/bench_detect.py [--model ViT-B-32] [--rounds 3] [--proposals segments]

ViT-B-32 at random weights (speed does not depend on the weights).  The
proposals are computed once and given to both scorings, so the printed times
are CLIP feature extraction + scoring + NMS only; the proposal time is printed
separately.  Rounds alternate between the two modes; medians are reported.
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import torch


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="ViT-B-32")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--proposals", default="segments")
    ap.add_argument("--max-proposals", type=int, default=500)
    args = ap.parse_args()

    from PIL import Image
    from skimage import data

    from ovtools.encoders import CLIPEncoder
    from ovtools.heads.detect import DetectHead
    from ovtools.prompts import ClassSpace, EmbeddingCache, build_class_embeddings

    torch.manual_seed(0)
    enc = CLIPEncoder(args.model, None, device="cpu")
    pixels = np.asarray(Image.fromarray(data.coffee()).resize((640, 480), Image.Resampling.BICUBIC))
    emb = build_class_embeddings(enc, ClassSpace.load("coco"), "objects", cache=EmbeddingCache(enabled=False))
    heads = {m: DetectHead(enc, scoring=m, proposals=args.proposals, max_proposals=args.max_proposals)
             for m in ("crop", "dense")}
    t0 = time.perf_counter()
    boxes = heads["crop"].propose(pixels)
    t_prop = time.perf_counter() - t0
    x = enc.to_float(pixels)

    def run(mode: str) -> None:
        head = heads[mode]
        if mode == "crop":
            feats = head.crop_features(enc.normalize(x).float(), boxes)
        else:
            feats = head.dense_box_features(x, boxes)
        head.detections_from_features(boxes, feats, emb, pixels.shape[:2], pixels.shape[:2])

    run("crop"), run("dense")  # warm-up
    times: dict[str, list[float]] = {"crop": [], "dense": []}
    for _ in range(args.rounds):
        for mode in times:
            t0 = time.perf_counter()
            run(mode)
            times[mode].append(time.perf_counter() - t0)
    crop, dense = statistics.median(times["crop"]), statistics.median(times["dense"])
    print(f"model {args.model} (random weights), 640x480 photo (skimage coffee), {len(boxes)} '{args.proposals}' proposals "
          f"({1000 * t_prop:.0f} ms to propose), 80 COCO labels, torch threads {torch.get_num_threads()}, "
          f"{args.rounds} rounds")
    print(f"crop scoring  : {1000 * crop:8.0f} ms per image")
    print(f"dense scoring : {1000 * dense:8.0f} ms per image")
    print(f"speed-up dense vs crop: {crop / dense:6.1f}x")


if __name__ == "__main__":
    main()
