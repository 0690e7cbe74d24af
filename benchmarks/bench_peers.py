"""ovtools detect beside one-pass open-vocabulary detectors, same image, same number of labels, one run.

    pip install -e .[bench]      # transformers, for the peers only
    python benchmarks/bench_peers.py [--rounds 2] [--paths dense,cascade,crop] [--peers owlvit,owlv2] \
        [--cascade-k 40,30,20] [--device cuda]

* ovtools: ``DetectPipeline("detect-default")`` (ViT-B-32, random weights, the preset's
  precision — ``auto`` — unless ``--precision``) on a 640×480 photo (skimage's coffee) with the
  80 COCO labels, for each ``scoring`` in ``--paths``; the time per image includes proposals,
  features, open-set scoring and NMS (the labels' text embeddings are computed once, as a
  pipeline does).
* peers, built from their ``transformers`` configs with random weights (no download; speed does
  not depend on the weights): OWL-ViT B/32 (``OwlViTConfig()``) and OWLv2 B/16 (``Owlv2Config()``),
  one forward pass at 768×768 with 80 text queries of 16 tokens, in fp32 (their default) and, with
  ``--peer-bf16``, with weights cast to bfloat16 as well.

Rounds alternate between all paths; medians of wall and process CPU seconds per image (CPU: all
threads of this process together) and their ratios to OWL-ViT B/32 are printed.  The machine may be
shared: the ratios are what this measures, and on a loaded machine the CPU ratio is the steadier one
(another job's load inflates wall time, not this process's CPU time).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time

import numpy as np
import torch
import torch.nn.functional as F


def photo() -> np.ndarray:
    """RGB uint8 (480, 640, 3): skimage's coffee photo."""
    from PIL import Image
    from skimage import data

    return np.array(Image.fromarray(data.coffee()).resize((640, 480), Image.Resampling.BICUBIC))  # writable


def owl(kind: str, image: np.ndarray, n_labels: int, dtype: torch.dtype, device: str = "cpu"):
    """A callable running one OWL forward pass (random weights) on ``image`` with ``n_labels`` queries."""
    import transformers

    if kind == "owlvit":
        cfg, model_cls = transformers.OwlViTConfig(), transformers.OwlViTForObjectDetection
    else:
        cfg, model_cls = transformers.Owlv2Config(), transformers.Owlv2ForObjectDetection
    torch.manual_seed(0)
    model = model_cls(cfg).eval().to(device, dtype)
    size = cfg.vision_config.image_size
    x = torch.from_numpy(image).to(device).permute(2, 0, 1)[None].float() / 255
    mean = torch.tensor([0.481, 0.458, 0.408], device=device).view(1, 3, 1, 1)
    std = torch.tensor([0.269, 0.261, 0.276], device=device).view(1, 3, 1, 1)
    length = cfg.text_config.max_position_embeddings
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(1, cfg.text_config.vocab_size - 1, (n_labels, length), generator=g).to(device)
    mask = torch.ones_like(ids)

    def run() -> None:
        # the peers' own preprocessing: resize to the square input, normalise; then one forward pass
        px = ((F.interpolate(x, size=(size, size), mode="bilinear", antialias=True) - mean) / std).to(dtype)
        with torch.inference_mode():
            out = model(input_ids=ids, pixel_values=px, attention_mask=mask)
            out.logits.float().sigmoid().max(-1).values.cpu()  # on a GPU: waits for the work

    return run, f"{'OWL-ViT B/32' if kind == 'owlvit' else 'OWLv2 B/16'} ({size}x{size}, {str(dtype)[6:]})"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--paths", default="dense,cascade,crop")
    ap.add_argument("--peers", default="owlvit,owlv2")
    ap.add_argument("--peer-bf16", action="store_true")
    ap.add_argument("--cascade-k", default=None, help="comma-separated cascade_k values, one cascade row each "
                    "(default: the preset's)")
    ap.add_argument("--precision", default=None)
    ap.add_argument("--device", default="cpu", help="cpu (the issue's comparison) | cuda: every path on the GPU")
    args = ap.parse_args()
    from ovtools.encoders.loading import resolve_device

    try:  # --device cuda on a machine without CUDA: one line, exit 2
        resolve_device(args.device)
    except ValueError as e:
        ap.error(f"--device: {e}")
    if args.rounds < 1:
        ap.error(f"--rounds must be >= 1, got {args.rounds}")

    from ovtools.pipelines import DetectPipeline

    image = photo()
    torch.manual_seed(0)
    extra = {"precision": args.precision} if args.precision else {}
    extra["device"] = args.device
    cache = tempfile.mkdtemp(prefix="ovtools-bench-")  # text embeddings computed once, shared by the paths
    base = DetectPipeline("detect-default", pretrained=None, cache_dir=cache, **extra)
    n_labels = len(base.labels)
    runs: dict[str, object] = {}
    ks = [int(k) for k in args.cascade_k.split(",")] if args.cascade_k else [None]
    for scoring in args.paths.split(","):
        for k in ks if scoring == "cascade" else [None]:
            more = {"cascade_k": k} if k else {}
            pipe = DetectPipeline("detect-default", encoder=base.encoder, scoring=scoring, cache_dir=cache, **more)
            cfg = pipe.config
            name = f"ovtools detect, scoring {scoring}" + (
                f" (k={cfg.cascade_k}, NMS IoU {cfg.cascade_nms_iou})" if scoring == "cascade" else "")
            runs[name] = (lambda p=pipe: p(image))
    first_peer = None
    for kind in filter(None, args.peers.split(",")):
        for dtype in (torch.float32, torch.bfloat16) if args.peer_bf16 else (torch.float32,):
            fn, name = owl(kind, image, n_labels, dtype, args.device)
            runs[name] = fn
            first_peer = first_peer or name
    for name, fn in runs.items():  # warm-up
        t0 = time.perf_counter()
        fn()
        print(f"warm-up {name}: {time.perf_counter() - t0:.1f} s", flush=True)
    times: dict[str, list[float]] = {n: [] for n in runs}
    cpu: dict[str, list[float]] = {n: [] for n in runs}
    for _ in range(args.rounds):
        for name, fn in runs.items():
            t0, c0 = time.perf_counter(), time.process_time()
            fn()
            times[name].append(time.perf_counter() - t0)
            cpu[name].append(time.process_time() - c0)
    med = {n: statistics.median(t) for n, t in times.items()}
    med_cpu = {n: statistics.median(t) for n, t in cpu.items()}
    enc = base.encoder
    print(f"640x480 photo (skimage coffee), {n_labels} labels, device {enc.device}, "
          f"torch threads {torch.get_num_threads()}, "
          f"{args.rounds} rounds (medians); ovtools: {enc.name} random weights, dtype {str(enc.dtype)[6:]} "
          f"{enc.precision_note and '(' + enc.precision_note + ')'}")
    ref = med.get(first_peer) if first_peer else None
    ref_cpu = med_cpu.get(first_peer) if first_peer else None
    print(f"| path | seconds per image | CPU seconds per image |{' vs OWL-ViT B/32 (wall, CPU) |' if ref else ''}")
    print(f"|---|---|---|{'---|' if ref else ''}")
    for n, t in med.items():
        ratios = f" {t / ref:.2f}x, {med_cpu[n] / ref_cpu:.2f}x |" if ref else ""
        print(f"| {n} | {t:.2f} | {med_cpu[n]:.2f} |{ratios}")


if __name__ == "__main__":
    main()
