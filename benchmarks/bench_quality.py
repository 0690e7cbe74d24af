"""Evaluation-world quality and time of preset variants, side by side on the SAME held-out data.

    python benchmarks/bench_quality.py WORKDIR [--scenes 40] [--scenes3d 3] \
        [--detect crop:scoring=crop,precision=fp32 crop-auto:scoring=crop,precision=auto ...] \
        [--segment ...] [--classify ...] [--segment3d ...]

Each variant is ``NAME:key=value,key=value``: keys of the task's shapes preset
(``detect-shapes``, ``segment-shapes``, ``classify-shapes``, ``segment3d-shapes``) replaced in a
copy of it (values parsed as YAML).  Data are generated once with ``ovtools datagen`` (held-out
seeds, as in :func:`ovtools.eval.report.shapes_quality`); every variant is measured by ``ovtools
eval`` on the same files, one after the other, so that the quality figures compare exactly and the
times compare as ratios (the machine is shared).  Prints one markdown table per task.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import yaml

from ovtools.cli.inprocess import run_cli
from ovtools.eval.report import HELD_OUT_SEED
from ovtools.resources import presets_dir


def parse_variant(text: str) -> tuple[str, dict]:
    """``"name:key=value,key=value"`` → ``(name, {key: yaml value})``."""
    name, _, rest = text.partition(":")
    keys = {}
    for item in filter(None, rest.split(",")):
        k, _, v = item.partition("=")
        keys[k.strip()] = yaml.safe_load(v)
    return name, keys


def write_preset(work: Path, base: str, name: str, keys: dict) -> Path:
    """A copy of shipped preset ``base`` with ``keys`` replaced, written to ``work/presets``."""
    data = yaml.safe_load((presets_dir() / f"{base}.yaml").read_text())
    data.update(keys)
    path = work / "presets" / f"{base}-{name}.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("work", type=Path)
    ap.add_argument("--scenes", type=int, default=40)
    ap.add_argument("--classify-images", type=int, default=640)
    ap.add_argument("--scenes3d", type=int, default=3)
    ap.add_argument("--points3d", type=int, default=150_000)
    ap.add_argument("--detect", nargs="*", default=[])
    ap.add_argument("--segment", nargs="*", default=[])
    ap.add_argument("--classify", nargs="*", default=[])
    ap.add_argument("--segment3d", nargs="*", default=[])
    ap.add_argument("--seed", type=int, default=HELD_OUT_SEED, help="base seed of the data (default: the held-out "
                    f"{HELD_OUT_SEED}; scenes use seed + 2: tune on --seed 998, i.e. the tuning scenes of seed 1000)")
    args = ap.parse_args()
    work, seed = args.work, args.seed
    work.mkdir(parents=True, exist_ok=True)
    if args.classify and not (work / "test").exists():
        run_cli(["datagen", work / "test", "--kind", "classification", "--n", args.classify_images, "--seed", seed])
    if (args.detect or args.segment) and not (work / "scenes").exists():
        run_cli(["datagen", work / "scenes", "--kind", "scenes", "--n", args.scenes, "--seed", seed + 2,
                 "--min-objects", 3, "--max-objects", 6])
    if args.segment3d and not (work / "scenes3d").exists():
        run_cli(["datagen", work / "scenes3d", "--kind", "scenes3d", "--n", args.scenes3d, "--seed", seed + 1000,
                 "--points", args.points3d])
    tables = []
    for task, variants, base, data, extra in (
        ("classify", args.classify, "classify-shapes", work / "test", []),
        ("detect", args.detect, "detect-shapes", work / "scenes" / "annotations.json", []),
        ("segment", args.segment, "segment-shapes", work / "scenes" / "annotations.json",
         ["--image-dir", work / "scenes"]),
        ("segment3d", args.segment3d, "segment3d-shapes", work / "scenes3d", []),
    ):
        rows = []
        for text in variants:
            name, keys = parse_variant(text)
            preset = write_preset(work, base, name, keys)
            out = work / f"{task}-{name}.json"
            t0 = time.perf_counter()
            run_cli(["eval", data, "--preset", preset, *extra, "-o", out, "-q"])
            wall = time.perf_counter() - t0
            r = json.loads(out.read_text())
            if task == "classify":
                rows.append((name, f"top-1 {r['top1']:.3f}", f"{wall:.1f} s"))
            elif task == "detect":
                rows.append((name, f"AP50 {r['AP50']:.3f}  AP {r['AP']:.3f}  absent {r['absent_label_rejection']:.3f}",
                             f"{r['seconds_per_image']:.3f} s/scene"))
            elif task == "segment":
                rows.append((name, f"mIoU {r['mIoU']:.3f}  mask AP50 {r['mask_AP50']:.3f}  AP {r['mask_AP']:.3f}  "
                             f"absent {r.get('absent_label_rejection', float('nan')):.3f}",
                             f"{r['seconds_per_image']:.3f} s/scene"))
            else:
                figures = "  ".join(f"{m} {v['mIoU']:.3f}" for m, v in r["modes"].items())
                rows.append((name, f"3D mIoU {figures}", f"{r['seconds_per_scene']:.1f} s/scene"))
            print(f"[{task}] {name}: {rows[-1][1]}  ({rows[-1][2]})", flush=True)
        if rows:
            tables.append(f"\n{task} ({data.name})\n\n| variant | quality | time |\n|---|---|---|\n"
                          + "\n".join(f"| {a} | {b} | {c} |" for a, b, c in rows))
    print("\n".join(tables))


if __name__ == "__main__":
    main()
