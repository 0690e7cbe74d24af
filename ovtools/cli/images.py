"""``ovtools classify | detect | segment`` — one command per registered image head, built from its spec.

    ovtools classify photo.jpg --labels "zebra, goat, grass plain"
    ovtools detect street.jpg --labels "man in red shirt, dog" -o dets.json --save-vis vis/
    ovtools segment kitchen.jpg --labels "mug, kettle" --save-labels labels/ --coco-output coco.json

Options come from the head's config dataclass and the shared options
(:mod:`ovtools.cli.derive`); what a command prints and writes comes from its result
type: a table, ``--output`` JSON records and ``--save-vis`` pictures for every head;
``--coco-output`` for :class:`~ovtools.structures.Detections`; ``--save-labels`` and
the Segment Anything options for heads whose results carry masks.  A head added by a
plug-in gets its command the same way.

Exit codes: 0 every image processed (also when nothing was found), 1 some image failed
(reported by name and skipped), 2 usage error (bad option, no labels, unknown class
space, template set or preset, missing weights).
"""

from __future__ import annotations

from pathlib import Path

import typer
from rich.table import Table

from ..engine.config import EngineConfig
from ..engine.sinks import FORMATS as ROW_SUFFIXES
from ..heads.registry import HeadSpec, available_heads, head_spec
from ..io.inputs import is_pattern
from ..pipelines.base import default_preset_for
from ..proposals.sam import SAM_CHECKPOINT_URLS
from ..structures import Classifications
from . import options as opt
from .app import app
from .batch import finish, run_images, save_overlay
from .derive import COMMON_OPTIONS, Invocation, argument, build_command, option
from .progress import make_progress, set_quiet, stage

_TABLE_ROWS = 15  # detections shown per image; --output has them all
#: The engine settings offered on the command line (``progress`` follows ``--quiet``).
ENGINE_FIELDS = ("engine", "ray_address", "concurrency", "num_gpus", "num_cpus", "ray_batch_size", "local_num_cpus",
                 "resume")
IMAGES = argument("images", list[str], "Image files, folders (their images; see --recursive) or quoted glob "
                  "patterns ('photos/**/*.jpg').")
COCO_OUTPUT = option(
    "coco_output", Path, "--coco-output", dir_okay=False, help="Also write COCO results (image_id, category_id, "
    "bbox as x, y, w, h in pixels, score; segmentation as RLE for masks) to this file, plus "
    "<name>.categories.json with the images and categories.")
SAVE_LABELS = option(
    "save_labels", Path, "--save-labels", help="Write the semantic label map as a palette PNG (0 = background, "
    "k = class id k-1): a .png file for one image or a folder (<stem>.labels.png per image).")
SAM_CHECKPOINT = option(
    "sam_checkpoint", Path, "--sam-checkpoint", dir_okay=False, help="Segment Anything checkpoint (.pth), e.g. "
    "sam_vit_b_01ec64.pth from https://github.com/facebookresearch/segment-anything#model-checkpoints; "
    "sets --proposals sam unless --proposals detect.")
SAM_MODEL = option(
    "sam_model", str, "--sam-model", help=f"Segment Anything architecture of --sam-checkpoint: "
    f"{', '.join(SAM_CHECKPOINT_URLS)}. Default: vit_b.")


# ------------------------------------------------------------------------------ tables
def detections_table(title: str, records: list[dict]) -> Table:
    """Image, label, confidence, (mask area,) box in original-image pixels; at most 15 rows per image."""
    areas = any("area" in d for rec in records for d in rec["detections"])
    t = Table(title=title, header_style="bold")
    columns = [("image", "left"), ("label", "left"), ("conf.", "right")] + ([("area (px)", "right")] if areas else [])
    for name, justify in columns + [("box x0, y0, x1, y1 (px)", "right")]:
        t.add_column(name, justify=justify, overflow="fold")
    blank = [""] * (len(columns) - 2)
    for rec in records:
        if not rec["detections"]:
            t.add_row(rec["image"], "[dim](nothing found)[/]", *blank)
        for j, d in enumerate(rec["detections"][:_TABLE_ROWS]):
            box = ", ".join(f"{v:.0f}" for v in d["xyxy"])
            area = [str(d.get("area", ""))] if areas else []
            t.add_row(rec["image"] if j == 0 else "", d["label"], f"{d['confidence']:.3f}", *area, box)
        if len(rec["detections"]) > _TABLE_ROWS:
            t.add_row("", f"[dim]... {len(rec['detections']) - _TABLE_ROWS} more (see --output)[/]", *blank)
    return t


def classifications_table(title: str, records: list[dict]) -> Table:
    """Image, top-1 label (or 'none of these'), confidence, runners-up."""
    t = Table(title=title, show_lines=False, header_style="bold")
    t.add_column("image", overflow="fold")
    t.add_column("top-1")
    t.add_column("conf.", justify="right")
    t.add_column("runners-up", overflow="fold")
    for rec in records:
        top = rec["top_k"]
        best = top[0] if top else {"label": None, "confidence": 0.0}
        label = (f"[dim]none of these[/] (best: {best['label']})" if rec["rejected"] else str(best["label"]))
        rest = ", ".join(f"{e['label']} {e['confidence']:.2f}" for e in top[1:])
        t.add_row(rec["image"], label, f"{best['confidence']:.3f}", rest)
    return t


# ------------------------------------------------------------------------------ bodies
def _save_labels(num_classes: int):
    def render(image, det, target: Path, files: list[Path]) -> None:
        from ..io.labelmap import save_label_png

        save_label_png(det.label_map(), num_classes, target, files)
    return render


def _sam_settings(inv: Invocation, settings: dict) -> None:
    """``--sam-checkpoint`` / ``--sam-model`` → ``proposals`` and ``proposal_options``."""
    ckpt, model, proposals = inv.sam_checkpoint, inv.sam_model, settings.get("proposals")
    if model is not None and model not in SAM_CHECKPOINT_URLS:
        opt.usage_error(f"--sam-model must be one of {', '.join(SAM_CHECKPOINT_URLS)}, got {model!r}")
    if proposals in ("sam", "detect") and ckpt is None:
        opt.usage_error(f"--proposals {proposals} needs --sam-checkpoint (Segment Anything weights cannot be "
                        "downloaded automatically)")
    if ckpt is None:
        if model is not None:
            opt.usage_error("--sam-model needs --sam-checkpoint")
        return
    if not ckpt.is_file():
        opt.usage_error(f"--sam-checkpoint {ckpt}: no such file")
    settings["proposals"] = proposals or "sam"
    settings["proposal_options"] = {"checkpoint": str(ckpt), "model_type": model or "vit_b"}


def uses_engine(inv: Invocation) -> bool:
    """``--engine`` given, or ``--output`` names a rows file (``.jsonl``, ``.ndjson``, ``.parquet``)."""
    out = inv.values.get("output")
    return inv.values.get("engine") is not None or (out is not None and out.suffix.lower() in ROW_SUFFIXES)


def run_with_engine(task: str, inv: Invocation, preset: str | None, settings: dict) -> None:
    """Stream one row per input into ``--output`` with the local engine or on Ray (:func:`ovtools.engine.run_batch`).

    Raises:
        typer.Exit: code 2 on usage errors, 1 when some input gave an error row.
    """
    from ..engine import EngineConfig, run_batch
    from ..errors import OvtoolsError

    given = [name for name in ("save_vis", "save_labels", "coco_output", "summary", "save_features")
             if inv.values.get(name) is not None]
    if given:
        flag = "--features" if given[0] == "save_features" else f"--{given[0].replace('_', '-')}"
        opt.usage_error(f"{flag} is not written by the batch engines; their --output rows hold every result "
                        "(masks as RLE)")
    if inv.output is None:
        opt.usage_error("--engine needs --output: a .jsonl or .parquet file that receives one row per input")
    engine = {k: inv.values[k] for k in ENGINE_FIELDS if inv.values.get(k) is not None}
    try:
        cfg = EngineConfig(**engine, progress=not inv.quiet)
    except (TypeError, ValueError) as e:
        opt.usage_error(str(e))
    stage(task, f"{cfg.engine} engine, rows into {inv.output}")
    try:
        done = run_batch(task, inv.values.get("images") or [inv.values["scene"]], inv.output, preset=preset,
                         overrides=settings, config=cfg, recursive=bool(inv.values.get("recursive")))
    except (OvtoolsError, ValueError, TypeError, ImportError, FileNotFoundError) as e:
        opt.usage_error(str(e))
    stage(task, f"{done.n_rows} rows ({done.n_errors} errors, {done.n_skipped} already done) in {done.output}")
    raise typer.Exit(1 if done.n_errors else 0)


def run_image_command(spec: HeadSpec, inv: Invocation) -> None:
    """The body of ``ovtools <image head>``: check inputs and outputs, build the pipeline, run, print, write.

    Raises:
        typer.Exit: code 2 on usage errors, 1 when some input failed.
    """
    from ..io.writers import coco_header_path
    from ..pipelines import pipeline_class

    detections = spec.result is not Classifications
    set_quiet(inv.quiet)
    preset = inv.preset if inv.preset is not None else default_preset_for(spec)
    settings = opt.class_options(inv.labels, inv.classes, opt.preset_has_classes(inv.preset))
    settings.update(inv.settings)
    if spec.masks:
        _sam_settings(inv, settings)
    files, problems, skipped = opt.expand_inputs(inv.images, inv.recursive)
    if problems:  # argument mistakes: refused before the model loads (unreadable files are skipped later)
        opt.usage_error("; ".join(f"{arg}: {reason}" for arg, reason in problems))
    if not files:
        opt.usage_error("no images given")
    if uses_engine(inv):
        return run_with_engine(spec.name, inv, preset, settings)
    coco_output = inv.values.get("coco_output")
    save_labels = inv.values.get("save_labels")
    opt.check_outputs({"--output": inv.output, "--coco-output": coco_output, "--save-vis": opt.vis_file(inv.save_vis),
                       "--save-labels": opt.vis_file(save_labels),
                       "--coco-output (categories)": coco_header_path(coco_output) if coco_output else None}, files)
    many = len(inv.images) > 1 or any(Path(i).is_dir() or is_pattern(i) for i in inv.images)
    vis_targets = opt.prepare_vis_targets(inv.save_vis, files, many, tag=f".{spec.name}")
    label_targets = opt.prepare_vis_targets(save_labels, files, many, "--save-labels", ".labels")
    pipe = opt.load_pipeline(spec.name, pipeline_class(spec.name), preset, settings, inv.flags)
    if detections:
        savers = [("--save-vis", vis_targets, save_overlay)] if vis_targets is not None else []
        if label_targets is not None:
            savers.append(("--save-labels", label_targets, _save_labels(len(pipe.labels))))
        records, errors = run_images(pipe, files, problems, spec.name, savers, inv.vis_max_side)
        table = detections_table
    else:
        records, errors = run_classify_batches(pipe, files, problems, vis_targets, inv.vis_max_side)
        coco_output = None
        table = classifications_table
    if records and not inv.quiet:
        opt.stdout.print(table(f"ovtools {spec.name}", records))
    finish(pipe, spec.name, records, errors, len(files) + len(problems), files, inv.output, coco_output, skipped)


def run_classify_batches(pipe, files: list[Path], problems: list[tuple[str, str]], vis_targets: list[Path] | None,
                         vis_max_side: int | None = None) -> tuple[list[dict], list[dict]]:
    """Classify ``files`` in batches of ``batch_size``, skipping unreadable ones; returns ``(records, errors)``."""
    from ..io.images import load_batches, load_image
    from ..io.vis import draw_classifications, save_png
    from ..io.writers import classification_record

    records: list[dict] = []
    errors: list[dict] = []
    progress, task = make_progress(len(files), pipe.task)
    with progress:
        for name, reason in problems:
            errors.append(opt.report_failure(progress, name, reason))
        for loaded in load_batches(files, pipe.config.batch_size, pipe.settings["max_side"], errors,
                                   progress=lambda n: progress.advance(task, n),
                                   on_error=lambda entry: opt.print_failure(progress, entry)):
            result = pipe.classify_batch([im for _, im in loaded])
            for row, (i, im) in enumerate(loaded):
                f = files[i]
                records.append(classification_record(f, result, row, im.original_size))
                if vis_targets is not None:
                    try:
                        picture = load_image(f, vis_max_side)
                        save_png(draw_classifications(picture, result, row), vis_targets[i], files)
                    except OSError as e:
                        errors.append(opt.report_failure(progress, f, f"cannot write {vis_targets[i]}: {e}"))
                progress.advance(task)
    return records, errors


def register_image_command(spec: HeadSpec) -> None:
    """Add ``ovtools <spec.name>`` for an image head, its options derived from the spec's config."""
    own = []
    if spec.result is not Classifications:
        own.append(COCO_OUTPUT)
    if spec.masks:
        own += [SAVE_LABELS, SAM_CHECKPOINT, SAM_MODEL]
    summary = spec.summary or f"Run the {spec.name} head on images."
    doc = (f"{summary}\n\nPrints a table of the results (boxes and masks in original-image pixels). Several images "
           "run as a batch with a progress bar on stderr; a file that cannot be read is reported by name and "
           "skipped (exit code 1).")
    build_command(app, spec.name, lambda inv: run_image_command(spec, inv), doc=doc, leading=[IMAGES],
                  config_cls=spec.config, preset=default_preset_for(spec), own=own, common=COMMON_OPTIONS,
                  cli=("preset", "output", "save_vis", "vis_max_side", "recursive", "quiet"),
                  extra_configs=(EngineConfig,))


for _name in available_heads():
    if head_spec(_name).inputs == "images":
        register_image_command(head_spec(_name))
