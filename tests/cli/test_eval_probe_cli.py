"""`ovtools datagen`, `ovtools eval` and `ovtools probe` end to end with a tiny random-weight model."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from ovtools.cli import app

TINY = ["--model", "ovtools-test-vit", "--pretrained", "none"]


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("evaldata")
    runner = CliRunner()
    for args in (["datagen", root / "a", "--kind", "classification", "--n", 16, "--seed", 1],
                 ["datagen", root / "b", "--kind", "classification", "--n", 16, "--seed", 2],
                 ["datagen", root / "scenes", "--kind", "scenes", "--n", 2, "--seed", 3, "--image-size", 96]):
        r = runner.invoke(app, [str(a) for a in args])
        assert r.exit_code == 0, r.output
    return root


def test_eval_classification_writes_metrics(data, tmp_path):
    out = tmp_path / "m.json"
    r = CliRunner().invoke(app, ["eval", str(data / "a"), *TINY, "--classes", "shapes", "-o", str(out), "-q"])
    assert r.exit_code == 0, r.output
    m = json.loads(out.read_text())
    assert m["task"] == "zeroshot_classification" and m["n"] == 16
    assert 0.0 <= m["top1"] <= m["top5"] <= 1.0 and m["classes"] == "shapes"


@pytest.mark.slow
def test_eval_detection_on_coco(data, tmp_path):
    out = tmp_path / "d.json"
    r = CliRunner().invoke(app, ["eval", str(data / "scenes" / "annotations.json"), *TINY, "--classes", "shapes",
                                 "--scoring", "dense", "-o", str(out), "-q"])
    assert r.exit_code == 0, r.output
    m = json.loads(out.read_text())
    assert m["task"] == "detection" and m["n_images"] == 2 and "AP50" in m and m["absent_label_checks"] == 2


@pytest.mark.slow
def test_probe_reports_probe_and_zero_shot(data, tmp_path):
    out = tmp_path / "p.json"
    r = CliRunner().invoke(app, ["probe", str(data / "a"), str(data / "b"), *TINY, "--classes", "shapes",
                                 "--shots", "1", "--trials", "1", "-o", str(out), "-q"])
    assert r.exit_code == 0, r.output
    m = json.loads(out.read_text())
    assert "zero_shot_top1" in m and m["probes"][-1]["shots"] == "all"


@pytest.mark.parametrize("args,message", [
    (["eval", "/no/such/dir"], "does not exist"),
    (["eval", "{a}", "--scoring", "dense"], "apply to detection"),
    (["eval", "{a}", "--classes", "coco"], "not in the class space"),
    (["probe", "{a}", "{b}", "--shots", "0"], "must be >= 1"),
    (["probe", "{a}", "{b}", "--shots", "x"], "comma-separated integers"),
])
@pytest.mark.slow
def test_usage_errors_exit_2(data, args, message):
    args = [a.format(a=data / "a", b=data / "b") for a in args]
    r = CliRunner().invoke(app, [*args, *TINY])
    assert r.exit_code == 2, r.output
    assert message in r.output


@pytest.mark.slow
def test_probe_with_one_class_is_a_usage_error(data, tmp_path):
    one = tmp_path / "one"
    src = next(p for p in sorted((data / "a").iterdir()) if p.is_dir() and any(p.iterdir()))
    (one / src.name).mkdir(parents=True)
    for f in src.iterdir():
        (one / src.name / f.name).write_bytes(f.read_bytes())
    r = CliRunner().invoke(app, ["probe", str(one), str(one), *TINY, "--shots", "1"])
    assert r.exit_code == 2 and "at least two classes" in r.output
