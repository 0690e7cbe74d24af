"""Segmentation latency at 640×480: crop vs dense vs fusion scoring of the same masks.

    python benchmarks/bench_segment.py [--model ViT-B-32] [--rounds 3] [--max-masks 100]

ViT-B-32 at random weights (speed does not depend on the weights).  The `regions`
masks are computed once and given to all three scorings, so the printed times are
CLIP feature extraction + open-set scoring + mask NMS + upsampling; the mask
proposal time is printed separately (it is the same for every mode).  Rounds
alternate between the modes; medians are reported.
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
    ap.add_argument("--max-masks", type=int, default=100)
    args = ap.parse_args()

    from PIL import Image
    from skimage import data

    from ovtools.encoders import CLIPEncoder
    from ovtools.heads.segment import SegmentHead
    from ovtools.prompts import ClassSpace, EmbeddingCache, build_class_embeddings

    torch.manual_seed(0)
    enc = CLIPEncoder(args.model, None, device="cpu")
    pixels = np.asarray(Image.fromarray(data.coffee()).resize((640, 480), Image.Resampling.BICUBIC))
    emb = build_class_embeddings(enc, ClassSpace.load("coco"), "objects", cache=EmbeddingCache(enabled=False))
    modes = ("crop", "dense", "fusion")
    heads = {m: SegmentHead(enc, scoring=m, max_proposals=args.max_masks, score_threshold=0.0) for m in modes}
    t0 = time.perf_counter()
    masks = heads["crop"].propose(pixels)
    t_prop = time.perf_counter() - t0
    x = enc.to_float(pixels)

    def run(mode: str) -> None:
        head = heads[mode]
        head.detections_from_features(masks, head.features(x, masks), emb, pixels.shape[:2])

    for m in modes:  # warm-up
        run(m)
    times: dict[str, list[float]] = {m: [] for m in modes}
    for _ in range(args.rounds):
        for m in modes:
            t0 = time.perf_counter()
            run(m)
            times[m].append(time.perf_counter() - t0)
    med = {m: statistics.median(t) for m, t in times.items()}
    print(f"model {args.model} (random weights), 640x480 photo (skimage coffee), {len(masks)} 'regions' masks "
          f"({1000 * t_prop:.0f} ms to propose), 80 COCO labels, torch threads {torch.get_num_threads()}, "
          f"{args.rounds} rounds")
    for m in modes:
        print(f"{m:6s} scoring : {1000 * med[m]:8.0f} ms per image ({1000 * (med[m] + t_prop):8.0f} ms with masks)")
    print(f"speed-up dense vs crop: {med['crop'] / med['dense']:6.1f}x; fusion / crop time: "
          f"{med['fusion'] / med['crop']:5.2f}")


if __name__ == "__main__":
    main()
