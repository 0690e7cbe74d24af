"""Exported model (ONNX Runtime, TorchScript) vs the torch pipeline: time per image, side by side.

    python benchmarks/bench_export.py [--model ovtools-shapes --pretrained shapes] [--n 64] [--batch 16]

The same preprocessed evaluation-world images (``datagen --kind scenes --seed 1``) go
through the torch path of :class:`~ovtools.pipelines.ClassifyPipeline` (encoder +
CLIP scoring) and through each export (``task=classify``: probabilities with the
class embeddings baked in), alternating batch by batch.  Printed per thread count:
ms per image of each and the ratio torch / export, plus the largest difference and
top-1 agreement.  Preprocessing (decode, resize, crop, normalise) is the same for
both and not timed.  ``--model ViT-B-32 --pretrained none`` times a real-size
architecture at random weights (speed does not depend on the weights).
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import torch

from ovtools.datasets.export import write_scenes
from ovtools.export import compare_with_pipeline, export_pipeline
from ovtools.io.images import load_image
from ovtools.pipelines import ClassifyPipeline


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="ovtools-shapes")
    ap.add_argument("--pretrained", default="shapes")
    ap.add_argument("--classes", default="shapes")
    ap.add_argument("--n", type=int, default=64, help="images")
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--threads", default="1,2", help="comma-separated torch / runtime thread counts")
    args = ap.parse_args()

    pretrained = None if args.pretrained.lower() == "none" else args.pretrained
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        write_scenes(tmp / "world", args.n, seed=1)
        images = [load_image(p).pixels for p in sorted((tmp / "world" / "images").glob("*.png"))]
        pipe = ClassifyPipeline(None, model=args.model, pretrained=pretrained, classes=args.classes, device="cpu")
        files = {fmt: export_pipeline(pipe, tmp / name, "classify", fmt)
                 for fmt, name in (("onnx", "m.onnx"), ("torchscript", "m.pt"))}
        s = pipe.encoder.image_size
        print(f"{args.model} ({pretrained}), {len(pipe.labels)} classes, input {s[0]}x{s[1]}, {len(images)} images, "
              f"batches of {args.batch}")
        print(f"{'threads':>7} {'format':<12} {'export ms/img':>14} {'torch ms/img':>13} {'torch/export':>13} "
              f"{'max|diff|':>10} {'same top-1':>10}")
        default = torch.get_num_threads()
        for threads in (int(t) for t in args.threads.split(",")):
            torch.set_num_threads(threads)
            for fmt, path in files.items():
                c = compare_with_pipeline(path, pipe, images, args.batch, threads)
                print(f"{threads:>7} {fmt:<12} {c.seconds_exported * 1e3:>14.2f} {c.seconds_torch * 1e3:>13.2f} "
                      f"{c.seconds_torch / c.seconds_exported:>12.2f}x {c.max_abs_diff:>10.1e} "
                      f"{c.top1_agree:>10.0%}", flush=True)
        torch.set_num_threads(default)


if __name__ == "__main__":
    main()
