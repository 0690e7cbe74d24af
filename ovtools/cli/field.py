"""``ovtools field``: NeRF feature fields — train a language field on a posed scene, query it, export it.

    ovtools field train scans/scene0000_00/ --out runs/scene0000 --preset small
    ovtools field query runs/scene0000 --query "red mug" --save-vis vis/
    ovtools field export runs/scene0000 --labels "chair, table, mug" -o labelled.ply --summary s.json
    ovtools eval runs/scene0000 --classes shapes3d            # a run folder: mIoU + LERF localisation

Needs the optional extra ``pip install "ovtools[nerf]"`` (nerfstudio); without it every ``field``
command (and ``eval`` of a run folder) stops with one line saying so, exit code 2, and the rest of the
CLI works as before.

Outputs: ``export`` writes ``ovtools segment3d``'s PLY schema (``label``/``score``, or ``relevancy``
with ``--query``) and its summary JSON (instances with 3D boxes); ``query`` prints one JSON line per
camera and writes heat-map PNGs with ``--save-vis``.  Exit codes: 0 success, 2 usage error (missing
run, a run without config.yml, an empty query, an output that is an input, nerfstudio missing).

The commands parse options, check inputs before anything loads, and call
:func:`ovtools.nerf.train.train_field`, :class:`ovtools.nerf.pipeline.FeatureFieldPipeline`,
:func:`ovtools.nerf.export.export_field` and :func:`ovtools.nerf.evaluate.evaluate_field`.
"""

from __future__ import annotations

import importlib.util
import json
import re
import shutil
import time
import warnings
from pathlib import Path
from typing import Annotated, Optional

import typer

from . import options as opt
from .app import app
from .progress import make_progress, set_quiet, stage

NERF_MISSING = 'NeRF feature fields need nerfstudio, which is not installed: pip install "ovtools[nerf]"'
PRESETS = {"small": "ovtools-field-small", "full": "ovtools-field"}

field_app = typer.Typer(help="NeRF feature fields: train a language field on a posed scene (nerfstudio), query "
                        "it with plain-language phrases, export labelled points.", no_args_is_help=True)
app.add_typer(field_app, name="field")

_Quiet = Annotated[bool, typer.Option("--quiet", "-q", help="No stage lines on stderr.")]
_RenderSide = Annotated[int, typer.Option("--render-side", min=8, help="Longer side of the rendered views "
                                         "(maps, depth) in pixels.")]
_Scale = Annotated[Optional[float], typer.Option("--scale", help="Crop size in metres the field is read at "
                                                 "(> 0). Default: the run's query scale.")]


def check_positive(**values: float | None) -> None:
    """Exit 2 naming the option (``voxel_size`` -> ``--voxel-size``) when a given length is not > 0 metres."""
    for name, value in values.items():
        if value is not None and value <= 0:
            opt.usage_error(f"--{name.replace('_', '-')} must be > 0 metres")


def check_phrase(text: str | None) -> None:
    """Exit 2 when ``--query`` was given but is blank."""
    if text is not None and not text.strip():
        opt.usage_error("--query must be a non-empty phrase")


# Deprecation notices nerfstudio 1.1.5 triggers in recent torch (at import and on every step); none is the
# user's to act on, and dozens of them buried the progress lines of `ovtools field train`.
_NERFSTUDIO_NOISE = (
    r"`torch\.cuda\.amp\.",
    r"Using a non-tuple sequence for multidimensional indexing",
    r"Converting a tensor with requires_grad=True to a scalar",
    r"This DataLoader will create \d+ worker processes",  # nerfstudio asks for 4 workers whatever the CPU count
)


def require_nerf() -> None:
    """Exit 2 with one line naming ``pip install "ovtools[nerf]"`` when nerfstudio is not importable.

    Also silences the deprecation notices nerfstudio 1.1.5 raises under recent torch (this process only).
    """
    if importlib.util.find_spec("nerfstudio") is None:
        opt.usage_error(NERF_MISSING)
    for message in _NERFSTUDIO_NOISE:
        warnings.filterwarnings("ignore", message=message)


def check_run(run: Path) -> list[Path]:
    """Exit 2 unless ``run`` is a run folder (holding ``config.yml``); return its files (never overwritten)."""
    if not run.exists():
        opt.usage_error(f"run {run} does not exist")
    if not run.is_dir() or not (run / "config.yml").is_file():
        opt.usage_error(f"{run} is not a run folder: it holds no config.yml (train one with `ovtools field train "
                        "DATA --out RUN`)")
    return [p for p in run.rglob("*") if p.is_file()][:10000]


def load_field(run: Path, command: str, labels=None, classes: str | None = None, *,
               outputs: dict[str, Path | None] | None = None, files: list[Path] | None = None, **settings):
    """Load a run with stage lines; user-caused failures are one-line usage errors.

    ``outputs`` (option → path) are checked again once the run names its data folder: neither the run's files
    (``files``, extended in place) nor the data's (the ground-truth PLY, images) may be written."""
    from ..errors import OvtoolsError
    from ..nerf.pipeline import FeatureFieldPipeline

    opt.register_model_configs()
    stage(command, f"loading {run}")
    t0 = time.perf_counter()
    try:
        pipe = FeatureFieldPipeline(run, labels, classes=classes, **settings)
    except (OvtoolsError, FileNotFoundError, ValueError, TypeError) as e:
        opt.usage_error(str(e))
    stage(command, f"ready in {time.perf_counter() - t0:.1f} s: step {pipe.step}, {len(pipe.cameras)} cameras, "
          f"CLIP {pipe.encoder.name} ({pipe.encoder.pretrained})")
    if files is not None and pipe.data.is_dir():
        files.extend(p for p in list(pipe.data.rglob("*"))[:100000] if p.is_file())
        opt.check_outputs(outputs or {}, files)
    return pipe


@field_app.command("train")
def train(
    data: Annotated[Path, typer.Argument(help="A posed RGB-D folder in ScanNet's layout (color/ depth/ pose/ "
                                         "intrinsic/) or a nerfstudio folder with transforms.json.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Run folder to create (config.yml, checkpoints).",
                                      file_okay=False)],
    preset: Annotated[str, typer.Option("--preset", help="small (CPU-friendly, ovtools-field-small) or full "
                                        "(ovtools-field, GPU).")] = "small",
    model: Annotated[Optional[str], typer.Option("--model", help="CLIP the field distils. Default: the "
                                                 "method's.")] = None,
    pretrained: Annotated[Optional[str], typer.Option("--pretrained", help="Its pretrained tag or checkpoint "
                                                      "(shapes3d for the generated world).")] = None,
    iterations: Annotated[Optional[int], typer.Option("--iterations", min=1, help="Training iterations. "
                                                      "Default: the preset's.")] = None,
    seed: Annotated[int, typer.Option("--seed", help="Seed of torch, numpy and the ray sampling.")] = 0,
    force: Annotated[bool, typer.Option("--force", help="Replace a run already in --out.")] = False,
    quiet: _Quiet = False,
) -> None:
    """Train a language field (nerfacto + LERF CLIP field) on DATA into the run folder --out."""
    set_quiet(quiet)
    require_nerf()
    if preset not in PRESETS:
        opt.usage_error(f"--preset must be one of {', '.join(PRESETS)}, got {preset!r}")
    if not data.is_dir():
        opt.usage_error(f"data folder {data} does not exist")
    from ..nerf.dataparser import is_rgbd_folder

    if not (data / "transforms.json").is_file() and not is_rgbd_folder(data):
        opt.usage_error(f"{data} holds no transforms.json and is not an RGB-D folder (color/ depth/ pose/ "
                        "intrinsic/)")
    rd, dd = out.expanduser().resolve(), data.expanduser().resolve()
    if rd == dd or dd in rd.parents or rd in dd.parents:
        opt.usage_error(f"--out {out} must not be the data folder, inside it or hold it")
    if out.exists() and (not out.is_dir() or (any(out.iterdir()) and not force)):
        opt.usage_error(f"--out {out} exists and is not an empty folder; give a new folder (or --force to replace "
                        "a run there)")
    above = next(p for p in rd.parents if p.exists())
    if not above.is_dir():
        opt.usage_error(f"--out {out}: {above} is a file, not a folder")
    from ..errors import OvtoolsError
    from ..nerf.datacheck import check_field_data
    from ..nerf.train import train_field

    try:
        check_field_data(dd)
    except (ValueError, FileNotFoundError) as e:
        opt.usage_error(str(e))
    fresh = not out.exists() or not any(out.iterdir())  # a failed run leaves nothing behind in a folder it made

    opt.register_model_configs()
    stage("field train", f"{PRESETS[preset]} on {data}")
    t0 = time.perf_counter()
    bar: list = []

    def on_step(done: int, total: int) -> None:  # ovtools' progress instead of nerfstudio's redrawn table
        if not bar:
            progress, task = make_progress(total, "field train", "steps", interval=15.0)
            bar.extend((progress.__enter__(), task, progress))
        bar[0].advance(bar[1])

    try:
        run = train_field(data, out, PRESETS[preset], model=model, pretrained=pretrained, max_iterations=iterations,
                          seed=seed, quiet=quiet, progress=None if quiet else on_step)
    except Exception as e:
        if fresh:
            shutil.rmtree(rd, ignore_errors=True)
        if isinstance(e, (OvtoolsError, FileNotFoundError, ValueError)):
            opt.usage_error(str(e))
        if isinstance(e, (OSError, RuntimeError, ArithmeticError, AttributeError, IndexError, KeyError)):
            opt.usage_error(f"training on {data} failed ({type(e).__name__}: {' '.join(str(e).split())[:300]}); "
                            "check its images, depth and poses")
        raise
    finally:
        if bar:
            bar[2].__exit__(None, None, None)
    stage("field train", f"done in {time.perf_counter() - t0:.0f} s: {run}")
    opt.stdout.print_json(json.dumps({"run": str(run), "method": PRESETS[preset],
                                      "seconds": round(time.perf_counter() - t0, 1)}))


def _cameras(spec: Optional[str]) -> list[int] | None:
    if spec is None:
        return None
    try:
        cams = [int(c) for c in spec.replace(",", " ").split()]
    except ValueError:
        opt.usage_error(f"--cameras {spec!r}: give camera indices such as 0,3,7")
    if not cams:
        opt.usage_error("--cameras: give at least one camera index")
    return cams


@field_app.command("query")
def query(
    run: Annotated[Path, typer.Argument(help="Run folder (holding config.yml).")],
    text: Annotated[str, typer.Option("--query", help="The phrase, scored against the canonical negatives "
                                      "(LERF relevancy).")],
    save_vis: Annotated[Optional[Path], typer.Option("--save-vis", file_okay=False, help="Folder for one heat-map "
                                                     "PNG per camera (<phrase>_cam<k>.png).")] = None,
    cameras: Annotated[Optional[str], typer.Option("--cameras", help="Dataset camera indices, e.g. 0,3,7. "
                                                   "Default: every dataset camera.")] = None,
    render_side: _RenderSide = 160,
    scale: _Scale = None,
    quiet: _Quiet = False,
) -> None:
    """Relevancy maps of one phrase in the dataset cameras of a trained field (one JSON line per camera)."""
    set_quiet(quiet)
    require_nerf()
    check_phrase(text)
    files = check_run(run)
    cams = _cameras(cameras)
    if save_vis is not None and save_vis.exists() and not save_vis.is_dir():
        opt.usage_error(f"--save-vis {save_vis}: give a folder")
    check_positive(scale=scale)
    pipe = load_field(run, "field query", render_side=render_side, scales_m=None if scale is None else (scale,),
                      files=files)
    n = len(pipe.cameras)
    if cams is not None and any(not 0 <= c < n for c in cams):
        opt.usage_error(f"--cameras: indices must be in 0..{n - 1} (the run has {n} dataset cameras)")
    from ..io.pointlabels import heat_overlay
    from ..io.vis import save_png

    slug = re.sub(r"[^A-Za-z0-9]+", "-", text.strip()).strip("-").lower() or "query"
    for k in cams if cams is not None else range(n):
        view = pipe.render(k)
        rel = pipe.relevancy_map(view, text)
        row = {"camera": k, "query": text, "max_relevancy": round(float(rel.max()), 6),
               "pixels_relevant": int((rel > 0.5).sum()), "size": list(rel.shape)}
        if save_vis is not None:
            path = save_png(heat_overlay(view.rgb, rel), save_vis / f"{slug}_cam{k}.png", files)
            row["vis"] = str(path)
        stage("field query", f"camera {k}: max relevancy {row['max_relevancy']:.3f}")
        opt.stdout.print(json.dumps(row), markup=False, highlight=False, soft_wrap=True)


@field_app.command("export")
def export(
    run: Annotated[Path, typer.Argument(help="Run folder (holding config.yml).")],
    output: Annotated[Path, typer.Option("--output", "-o", dir_okay=False, help="The labelled (or relevancy) "
                                         ".ply, in ovtools segment3d's schema.")],
    labels: Annotated[Optional[str], typer.Option("--labels", "-l", help="Comma-separated labels.")] = None,
    classes: Annotated[Optional[str], typer.Option("--classes", "-c", help="A class space (name or YAML).")] = None,
    text: Annotated[Optional[str], typer.Option("--query", help="Score the surface against this phrase instead "
                                                "(a 'relevancy' property).")] = None,
    summary: Annotated[Optional[Path], typer.Option("--summary", dir_okay=False, help="Write a JSON summary "
                                                    "(points per class, instances with 3D boxes, timings).")] = None,
    max_views: Annotated[int, typer.Option("--max-views", min=1, help="Dataset cameras rendered for the "
                                           "surface, evenly spread.")] = 12,
    voxel_size: Annotated[Optional[float], typer.Option("--voxel-size", min=0.0, help="Fusion voxel in metres. "
                                                        "Default: 1/256 of the surface's diagonal.")] = None,
    render_side: _RenderSide = 160,
    keep_background: Annotated[bool, typer.Option("--keep-background", help="Also export surface points beyond "
                                                  "the run's scene box (nerfacto's contracted background).")] = False,
    scale: _Scale = None,
    quiet: _Quiet = False,
) -> None:
    """Label the field's surface (rendered depth of the dataset cameras, fused per voxel) and write a PLY."""
    set_quiet(quiet)
    require_nerf()
    check_phrase(text)
    if text is not None and (labels is not None or classes is not None):
        opt.usage_error("give --query (relevancy to one phrase) or --labels/--classes (labels), not both")
    chosen = {} if text is not None else opt.class_options(labels, classes, False)
    if output.suffix.lower() != ".ply":
        opt.usage_error(f"--output {output}: give a .ply file")
    check_positive(voxel_size=voxel_size, scale=scale)
    files = check_run(run)
    opt.check_outputs({"--output": output, "--summary": summary}, files)
    pipe = load_field(run, "field export", chosen.get("labels"), chosen.get("classes"), render_side=render_side,
                      outputs={"--output": output, "--summary": summary}, files=files,
                      scales_m=None if scale is None else (scale,))
    from ..errors import OvtoolsError
    from ..nerf.export import export_field

    try:
        doc = export_field(pipe, output, query=text, summary=summary, max_views=max_views, voxel_size=voxel_size,
                           background=keep_background, protect=files, progress=lambda m: stage("field export", m))
    except (OvtoolsError, ValueError) as e:
        opt.usage_error(str(e))
    if not quiet:
        shown = {k: v for k, v in doc.items() if k not in ("class_names", "instances")}
        if "instances" in doc:
            shown["instances"] = len(doc["instances"])
        opt.stdout.print_json(json.dumps(shown))


def evaluate_run(run: Path, labels: str | None, classes: str | None, preset: str | None, output: Path | None,
                 quiet: bool, scene: Path | None = None) -> None:
    """``ovtools eval RUN``: mIoU at the ground-truth points and LERF localisation of a run (``preset``: a
    segment3d preset labelled beside it)."""
    set_quiet(quiet)
    require_nerf()
    files = check_run(run)
    if labels is not None and classes is not None:
        opt.usage_error("give either --labels or --classes, not both")
    opt.check_outputs({"--output": output}, files)
    pipe = load_field(run, "eval", render_side=64, outputs={"--output": output}, files=files)  # 48 x 64 views
    from ..errors import OvtoolsError
    from ..nerf.evaluate import evaluate_field
    from ..prompts import ClassSpace

    try:
        space = ClassSpace.load(classes) if classes is not None else labels
        result = evaluate_field(pipe, scene, space, segment3d_preset=preset, progress=lambda m: stage("eval", m))
    except (OvtoolsError, FileNotFoundError, ValueError) as e:
        opt.usage_error(str(e))
    if output is not None:
        from ..io.writers import write_json

        write_json(output, result, files)
    if not quiet:
        opt.stdout.print_json(json.dumps({k: v for k, v in result.items() if k != "per_class_IoU"}))
