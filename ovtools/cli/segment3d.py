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

The command parses options and calls the library: :class:`~ovtools.pipelines.Segment3DPipeline`
(labels, queries, :meth:`~ovtools.pipelines.Segment3DPipeline.summary`) and
:mod:`ovtools.io.pointlabels` (the PLY and ``.npy`` outputs).
"""

from __future__ import annotations

import json
import time
from pathlib import Path


from ..engine.config import EngineConfig
from ..heads.segment3d import Segment3DConfig
from . import options as opt
from .app import app
from .derive import COMMON_OPTIONS, Invocation, argument, build_command, option
from .images import run_with_engine, uses_engine
from .progress import set_quiet, stage


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
    if query is not None and (labels is not None or classes is not None):
        opt.usage_error("give --query (relevancy to one phrase) or --labels/--classes (labels), not both")
    if uses_engine(inv):  # one summary row per scene into a .jsonl / .parquet file, locally or on Ray
        settings = {} if query is not None and labels is None and classes is None else \
            opt.class_options(labels, classes, opt.preset_has_classes(preset))
        return run_with_engine("segment3d", inv, preset if preset is not None else "segment3d-default",
                               {**settings, **inv.settings})
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
    from ..io.pointlabels import write_point_features, write_point_labels, write_relevancy
    from ..io.writers import write_json

    if query is not None:
        rel = pipe.query(sf, query)
        if output is not None:
            write_relevancy(output, scene.original_points, rel, protect=inputs, organized=scene.organized)
        doc = pipe.query_summary(sf, query, rel)
        shown = doc
    else:
        labels = pipe(sf)
        if output is not None:
            write_point_labels(output, scene.original_points, labels, protect=inputs, organized=scene.organized)
        doc = pipe.summary(sf, labels, seconds=time.perf_counter() - t0)
        shown = {k: v for k, v in doc.items() if k not in ("class_names", "instances")}
        shown["instances"] = len(doc["instances"])
    if summary is not None:
        write_json(summary, doc, inputs)
    if not quiet:
        opt.stdout.print_json(json.dumps(shown))
    if save_features is not None:
        write_point_features(save_features, pipe.point_features(sf), inputs)


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
    common=[c for c in COMMON_OPTIONS if c not in ("max_side", "batch_size")], cli=("preset", "quiet"),
    extra_configs=(EngineConfig,))
