"""``ovtools export``: the image encoder with the class embeddings baked in, as ONNX or TorchScript.

    ovtools export --task classify --labels "zebra, goat, grass plain" --format onnx -o model.onnx
    ovtools export --task embed --format torchscript -o embed.pt
    ovtools export --preset classify-shapes -o shapes.onnx --check world/images/

Input of the exported graph: float32 (B, 3, S, S), resized, centre-cropped and
normalised with the model's mean/std (stored in the file's metadata).

Exit codes: 0 exported (and, with --check, within tolerance), 1 --check found a
difference above 1e-4 or a different top-1, 2 usage error.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from . import options as opt
from .app import app


@app.command("export")
def export(
    output: Annotated[Path, typer.Option(
        "--output", "-o", help="The exported file (.onnx for ONNX; e.g. .pt for TorchScript).", dir_okay=False,
        show_default=False)],
    task: Annotated[str, typer.Option(
        "--task", help="classify: image -> probabilities over the labels (baked in); embed: image -> "
        "L2-normalised embedding.")] = "classify",
    format: Annotated[str, typer.Option(
        "--format", "-f", help="onnx (needs ovtools[export]) or torchscript.")] = "onnx",
    labels: opt.Labels = None,
    classes: opt.Classes = None,
    templates: opt.Templates = None,
    model: opt.Model = None,
    pretrained: opt.Pretrained = None,
    preset: opt.Preset = None,
    opset: Annotated[int, typer.Option("--opset", min=11, help="ONNX opset version.")] = 17,
    check: Annotated[Optional[list[str]], typer.Option(
        "--check", help="Images (files, folders, patterns) to run through the export and the torch pipeline: "
        "prints the largest difference, top-1 agreement and the speed of each.", show_default=False)] = None,
    cache_dir: opt.CacheDir = None,
    no_cache: opt.NoCache = False,
) -> None:
    """Export the image encoder (with the class embeddings for --task classify) for use without ovtools."""
    from ..errors import OvtoolsError
    from ..export import EXPORT_TASKS, FORMATS, compare_with_pipeline, export_pipeline
    from ..io.images import load_image

    if task not in EXPORT_TASKS:
        opt.usage_error(f"--task must be one of {', '.join(EXPORT_TASKS)}, got {task!r}")
    if format not in FORMATS:
        opt.usage_error(f"--format must be one of {', '.join(FORMATS)}, got {format!r}")
    if format == "onnx" and output.suffix.lower() != ".onnx":
        opt.usage_error(f"--output {output}: an ONNX export needs a .onnx file name")
    if task == "embed" and labels is None and classes is None:
        overrides = {"labels": None, "classes": None}  # no class embeddings to compute
    else:
        overrides = opt.class_options(labels, classes, opt.preset_has_classes(preset) or preset is None)
    overrides.update(opt.model_overrides(model, pretrained, "cpu", "fp32", templates, None, cache_dir, no_cache, None))
    files, problems = opt.expand_inputs(check or [])
    if problems:
        opt.usage_error(f"--check {problems[0][0]}: {problems[0][1]}")
    opt.check_outputs({"--output": output}, files)
    from ..pipelines import ClassifyPipeline

    pipe = opt.build_pipeline(ClassifyPipeline, preset if preset is not None else "classify-default", overrides)
    try:
        path = export_pipeline(pipe, output, task, format, opset)
    except (OvtoolsError, ValueError, ImportError) as e:
        opt.usage_error(str(e))
    what = f"{len(pipe.labels)} classes" if task == "classify" else f"{pipe.encoder.embed_dim}-d embeddings"
    opt.stderr.print(f"export: {path} ({format}, {task}, {what}, input float32 (B, 3, {pipe.encoder.image_size[0]}, "
                     f"{pipe.encoder.image_size[1]}))", highlight=False)
    if files:
        try:
            images = [load_image(f).pixels for f in files]
        except OvtoolsError as e:
            opt.usage_error(f"--check: {e}")
        c = compare_with_pipeline(path, pipe, images)
        opt.stdout.print(f"check on {c.n_images} images: max |diff| {c.max_abs_diff:.2e}, same top-1 "
                         f"{c.top1_agree:.0%}; {format} {c.seconds_exported * 1e3:.2f} ms/img, torch "
                         f"{c.seconds_torch * 1e3:.2f} ms/img ({c.seconds_torch / c.seconds_exported:.2f}x)")
        if c.max_abs_diff > 1e-4 or c.top1_agree < 1.0:
            raise typer.Exit(1)
