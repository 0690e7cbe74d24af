"""Exports (ONNX through onnxruntime, TorchScript) against the torch pipeline on the evaluation world."""

from __future__ import annotations

import numpy as np
import pytest
from typer.testing import CliRunner

from ovtools.cli import app
from ovtools.datasets.export import write_scenes
from ovtools.export import compare_with_pipeline, export_pipeline, load_exported, read_metadata
from ovtools.io.images import load_image
from ovtools.pipelines import ClassifyPipeline

ort = pytest.importorskip("onnxruntime")


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    d = tmp_path_factory.mktemp("world")
    write_scenes(d, 4, seed=1)
    return d


@pytest.fixture(scope="module")
def images(world):
    return [load_image(p).pixels for p in sorted((world / "images").glob("*.png"))]


@pytest.fixture(scope="module")
def shapes_pipe():
    return ClassifyPipeline("classify-shapes", device="cpu")


@pytest.mark.parametrize("fmt,name", [("onnx", "m.onnx"), ("torchscript", "m.pt")])
@pytest.mark.parametrize("task", ["classify", "embed"])
def test_tiny_random_model(tiny_encoder, images, tmp_path, fmt, name, task):
    pipe = ClassifyPipeline(encoder=tiny_encoder, labels="red, green, blue square, circle", templates="single")
    path = export_pipeline(pipe, tmp_path / name, task, fmt)
    c = compare_with_pipeline(path, pipe, images)
    assert c.n_images == 4 and c.max_abs_diff <= 1e-4 and c.top1_agree == 1.0
    meta = read_metadata(path)
    assert meta["task"] == task and meta["image_size"] == [64, 64] and len(meta["mean"]) == 3
    if task == "classify":
        assert meta["class_names"] == ["red", "green", "blue square", "circle"]


def test_shipped_shapes_model_onnx(shapes_pipe, images, tmp_path):
    path = export_pipeline(shapes_pipe, tmp_path / "shapes.onnx", "classify", "onnx")
    c = compare_with_pipeline(path, shapes_pipe, images)
    assert c.max_abs_diff <= 1e-4 and c.top1_agree == 1.0
    meta = read_metadata(path)
    assert meta["class_names"] == shapes_pipe.labels and meta["logit_scale"] == pytest.approx(
        shapes_pipe.encoder.logit_scale)
    # the batch axis is dynamic; rows are probabilities; top-1 equals the pipeline's own answer
    run = load_exported(path)
    x = shapes_pipe.encoder.preprocess(images).numpy()
    for b in (1, 3):
        probs = run(x[:b])
        assert probs.shape == (b, len(shapes_pipe.labels)) and probs.dtype == np.float32
        np.testing.assert_allclose(probs.sum(1), 1.0, atol=1e-5)
    top1 = [shapes_pipe.labels[i] for i in run(x).argmax(1)]
    assert top1 == shapes_pipe.classify_batch(images).top1()


def test_cli_export_and_check(world, tmp_path):
    out = tmp_path / "shapes.onnx"
    r = CliRunner().invoke(app, ["export", "--preset", "classify-shapes", "-o", str(out), "--check",
                                 str(world / "images")], catch_exceptions=False)
    assert r.exit_code == 0, r.output
    assert "same top-1 100%" in r.stdout and out.is_file()
    r = CliRunner().invoke(app, ["export", "--task", "embed", "--model", "ovtools-shapes", "--pretrained", "shapes",
                                 "--format", "torchscript", "-o", str(tmp_path / "e.pt")], catch_exceptions=False)
    assert r.exit_code == 0, r.output
    assert read_metadata(tmp_path / "e.pt")["output"].endswith("L2-normalised image embeddings")


@pytest.mark.parametrize("args,message", [
    (["--format", "tflite", "-o", "m.onnx"], "tflite"),  # refused by the option's choices (onnx, torchscript)
    (["--task", "detect", "-o", "m.onnx"], "detect"),
    (["-o", "m.pt"], "needs a .onnx file name"),
])
def test_cli_usage_errors(tmp_path, args, message):
    args = [a if a not in ("m.onnx", "m.pt") else str(tmp_path / a) for a in args]
    r = CliRunner().invoke(app, ["export", "--preset", "classify-shapes", *args])
    assert r.exit_code == 2 and message in r.output
