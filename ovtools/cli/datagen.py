"""``ovtools datagen``: write the generated evaluation world (coloured shapes with exact ground truth).

    ovtools datagen data/shapes-cls --kind classification --n 3200 --seed 1
    ovtools datagen data/shapes-det --kind scenes --n 200 --seed 2 --min-objects 3 --max-objects 6
    ovtools datagen data/shapes-train --kind captions --n 48000 --seed 0
    ovtools datagen data/scenes3d --kind scenes3d --n 20 --seed 3000 --rgbd-views 8
    ovtools datagen data/nerf3d --kind scenes3d --n 2 --seed 3000 --rgbd-views 32   # NeRF-ready (transforms.json)
    ovtools datagen data/views3d --kind views3d --n 300 --seed 0 --workers 2

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
    scenes3d = "scenes3d"
    views3d = "views3d"


@app.command("datagen")
def datagen(
    out_dir: Annotated[Path, typer.Argument(
        help="Output folder (created; existing files with the same names are overwritten).", file_okay=False)],
    kind: Annotated[Kind, typer.Option(
        "--kind", "-k", help="classification: ImageFolder of single-object images (OUT/<class>/*.png). "
        "scenes: multi-object scenes, OUT/annotations.json (COCO instances, RLE masks) and OUT/captions.csv. "
        "captions: the contrastive training mix, OUT/captions.csv (filepath,caption,label,image_labels). "
        "scenes3d: 3D scenes as PLY point clouds, OUT/scene_<i>.ply + OUT/scenes3d.json (and, with --rgbd-views, "
        "posed RGB-D folders OUT/scene_<i>/). views3d: crops of rendered 3D scenes for training, OUT/captions.csv "
        "as for captions.")],
    n: Annotated[int, typer.Option(
        "--n", "-n", min=1, help="Images (classification, scenes), CSV rows (captions) or 3D scenes (scenes3d, "
        "views3d) to write.")] = 1000,
    seed: Annotated[int, typer.Option(
        "--seed", help="Dataset seed: same seed, same bytes. Use different seeds for training and evaluation.")] = 0,
    image_size: Annotated[Optional[int], typer.Option(
        "--image-size", min=16, help="Image side in pixels. Default: 64 (classification, captions), 192 (scenes).",
        show_default=False)] = None,
    min_objects: Annotated[int, typer.Option(
        "--min-objects", min=0, help="Fewest objects asked for per scene (scenes, scenes3d).")] = 3,
    max_objects: Annotated[int, typer.Option(
        "--max-objects", min=0, help="Most objects asked for per scene (scenes, scenes3d). Crowded scenes may get "
        "fewer: every object keeps at least 60 % of its area visible.")] = 6,
    points: Annotated[int, typer.Option(
        "--points", min=1, help="Surface points per 3D scene (scenes3d, views3d).")] = 150_000,
    rgbd_views: Annotated[int, typer.Option(
        "--rgbd-views", min=0, help="scenes3d: also render this many views of each scene into a ScanNet-layout "
        "posed RGB-D folder OUT/scene_<i>/ (color/*.jpg, depth/*.png in mm, pose/*.txt, intrinsic/) with "
        "nerfstudio's transforms.json beside it (a NeRF wants 24-40 views; segment3d needs ~8); 0 = none."
    )] = 0,
    workers: Annotated[int, typer.Option(
        "--workers", "-j", min=1, help="Processes rendering in parallel (output is identical for any number).")] = 1,
) -> None:
    """Generate a seeded synthetic dataset: 8 shapes x 8 colours on cluttered backgrounds, or the 3D world."""
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
    elif kind is Kind.captions:
        export.write_captions(out_dir, n, seed, image_size or 64, workers=workers)
        what = f"{n} rows in {out_dir / 'captions.csv'}"
    elif kind is Kind.scenes3d:
        what = _scenes3d(out_dir, n, seed, points, min_objects, max_objects, rgbd_views)
    else:
        from ..datasets.views3d import write_views3d

        write_views3d(out_dir, n, seed, workers, points=points)
        with open(out_dir / "captions.csv") as f:
            rows = sum(1 for _ in f) - 1
        what = f"{rows} crops of {n} scenes in {out_dir / 'captions.csv'}"
    opt.stderr.print(f"datagen {kind.value}: wrote {what} ({time.time() - t0:.1f} s)")


def _scenes3d(out_dir: Path, n: int, seed: int, points: int, min_objects: int, max_objects: int,
              rgbd_views: int) -> str:
    from ..datasets.scenes3d import generate_scenes3d, write_scenes3d
    from ..datasets.views3d import write_scene_rgbd
    from ..io.writers import OutputPathError

    try:
        write_scenes3d(out_dir, n, seed, points=points, min_objects=min_objects, max_objects=max_objects)
    except OutputPathError as e:
        opt.usage_error(str(e))
    what = f"{n} scene{'s' if n != 1 else ''}, {out_dir / 'scenes3d.json'}"
    if rgbd_views:
        import os
        import shutil

        for i, scene in enumerate(generate_scenes3d(n, seed, 0, points, min_objects, max_objects)):
            folder = out_dir / f"scene_{i:04d}"
            write_scene_rgbd(scene, folder, rgbd_views)
            ply = out_dir / f"scene_{i:04d}.ply"
            try:  # the folder's own PLY (a hard link; a copy where links are not possible), as ScanNet ships one
                os.link(ply, folder / ply.name)
            except OSError:
                shutil.copyfile(ply, folder / ply.name)
        what += f", {rgbd_views} RGB-D views and the PLY each in {out_dir}/scene_<i>/"
    return what
