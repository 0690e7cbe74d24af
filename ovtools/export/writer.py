"""`export_model`: a pipeline's image encoder (and class embeddings) as ONNX or TorchScript.

    from ovtools.export import export_model
    export_model("model.onnx", task="classify", preset="classify-shapes")            # shapes classes
    export_model("model.pt", task="embed", format="torchscript", model="ViT-B-32")

The file carries its own description (ONNX ``metadata_props``; TorchScript extra file
``ovtools.json``): task, input layout, image size, mean, std, class names, logit scale,
model and weights.  :func:`read_metadata` reads it back.
"""

from __future__ import annotations

import copy
import json
import warnings
from pathlib import Path
from typing import Any, Literal

import torch

from .. import __version__
from ..io.writers import atomic_output, check_output_path
from ..pipelines import ClassifyPipeline
from .graphs import ImageEmbedder, ZeroShotClassifier

FORMATS = ("onnx", "torchscript")
EXPORT_TASKS = ("classify", "embed")
INPUT_DOC = ("float32 (B, 3, S, S): RGB resized (shortest side to S, bicubic) and centre-cropped to S x S, "
             "scaled to [0, 1], then (x - mean) / std per channel")


def export_module(pipe: ClassifyPipeline, task: str) -> torch.nn.Module:
    """The graph to export from a classify pipeline (see :mod:`ovtools.export.graphs`), float32 on the CPU.

    Raises:
        ValueError: unknown task, or ``classify`` without labels.
    """
    if task not in EXPORT_TASKS:
        raise ValueError(f"export task must be one of {', '.join(EXPORT_TASKS)}, got {task!r}")
    visual = pipe.encoder.model.visual
    if pipe.encoder.device.type != "cpu" or pipe.encoder.dtype != torch.float32:
        visual = copy.deepcopy(visual).float().cpu()  # the shared encoder stays as it is
    if task == "embed":
        return ImageEmbedder(visual).eval()
    if not pipe.labels:
        raise ValueError("--task classify needs labels or a class space to bake in")
    return ZeroShotClassifier(visual, pipe.embeddings.classes, pipe.encoder.logit_scale).eval()


def metadata(pipe: ClassifyPipeline, task: str) -> dict[str, str]:
    """The description written into the exported file (all values strings; lists and numbers as JSON)."""
    enc = pipe.encoder
    s = enc.image_size
    meta: dict[str, Any] = {
        "ovtools_version": __version__, "task": task, "model": enc.name, "pretrained": enc.pretrained,
        "input_name": "pixels", "input": INPUT_DOC, "image_size": [s[0], s[1]],
        "mean": list(enc.image_mean), "std": list(enc.image_std),
        "output_name": "probs" if task == "classify" else "embedding",
        "output": "float32 (B, C) softmax probabilities over class_names" if task == "classify"
        else f"float32 (B, {enc.embed_dim}) L2-normalised image embeddings",
    }
    if task == "classify":
        meta.update(class_names=list(pipe.labels), logit_scale=float(enc.logit_scale))
    return {k: v if isinstance(v, str) else json.dumps(v) for k, v in meta.items()}


def read_metadata(path: str | Path) -> dict[str, Any]:
    """The ovtools description of an exported file (JSON values decoded).

    Raises:
        ValueError: the file has no ovtools description.
    """
    path = Path(path)
    if path.suffix.lower() == ".onnx":
        import onnx  # optional extra: ovtools[export]

        raw = {p.key: p.value for p in onnx.load(str(path), load_external_data=False).metadata_props}
    else:
        extra = {"ovtools.json": ""}
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)  # torch.jit is deprecated in favour of torch.export
            torch.jit.load(str(path), map_location="cpu", _extra_files=extra)
        raw = json.loads(extra["ovtools.json"] or "{}")
    if "task" not in raw:
        raise ValueError(f"{path}: not an ovtools export (no metadata)")
    out: dict[str, Any] = {}
    for k, v in raw.items():
        try:
            out[k] = json.loads(v) if k not in ("task", "model", "input", "output", "input_name", "output_name",
                                                "ovtools_version") else v
        except (TypeError, ValueError):
            out[k] = v
    return out


def export_pipeline(pipe: ClassifyPipeline, path: str | Path, task: Literal["classify", "embed"] = "classify",
                    format: Literal["onnx", "torchscript"] = "onnx", opset: int = 17) -> Path:
    """Export ``pipe``'s image encoder (with its class embeddings for ``classify``) to ``path``, atomically.

    Args:
        pipe: a :class:`~ovtools.pipelines.ClassifyPipeline` (its labels are baked in for ``classify``).
        path: output file (``.onnx`` for ONNX; any name, usually ``.pt``, for TorchScript).
        task: ``"classify"`` (pixels → probabilities (B, C)) or ``"embed"`` (pixels → embeddings (B, D)).
        format: ``"onnx"`` (opset ``opset``, dynamic batch axis) or ``"torchscript"`` (traced).
        opset: ONNX opset version.

    Returns:
        ``path``.

    Raises:
        ValueError: unknown task or format, ``classify`` without labels.
        ImportError: ONNX export without ``ovtools[export]`` (onnx).
        OutputPathError: ``path`` is a folder or unwritable.
    """
    if format not in FORMATS:
        raise ValueError(f"format must be one of {', '.join(FORMATS)}, got {format!r}")
    path = check_output_path(path)
    module = export_module(pipe, task)
    meta = metadata(pipe, task)
    s = pipe.encoder.image_size
    example = torch.zeros(2, 3, s[0], s[1])
    fastpath = torch.backends.mha.get_fastpath_enabled()
    torch.backends.mha.set_fastpath_enabled(False)  # the fused attention kernel has no ONNX/trace form
    try:
        with atomic_output(path) as tmp, torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # tracer and legacy-exporter deprecation notices
            if format == "onnx":
                _write_onnx(module, example, str(tmp), meta, opset)
            else:
                traced = torch.jit.trace(module, example, check_trace=False)
                torch.jit.save(traced, str(tmp), _extra_files={"ovtools.json": json.dumps(meta)})
    finally:
        torch.backends.mha.set_fastpath_enabled(fastpath)
    return path


def _write_onnx(module: torch.nn.Module, example: torch.Tensor, target: str, meta: dict[str, str],
                opset: int) -> None:
    import onnx  # optional extra: ovtools[export]

    out = meta["output_name"]
    # The TorchScript-based exporter: the torch.export-based one needs onnxscript, which ovtools does not require.
    torch.onnx.export(module, (example,), target, input_names=["pixels"], output_names=[out],
                      dynamic_axes={"pixels": {0: "batch"}, out: {0: "batch"}}, opset_version=opset, dynamo=False)
    model = onnx.load(target)
    for k, v in meta.items():
        entry = model.metadata_props.add()
        entry.key, entry.value = k, v
    onnx.checker.check_model(model)
    onnx.save(model, target)


def export_model(path: str | Path, task: Literal["classify", "embed"] = "classify",
                 format: Literal["onnx", "torchscript"] = "onnx", preset: str | Path | None = None,
                 opset: int = 17, **overrides: Any) -> Path:
    """Build a classify pipeline (preset + overrides, on the CPU) and export it (see :func:`export_pipeline`).

    Args:
        path: output file.
        task: ``"classify"`` or ``"embed"``.
        format: ``"onnx"`` or ``"torchscript"``.
        preset: classify preset (``None`` → ``classify-default``).
        opset: ONNX opset version.
        **overrides: preset keys: ``labels`` / ``classes``, ``templates``, ``model``, ``pretrained``, ...

    Raises:
        ValueError, ImportError, OutputPathError: see :func:`export_pipeline`; pipeline errors as
            :class:`~ovtools.pipelines.ClassifyPipeline`.
    """
    overrides.setdefault("device", "cpu")
    overrides.setdefault("precision", "fp32")
    pipe = ClassifyPipeline(**overrides) if preset is None else ClassifyPipeline(preset, **overrides)
    return export_pipeline(pipe, path, task, format, opset)
