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
from .progress import make_progress

#: ``(option name, one target path per file, render(image, det, target, files))`` for a PNG output.
Saver = tuple[str, list[Path], Callable]


def run_images(pipe, files: list[Path], problems: list[tuple[str, str]], command: str,
               savers: list[Saver], vis_max_side: int | None = None) -> tuple[list[dict], list[dict]]:
    """Run ``pipe`` on every file.

    Args:
        pipe: a detection or segmentation pipeline (``pipe(LoadedImage) -> Detections``).
        files: readable-looking input files.
        problems: inputs already known to be bad, ``(name, reason)``, reported first.
        command: the task (``"detect"`` or ``"segment"``), also the progress-bar label.
        savers: ``(option, targets, render)`` per PNG output (one target per file); the
            PNG written by ``render(picture, det, target, files)``, ``picture`` the image decoded
            again at most ``vis_max_side`` pixels on the longer side (the original size by default).
        vis_max_side: size bound of the pictures (``None``: the original size).

    Returns:
        ``(records, errors)``: detection records (:func:`ovtools.engine.records.process_image`)
        of the images that worked, and ``{"image", "error"}`` entries of those that did not.
    """
    from ..engine.records import process_image
    from ..io.images import load_image

    records: list[dict] = []
    errors: list[dict] = []
    progress, task = make_progress(len(files), command)
    with progress:
        for name, reason in problems:
            errors.append(opt.report_failure(progress, name, reason))
        for i, f in enumerate(files):
            try:
                done = process_image(pipe, command, f)  # the same row builder as the batch engines
            except Exception as e:  # ImageLoadError, or anything a broken file triggers: skip it
                errors.append(opt.report_failure(progress, f, e))
                progress.advance(task)
                continue
            records.append(done.record)
            picture = None
            for option, targets, render in savers:
                try:
                    if picture is None:
                        im = done.loaded
                        picture = im if im.pixels.shape[:2] == picture_size(im, vis_max_side) else \
                            load_image(f, vis_max_side)
                    render(picture, done.result, targets[i], files)
                except (OSError, ValueError) as e:
                    errors.append(opt.report_failure(progress, f, f"cannot write {option} {targets[i]}: {e}"))
            progress.advance(task)
    return records, errors


def picture_size(im, vis_max_side: int | None) -> tuple[int, int]:
    """``(h, w)`` of a picture of ``im`` drawn at most ``vis_max_side`` pixels on the longer side."""
    h, w = im.original_size
    if vis_max_side is None or max(h, w) <= vis_max_side:
        return h, w
    f = vis_max_side / max(h, w)
    return max(1, round(h * f)), max(1, round(w * f))


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
