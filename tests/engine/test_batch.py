"""The local batch engine: rows equal the CLI's ``--output`` records, error rows, resume, Parquet, URIs."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from ovtools.cli import app
from ovtools.engine import EngineConfig, list_inputs, run_batch
from ovtools.engine.sinks import RowSink
from ovtools.io.writers import OutputPathError
from ovtools.prompts import CANONICAL_NEGATIVES

TINY = {"model": "ovtools-test-vit", "pretrained": None, "device": "cpu", "templates": "single"}
FAST = {**TINY, "scoring": "dense", "proposals": "windows", "score_threshold": 0.0,
        "labels": list(CANONICAL_NEGATIVES)}
FAST_CLI = ["--model", "ovtools-test-vit", "--pretrained", "none", "--device", "cpu", "--templates", "single",
            "--scoring", "dense", "--proposals", "windows", "--threshold", "0", "--labels",
            ", ".join(CANONICAL_NEGATIVES)]
QUIET = EngineConfig(progress=False, ray_batch_size=2)


@pytest.fixture
def photos(tmp_path):
    d = tmp_path / "photos"
    d.mkdir()
    rng = np.random.default_rng(0)
    for i, shape in enumerate([(60, 90), (64, 64), (50, 70)]):
        Image.fromarray(rng.integers(0, 255, (*shape, 3), dtype=np.uint8)).save(d / f"im{i}.png")
    (d / "empty.png").write_bytes(b"")
    return d


def read_rows(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_rows_equal_cli_output_records(photos, tmp_path):
    doc_path = tmp_path / "cli.json"
    torch.manual_seed(0)  # both runs build the same random-weight model
    r = CliRunner().invoke(app, ["detect", str(photos), *FAST_CLI, "-o", str(doc_path), "-q"],
                           catch_exceptions=False)
    assert r.exit_code == 1, r.output  # empty.png fails, the rest goes on
    doc = json.loads(doc_path.read_text())
    out = tmp_path / "rows.jsonl"
    torch.manual_seed(0)
    summary = run_batch("detect", [photos], out, preset="detect-default", overrides=FAST, config=QUIET)
    rows = read_rows(out)
    assert summary.n_rows == 4 and summary.n_errors == 1 and summary.n_skipped == 0
    good = [row for row in rows if "error" not in row]
    assert good == doc["results"]  # same records, same field order
    assert [list(r) for r in good] == [list(r) for r in doc["results"]]
    assert [row for row in rows if "error" in row] == doc["errors"]
    assert any(row["detections"] for row in good)


def test_resume_skips_done_inputs_and_repairs_a_cut_line(photos, tmp_path):
    from ovtools.pipelines import ClassifyPipeline

    pipe = ClassifyPipeline(**TINY, labels="a, b")  # one random-weight model for every run
    out = tmp_path / "rows.jsonl"
    run_batch("classify", [photos], out, pipe=pipe, config=QUIET)
    full = out.read_text().splitlines()
    assert len(full) == 4
    # an interrupted run: two finished rows and half a third in the .partial file
    partial = out.with_name(out.name + ".partial")
    partial.write_text(full[0] + "\n" + full[1] + "\n" + full[2][:25])
    out.unlink()
    resumed = run_batch("classify", [photos], out, pipe=pipe,
                        config=EngineConfig(progress=False, resume=True, ray_batch_size=2))
    assert resumed.n_skipped == 2 and resumed.n_rows == 2
    assert sorted(out.read_text().splitlines()) == sorted(full)
    assert not partial.exists()
    again = run_batch("classify", [photos], out, pipe=pipe, config=EngineConfig(progress=False, resume=True))
    assert again.n_skipped == 4 and again.n_rows == 0 and len(out.read_text().splitlines()) == 4


def test_parquet_rows_and_resume(photos, tmp_path):
    pq = pytest.importorskip("pyarrow.parquet")
    from ovtools.pipelines import DetectPipeline

    pipe = DetectPipeline(**FAST, max_detections=3)
    out = tmp_path / "rows.parquet"
    run_batch("detect", [photos / "im0.png", photos / "empty.png"], out, pipe=pipe, config=QUIET)
    run_batch("detect", [photos], out, pipe=pipe, config=EngineConfig(progress=False, resume=True))
    table = pq.read_table(out)
    assert table.column_names == ["image", "image_size", "detections", "error"]
    rows = table.to_pylist()
    assert sorted(r["image"].rsplit("/", 1)[1] for r in rows) == ["empty.png", "im0.png", "im1.png", "im2.png"]
    bad = next(r for r in rows if r["image"].endswith("empty.png"))
    assert bad["error"] and bad["detections"] is None
    im0 = next(r for r in rows if r["image"].endswith("im0.png"))
    assert im0["error"] is None and im0["image_size"] == [60, 90] and 0 < len(im0["detections"]) <= 3
    assert set(im0["detections"][0]) >= {"label", "class_id", "confidence", "xyxy"}


def test_uri_inputs_and_missing_ones_become_error_rows(photos, tmp_path):
    pytest.importorskip("pyarrow.fs")
    out = tmp_path / "rows.jsonl"
    uri = f"file://{photos}"
    sources, problems = list_inputs([uri, f"file://{tmp_path}/nope/", str(photos / "im1.png")], "detect")
    assert sources[:4] == [f"{uri}/empty.png", f"{uri}/im0.png", f"{uri}/im1.png", f"{uri}/im2.png"]
    assert sources[4] == str(photos / "im1.png") and problems == [(f"file://{tmp_path}/nope/", "no such object or prefix")]
    run_batch("detect", [f"{uri}/im0.png", f"{uri}/empty.png", f"file://{tmp_path}/gone.png"], out,
              preset="detect-default", overrides=FAST, config=QUIET)
    rows = read_rows(out)
    assert rows[0]["image"] == f"file://{tmp_path}/gone.png" and "no such object" in rows[0]["error"]
    assert rows[1]["image"] == f"{uri}/im0.png" and rows[1]["image_size"] == [60, 90]
    assert rows[2] == {"image": f"{uri}/empty.png", "error": "empty file (0 bytes)"}


def test_outputs_and_settings_are_checked(photos, tmp_path):
    with pytest.raises(OutputPathError, match="jsonl"):
        RowSink(tmp_path / "x.json", "detect")
    with pytest.raises(OutputPathError, match="also an input"):
        run_batch("detect", [photos], photos / "im0.png", config=QUIET)
    with pytest.raises(ValueError, match="engine must be one of 'local', 'ray'"):
        EngineConfig(engine="spark")
    with pytest.raises(ValueError, match="concurrency"):
        EngineConfig(concurrency=0)
    with pytest.raises(ValueError, match="task must be one of"):
        run_batch("track", [photos], tmp_path / "o.jsonl")


def test_segment3d_scene_rows(tmp_path, one_torch_thread):
    pytest.importorskip("plyfile")
    from ovtools.datasets.scenes3d import generate_scenes3d
    from ovtools.io.ply import write_ply

    d = tmp_path / "w3d"
    d.mkdir()
    write_ply(d / "scene.ply", next(generate_scenes3d(1, seed=3000, points=3000)).to_point_cloud())
    (d / "broken.ply").write_text("ply\nnot really\n")
    out = tmp_path / "scenes.jsonl"
    s = run_batch("segment3d", [d], out, preset="segment3d-shapes",
                  overrides=dict(features="dense", n_around=2, elevations=(45.0,), view_size=(96, 128),
                                 distill_steps=0, mode="fusion"), config=QUIET)
    rows = read_rows(out)
    assert s.n_rows == 2 and s.n_errors == 1
    bad, good = sorted(rows, key=lambda r: "error" not in r)
    assert bad["scene"] == str(d / "broken.ply") and bad["error"]
    assert good["scene"] == str(d / "scene.ply") and good["n_points"] == 3000
    assert sum(good["points_per_class"].values()) == 3000 and good["mode"] == "fusion"


def test_segment_rows_carry_rle_masks(photos, tmp_path):
    from pycocotools import mask as mask_utils

    out = tmp_path / "seg.jsonl"
    run_batch("segment", [photos / "im0.png"], out, preset="segment-default",
              overrides={**TINY, "scoring": "dense", "score_threshold": 0.0, "max_detections": 3,
                         "labels": list(CANONICAL_NEGATIVES)}, config=QUIET)
    (row,) = read_rows(out)
    assert list(row) == ["image", "image_size", "detections"] and 0 < len(row["detections"]) <= 3
    for d in row["detections"]:
        assert d["segmentation"]["size"] == [60, 90]
        assert int(mask_utils.area({"size": d["segmentation"]["size"],
                                    "counts": d["segmentation"]["counts"].encode()})) == d["area"] > 0


def test_cli_engine_needs_a_streamed_output(photos, tmp_path):
    runner = CliRunner()
    r = runner.invoke(app, ["detect", str(photos), *FAST_CLI, "--engine", "local"])
    assert r.exit_code == 2 and "--engine needs --output" in r.output
    r = runner.invoke(app, ["detect", str(photos), *FAST_CLI, "--engine", "local", "-o", str(tmp_path / "o.json")])
    assert r.exit_code == 2 and ".jsonl" in r.output
    r = runner.invoke(app, ["detect", str(photos), *FAST_CLI, "--engine", "spark", "-o", str(tmp_path / "o.jsonl")])
    assert r.exit_code == 2 and "spark" in r.output and "local" in r.output  # refused by the option's choices


def test_resume_refuses_files_it_cannot_trust(tmp_path):
    """--resume into a file that is not this task's output stops with the file and line named, changing nothing
    (it used to drop unparsable lines and call another task's rows "already done")."""
    good = '{"image": "a.png", "image_size": [4, 4], "detections": []}\n'
    for text, message in [
        (good + "garbage{\n" + good.replace("a.png", "b.png"), "line 2"),
        (good + "[1, 2]\n", "line 2: not an ovtools row"),
        ('{"image": "a.png", "image_size": [4, 4], "rejected": false, "top_k": []}\n', "another task"),
    ]:
        out = tmp_path / "rows.jsonl"
        out.write_text(text)
        with pytest.raises(ValueError, match=message):
            RowSink(out, "detect", resume=True)
        assert out.read_text() == text and not (tmp_path / "rows.jsonl.partial").exists()
    out.write_text(good + '{"image": "b.png", "image_si')  # a run stopped while writing its last row
    sink = RowSink(out, "detect", resume=True)
    assert sink.done == {"a.png"}
    sink.close()
