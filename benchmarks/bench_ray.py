"""Batch throughput: the local engine vs Ray Data with 1 and 2 actors, on the same images in one run.

    python benchmarks/bench_ray.py [--n 16] [--task detect] [--preset detect-shapes] [--cpus 2]

Images: the evaluation world (``ovtools datagen --kind scenes --seed 1``, 192×192).
Each engine runs :func:`ovtools.engine.run_batch` on the same files; the time of
arrival of every row is recorded, so the figures separate

* startup: until the first row (local: pipeline build; Ray: actor start + model load);
* throughput: rows after the first group / time after it (steady state, images/s).

The local engine runs twice: with torch's default threads and with one thread (what a
Ray actor reserving one CPU gets).

Scaling efficiency = throughput(2 actors) / (2 × throughput(1 actor)).  Ray actors
reserve one CPU each (torch then runs one thread per actor); the local engine uses
torch's default threads.  On a machine shared with other work, the numbers move
between runs: run it twice and read the ratios.
"""

from __future__ import annotations

import argparse
import logging
import tempfile
import time
from pathlib import Path

from ovtools.datasets.export import write_scenes
from ovtools.engine import EngineConfig, run_batch
from ovtools.engine import batch as batch_module


class Clock:
    """Wraps a sink's ``write`` to record when rows arrive."""

    def __init__(self) -> None:
        self.stamps: list[tuple[float, int]] = []

    def install(self):
        clock = self
        original = batch_module.RowSink.write

        def write(self, rows):
            rows = list(rows)
            if rows:
                clock.stamps.append((time.perf_counter(), len(rows)))
            return original(self, rows)

        batch_module.RowSink.write = write
        return original


def measure(label: str, task: str, images: Path, out: Path, preset: str, cfg: EngineConfig) -> dict:
    clock = Clock()
    original = clock.install()
    t0 = time.perf_counter()
    try:
        s = run_batch(task, [images], out, preset=preset, config=cfg)
    finally:
        batch_module.RowSink.write = original
    total = time.perf_counter() - t0
    (t_first, n_first), *rest = clock.stamps
    n_rest = sum(n for _, n in rest)
    rate = n_rest / (clock.stamps[-1][0] - t_first) if rest else float("nan")
    print(f"{label:<16} {s.n_rows:>5} rows {total:>8.1f} s total {t_first - t0:>8.1f} s to first row "
          f"{rate:>8.2f} img/s after it  ({1 / rate if rate else float('nan'):.3f} s/img)", flush=True)
    return {"rate": rate, "startup": t_first - t0, "total": total}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=16, help="images")
    ap.add_argument("--task", default="detect")
    ap.add_argument("--preset", default="detect-shapes")
    ap.add_argument("--cpus", type=int, default=2, help="CPUs of the local Ray cluster")
    ap.add_argument("--group", type=int, default=2, help="inputs per actor call (ray_batch_size)")
    args = ap.parse_args()

    import ray
    import torch

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        write_scenes(tmp / "world", args.n, seed=1)
        images = tmp / "world" / "images"
        print(f"{args.task} with {args.preset} on {args.n} images, groups of {args.group}; Ray cluster of "
              f"{args.cpus} CPUs", flush=True)
        threads = torch.get_num_threads()
        res = {"local": measure(f"local, {threads} thr", args.task, images, tmp / "local.jsonl", args.preset,
                                EngineConfig(progress=False, ray_batch_size=args.group))}
        torch.set_num_threads(1)  # what a Ray actor with num_cpus=1 gets
        res["local1"] = measure("local, 1 thr", args.task, images, tmp / "local1.jsonl", args.preset,
                                EngineConfig(progress=False, ray_batch_size=args.group))
        torch.set_num_threads(threads)
        t0 = time.perf_counter()
        ray.init(num_cpus=args.cpus, include_dashboard=False, log_to_driver=False, logging_level=logging.WARNING)
        print(f"ray.init: {time.perf_counter() - t0:.1f} s", flush=True)
        try:
            for k in (1, 2):
                res[f"ray x{k}"] = measure(f"ray, {k} actor(s)", args.task, images, tmp / f"ray{k}.jsonl",
                                           args.preset, EngineConfig(engine="ray", concurrency=k,
                                                                     ray_batch_size=args.group, progress=False))
        finally:
            ray.shutdown()
        same = all((tmp / f).read_text() == (tmp / "local.jsonl").read_text() for f in ("ray1.jsonl", "ray2.jsonl"))
        r1, r2, rl, rl1 = (res[k]["rate"] for k in ("ray x1", "ray x2", "local", "local1"))
        print(f"rows identical across engines: {same}")
        print(f"ray 2 actors / 1 actor: {r2 / r1:.2f}x  (scaling efficiency {r2 / (2 * r1):.0%})")
        print(f"ray 1 actor / local {threads} thr: {r1 / rl:.2f}x;  ray 2 actors / local {threads} thr: {r2 / rl:.2f}x")
        print(f"ray 1 actor / local 1 thr: {r1 / rl1:.2f}x;  ray 2 actors / local 1 thr: {r2 / rl1:.2f}x")


if __name__ == "__main__":
    main()
