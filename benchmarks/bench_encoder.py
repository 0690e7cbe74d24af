"""Image-encoding throughput: ovtools' batch path vs raw ``model.encode_image``.

    python benchmarks/bench_encoder.py [--model ViT-B-32] [--batch 32] [--rounds 5]

Both sides get the same preprocessed tensor and the same model (random weights:
speed does not depend on the weights).  Rounds alternate between the two, and
the median images/s of each is printed with their ratio (target >= 0.9).
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
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--device", default="cpu")
    args = ap.parse_args()

    from ovtools.encoders import CLIPEncoder

    torch.manual_seed(0)
    enc = CLIPEncoder(args.model, None, device=args.device)
    rng = np.random.default_rng(0)
    images = [rng.integers(0, 255, (480, 640, 3), dtype=np.uint8) for _ in range(args.batch)]
    x = enc.preprocess(images)

    def ours() -> None:
        enc.encode_images(x, batch_size=args.batch)

    def raw() -> None:
        with torch.no_grad():
            f = enc.model.encode_image(x)
            (f / f.norm(dim=-1, keepdim=True)).cpu()

    ours(), raw()  # warm-up
    t_ours, t_raw = [], []
    for _ in range(args.rounds):
        for fn, acc in ((ours, t_ours), (raw, t_raw)):
            t0 = time.perf_counter()
            fn()
            acc.append(time.perf_counter() - t0)
    ips_ours = args.batch / statistics.median(t_ours)
    ips_raw = args.batch / statistics.median(t_raw)
    t0 = time.perf_counter()
    enc.preprocess(images)
    t_pre = time.perf_counter() - t0
    print(f"model {args.model} (random weights), batch {args.batch}, {args.rounds} rounds, device {enc.device}, "
          f"torch threads {torch.get_num_threads()}")
    print(f"raw model.encode_image : {ips_raw:8.1f} images/s")
    print(f"ovtools encode_images  : {ips_ours:8.1f} images/s")
    print(f"ratio ovtools / raw    : {ips_ours / ips_raw:8.3f}  (target >= 0.9)")
    print(f"preprocess 640x480 -> {enc.image_size[0]}: {1000 * t_pre / args.batch:.1f} ms/image")


if __name__ == "__main__":
    main()
