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
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Optional

import numpy as np
import typer

from ..heads.segment import SegmentConfig
from . import options as opt
from .progress import make_progress
from .app import app
from .derive import COMMON_OPTIONS, Invocation, argument, build_command, option


def _classification(pipe, data_path: Path) -> dict:
    from ..eval import classification_metrics
    from ..eval.data import map_to_space, read_labelled_images

    try:
        data = read_labelled_images(data_path)
        targets = map_to_space(data, pipe.labels)
    except (ValueError, FileNotFoundError) as e:
        opt.usage_error(str(e))
    progress, task = make_progress(len(data.paths), "eval")
    logits, kept, errors = [], [], []
    bs = pipe.settings["batch_size"]
    with progress:
        for loaded in opt.loaded_batches(data.paths, bs, pipe.settings["max_side"], progress, task, errors):
            res = pipe.classify_batch([im for _, _, im in loaded])
            logits.append(res.logits)
            kept.extend(i for i, _, _ in loaded)
            progress.advance(task, len(loaded))
    if not kept:
        opt.usage_error(f"{data_path}: no image could be read")
    m = classification_metrics(np.concatenate(logits), targets[kept], pipe.labels)
    return {"task": "zeroshot_classification", **m, "errors": errors}


def _single_class(space, class_id: int):
    """The class space reduced to one class, keeping its synonyms, prompts and negatives."""
    from ..prompts import ClassSpace

    spec = space.classes[class_id]
    return ClassSpace(name=f"{space.name}:{spec.name}", classes=(spec,), negatives=space.negatives,
                      templates=space.templates)


def _instances(pipe, ann: Path, image_dir: Optional[Path], absent: bool, seed: int) -> dict:
    """Detection (box AP) or, for a segmentation pipeline, mask AP + semantic mIoU on a COCO file."""
    from ..datasets.readers import read_coco
    from ..eval import coco_detection_metrics
    from ..eval.segmentation import ConfusionMatrix, check_segmentations, coco_label_map
    from ..io.images import load_image
    from ..structures import masks_to_rle

    try:
        data = read_coco(ann, image_dir)
    except (ValueError, FileNotFoundError) as e:
        opt.usage_error(str(e))
    space = pipe.class_space
    index = {n.casefold(): i for i, n in enumerate(space.names)}
    missing = [c for c in data.categories if c.casefold() not in index]
    if missing:
        opt.usage_error(f"{ann}: categories not in the class space {space.name!r}: {missing[:10]}")
    to_cat = {index[c.casefold()]: cid for c, cid in zip(data.categories, data.category_ids)}
    to_class = {cid: k for k, cid in to_cat.items()}
    segment = pipe.task == "segment"
    if segment:
        try:
            check_segmentations(data.coco, str(ann))
        except ValueError as e:
            opt.usage_error(str(e))
    confusion = ConfusionMatrix(len(space.names)) if segment else None
    rng = np.random.default_rng(seed)
    results, errors, absent_ok, absent_n = [], [], 0, 0
    progress, task = make_progress(len(data.paths), "eval")
    t0 = time.perf_counter()
    with progress:
        for img_id, path in zip(data.image_ids, data.paths):
            progress.advance(task)
            try:
                image = load_image(path, pipe.settings["max_side"])
            except Exception as e:
                errors.append(opt.report_failure(progress, path, e))
                continue
            det = pipe(image)
            rles = masks_to_rle(det.mask) if segment else [None] * len(det)
            for box, score, c, rle in zip(det.xyxy, det.confidence, det.class_id, rles):
                if int(c) in to_cat:
                    x0, y0, x1, y1 = (float(v) for v in box)
                    res = {"image_id": int(img_id), "category_id": to_cat[int(c)],
                           "bbox": [x0, y0, x1 - x0, y1 - y0], "score": float(score)}
                    if rle is not None:
                        res["segmentation"] = {"size": rle["size"], "counts": rle["counts"]}
                    results.append(res)
            if segment:
                try:
                    gt = coco_label_map(data.coco, img_id, to_class, image.original_size)
                except ValueError as e:  # the annotation file's image size is not the image's
                    opt.usage_error(f"{ann}: {e}")
                confusion.update(gt, det.label_map())
            if absent:
                present = {a["category_id"] for a in data.coco.imgToAnns.get(img_id, [])}
                candidates = [c for c, cid in zip(data.categories, data.category_ids) if cid not in present]
                if candidates:
                    label = candidates[int(rng.integers(len(candidates)))]
                    absent_n += 1
                    absent_ok += len(pipe(image, labels=_single_class(space, index[label.casefold()]))) == 0
    seconds = time.perf_counter() - t0
    out = {"task": "segmentation" if segment else "detection", "n_images": len(data.paths)}
    if segment:
        sem = confusion.metrics(space.names)
        out.update({"mIoU": sem["mIoU"], "background_IoU": sem["background_IoU"],
                    "pixel_accuracy": sem["pixel_accuracy"], "classes_in_gt": sem["classes_in_gt"]})
        out.update({f"mask_{k}": v for k, v in coco_detection_metrics(data.coco, results, "segm").items()})
        out["per_class_IoU"] = sem["per_class_IoU"]
    out.update(coco_detection_metrics(data.coco, results))
    out.update({"n_detections": len(results), "seconds_per_image": round(seconds / max(len(data.paths), 1), 4),
                "errors": errors})
    if absent:
        out["absent_label_rejection"] = absent_ok / absent_n if absent_n else None
        out["absent_label_checks"] = absent_n
    return out


def _eval3d(data, labels, classes, settings: dict, flags: dict, preset, output, quiet) -> None:
    """A 3D world folder (``scenes3d.json``): per-point mIoU for fusion, distill and ensemble."""
    from ..eval.scenes3d import evaluate_scenes3d, read_manifest
    from ..pipelines import Segment3DPipeline

    try:
        folder, man = read_manifest(data)
    except (ValueError, FileNotFoundError) as e:
        opt.usage_error(str(e))
    inputs = [data, folder / "scenes3d.json", *(folder / s["file"] for s in man["scenes"])]
    overrides = dict(settings)
    overrides.update(opt.class_overrides_or(labels, classes, preset, lambda: man["class_names"]))
    opt.check_outputs({"--output": output}, inputs)
    pipe = opt.build_pipeline(Segment3DPipeline, preset if preset is not None else "segment3d-default", overrides,
                              flags)
    modes = ("fusion", "distill", "ensemble") if pipe.config.distill_steps > 0 else ("fusion",)
    progress, task = make_progress(len(man["scenes"]), "eval")
    try:
        with progress:
            result = evaluate_scenes3d(pipe, data, modes, progress=progress, task=task)
    except (ValueError, FileNotFoundError) as e:
        opt.usage_error(str(e))
    result = {"dataset": str(data), "model": pipe.encoder.name, "pretrained": pipe.encoder.pretrained,
              "classes": pipe.class_space.name, **result}
    if output is not None:
        from ..io.writers import write_json

        write_json(output, result, inputs)
    if not quiet:
        shown = {**result, "modes": {m: {k: v for k, v in r.items() if k != "per_class_IoU"}
                                     for m, r in result["modes"].items()}}
        opt.stdout.print_json(json.dumps(shown))


def evaluate(inv: Invocation) -> None:
    """Evaluate zero-shot classification (top-1, top-5, mean per-class recall), detection (COCO AP)
    or segmentation (mask AP and semantic mIoU).

    Without --labels/--classes, ImageFolder names (or CSV labels, or COCO category
    names) become the class space.  Metrics are printed as JSON and written to
    --output.  Exit code 2 on usage errors (unknown dataset layout, dataset
    classes missing from the class space, missing weights).
    """
    data, labels, classes, preset, output, quiet = inv.data, inv.labels, inv.classes, inv.preset, inv.output, inv.quiet
    image_dir, absent, seed, task = inv.image_dir, inv.absent, inv.seed, inv.task
    if not data.exists():
        opt.usage_error(f"dataset {data} does not exist")
    if data.name == "scenes3d.json" or (data / "scenes3d.json").is_file():
        given = sorted(k for k in inv.settings if k in ("max_side", "batch_size", "scoring", "score_threshold"))
        if given or task is not None:
            opt.usage_error(f"{', '.join(inv.flags.get(k, k) for k in given) or '--task'}: not used for a 3D world")
        return _eval3d(data, labels, classes, inv.settings, inv.flags, preset, output, quiet)
    is_coco = data.suffix.lower() == ".json"
    overrides = dict(inv.settings)
    from ..datasets.readers import read_coco
    from ..eval.data import read_labelled_images

    overrides.update(opt.class_overrides_or(
        labels, classes, preset,
        lambda: read_coco(data, image_dir).categories if is_coco else read_labelled_images(data).class_names))
    opt.check_outputs({"--output": output}, [data])
    if not is_coco and ({"scoring", "score_threshold"} & set(overrides) or task is not None):
        opt.usage_error("--scoring, --threshold and --task apply to detection/segmentation (a COCO .json dataset)")
    kind = (task or opt.preset_task(preset) or "detect") if is_coco else "classify"
    if is_coco and kind not in ("detect", "segment"):
        opt.usage_error(f"--task must be detect or segment for a COCO file, got {kind!r}")
    if is_coco:
        from ..pipelines import DetectPipeline, SegmentPipeline

        factory = SegmentPipeline if kind == "segment" else DetectPipeline
        pipe = opt.build_pipeline(factory, preset if preset is not None else f"{kind}-default", overrides, inv.flags)
        result = _instances(pipe, data, image_dir, absent, seed)
    else:
        from ..pipelines import ClassifyPipeline

        pipe = opt.build_pipeline(ClassifyPipeline, preset if preset is not None else "classify-default", overrides,
                                  inv.flags)
        result = _classification(pipe, data)
    result = {"dataset": str(data), "model": pipe.encoder.name, "pretrained": pipe.encoder.pretrained,
              "templates": pipe.embeddings.templates.name, "classes": pipe.class_space.name, **result}
    if output is not None:
        from ..io.writers import write_json

        write_json(output, result, [data])
    if not quiet:
        shown = {k: v for k, v in result.items() if k not in ("per_class_recall", "errors")}
        opt.stdout.print_json(json.dumps(shown))
    if result.get("errors"):
        raise typer.Exit(1)


build_command(
    app, "eval", evaluate, doc=evaluate.__doc__, config_cls=SegmentConfig, fields=("scoring", "score_threshold"),
    preset="detect-default",
    leading=[argument("data", Path, "ImageFolder directory or image-caption CSV (zero-shot classification), a "
                      "COCO instances JSON (detection or segmentation), or a 3D world folder with scenes3d.json "
                      "(3D mIoU).")],
    own=[option("image_dir", Path, "--image-dir", file_okay=False,
                help="COCO: folder that file_name entries are relative to. Default: the JSON's folder."),
         option("absent", bool, "--absent/--no-absent", default=True, help="COCO: also query one absent category "
                "per image alone and report how often nothing is detected (absent_label_rejection)."),
         option("seed", int, "--seed", default=0, help="Seed for choosing absent categories."),
         option("task", str, "--task", help="COCO: detect (box AP) or segment (mask AP, semantic mIoU). Default: "
                "the preset's task, else detect.")],
    common=COMMON_OPTIONS, cli=("preset", "output", "quiet"))
