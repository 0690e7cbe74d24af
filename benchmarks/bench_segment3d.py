"""3D segmentation cost on a 1M-point scene: seconds per million points and peak memory, per stage.

    python benchmarks/bench_segment3d.py [--points 1000000] [--features masks|dense] [--distill-steps 300]

A generated 3D-world scene (`ovtools.datasets.scenes3d`) with ``--points`` points and
the shipped small model (`segment3d-shapes` preset).  Stages: rendering + 2D features
of the 13 planned views, fusion onto the points, distillation (training + prediction
for every point), labelling of all points for the 41 `shapes3d` classes (ensemble), and
a second labelling with other labels on the same features (what `Segment3DPipeline`
makes cheap).  Peak memory is the process's peak resident set size (``ru_maxrss``)
after each stage, so it is cumulative.
"""

from __future__ import annotations

import argparse
import resource
import time

import torch


def _rss_gb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2  # kB on Linux


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--points", type=int, default=1_000_000)
    ap.add_argument("--features", default="masks", choices=("masks", "dense"))
    ap.add_argument("--distill-steps", type=int, default=300)
    ap.add_argument("--pretrained", default="shapes3d")
    args = ap.parse_args()

    from ovtools.datasets.scenes3d import generate_scenes3d
    from ovtools.pipelines import Segment3DPipeline

    t0 = time.perf_counter()
    sc = next(generate_scenes3d(1, seed=3000, points=args.points))
    t_gen = time.perf_counter() - t0
    pipe = Segment3DPipeline("segment3d-shapes", pretrained=args.pretrained, features=args.features,
                             distill_steps=args.distill_steps, device="cpu")
    base = _rss_gb()
    t0 = time.perf_counter()
    sf = pipe.features((sc.points, sc.colors))
    t_feat = time.perf_counter() - t0
    rss_feat = _rss_gb()
    t0 = time.perf_counter()
    labels = pipe(sf)
    t_label = time.perf_counter() - t0
    t0 = time.perf_counter()
    pipe(sf, labels="red cube, blue sphere, floor")
    t_relabel = time.perf_counter() - t0
    mp = args.points / 1e6
    print(f"scene: {args.points} points ({t_gen:.1f} s to generate), {sf.n_views} views, features "
          f"'{args.features}', distill {args.distill_steps} steps, torch threads {torch.get_num_threads()}")
    for stage, sec in (*sf.seconds.items(), ("label (41 classes, ensemble)", t_label),
                       ("relabel (3 other labels)", t_relabel)):
        print(f"{stage:30s}: {sec:8.2f} s  = {sec / mp:8.2f} s per million points")
    total = t_feat + t_label
    print(f"{'total (features + labels)':30s}: {total:8.2f} s  = {total / mp:8.2f} s per million points")
    print(f"peak RSS: {base:.2f} GB before features, {rss_feat:.2f} GB after features, {_rss_gb():.2f} GB at the end; "
          f"labelled points: {int((labels.class_id >= 0).sum())} of {len(labels)}")


if __name__ == "__main__":
    main()
