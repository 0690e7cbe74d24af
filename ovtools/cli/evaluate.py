"""``ovtools eval``: measure a model on labelled data with the same code users run.

    ovtools eval val/ --classes shapes --preset classify-shapes         # ImageFolder: zero-shot top-1/top-5
    ovtools eval pairs.csv --labels "cat, dog"                          # CSV with a label (or caption) column
    ovtools eval instances.json --preset detect-shapes -o metrics.json  # COCO: AP, AP50, AR via pycocotools
    ovtools eval instances.json --preset segment-shapes                 # COCO masks: mask AP + semantic mIoU
    ovtools eval scenes3d/ --preset segment3d-shapes                    # 3D world: per-point mIoU per mode

Classification reports top-1, top-5 and mean per-class recall (CLIP paper §3.1,
as CLIP_benchmark does).  Detection runs the detection pipeline on every image
of a COCO instances file and scores it with pycocotools' COCOeval; it also
checks that labels absent from an image are not reported: for each image one
category that does not occur in it is queried alone (with its synonyms and
negatives from the class space), and the share of images where nothing is
reported is ``absent_label_rejection``.  Segmentation (a ``segment`` preset or
``--task segment``) runs the segmentation pipeline and adds mask AP (COCOeval
``segm``, keys ``mask_AP``, ``mask_AP50``, ...) and the semantic-segmentation
``mIoU`` of the label maps against the annotations' masks
(:mod:`ovtools.eval.segmentation`).  A folder with a ``scenes3d.json``
manifest (the 3D world) is evaluated with the 3D pipeline: per-point mIoU of
the fusion, distill and ensemble modes (:mod:`ovtools.eval.scenes3d`).

The command parses options, builds the pipeline and calls :func:`ovtools.eval.evaluate`
(the same function scripts use); it prints and writes what that returns.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Optional

import typer

from . import options as opt
from .app import app


@app.command("eval")
def evaluate(
    data: Annotated[Path, typer.Argument(
        help="ImageFolder directory or image-caption CSV (zero-shot classification), a COCO instances "
        "JSON (detection or segmentation), or a 3D world folder with scenes3d.json (3D mIoU).",
        show_default=False)],
    labels: opt.Labels = None,
    classes: opt.Classes = None,
    templates: opt.Templates = None,
    model: opt.Model = None,
    pretrained: opt.Pretrained = None,
    device: opt.Device = None,
    precision: opt.Precision = None,
    preset: opt.Preset = None,
    image_dir: Annotated[Optional[Path], typer.Option(
        "--image-dir", help="COCO: folder that file_name entries are relative to. Default: the JSON's folder.",
        show_default=False, file_okay=False)] = None,
    absent: Annotated[bool, typer.Option(
        "--absent/--no-absent", help="COCO: also query one absent category per image alone and report how often "
        "nothing is detected (absent_label_rejection).")] = True,
    seed: Annotated[int, typer.Option("--seed", help="Seed for choosing absent categories.")] = 0,
    task: Annotated[Optional[str], typer.Option(
        "--task", help="COCO: detect (box AP) or segment (mask AP, semantic mIoU). Default: the preset's task, "
        "else detect.", show_default=False)] = None,
    scoring: opt.Scoring = None,
    threshold: opt.Threshold = None,
    output: opt.Output = None,
    batch_size: opt.BatchSize = None,
    max_side: opt.MaxSide = None,
    cache_dir: opt.CacheDir = None,
    no_cache: opt.NoCache = False,
    quiet: opt.Quiet = False,
) -> None:
    """Evaluate zero-shot classification (top-1, top-5, mean per-class recall), detection (COCO AP)
    or segmentation (mask AP and semantic mIoU).

    Without --labels/--classes, ImageFolder names (or CSV labels, or COCO category
    names) become the class space.  Metrics are printed as JSON and written to
    --output.  Exit code 2 on usage errors (unknown dataset layout, dataset
    classes missing from the class space, missing weights).
    """
    from ..eval.run import dataset_class_names, dataset_files, dataset_tasks, evaluate, read_dataset

    if not data.exists():
        opt.usage_error(f"dataset {data} does not exist")
    try:
        ds = read_dataset(data, image_dir)
    except (ValueError, FileNotFoundError) as e:
        opt.usage_error(str(e))
    is_coco, is_3d = "detect" in dataset_tasks(ds), "segment3d" in dataset_tasks(ds)
    overrides = opt.model_overrides(model, pretrained, device, precision, templates,
                                    None if is_3d else batch_size, cache_dir, no_cache, None if is_3d else max_side)
    overrides.update(opt.class_overrides_or(labels, classes, preset, lambda: dataset_class_names(ds)))
    inputs = [data, *dataset_files(ds)]
    opt.check_outputs({"--output": output}, inputs)
    if is_3d:
        from ..pipelines import Segment3DPipeline

        pipe = opt.build_pipeline(Segment3DPipeline, preset if preset is not None else "segment3d-default", overrides)
    else:
        if not is_coco and (scoring is not None or threshold is not None or task is not None):
            opt.usage_error("--scoring, --threshold and --task apply to detection/segmentation (a COCO .json dataset)")
        kind = (task or opt.preset_task(preset) or "detect") if is_coco else "classify"
        if is_coco and kind not in ("detect", "segment"):
            opt.usage_error(f"--task must be detect or segment for a COCO file, got {kind!r}")
        if scoring is not None:
            allowed = ("crop", "dense", "fusion") if kind == "segment" else ("crop", "dense")
            if scoring not in allowed:
                opt.usage_error(f"--scoring must be one of {', '.join(allowed)} for {kind}, got {scoring!r}")
            overrides["scoring"] = scoring
        if threshold is not None:
            overrides["score_threshold"] = threshold
        from ..pipelines import ClassifyPipeline, DetectPipeline, SegmentPipeline

        factory = {"classify": ClassifyPipeline, "detect": DetectPipeline, "segment": SegmentPipeline}[kind]
        pipe = opt.build_pipeline(factory, preset if preset is not None else f"{kind}-default", overrides)
    progress, bar = opt.make_progress(len(ds), "eval")
    try:
        with progress:
            result = evaluate(pipe, ds, absent=absent, seed=seed, progress=lambda n: progress.advance(bar, n),
                              on_error=lambda e: opt.report_failure(progress, e["image"], e["error"]))
    except (ValueError, FileNotFoundError) as e:
        opt.usage_error(str(e))
    if output is not None:
        from ..io.writers import write_json

        write_json(output, result, inputs)
    if not quiet:
        if is_3d:
            shown = {**result, "modes": {m: {k: v for k, v in r.items() if k != "per_class_IoU"}
                                         for m, r in result["modes"].items()}}
        else:
            shown = {k: v for k, v in result.items() if k not in ("per_class_recall", "errors")}
        opt.stdout.print_json(json.dumps(shown))
    if result.get("errors"):
        raise typer.Exit(1)
