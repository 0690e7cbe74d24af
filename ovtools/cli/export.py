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
import typer

from ..export import EXPORT_TASKS, FORMATS
from . import options as opt
from .app import app
from .derive import Invocation, build_command, choice_option, option


def export(inv: Invocation) -> None:
    """Export the image encoder (with the class embeddings for --task classify) for use without ovtools."""
    from ..errors import OvtoolsError
    from ..export import compare_with_pipeline, export_pipeline
    from ..io.images import load_image

    output, task, format, preset = inv.output, inv.task, inv.format, inv.preset
    if output is None:
        opt.usage_error("--output is required: the exported file (.onnx for ONNX; e.g. .pt for TorchScript)")
    if format == "onnx" and output.suffix.lower() != ".onnx":
        opt.usage_error(f"--output {output}: an ONNX export needs a .onnx file name")
    if task == "embed" and inv.labels is None and inv.classes is None:
        overrides = {"labels": None, "classes": None}  # no class embeddings to compute
    else:
        overrides = opt.class_options(inv.labels, inv.classes, opt.preset_has_classes(preset) or preset is None)
    overrides.update(inv.settings, device="cpu", precision="fp32")
    files, problems, _ = opt.expand_inputs(inv.check or [])
    if problems:
        opt.usage_error(f"--check {problems[0][0]}: {problems[0][1]}")
    opt.check_outputs({"--output": output}, files)
    from ..pipelines import ClassifyPipeline

    pipe = opt.build_pipeline(ClassifyPipeline, preset if preset is not None else "classify-default", overrides,
                              inv.flags)
    try:
        path = export_pipeline(pipe, output, task, format, inv.opset)
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


build_command(
    app, "export", export, doc=export.__doc__, preset="classify-default", leading=[],
    own=[option("output", Path, "--output", "-o", dir_okay=False,
                help="The exported file (.onnx for ONNX; e.g. .pt for TorchScript). Required."),
         choice_option("task", EXPORT_TASKS, "--task", default="classify", help="classify: image -> probabilities "
                       "over the labels (baked in); embed: image -> L2-normalised embedding."),
         choice_option("format", FORMATS, "--format", "-f", default="onnx",
                       help="onnx (needs the export extra: pip install 'ovtools\\[export]') or torchscript."),
         option("opset", int, "--opset", default=17, min=11, help="ONNX opset version."),
         option("check", list[str], "--check", help="Images (files, folders, patterns) to run through the export "
                "and the torch pipeline: prints the largest difference, top-1 agreement and the speed of each.")],
    common=("model", "pretrained", "labels", "classes", "templates", "cache_dir", "use_cache"), cli=("preset",))
