"""``ovtools classify`` end to end with a tiny random-weight model (``--pretrained none``)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from ovtools.cli import app

ASSETS = Path(__file__).resolve().parents[1] / "assets"
TINY = ["--model", "ovtools-test-vit", "--pretrained", "none", "--device", "cpu", "--templates", "single"]


@pytest.fixture
def runner():
    return CliRunner()


@pytest.fixture
def photos(tmp_path):
    """A folder with two good images and one broken file."""
    d = tmp_path / "photos"
    d.mkdir()
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 255, (48, 64, 3), dtype=np.uint8)).save(d / "a.jpg")
    Image.fromarray(rng.integers(0, 255, (40, 40, 3), dtype=np.uint8)).save(d / "b.png")
    (d / "broken.jpg").write_text("not an image")
    return d


def run(runner, *args):
    return runner.invoke(app, ["classify", *map(str, args)], catch_exceptions=False)


def test_single_image_table_json_png(runner, photos, tmp_path):
    out, vis = tmp_path / "out.json", tmp_path / "vis.png"
    r = run(runner, photos / "a.jpg", "--labels", "zebra, goat, grass plain", *TINY, "--top-k", "2",
            "-o", out, "--save-vis", vis)
    assert r.exit_code == 0, r.output
    assert "a.jpg" in r.stdout and "top-1" in r.stdout
    doc = json.loads(out.read_text())
    assert doc["task"] == "classify" and doc["class_names"] == ["zebra", "goat", "grass plain"]
    assert doc["pretrained"] is None and doc["errors"] == []
    (rec,) = doc["results"]
    assert rec["image"] == str(photos / "a.jpg") and rec["image_size"] == [48, 64]
    assert len(rec["top_k"]) == 2
    assert set(rec["top_k"][0]) == {"label", "class_id", "confidence", "probability", "relevancy"}
    top = rec["top_k"][0]
    assert top["confidence"] == pytest.approx(top["probability"] * top["relevancy"], abs=2e-6)
    assert Image.open(vis).format == "PNG"


def test_batch_skips_bad_file(runner, photos, tmp_path):
    out, vis = tmp_path / "out.json", tmp_path / "vis"
    r = run(runner, photos, "--labels", "zebra, goat", *TINY, "-o", out, "--save-vis", vis)
    assert r.exit_code == 1
    assert "broken.jpg" in r.stderr and "not an image" in r.stderr
    doc = json.loads(out.read_text())
    assert [Path(x["image"]).name for x in doc["results"]] == ["a.jpg", "b.png"]
    assert Path(doc["errors"][0]["image"]).name == "broken.jpg"
    assert sorted(p.name for p in vis.iterdir()) == ["a.classify.png", "b.classify.png"]


def test_glob_and_missing(runner, photos):
    r = run(runner, str(photos / "*.png"), "--labels", "zebra", *TINY)
    assert r.exit_code == 0 and "b.png" in r.stdout and "a.jpg" not in r.stdout
    r = run(runner, photos / "a.jpg", photos / "nope.jpg", "--labels", "zebra", *TINY)
    assert r.exit_code == 2 and "nope.jpg" in r.stderr and r.stdout == ""  # a typo is refused before any work


def test_class_space_and_reject(runner, photos):
    r = run(runner, photos / "a.jpg", "--classes", "coco", *TINY, "--reject", "-k", "3")
    assert r.exit_code == 0, r.output


@pytest.mark.parametrize("args,message", [
    ([], "no labels"),
    (["--labels", "a", "--classes", "coco"], "not both"),
    (["--classes", "no-such-space"], "unknown class space"),
    (["--labels", "a,,b"], "empty"),
    (["--labels", "a", "--templates", "no-such-set"], "unknown template set"),
    (["--labels", "a", "--top-k", "0"], "top-k"),
    (["--labels", "a", "--precision", "fp8"], "precision"),
    (["--labels", "a", "--model", "No-Such-Model"], "unknown model"),
    (["--labels", "a", "--preset", "no-such-preset"], "unknown pipeline preset"),
])
def test_usage_errors_exit_2(runner, photos, args, message):
    base = [a for a in TINY if a not in ("--templates", "single")] if "--templates" in args else TINY
    if "--model" in args:
        base = ["--pretrained", "none"]
    r = run(runner, photos / "a.jpg", *base, *args)
    assert r.exit_code == 2, r.output
    assert message in r.output
    assert "Traceback" not in r.output


def test_missing_weights_exit_2(runner, photos):
    """The default model (ViT-B-32 / laion2b_s34b_b79k) cannot be downloaded offline: clean message, exit 2."""
    r = run(runner, photos / "a.jpg", "--labels", "zebra", "--device", "cpu")
    if r.exit_code == 0:
        pytest.skip("pretrained weights are cached on this machine")
    assert r.exit_code == 2
    assert "weights for model 'ViT-B-32'" in r.stderr and "Traceback" not in r.output


def test_output_never_overwrites_input(runner, photos):
    src = photos / "a.jpg"
    before = src.read_bytes()
    r = run(runner, src, "--labels", "zebra", *TINY, "-o", src)
    assert r.exit_code == 2 and "input" in r.stderr
    r = run(runner, photos / "b.png", "--labels", "zebra", *TINY, "--save-vis", photos / "b.png")
    assert r.exit_code == 2
    b_before = (photos / "b.png").read_bytes()
    r = run(runner, photos, "--labels", "zebra", *TINY, "--save-vis", photos)  # pictures are named b.classify.png
    assert r.exit_code == 1 and (photos / "b.classify.png").is_file()  # (exit 1: the folder's broken file)
    assert src.read_bytes() == before and (photos / "b.png").read_bytes() == b_before


def test_save_vis_png_for_many_is_usage_error(runner, photos, tmp_path):
    r = run(runner, photos, "--labels", "zebra", *TINY, "--save-vis", tmp_path / "one.png")
    assert r.exit_code == 2 and "folder" in r.stderr


def test_help_lists_every_option(runner):
    r = runner.invoke(app, ["classify", "--help"], terminal_width=200)
    assert r.exit_code == 0
    for option in ("--labels", "--classes", "--top-k", "--reject", "--templates", "--model", "--pretrained",
                   "--device", "--precision", "--preset", "--output", "--save-vis", "--batch-size", "--max-side",
                   "--recursive", "--cache-dir", "--no-cache", "--quiet"):
        assert option in r.stdout, option


def test_models_command(runner):
    r = runner.invoke(app, ["models", "--filter", "ViT-B-32"], terminal_width=200)
    assert r.exit_code == 0 and "laion2b_s34b_b79k" in r.stdout
    r = runner.invoke(app, ["models"], terminal_width=200)
    rows = [line for line in r.stdout.splitlines() if line.startswith("│")]
    assert "ovtools-shapes" in rows[0] and "shipped" in rows[0]  # what works offline comes first
    assert "download on first use" in r.stdout
    r = runner.invoke(app, ["models", "--classes", "--templates", "--presets"], terminal_width=200)
    assert r.exit_code == 0
    for name in ("coco", "openai_imagenet", "detect-default"):
        assert name in r.stdout


@pytest.mark.slow
def test_subprocess_with_model_configs_env(photos, tmp_path):
    """The installed entry point, with tiny architectures registered through $OVTOOLS_MODEL_CONFIGS."""
    env = {**os.environ, "OVTOOLS_MODEL_CONFIGS": str(ASSETS), "OVTOOLS_CACHE_DIR": str(tmp_path / "cache")}
    out = tmp_path / "o.json"
    cmd = [sys.executable, "-c", "from ovtools.cli import main; main()", "classify", str(photos / "a.jpg"),
           "--labels", "zebra, goat", *TINY, "-o", str(out)]
    p = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    assert json.loads(out.read_text())["results"][0]["top_k"]
    env["OVTOOLS_MODEL_CONFIGS"] = str(tmp_path / "missing")
    p = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)
    assert p.returncode == 2 and "OVTOOLS_MODEL_CONFIGS" in p.stderr


def test_folder_of_odd_image_suffixes_all_processed_and_non_images_listed(runner, tmp_path):
    from PIL import features

    d = tmp_path / "odd"
    d.mkdir()
    rng = np.random.default_rng(1)
    last = ("d.avif", "AVIF") if features.check("avif") else ("d.qoi", "QOI")
    for name, fmt in (("a.jfif", "JPEG"), ("b.jpe", "JPEG"), ("c.JPG", "JPEG"), last):
        Image.fromarray(rng.integers(0, 255, (32, 32, 3), dtype=np.uint8)).save(d / name, fmt)
    (d / "notes.txt").write_text("not an image")
    out = tmp_path / "out.json"
    r = run(runner, d, "--labels", "zebra, goat", *TINY, "-o", out, "-q")
    assert r.exit_code == 0, r.output
    doc = json.loads(out.read_text())
    assert [Path(x["image"]).name for x in doc["results"]] == ["a.jfif", "b.jpe", "c.JPG", last[0]]
    assert doc["errors"] == [] and doc["skipped"] == [str(d / "notes.txt")]
    (line,) = [ln for ln in r.stderr.splitlines() if "non-image" in ln]
    assert line.startswith("skipped 1 non-image file(s) (.txt)")
