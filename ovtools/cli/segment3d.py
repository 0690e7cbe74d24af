"""``ovtools segment3d``: open-vocabulary labels for a point cloud or a posed RGB-D scan.

    ovtools segment3d scene.ply --labels "chair, table, mug" --output labelled.ply
    ovtools segment3d scans/scene0000_00/ --classes scannet20 --summary summary.json
    ovtools segment3d scene.ply --query "a red mug" --output relevancy.ply

Outputs: ``--output`` a binary PLY with the input points, colours by class (a
class's overlay colour; "nothing" keeps a dark grey), and per-point properties
``label`` (int, class id; -1 = nothing) and ``score`` (float, confidence) — or, with
``--query``, ``relevancy`` (float in [0, 1]) and a blue-to-red heat map;
``--summary`` a JSON document (class names, points per class, instances as
connected components per class with axis-aligned 3D boxes, timings);
``--features`` the per-point features as a float16 ``.npy`` (N, D).

Exit codes: 0 success (also when nothing was found), 2 usage error (bad option,
unreadable scene, no labels, missing weights).
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Annotated, Optional

import numpy as np
import typer

from . import options as opt
from .app import app


def _heat(values: np.ndarray) -> np.ndarray:
    """uint8 (N, 3) blue (0) → red (1) colours of values in [0, 1]."""
    v = np.clip(values, 0, 1)[:, None]
    return (np.array([[40, 60, 230]]) * (1 - v) + np.array([[230, 40, 40]]) * v).round().astype(np.uint8)


def _class_colors(class_id: np.ndarray) -> np.ndarray:
    from ..io.vis import class_color

    palette = np.array([class_color(i) for i in range(int(class_id.max(initial=-1)) + 1)] + [(60, 60, 60)], np.uint8)
    return palette[np.where(class_id < 0, len(palette) - 1, class_id)]


def _summary(pipe, scene, sf, labels, seconds: float) -> dict:
    from ..scene3d import connected_instances, instance_boxes

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


@app.command("segment3d")
def segment3d(
    scene: Annotated[Path, typer.Argument(
        help="A point cloud (.ply in any common variant; .pcd/.xyz/.pts) or a posed RGB-D folder in ScanNet's "
        "layout (color/ depth/ pose/ intrinsic/, with or without a .ply).", show_default=False)],
    labels: opt.Labels = None,
    classes: opt.Classes = None,
    query: Annotated[Optional[str], typer.Option(
        "--query", help="Relevancy mode: score every point against this one phrase (vs. the canonical negatives) "
        "instead of labelling; --output then holds a 'relevancy' property and a heat-map colour.",
        show_default=False)] = None,
    mode: Annotated[Optional[str], typer.Option(
        "--mode", help="Per-point features: fusion (2D features averaged over views), distill (3D network) or "
        "ensemble (the more confident of both per point). Default: the preset's (ensemble).",
        show_default=False)] = None,
    features: Annotated[Optional[str], typer.Option(
        "--2d-features", help="2D features fused per view: masks (masked crops of class-agnostic masks) or dense "
        "(MaskCLIP patch features). Default: the preset's.", show_default=False)] = None,
    voxel_size: Annotated[Optional[float], typer.Option(
        "--voxel-size", min=0.0, help="Down-sample to voxels of this edge in metres first (labels still reach "
        "every input point). Default: none.", show_default=False)] = None,
    distill_steps: Annotated[Optional[int], typer.Option(
        "--distill-steps", min=0, help="3D distillation steps; 0 = no 3D network (implies --mode fusion; "
        "about 2-3x faster). Default: the preset's (300).",
        show_default=False)] = None,
    threshold: Annotated[Optional[float], typer.Option(
        "--threshold", min=0.0, max=1.0, help="Smallest confidence a point's label is reported with; a label "
        "must also beat its negatives. Default: the preset's (0).", show_default=False)] = None,
    output: Annotated[Optional[Path], typer.Option(
        "--output", "-o", help="Write the labelled (or relevancy) point cloud to this .ply file.",
        show_default=False, dir_okay=False)] = None,
    summary: Annotated[Optional[Path], typer.Option(
        "--summary", help="Write a JSON summary (points per class, instances with 3D boxes, timings).",
        show_default=False, dir_okay=False)] = None,
    save_features: Annotated[Optional[Path], typer.Option(
        "--features", help="Write the per-point features (N, D) float16 as .npy.", show_default=False,
        dir_okay=False)] = None,
    templates: opt.Templates = None,
    model: opt.Model = None,
    pretrained: opt.Pretrained = None,
    device: opt.Device = None,
    precision: opt.Precision = None,
    preset: opt.Preset = None,
    cache_dir: opt.CacheDir = None,
    no_cache: opt.NoCache = False,
    quiet: opt.Quiet = False,
) -> None:
    """Label every point of SCENE with LABELS (or a class space), or score it against --query.

    Prints points per class; --output, --summary and --features write the results.
    """
    from ..errors import OvtoolsError
    from ..heads.segment3d import MODES

    if not scene.exists():
        opt.usage_error(f"scene {scene} does not exist")
    if mode is not None and mode not in MODES:
        opt.usage_error(f"--mode must be one of {', '.join(MODES)}, got {mode!r}")
    if features is not None and features not in ("masks", "dense"):
        opt.usage_error(f"--2d-features must be masks or dense, got {features!r}")
    if voxel_size is not None and voxel_size <= 0:
        opt.usage_error("--voxel-size must be > 0 metres")
    if query is not None and not query.strip():
        opt.usage_error("--query must be a non-empty phrase")
    if output is not None and output.suffix.lower() != ".ply":
        opt.usage_error(f"--output {output}: give a .ply file")
    if save_features is not None and save_features.suffix.lower() != ".npy":
        opt.usage_error(f"--features {save_features}: give a .npy file")
    inputs = [scene] if scene.is_file() else [p for p in scene.rglob("*") if p.is_file()][:10000]
    opt.check_outputs({"--output": output, "--summary": summary, "--features": save_features}, inputs)
    overrides = {} if query is not None and labels is None and classes is None else \
        opt.class_options(labels, classes, opt.preset_has_classes(preset))
    overrides.update(opt.model_overrides(model, pretrained, device, precision, templates, None, cache_dir,
                                         no_cache, None))
    if distill_steps == 0 and mode is None:
        mode = "fusion"  # no 3D network: only the fused features exist
    for key, value in (("mode", mode), ("features", features), ("voxel_size", voxel_size),
                       ("distill_steps", distill_steps), ("score_threshold", threshold)):
        if value is not None:
            overrides[key] = value
    from ..pipelines import Segment3DPipeline

    pipe = opt.build_pipeline(Segment3DPipeline, preset if preset is not None else "segment3d-default", overrides)
    t0 = time.perf_counter()
    try:
        scene_in = pipe.scene(scene)
        with opt.stderr.status("segment3d", spinner="dots") as status:
            sf = pipe.features(scene_in, progress=lambda m: status.update(f"segment3d: {m}"))
    except (OvtoolsError, FileNotFoundError, ValueError) as e:
        opt.usage_error(str(e))
    opt.stderr.print(f"segment3d: {sf.n_views} views, {len(scene_in.points)} points, "
                     + ", ".join(f"{k} {v:.1f} s" for k, v in sf.seconds.items()), highlight=False)
    _write_outputs(pipe, scene_in, sf, query, output, summary, save_features, inputs, quiet, t0)


def _write_outputs(pipe, scene, sf, query, output, summary, save_features, inputs, quiet, t0) -> None:
    from ..io.ply import PointCloud, write_ply
    from ..io.writers import atomic_write_bytes, write_json

    pts = scene.original_points
    if query is not None:
        rel = pipe.query(sf, query)
        if output is not None:
            write_ply(output, PointCloud(pts, _heat(rel), fields={"relevancy": rel.astype(np.float32)},
                                         organized=scene.organized), protect=inputs)
        doc = {"scene": str(scene.source), "query": query, "n_points": int(len(rel)),
               "points_relevant": int((rel > 0.5).sum()), "max_relevancy": round(float(rel.max()), 6)}
        if summary is not None:
            write_json(summary, doc, inputs)
        if not quiet:
            opt.stdout.print_json(json.dumps(doc))
    else:
        labels = pipe(sf)
        if output is not None:
            write_ply(output, PointCloud(pts, _class_colors(labels.class_id),
                                         fields={"label": labels.class_id.astype(np.int32),
                                                 "score": labels.confidence.astype(np.float32)},
                                         organized=scene.organized), protect=inputs)
        doc = _summary(pipe, scene, sf, labels, time.perf_counter() - t0)
        if summary is not None:
            write_json(summary, doc, inputs)
        if not quiet:
            shown = {k: v for k, v in doc.items() if k not in ("class_names", "instances")}
            shown["instances"] = len(doc["instances"])
            opt.stdout.print_json(json.dumps(shown))
    if save_features is not None:
        import io

        # the features that were labelled (the ensemble picks against the class embeddings)
        feats = sf.select(pipe.config.mode, pipe.embeddings.classes, pipe.encoder.logit_scale) if pipe.labels \
            else sf.fused
        buf = io.BytesIO()
        np.save(buf, feats.cpu().numpy().astype(np.float16)[scene.inverse])
        atomic_write_bytes(save_features, buf.getvalue(), inputs)
