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
from ..io.images import LoadedImage, load_image
from ..io.writers import classification_record, detection_record
from ..pipelines import ClassifyPipeline, DetectPipeline, Segment3DPipeline, SegmentPipeline
from ..scene3d.instances import connected_instances, instance_boxes
from .inputs import local_copy

TASKS = ("classify", "detect", "segment", "segment3d")
PIPELINES = {"classify": ClassifyPipeline, "detect": DetectPipeline, "segment": SegmentPipeline,
             "segment3d": Segment3DPipeline}


def check_task(task: str) -> str:
    """Return ``task`` or raise ``ValueError`` listing the batch tasks."""
    if task not in TASKS:
        raise ValueError(f"task must be one of {', '.join(TASKS)}, got {task!r}")
    return task


def key_field(task: str) -> str:
    """The field naming the input of a row: ``"scene"`` for segment3d, else ``"image"``."""
    return "scene" if check_task(task) == "segment3d" else "image"


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
    cls = PIPELINES[check_task(task)]
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
    if task == "classify":
        cls = pipe.classify_batch([im])
        return ItemResult(classification_record(name, cls, 0, im.original_size), im, cls)
    det = pipe(im)
    return ItemResult(detection_record(name, det, im.original_size), im, det)


def scene_record(pipe, scene, sf, labels, seconds: float) -> dict:
    """The segment3d row of a labelled scene: points per class, instances with 3D boxes, timings.

    Args:
        pipe: the :class:`~ovtools.pipelines.Segment3DPipeline`.
        scene: the scene input (``Scene3DInput``).
        sf: its ``SceneFeatures``.
        labels: ``PointLabels`` of every input point.
        seconds: wall time of the whole scene.

    Returns:
        ``{"scene", "n_points", "n_points_processed", "model", "pretrained", "class_names", "mode",
        "points_per_class", "n_views", "seen_fraction", "instances", "seconds"}``; instances are
        connected components per class with axis-aligned boxes in the scene's metres.
    """
    cfg = pipe.config
    pts = scene.original_points
    radius = cfg.instance_radius or 3.0 * sf.spacing
    inst = connected_instances(pts, labels.class_id, radius, cfg.min_instance_points)
    boxes = instance_boxes(pts, inst, labels.class_id)
    for b in boxes:
        b["class_name"] = labels.class_names[b["label"]] if b.get("label", -1) >= 0 else None
    return {"scene": str(scene.source), "n_points": len(labels), "n_points_processed": int(len(scene.points)),
            "model": pipe.encoder.name, "pretrained": pipe.encoder.pretrained, "class_names": labels.class_names,
            "mode": cfg.mode, "points_per_class": labels.counts(), "n_views": sf.n_views,
            "seen_fraction": round(float((sf.count > 0).float().mean()), 6), "instances": boxes,
            "seconds": {**{k: round(v, 3) for k, v in sf.seconds.items()}, "total": round(seconds, 3)}}


def process_scene(pipe, path: str | Path, name: str | Path | None = None) -> ItemResult:
    """Label one scene (PLY file or RGB-D folder) and build its summary row (``scene`` = ``name``)."""
    t0 = time.perf_counter()
    scene = pipe.scene(path)
    sf = pipe.features(scene)
    labels = pipe(sf)
    rec = scene_record(pipe, scene, sf, labels, time.perf_counter() - t0)
    rec["scene"] = str(name if name is not None else path)
    return ItemResult(rec, scene, labels)


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
                    if task == "segment3d":
                        rows[i] = process_scene(pipe, path, name).record
                    elif task == "classify":
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
