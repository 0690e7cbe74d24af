"""``ovtools detect``: open-vocabulary object detection with labels in plain language.

    ovtools detect street.jpg --labels "man in red shirt, dog"
    ovtools detect photos/ --classes coco -o dets.json --coco-output coco.json --save-vis vis/

Exit codes: 0 every image processed, 1 some image failed (reported by name and
skipped), 2 usage error (bad option, no labels, unknown class space, template
set or preset, missing weights).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.table import Table

from . import options as opt
from .app import app
from .batch import finish, run_images, save_overlay

_TABLE_ROWS = 15  # detections shown per image; --output has them all


def _table(records: list[dict]) -> Table:
    t = Table(title="ovtools detect", header_style="bold")
    t.add_column("image", overflow="fold")
    t.add_column("label")
    t.add_column("conf.", justify="right")
    t.add_column("box x0, y0, x1, y1 (px)", justify="right")
    for rec in records:
        if not rec["detections"]:
            t.add_row(rec["image"], "[dim](nothing found)[/]", "", "")
        for j, d in enumerate(rec["detections"][:_TABLE_ROWS]):
            box = ", ".join(f"{v:.0f}" for v in d["xyxy"])
            t.add_row(rec["image"] if j == 0 else "", d["label"], f"{d['confidence']:.3f}", box)
        if len(rec["detections"]) > _TABLE_ROWS:
            t.add_row("", f"[dim]... {len(rec['detections']) - _TABLE_ROWS} more (see --output)[/]", "", "")
    return t


@app.command("detect")
def detect(
    images: opt.Images,
    labels: opt.Labels = None,
    classes: opt.Classes = None,
    scoring: opt.Scoring = None,
    proposals: Annotated[Optional[str], typer.Option(
        "--proposals", help="Box proposal source: segments (colour-coherent regions), windows (multi-scale sliding "
        "windows) or hybrid (both). Default: the preset's (segments).", show_default=False)] = None,
    threshold: opt.Threshold = None,
    nms_iou: Annotated[Optional[float], typer.Option(
        "--nms-iou", min=0.0, max=1.0, help="Per-class non-maximum suppression IoU in (0, 1]. Default: 0.5.",
        show_default=False)] = None,
    max_detections: Annotated[Optional[int], typer.Option(
        "--max-detections", min=1, help="At most this many detections per image, best first. Default: 100.",
        show_default=False)] = None,
    coco_output: Annotated[Optional[Path], typer.Option(
        "--coco-output", help="Also write COCO results (a list of image_id, category_id, bbox as x, y, w, h in pixels, score) to "
        "this file, plus <name>.categories.json with the images and categories.", show_default=False,
        dir_okay=False)] = None,
    templates: opt.Templates = None,
    model: opt.Model = None,
    pretrained: opt.Pretrained = None,
    device: opt.Device = None,
    precision: opt.Precision = None,
    preset: opt.Preset = None,
    output: opt.Output = None,
    save_vis: opt.SaveVis = None,
    batch_size: opt.BatchSize = None,
    max_side: opt.MaxSide = None,
    recursive: opt.Recursive = False,
    cache_dir: opt.CacheDir = None,
    no_cache: opt.NoCache = False,
    quiet: opt.Quiet = False,
) -> None:
    """Detect objects described by LABELS (or a class space) in images.

    Prints a table (image, label, confidence, box in original-image pixels).
    Several images run as a batch with a progress bar on stderr; a file that
    cannot be read is reported by name and skipped (exit code 1).  --batch-size
    sets the crops per forward pass.
    """
    from ..io.writers import coco_header_path
    from ..proposals import available_proposals

    if scoring is not None and scoring not in ("crop", "dense"):
        opt.usage_error(f"--scoring must be crop or dense, got {scoring!r}")
    if proposals is not None and proposals not in available_proposals():
        opt.usage_error(f"--proposals must be one of {available_proposals()}, got {proposals!r}")
    if nms_iou is not None and nms_iou <= 0:
        opt.usage_error("--nms-iou must be in (0, 1]")
    overrides = opt.class_options(labels, classes, opt.preset_has_classes(preset))
    overrides.update(opt.model_overrides(model, pretrained, device, precision, templates, None,
                                         cache_dir, no_cache, max_side))
    for key, value in (("scoring", scoring), ("proposals", proposals), ("score_threshold", threshold),
                       ("nms_iou", nms_iou), ("max_detections", max_detections), ("crop_batch_size", batch_size)):
        if value is not None:
            overrides[key] = value
    files, problems, skipped = opt.expand_inputs(images, recursive)
    if not files and not problems:
        opt.usage_error("no images given")
    opt.check_outputs({"--output": output, "--coco-output": coco_output, "--save-vis": opt.vis_file(save_vis),
                       "--coco-output (categories)": coco_header_path(coco_output) if coco_output else None}, files)
    many = len(images) > 1 or any(Path(i).is_dir() or opt._is_pattern(i) for i in images)
    vis_targets = opt.prepare_vis_targets(save_vis, files, many)
    opt.register_model_configs()
    from ..pipelines import DetectPipeline
    pipe = opt.build_pipeline(DetectPipeline, preset if preset is not None else "detect-default", overrides)
    savers = [("--save-vis", vis_targets, save_overlay)] if vis_targets is not None else []
    records, errors = run_images(pipe, files, problems, "detect", savers)
    if records and not quiet:
        opt.stdout.print(_table(records))
    finish(pipe, "detect", records, errors, len(files) + len(problems), files, output, coco_output, skipped)
