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

import numpy as np

from ..heads.segment3d import Segment3DConfig
from . import options as opt
from .app import app
from .derive import COMMON_OPTIONS, Invocation, argument, build_command, option
from .progress import set_quiet, stage


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


def segment3d(inv: Invocation) -> None:
    """Label every point of SCENE with LABELS (or a class space), or score it against --query.

    Prints points per class; --output, --summary and --features write the results.
    """
    scene, labels, classes, query, preset, quiet = inv.scene, inv.labels, inv.classes, inv.query, inv.preset, inv.quiet
    output, summary, save_features = inv.output, inv.summary, inv.save_features
    set_quiet(quiet)
    from ..errors import OvtoolsError
    if not scene.exists():
        opt.usage_error(f"scene {scene} does not exist")
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
    overrides.update(inv.settings)
    if overrides.get("distill_steps") == 0 and "mode" not in overrides:
        overrides["mode"] = "fusion"  # no 3D network: only the fused features exist
    from ..pipelines import Segment3DPipeline

    pipe = opt.load_pipeline("segment3d", Segment3DPipeline, preset if preset is not None else "segment3d-default",
                             overrides, inv.flags)
    t0 = time.perf_counter()
    try:
        scene_in = pipe.scene(scene)
        sf = pipe.features(scene_in, progress=lambda m: stage("segment3d", m))
    except (OvtoolsError, FileNotFoundError, ValueError) as e:
        opt.usage_error(str(e))
    stage("segment3d", f"{sf.n_views} views, {len(scene_in.points)} points, "
          + ", ".join(f"{k} {v:.1f} s" for k, v in sf.seconds.items()))
    _write_outputs(pipe, scene_in, sf, query, output, summary, save_features, inputs, quiet, t0)


def _write_outputs(pipe, scene, sf, query, output, summary, save_features, inputs, quiet, t0) -> None:
    from ..io.ply import PointCloud, write_ply
    from ..io.writers import atomic_write_bytes, write_json

    pts = scene.original_points
    if query is not None:
        rel = pipe.query(sf, query)
        if output is not None:
            write_ply(output, PointCloud(pts, _heat(rel), fields={"relevancy": rel.astype(np.float32)}),
                      protect=inputs)
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
                                                 "score": labels.confidence.astype(np.float32)}), protect=inputs)
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


build_command(
    app, "segment3d", segment3d, doc=segment3d.__doc__, config_cls=Segment3DConfig, preset="segment3d-default",
    leading=[argument("scene", Path, "A point cloud (.ply in any common variant; .pcd/.xyz/.pts) or a posed RGB-D "
                      "folder in ScanNet's layout (color/ depth/ pose/ intrinsic/, with or without a .ply).")],
    own=[option("query", str, "--query", help="Relevancy mode: score every point against this one phrase (vs. the "
                "canonical negatives) instead of labelling; --output then holds a 'relevancy' property and a "
                "heat-map colour."),
         option("output", Path, "--output", "-o", dir_okay=False,
                help="Write the labelled (or relevancy) point cloud to this .ply file."),
         option("summary", Path, "--summary", dir_okay=False,
                help="Write a JSON summary (points per class, instances with 3D boxes, timings)."),
         option("save_features", Path, "--features", dir_okay=False,
                help="Write the per-point features (N, D) float16 as .npy.")],
    common=[c for c in COMMON_OPTIONS if c not in ("max_side", "batch_size")], cli=("preset", "quiet"))
