"""``ovtools classify``: zero-shot classification of images with labels in plain language.

    ovtools classify photo.jpg --labels "zebra, goat, grass plain"
    ovtools classify photos/ --classes imagenet --top-k 3 -o results.json --save-vis vis/

Exit codes: 0 every image classified, 1 some image failed (reported by name and
skipped), 2 usage error (bad option, no labels, unknown class space or template
set, missing weights).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.table import Table

from . import options as opt
from .app import app


def _table(records: list[dict]) -> Table:
    t = Table(title="ovtools classify", show_lines=False, header_style="bold")
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


@app.command("classify")
def classify(
    images: opt.Images,
    labels: opt.Labels = None,
    classes: opt.Classes = None,
    top_k: Annotated[Optional[int], typer.Option(
        "--top-k", "-k", min=1, help="Labels reported per image, best first. Default: the preset's (5 classify-default, 3 classify-shapes).",
        show_default=False)] = None,
    reject: Annotated[Optional[bool], typer.Option(
        "--reject/--no-reject", help="Report 'none of these' when the best label does not beat its negatives "
        "(generic phrases such as 'object', 'texture'). Default: off.", show_default=False)] = None,
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
    """Classify images zero-shot against LABELS or a class space.

    Prints a table (image, top-1 label, confidence, runners-up); confidences are
    CLIP softmax probabilities over the labels.  Several images run as a batch
    with a progress bar on stderr; a file that cannot be read is reported by
    name and skipped (exit code 1).
    """
    from ..io.vis import draw_classifications, save_png
    from ..io.writers import classification_record, results_document, write_json

    overrides = opt.class_options(labels, classes, opt.preset_has_classes(preset))
    overrides.update(opt.model_overrides(model, pretrained, device, precision, templates, batch_size,
                                         cache_dir, no_cache, max_side))
    if top_k is not None:
        overrides["top_k"] = top_k
    if reject is not None:
        overrides["reject"] = reject
    files, problems, skipped = opt.expand_inputs(images, recursive)
    if not files and not problems:
        opt.usage_error("no images given")
    opt.check_outputs({"--output": output, "--save-vis": opt.vis_file(save_vis)}, files)
    many = len(images) > 1 or any(Path(i).is_dir() or opt._is_pattern(i) for i in images)
    vis_targets = opt.prepare_vis_targets(save_vis, files, many)
    opt.register_model_configs()
    from ..pipelines import ClassifyPipeline
    pipe = opt.build_pipeline(ClassifyPipeline, preset if preset is not None else "classify-default", overrides)

    records: list[dict] = []
    errors: list[dict] = []
    progress, task = opt.make_progress(len(files), "classify")
    bs = pipe.settings["batch_size"]
    with progress:
        for name, reason in problems:
            errors.append(opt.report_failure(progress, name, reason))
        for loaded in opt.loaded_batches(files, bs, pipe.settings["max_side"], progress, task, errors):
            result = pipe.classify_batch([im for _, _, im in loaded])
            for row, (i, f, im) in enumerate(loaded):
                records.append(classification_record(f, result, row, im.original_size))
                if vis_targets is not None:
                    try:
                        save_png(draw_classifications(im, result, row), vis_targets[i], files)
                    except OSError as e:
                        errors.append(opt.report_failure(progress, f, f"cannot write {vis_targets[i]}: {e}"))
                progress.advance(task)
    if records and not quiet:
        opt.stdout.print(_table(records))
    if output is not None:
        doc = results_document("classify", records, pipe.labels, model=getattr(pipe.encoder, "name", None),
                               pretrained=getattr(pipe.encoder, "pretrained", None), errors=errors,
                               skipped=skipped)
        write_json(output, doc, files)
    if errors:
        opt.stderr.print(f"{len(errors)} of {len(files) + len(problems)} input(s) failed", highlight=False)
        raise typer.Exit(1)
