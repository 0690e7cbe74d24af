"""Image-encoding throughput against the machine's limit, and ovtools' batch path vs raw ``model.encode_image``.

    python benchmarks/bench_encoder.py [--model ViT-B-32] [--batch 32] [--rounds 3] \
        [--variants fp32,bf16,bf16+compile]

One run, side by side (random weights: speed does not depend on them):

1. for every variant (precision ``fp32`` / ``bf16`` / ``fp16``, optionally ``+compile``
   (``torch.compile`` of the image tower); ResNet towers already run channels-last in
   ``CLIPEncoder`` (500 crops of the shipped model: 0.80 vs 1.40 CPU s in NCHW)):
   images/s of ``CLIPEncoder.encode_pixels`` on one preprocessed batch, the FLOPs of one
   forward pass (``torch.utils.flop_counter.FlopCounterMode``: matmuls, convolutions and
   attention; counted with PyTorch's fused ``nn.MultiheadAttention`` fast path switched off,
   because the fused ``_native_multi_head_attention`` op hides its projections from the counter:
   ViT-B-32 then counts 5.89 instead of 8.73 GFLOP per image), the achieved FLOP/s, and that as a
   fraction of the machine's matrix-multiply peak in the same dtype (the best of a few 2048×2048
   ``torch.mm`` calls, measured in the same run);
2. ovtools ``encode_images`` vs raw ``model.encode_image`` on the first variant (target >= 0.9).

Rounds of the variants alternate; medians are reported.  Each rate is computed twice, from wall
time and from CPU time (FLOP per CPU second of all threads, ``time.process_time``: not
inflated by waiting for a core on a shared machine); the peak is measured the same two ways and
each fraction compares like with like.  ``--threads 1`` measures one core.
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import torch
from torch.utils.flop_counter import FlopCounterMode

DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}


_SYNC = [lambda: None]  # torch.cuda.synchronize with --device cuda: a clock reads finished work only


def clock() -> tuple[float, float]:
    """(wall seconds, CPU seconds of this process: all its threads), after the device's queued work."""
    _SYNC[0]()
    return time.perf_counter(), time.process_time()


def elapsed(t0: tuple[float, float]) -> tuple[float, float]:
    t1 = clock()
    return t1[0] - t0[0], t1[1] - t0[1]


def matmul_peak(dtype: torch.dtype, device: str = "cpu", reps: int = 5) -> tuple[float, float]:
    """Best rate of ``torch.mm`` on (n, n) matrices of ``dtype`` (n = 2048 on the CPU, 8192 on a GPU):
    (FLOP per wall s, FLOP per CPU s)."""
    n = 8192 if device.startswith("cuda") else 2048
    a, b = torch.randn(n, n, device=device).to(dtype), torch.randn(n, n, device=device).to(dtype)
    torch.mm(a, b)
    best = [float("inf"), float("inf")]
    for _ in range(reps):
        t0 = clock()
        torch.mm(a, b)
        best = [min(x, y) for x, y in zip(best, elapsed(t0))]
    return 2 * n**3 / best[0], 2 * n**3 / best[1]


def forward_flops(enc, x: torch.Tensor) -> int:
    """FLOPs of one image-tower forward pass on ``x`` (eager model).

    Counted with the ``nn.MultiheadAttention`` fast path off: its fused op runs the q/k/v and output
    projections where ``FlopCounterMode`` does not see them (the arithmetic is the same either way).
    """
    counter = FlopCounterMode(display=False)
    fast = torch.backends.mha.get_fastpath_enabled()
    torch.backends.mha.set_fastpath_enabled(False)
    try:
        with counter, torch.inference_mode():
            enc.model.encode_image(x.to(enc.dtype))
    finally:
        torch.backends.mha.set_fastpath_enabled(fast)
    return counter.get_total_flops()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="ViT-B-32")
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--variants", default="fp32,bf16,bf16+compile")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    args = ap.parse_args()
    from ovtools.encoders.loading import resolve_device

    try:  # --device cuda on a machine without CUDA: one line, exit 2
        args.device = str(resolve_device(args.device))  # "auto" -> the device it picks, so the clock syncs
    except ValueError as e:
        ap.error(f"--device: {e}")
    if args.rounds < 1 or args.batch < 1:
        ap.error(f"--rounds and --batch must be >= 1, got {args.rounds}, {args.batch}")
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.device.startswith("cuda"):
        _SYNC[0] = torch.cuda.synchronize

    from ovtools.encoders import CLIPEncoder

    rng = np.random.default_rng(0)
    images = [rng.integers(0, 255, (480, 640, 3), dtype=np.uint8) for _ in range(args.batch)]
    encoders, inputs, flops, peaks = {}, {}, {}, {}
    for variant in args.variants.split(","):
        prec, *opts = variant.split("+")
        torch.manual_seed(0)
        enc = CLIPEncoder(args.model, None, device=args.device, precision=prec)
        x = enc.preprocess(images)
        flops[variant] = forward_flops(enc, x)
        if "compile" in opts:
            enc.model.visual = torch.compile(enc.model.visual)
        t0 = clock()
        enc.encode_pixels(x, batch_size=args.batch)  # warm-up (and compilation)
        print(f"{variant}: first call {elapsed(t0)[0]:.1f} s", flush=True)
        encoders[variant], inputs[variant] = enc, x
        if enc.dtype not in peaks:
            peaks[enc.dtype] = matmul_peak(enc.dtype, args.device)

    times: dict[str, list[tuple[float, float]]] = {v: [] for v in encoders}
    for _ in range(args.rounds):
        for v, enc in encoders.items():
            t0 = clock()
            enc.encode_pixels(inputs[v], batch_size=args.batch)
            times[v].append(elapsed(t0))

    first = next(iter(encoders))
    enc, x = encoders[first], inputs[first]

    def ours() -> None:
        enc.encode_images(x, batch_size=args.batch)

    def raw() -> None:
        with torch.no_grad():
            f = enc.model.encode_image(x)
            (f / f.norm(dim=-1, keepdim=True)).cpu()

    t_ours, t_raw = [], []
    for _ in range(args.rounds):
        for fn, acc in ((ours, t_ours), (raw, t_raw)):
            t0 = clock()
            fn()
            acc.append(elapsed(t0)[0])

    print(f"model {args.model} (random weights), batch {args.batch}, {args.rounds} rounds, device {args.device}, "
          f"torch threads {torch.get_num_threads()}, CPU capability {torch.backends.cpu.get_cpu_capability()}")
    for dtype, p in peaks.items():
        print(f"matmul peak {str(dtype).removeprefix('torch.'):9s}: {p[0] / 1e9:8.1f} GFLOP/s wall, "
              f"{p[1] / 1e9:8.1f} GFLOP per CPU s (torch.mm)")
    base = statistics.median(t[0] for t in times[first])
    print(f"{'variant':16s} {'images/s':>9s} {'GFLOP/img':>9s} {'GFLOP/s':>8s} {'of peak':>8s} {'by CPU':>7s} "
          f"{'vs ' + first:>9s}")
    for v, ts in times.items():
        t, c = statistics.median(x[0] for x in ts), statistics.median(x[1] for x in ts)
        peak = peaks[encoders[v].dtype]
        print(f"{v:16s} {args.batch / t:9.1f} {flops[v] / args.batch / 1e9:9.2f} {flops[v] / t / 1e9:8.1f} "
              f"{flops[v] / t / peak[0]:8.2f} {flops[v] / c / peak[1]:7.2f} {base / t:8.2f}x")
    print(f"ovtools encode_images / raw model.encode_image ({first}): "
          f"{statistics.median(t_raw) / statistics.median(t_ours):.3f}  (target >= 0.9)")


if __name__ == "__main__":
    main()
