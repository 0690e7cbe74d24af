"""The per-image loop shared by ``ovtools detect`` and ``ovtools segment``.

Decode each file, run the pipeline, collect a JSON record, write the per-image
PNGs; a file that fails is reported by name and skipped (the run carries on and
exits 1 at the end).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import typer

from . import options as opt

#: ``(option name, one target path per file, render(image, det, target, files))`` for a PNG output.
Saver = tuple[str, list[Path], Callable]


def run_images(pipe, files: list[Path], problems: list[tuple[str, str]], command: str,
               savers: list[Saver]) -> tuple[list[dict], list[dict]]:
    """Run ``pipe`` on every file.

    Args:
        pipe: a detection or segmentation pipeline (``pipe(LoadedImage) -> Detections``).
        files: readable-looking input files.
        problems: inputs already known to be bad, ``(name, reason)``, reported first.
        command: progress-bar label.
        savers: ``(option, targets, render)`` per PNG output (one target per file); the
            PNG written by ``render(image, det, target, files)``.

    Returns:
        ``(records, errors)``: detection records (:func:`ovtools.io.writers.detection_record`)
        of the images that worked, and ``{"image", "error"}`` entries of those that did not.
    """
    from ..io.images import load_image
    from ..io.writers import detection_record

    records: list[dict] = []
    errors: list[dict] = []
    progress, task = opt.make_progress(len(files), command)
    with progress:
        for name, reason in problems:
            errors.append(opt.report_failure(progress, name, reason))
        for i, f in enumerate(files):
            try:
                im = load_image(f, pipe.settings["max_side"])
                det = pipe(im)
            except Exception as e:  # ImageLoadError, or anything a broken file triggers: skip it
                errors.append(opt.report_failure(progress, f, e))
                progress.advance(task)
                continue
            records.append(detection_record(f, det, im.original_size))
            for option, targets, render in savers:
                try:
                    render(im, det, targets[i], files)
                except (OSError, ValueError) as e:
                    errors.append(opt.report_failure(progress, f, f"cannot write {option} {targets[i]}: {e}"))
            progress.advance(task)
    return records, errors


def finish(pipe, command: str, records: list[dict], errors: list[dict], n_inputs: int, files: list[Path],
           output: Path | None, coco_output: Path | None, skipped: list[Path] = ()) -> None:
    """Write ``--output`` / ``--coco-output`` and exit 1 if any input failed."""
    from ..io.writers import results_document, write_coco_results, write_json

    if output is not None:
        doc = results_document(command, records, pipe.labels, model=getattr(pipe.encoder, "name", None),
                               pretrained=getattr(pipe.encoder, "pretrained", None), errors=errors,
                               skipped=skipped)
        write_json(output, doc, files)
    if coco_output is not None:
        write_coco_results(coco_output, records, pipe.labels, pipe.class_space.name, files)
    if errors:
        opt.stderr.print(f"{len(errors)} of {n_inputs} input(s) failed", highlight=False)
        raise typer.Exit(1)


def save_overlay(image, det, target: Path, files: list[Path]) -> None:
    """``--save-vis``: boxes (and masks) drawn on the image."""
    from ..io.vis import draw_detections, save_png

    save_png(draw_detections(image, det), target, files)
