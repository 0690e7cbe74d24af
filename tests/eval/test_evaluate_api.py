"""``ovtools.eval.evaluate`` / ``probe_evaluation``: the Python API behind ``ovtools eval`` / ``ovtools probe``
gives the documents the commands write (the shipped small model, deterministic)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from ovtools.cli import app
from ovtools.datasets.export import write_classification, write_scenes
from ovtools.eval import dataset_class_names, evaluate, probe_evaluation, read_dataset
from ovtools.eval.data import LabelledImages


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("api")
    write_classification(root / "a", 16, seed=1)
    write_classification(root / "b", 16, seed=2)
    write_scenes(root / "scenes", 2, seed=3, size=96)
    return root


@pytest.fixture(scope="module")
def classify():
    from ovtools.pipelines import ClassifyPipeline

    return ClassifyPipeline("classify-shapes", device="cpu")


def test_evaluate_equals_the_command(data, classify, tmp_path):
    out = tmp_path / "m.json"
    r = CliRunner().invoke(app, ["eval", str(data / "a"), "--preset", "classify-shapes", "--device", "cpu", "-o", str(out),
                                 "-q"])
    assert r.exit_code == 0, r.output
    cli = json.loads(out.read_text())
    api = evaluate(classify, data / "a")
    assert api == cli  # same keys, same values: the command only prints what the library returns
    assert api["task"] == "zeroshot_classification" and api["n"] == 16 and api["errors"] == []
    assert api["top1"] > 0.8  # the shipped model knows the shapes: a real comparison, not two constants


def test_reader_objects_and_progress(data, classify):
    ds = read_dataset(data / "a")
    assert isinstance(ds, LabelledImages) and len(ds) == 16
    assert set(dataset_class_names(ds)) <= set(classify.labels)
    seen = []
    m = evaluate(classify, ds, progress=seen.append)
    assert sum(seen) == 16 and m["dataset"] == str(data / "a")
    from ovtools.datasets.readers import read_image_folder

    assert evaluate(classify, read_image_folder(data / "a"))["top1"] == m["top1"]  # the datasets' reader objects
    coco = read_dataset(data / "scenes" / "annotations.json")
    assert dataset_class_names(coco) == coco.categories and len(coco) == 2


def test_unreadable_images_are_reported_and_skipped(data, classify, tmp_path):
    folder = tmp_path / "cls"
    src = read_dataset(data / "a")
    for p in src.paths[:4]:
        (folder / p.parent.name).mkdir(parents=True, exist_ok=True)
        (folder / p.parent.name / p.name).write_bytes(p.read_bytes())
    bad = folder / src.paths[0].parent.name / "broken.png"
    bad.write_bytes(b"not a png")
    reported = []
    m = evaluate(classify, folder, on_error=reported.append)
    assert m["n"] == 4 and reported == m["errors"] and m["errors"][0]["image"] == str(bad)


def test_a_pipeline_that_does_not_fit_the_dataset(data, classify):
    with pytest.raises(ValueError, match="detect or segment pipeline, got 'classify'"):
        evaluate(classify, data / "scenes" / "annotations.json")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        evaluate(classify, data / "nothing")
    with pytest.raises(TypeError):
        evaluate(classify, [1, 2])


def test_probe_evaluation(data, classify):
    with pytest.warns(UserWarning, match="shots 5: skipped"):
        r = probe_evaluation(classify, data / "a", data / "b", shots=(1, 5), trials=1)
    assert r["skipped_shots"] == [5] and r["probes"][0]["shots"] == 1 and r["probes"][-1]["shots"] == "all"
    assert 0 <= r["zero_shot_top1"] <= 1 and np.isfinite(r["probes"][-1]["test_accuracy"])
    with pytest.raises(ValueError, match=">= 1"):
        probe_evaluation(classify, data / "a", data / "b", shots=(0,))
