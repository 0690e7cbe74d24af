"""``ovtools eval``: measure a model on labelled data with the same code users run.

    ovtools eval val/ --classes shapes --preset classify-shapes         # ImageFolder: zero-shot top-1/top-5
    ovtools eval pairs.csv --labels "cat, dog"                          # CSV with a label (or caption) column
    ovtools eval instances.json --preset detect-shapes -o metrics.json  # COCO: AP, AP50, AR via pycocotools
    ovtools eval instances.json --preset segment-shapes                 # COCO masks: mask AP + semantic mIoU
    ovtools eval scenes3d/ --preset segment3d-shapes                    # 3D world: per-point mIoU per mode
    ovtools eval runs/scene0 --classes shapes3d --preset segment3d-shapes  # a field run: mIoU, localisation

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
the fusion, distill and ensemble modes (:mod:`ovtools.eval.scenes3d`).  A run folder of
``ovtools field train`` (holding ``config.yml``) is evaluated on its scene's ground truth: per-point
mIoU of the field and LERF localisation accuracy on held-out views
(:mod:`ovtools.nerf.evaluate`; ``--preset`` then names a segment3d preset labelled beside it).

The command parses options, builds the pipeline and calls :func:`ovtools.eval.evaluate`
(the same function scripts use); it prints and writes what that returns.
"""

from __future__ import annotations

import json
from pathlib import Path

import typer

from ..heads.segment import SegmentConfig
from . import options as opt
from .app import app
from .derive import COMMON_OPTIONS, Invocation, argument, build_command, option
from .progress import make_progress, set_quiet


def evaluate(inv: Invocation) -> None:
    """Evaluate zero-shot classification (top-1, top-5, mean per-class recall), detection (COCO AP)
    or segmentation (mask AP and semantic mIoU).

    Without --labels/--classes, ImageFolder names (or CSV labels, or COCO category
    names) become the class space.  Metrics are printed as JSON and written to
    --output.  Exit code 2 on usage errors (unknown dataset layout, dataset
    classes missing from the class space, missing weights).
    """
    from ..eval.run import dataset_class_names, dataset_files, dataset_tasks, evaluate as run_evaluation, read_dataset

    data, preset, output, quiet, task = inv.data, inv.preset, inv.output, inv.quiet, inv.task
    set_quiet(quiet)
    if not data.exists():
        opt.usage_error(f"dataset {data} does not exist")
    if data.is_dir() and (data / "config.yml").is_file():  # a NeRF feature-field run (ovtools field train)
        from .field import evaluate_run

        return evaluate_run(data, inv.labels, inv.classes, preset, output, quiet)
    try:
        ds = read_dataset(data, inv.image_dir)
    except (ValueError, FileNotFoundError) as e:
        opt.usage_error(str(e))
    is_coco, is_3d = "detect" in dataset_tasks(ds), "segment3d" in dataset_tasks(ds)
    overrides = dict(inv.settings)
    if is_3d:
        given = sorted(k for k in overrides if k in ("max_side", "batch_size", "scoring", "score_threshold"))
        if given or task is not None:
            opt.usage_error(f"{', '.join(inv.flags.get(k, k) for k in given) or '--task'}: not used for a 3D world")
    overrides.update(opt.class_overrides_or(inv.labels, inv.classes, preset, lambda: dataset_class_names(ds)))
    inputs = [data, *dataset_files(ds)]
    coco_output = inv.coco_output
    if coco_output is not None and not is_coco:
        opt.usage_error("--coco-output applies to a COCO .json dataset")
    opt.check_outputs({"--output": output, "--coco-output": coco_output}, inputs)
    if is_3d:
        kind = "segment3d"
    else:
        if not is_coco and ({"scoring", "score_threshold"} & set(overrides) or task is not None):
            opt.usage_error("--scoring, --threshold and --task apply to detection/segmentation (a COCO .json dataset)")
        kind = (task or opt.preset_task(preset) or "detect") if is_coco else "classify"
        if is_coco and kind not in ("detect", "segment"):
            opt.usage_error(f"--task must be detect or segment for a COCO file, got {kind!r}")
    from ..pipelines import pipeline_class

    pipe = opt.load_pipeline("eval", pipeline_class(kind), preset if preset is not None else f"{kind}-default",
                             overrides, inv.flags)
    progress, bar = make_progress(len(ds), "eval", "scenes" if is_3d else "images")
    try:
        with progress:
            result = run_evaluation(pipe, ds, absent=inv.absent, seed=inv.seed, coco_output=coco_output,
                                    progress=lambda n: progress.advance(bar, n),
                                    on_error=lambda entry: opt.print_failure(progress, entry))
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


build_command(
    app, "eval", evaluate, doc=evaluate.__doc__, config_cls=SegmentConfig, fields=("scoring", "score_threshold"),
    preset="detect-default",
    leading=[argument("data", Path, "ImageFolder directory or image-caption CSV (zero-shot classification), a "
                      "COCO instances JSON (detection or segmentation), or a 3D world folder with scenes3d.json "
                      "(3D mIoU), or a NeRF feature-field run folder with config.yml (mIoU, localisation).")],
    own=[option("image_dir", Path, "--image-dir", file_okay=False,
                help="COCO: folder that file_name entries are relative to. Default: the JSON's folder."),
         option("absent", bool, "--absent/--no-absent", default=True, help="COCO: also query one absent category "
                "per image alone and report how often nothing is detected (absent_label_rejection)."),
         option("seed", int, "--seed", default=0, help="Seed for choosing absent categories."),
         option("coco_output", Path, "--coco-output", dir_okay=False, help="COCO: also write the detections as "
                "COCO results with the dataset's own image ids (strings stay strings) to this file."),
         option("task", str, "--task", help="COCO: detect (box AP) or segment (mask AP, semantic mIoU). Default: "
                "the preset's task, else detect."),
         # eval's own help for the class options: its default is the dataset's names, not a preset's class space
         option("classes", str, "--classes", "-c", help="A built-in class space (coco, imagenet, scannet20, shapes, "
                "shapes3d, ...; `ovtools models --classes` lists them) or a class-space YAML file; every dataset "
                "class must be in it. Excludes --labels. Default: the dataset's own class names."),
         option("labels", str, "--labels", "-l", help="Comma-separated labels in plain language; every dataset "
                "class must be one of them. Excludes --classes. Default: the dataset's own class names.")],
    common=COMMON_OPTIONS, cli=("preset", "output", "quiet"))
