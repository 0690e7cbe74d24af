"""Proposal sources: the per-scale segmentations in threads (default) vs in the calling thread, one run.

    python benchmarks/bench_proposals.py [--rounds 5] [--sources segments,regions]

On a 640x480 photo (skimage's coffee) and a 192-px evaluation-world scene (held-out seed 2002),
each Felzenszwalb-based source is timed with ``workers=1`` (the segmentations one after the other)
and with its default (one thread per segmentation, up to torch's thread count), in alternating rounds;
medians of wall and process CPU seconds (all threads) and the wall ratio are printed, and the
outputs are checked to be identical.
"""

from __future__ import annotations

import argparse
import inspect
import statistics
import time

import numpy as np


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--sources", default="segments,regions")
    args = ap.parse_args()

    from PIL import Image
    from skimage import data

    from ovtools.datasets.shapes import generate_scenes
    from ovtools.proposals import PROPOSALS, available_proposals, create_proposals
    from ovtools.proposals.image_input import thread_budget

    threaded = [n for n in available_proposals() if "workers" in inspect.signature(PROPOSALS.get(n)).parameters]
    bad = [n for n in args.sources.split(",") if n not in threaded]
    if bad or args.rounds < 1:
        ap.error(f"--sources: {bad} take no workers option (sources with one: {threaded})" if bad else
                 f"--rounds must be >= 1, got {args.rounds}")

    images = {"640x480 photo": np.asarray(Image.fromarray(data.coffee()).resize((640, 480), Image.Resampling.BICUBIC)),
              "192-px world scene": next(iter(generate_scenes(1, seed=2002))).image}
    print(f"threads for proposals (torch.get_num_threads()) {thread_budget()}, {args.rounds} rounds (medians)")
    print("| source | image | proposals | workers=1 wall / CPU ms | default wall / CPU ms | wall speed-up |")
    print("|---|---|---|---|---|---|")
    for name in args.sources.split(","):
        variants = {"serial": create_proposals(name, workers=1), "threads": create_proposals(name)}
        for label, image in images.items():
            out = {v: src(image) for v, src in variants.items()}  # warm-up, and the outputs compared
            assert np.array_equal(out["serial"], out["threads"]), f"{name}: threads changed the proposals"
            wall: dict[str, list[float]] = {v: [] for v in variants}
            cpu: dict[str, list[float]] = {v: [] for v in variants}
            for _ in range(args.rounds):
                for v, src in variants.items():
                    t0, c0 = time.perf_counter(), time.process_time()
                    src(image)
                    wall[v].append(time.perf_counter() - t0)
                    cpu[v].append(time.process_time() - c0)
            w = {v: statistics.median(t) for v, t in wall.items()}
            c = {v: statistics.median(t) for v, t in cpu.items()}
            print(f"| {name} | {label} | {len(out['serial'])} | {1000 * w['serial']:.0f} / {1000 * c['serial']:.0f} | "
                  f"{1000 * w['threads']:.0f} / {1000 * c['threads']:.0f} | {w['serial'] / w['threads']:.2f}x |",
                  flush=True)


if __name__ == "__main__":
    main()
