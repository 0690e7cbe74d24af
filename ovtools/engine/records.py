"""One row per input: the function the local CLI loop, the local engine and the Ray actors share.

A *row* is the per-image record of ``--output`` (schema in :mod:`ovtools.io.writers`):
``{"image", "image_size", "detections"}`` for detect/segment (masks as COCO RLE),
``{"image", "image_size", "rejected", "top_k"}`` for classify, and for segment3d the
scene summary ``{"scene", "n_points", ..., "instances", "seconds"}``.  An input that
fails gives an *error row* ``{"image" | "scene": name, "error": reason}`` (the
``errors`` entries of ``--output``) instead of stopping the batch.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..encoders.loading import add_model_configs_from_env
from ..heads.registry import available_heads, head_spec
from ..io.images import LoadedImage, load_image
from ..io.writers import classification_record, detection_record
from ..pipelines import pipeline_class
from ..structures import Classifications
from .inputs import local_copy


def check_task(task: str) -> str:
    """Return ``task`` (a registered head's name) or raise ``ValueError`` listing them."""
    if task not in available_heads():
        raise ValueError(f"task must be one of {', '.join(available_heads())}, got {task!r}")
    return task


def key_field(task: str) -> str:
    """The field naming the input of a row: ``"scene"`` for heads of scenes (segment3d), else ``"image"``."""
    return "scene" if head_spec(check_task(task)).inputs == "scene" else "image"


def batched(task: str) -> bool:
    """Whether the images of one call run as one batch (heads returning :class:`Classifications`)."""
    return head_spec(task).result is Classifications


def build_pipeline(task: str, preset: str | Path | None = None, overrides: Mapping[str, Any] | None = None):
    """The pipeline of ``task`` from a preset and keyword overrides (what each Ray actor does once).

    Architectures named by ``$OVTOOLS_MODEL_CONFIGS`` are registered first.

    Args:
        task: ``"classify"``, ``"detect"``, ``"segment"`` or ``"segment3d"``.
        preset: preset name or YAML path; ``None`` → the task's ``*-default`` preset.
        overrides: preset keys (``labels``, ``model``, ``score_threshold``, ...).

    Raises:
        ValueError: unknown task; see the pipeline classes for the rest.
    """
    cls = pipeline_class(check_task(task))
    add_model_configs_from_env()
    overrides = dict(overrides or {})
    return cls(**overrides) if preset is None else cls(preset, **overrides)


def error_message(name: str | Path, error: BaseException | str) -> str:
    """The reason of an error row: the message without a leading ``"<name>: "``."""
    msg = str(error) or type(error).__name__
    prefix = f"{name}: "
    return msg[len(prefix):] if msg.startswith(prefix) else msg


def error_row(task: str, name: str | Path, error: BaseException | str) -> dict:
    """``{"image" | "scene": name, "error": reason}``."""
    return {key_field(task): str(name), "error": error_message(name, error)}


@dataclass
class ItemResult:
    """One input's outcome: its row plus what produced it (for PNG outputs and summaries).

    Attributes:
        record: the row (JSON-ready dict).
        loaded: the decoded input (:class:`~ovtools.io.images.LoadedImage` or a 3D scene).
        result: ``Detections``, ``Classifications`` (B = 1) or ``PointLabels``.
    """

    record: dict
    loaded: Any
    result: Any


def process_image(pipe, task: str, path: str | Path, name: str | Path | None = None) -> ItemResult:
    """Decode one image file, run ``pipe`` on it and build its record.

    Args:
        pipe: a pipeline of ``task`` (classify, detect or segment).
        task: the pipeline's task.
        path: a local image file.
        name: the name written in the record (default ``path``; e.g. the object-store URI).

    Raises:
        ImageLoadError: the file cannot be decoded (named); anything the pipeline raises.
    """
    im = load_image(path, pipe.settings["max_side"])
    return image_result(pipe, task, name if name is not None else path, im)


def image_result(pipe, task: str, name: str | Path, im: LoadedImage) -> ItemResult:
    """Run ``pipe`` on a decoded image and build its record (see :func:`process_image`)."""
    result = pipe(im)
    if isinstance(result, Classifications):
        return ItemResult(classification_record(name, result, 0, im.original_size), im, result)
    return ItemResult(detection_record(name, result, im.original_size), im, result)


def process_scene(pipe, path: str | Path, name: str | Path | None = None) -> ItemResult:
    """Label one scene (PLY file or RGB-D folder) and build its summary row (``scene`` = ``name``)."""
    t0 = time.perf_counter()
    sf = pipe.features(pipe.scene(path))
    labels = pipe(sf)
    rec = pipe.summary(sf, labels, seconds=time.perf_counter() - t0)
    rec["scene"] = str(name if name is not None else path)
    return ItemResult(rec, sf.scene, labels)


def rows_for(pipe, task: str, sources: Sequence[str | Path]) -> list[dict]:
    """One row per source, in order; a source that fails gives an error row.

    Args:
        pipe: a pipeline of ``task`` (built once, e.g. by :func:`build_pipeline`).
        task: ``"classify"``, ``"detect"``, ``"segment"`` or ``"segment3d"``.
        sources: local paths or object-store URIs (``s3://``, ``gs://``, ``file://`` ...; copied to a
            temporary file first, the row names the URI).  Classify runs the decoded images of the
            call as one batch.

    Returns:
        Rows (see the module docstring).
    """
    check_task(task)
    rows: list[dict | None] = [None] * len(sources)
    pending: list[tuple[int, str, LoadedImage]] = []
    for i, src in enumerate(sources):
        name = str(src)
        try:
            with local_copy(name) as path:
                try:
                    if key_field(task) == "scene":
                        rows[i] = process_scene(pipe, path, name).record
                    elif batched(task):
                        pending.append((i, name, load_image(path, pipe.settings["max_side"])))
                    else:
                        rows[i] = process_image(pipe, task, path, name).record
                except Exception as e:  # a bad input is a row, never a failed batch
                    msg = str(e) if str(path) == name else str(e).replace(str(path), name)
                    rows[i] = error_row(task, name, msg or type(e).__name__)
        except Exception as e:  # the object store could not give the file
            rows[i] = error_row(task, name, e)
    if pending:
        try:
            cls = pipe.classify_batch([im for _, _, im in pending])
            for row, (i, name, im) in enumerate(pending):
                rows[i] = classification_record(name, cls, row, im.original_size)
        except Exception as e:
            for i, name, _ in pending:
                rows[i] = error_row(task, name, e)
    return rows  # type: ignore[return-value]
