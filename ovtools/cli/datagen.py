"""``ovtools datagen``: write the generated evaluation world (coloured shapes with exact ground truth).

    ovtools datagen data/shapes-cls --kind classification --n 3200 --seed 1
    ovtools datagen data/shapes-det --kind scenes --n 200 --seed 2 --min-objects 3 --max-objects 6
    ovtools datagen data/shapes-train --kind captions --n 48000 --seed 0

Exit codes: 0 written, 2 usage error.
"""

from __future__ import annotations

import time
from enum import Enum
from pathlib import Path
from typing import Annotated, Optional

import typer

from . import options as opt
from .app import app


class Kind(str, Enum):
    classification = "classification"
    scenes = "scenes"
    captions = "captions"


@app.command("datagen")
def datagen(
    out_dir: Annotated[Path, typer.Argument(
        help="Output folder (created; existing files with the same names are overwritten).", file_okay=False)],
    kind: Annotated[Kind, typer.Option(
        "--kind", "-k", help="classification: ImageFolder of single-object images (OUT/<class>/*.png). "
        "scenes: multi-object scenes, OUT/annotations.json (COCO instances, RLE masks) and OUT/captions.csv. "
        "captions: the contrastive training mix, OUT/captions.csv (filepath,caption,label,image_labels).")],
    n: Annotated[int, typer.Option(
        "--n", "-n", min=1, help="Images (classification, scenes) or CSV rows (captions) to write.")] = 1000,
    seed: Annotated[int, typer.Option(
        "--seed", help="Dataset seed: same seed, same bytes. Use different seeds for training and evaluation.")] = 0,
    image_size: Annotated[Optional[int], typer.Option(
        "--image-size", min=16, help="Image side in pixels. Default: 64 (classification, captions), 192 (scenes).",
        show_default=False)] = None,
    min_objects: Annotated[int, typer.Option(
        "--min-objects", min=0, help="Fewest objects asked for per scene (scenes only).")] = 3,
    max_objects: Annotated[int, typer.Option(
        "--max-objects", min=0, help="Most objects asked for per scene (scenes only). Crowded scenes may get "
        "fewer: every object keeps at least 60 % of its area visible.")] = 6,
    workers: Annotated[int, typer.Option(
        "--workers", "-j", min=1, help="Processes rendering in parallel (output is identical for any number).")] = 1,
) -> None:
    """Generate a seeded synthetic dataset: 8 shapes x 8 colours on cluttered backgrounds."""
    from ..datasets import export

    if min_objects > max_objects:
        opt.usage_error(f"--min-objects ({min_objects}) is larger than --max-objects ({max_objects})")
    if out_dir.exists() and not out_dir.is_dir():
        opt.usage_error(f"output {out_dir} exists and is not a folder")
    t0 = time.time()
    if kind is Kind.classification:
        export.write_classification(out_dir, n, seed, image_size or 64, workers)
        what = f"{n} images in {out_dir}/<class>/"
    elif kind is Kind.scenes:
        export.write_scenes(out_dir, n, seed, image_size or 192, min_objects, max_objects, workers)
        what = f"{n} scenes, {out_dir / 'annotations.json'}, {out_dir / 'captions.csv'}"
    else:
        export.write_captions(out_dir, n, seed, image_size or 64, workers=workers)
        what = f"{n} rows in {out_dir / 'captions.csv'}"
    opt.stderr.print(f"datagen {kind.value}: wrote {what} ({time.time() - t0:.1f} s)")
