"""``ovtools segment``: open-vocabulary instance and semantic segmentation.

    ovtools segment kitchen.jpg --labels "mug, kettle, countertop" -o out.json --save-vis overlay.png
    ovtools segment photos/ --classes coco --save-labels labels/ --scoring dense
    ovtools segment street.jpg --labels "car" --sam-checkpoint sam_vit_b_01ec64.pth   # Segment Anything masks

Masks come from the classical ``regions`` source (no weights) unless a Segment
Anything checkpoint is given (``--sam-checkpoint``; ``--proposals detect`` then
segments the detector's boxes instead of SAM's automatic masks).  ``--output``
holds each mask as COCO RLE; ``--save-labels`` writes the semantic label map as a
palette PNG (value 0 background, k = class id k-1; see ``ovtools.io.labelmap``).

Exit codes: 0 every image processed (also when nothing was found), 1 some image
failed (reported by name and skipped), 2 usage error.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.table import Table

from . import options as opt
from .app import app
from .batch import finish, run_images, save_overlay

_TABLE_ROWS = 15
_MASK_SOURCES = ("regions", "sam", "detect")


def _table(records: list[dict]) -> Table:
    t = Table(title="ovtools segment", header_style="bold")
    for name, justify in (("image", "left"), ("label", "left"), ("conf.", "right"), ("area (px)", "right"),
                          ("box x0, y0, x1, y1 (px)", "right")):
        t.add_column(name, justify=justify, overflow="fold")
    for rec in records:
        if not rec["detections"]:
            t.add_row(rec["image"], "[dim](nothing found)[/]", "", "", "")
        for j, d in enumerate(rec["detections"][:_TABLE_ROWS]):
            box = ", ".join(f"{v:.0f}" for v in d["xyxy"])
            t.add_row(rec["image"] if j == 0 else "", d["label"], f"{d['confidence']:.3f}", str(d.get("area", "")), box)
        if len(rec["detections"]) > _TABLE_ROWS:
            t.add_row("", f"[dim]... {len(rec['detections']) - _TABLE_ROWS} more (see --output)[/]", "", "", "")
    return t


def _save_labels(num_classes: int):
    def render(image, det, target: Path, files: list[Path]) -> None:
        from ..io.labelmap import save_label_png

        save_label_png(det.label_map(), num_classes, target, files)
    return render


@app.command("segment")
def segment(
    images: opt.Images,
    labels: opt.Labels = None,
    classes: opt.Classes = None,
    scoring: Annotated[Optional[str], typer.Option(
        "--scoring", help="How masks are named: crop (encode a masked crop per mask; accurate), dense (pool "
        "MaskCLIP patch features in one pass; fast) or fusion (ConceptFusion blend of global and crop "
        "features). Default: the preset's (crop).", show_default=False)] = None,
    proposals: Annotated[Optional[str], typer.Option(
        "--proposals", help="Mask source: regions (Felzenszwalb + selective search, no weights), sam (Segment "
        "Anything automatic masks) or detect (detector boxes segmented by Segment Anything). Default: sam "
        "when --sam-checkpoint is given, else the preset's (regions).", show_default=False)] = None,
    sam_checkpoint: Annotated[Optional[Path], typer.Option(
        "--sam-checkpoint", help="Segment Anything checkpoint (.pth), e.g. sam_vit_b_01ec64.pth from "
        "https://github.com/facebookresearch/segment-anything#model-checkpoints.", show_default=False,
        dir_okay=False)] = None,
    sam_model: Annotated[Optional[str], typer.Option(
        "--sam-model", help="Segment Anything architecture of --sam-checkpoint: vit_b, vit_l or vit_h. "
        "Default: vit_b.", show_default=False)] = None,
    threshold: opt.Threshold = None,
    max_detections: Annotated[Optional[int], typer.Option(
        "--max-detections", min=1, help="At most this many masks per image, most confident first. Default: 100.",
        show_default=False)] = None,
    save_labels: Annotated[Optional[Path], typer.Option(
        "--save-labels", help="Write the semantic label map as a palette PNG (0 = background, k = class id k-1): "
        "a .png file for one image or a folder (<stem>.labels.png per image).", show_default=False)] = None,
    coco_output: Annotated[Optional[Path], typer.Option(
        "--coco-output", help="Also write COCO results with RLE masks (segmentation) to this file, plus "
        "<name>.categories.json with the images and categories.", show_default=False, dir_okay=False)] = None,
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
    """Segment the things described by LABELS (or a class space) in images.

    Prints a table (image, label, confidence, mask area, box in original-image
    pixels).  Masks are returned at the original image's size.  A label that
    matches nothing gives an empty result and exit code 0.
    """
    from ..heads.mask_features import SCORINGS
    from ..io.writers import coco_header_path

    if scoring is not None and scoring not in SCORINGS:
        opt.usage_error(f"--scoring must be one of {', '.join(SCORINGS)}, got {scoring!r}")
    if proposals is not None and proposals not in _MASK_SOURCES:
        opt.usage_error(f"--proposals must be one of {', '.join(_MASK_SOURCES)}, got {proposals!r}")
    if sam_model is not None and sam_model not in ("vit_b", "vit_l", "vit_h"):
        opt.usage_error(f"--sam-model must be vit_b, vit_l or vit_h, got {sam_model!r}")
    if proposals in ("sam", "detect") and sam_checkpoint is None:
        opt.usage_error(f"--proposals {proposals} needs --sam-checkpoint (Segment Anything weights cannot be "
                        "downloaded automatically)")
    if sam_checkpoint is not None and not sam_checkpoint.is_file():
        opt.usage_error(f"--sam-checkpoint {sam_checkpoint}: no such file")
    if sam_checkpoint is None and sam_model is not None:
        opt.usage_error("--sam-model needs --sam-checkpoint")
    overrides = opt.class_options(labels, classes, opt.preset_has_classes(preset))
    overrides.update(opt.model_overrides(model, pretrained, device, precision, templates, None,
                                         cache_dir, no_cache, max_side))
    if sam_checkpoint is not None:
        overrides["proposals"] = proposals or "sam"
        overrides["proposal_options"] = {"checkpoint": str(sam_checkpoint), "model_type": sam_model or "vit_b"}
    elif proposals is not None:
        overrides["proposals"] = proposals
    for key, value in (("scoring", scoring), ("score_threshold", threshold), ("max_detections", max_detections),
                       ("crop_batch_size", batch_size)):
        if value is not None:
            overrides[key] = value
    files, problems, skipped = opt.expand_inputs(images, recursive)
    if not files and not problems:
        opt.usage_error("no images given")
    opt.check_outputs({"--output": output, "--coco-output": coco_output, "--save-vis": opt.vis_file(save_vis),
                       "--save-labels": opt.vis_file(save_labels),
                       "--coco-output (categories)": coco_header_path(coco_output) if coco_output else None}, files)
    many = len(images) > 1 or any(Path(i).is_dir() or opt._is_pattern(i) for i in images)
    vis_targets = opt.prepare_vis_targets(save_vis, files, many)
    label_targets = opt.prepare_vis_targets(save_labels, files, many, "--save-labels", ".labels")
    from ..pipelines import SegmentPipeline

    pipe = opt.build_pipeline(SegmentPipeline, preset if preset is not None else "segment-default", overrides)
    savers = []
    if vis_targets is not None:
        savers.append(("--save-vis", vis_targets, save_overlay))
    if label_targets is not None:
        savers.append(("--save-labels", label_targets, _save_labels(len(pipe.labels))))
    records, errors = run_images(pipe, files, problems, "segment", savers)
    if records and not quiet:
        opt.stdout.print(_table(records))
    finish(pipe, "segment", records, errors, len(files) + len(problems), files, output, coco_output, skipped)
