"""What a user sees around the results: stage lines off a terminal, pictures at the original size and
named by command, argument mistakes refused before the model loads, a warning for random weights,
``-h`` and ``--version``."""

from __future__ import annotations

import time

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from ovtools import __version__
from ovtools.cli import app
from ovtools.prompts import CANONICAL_NEGATIVES

TINY = ["--model", "ovtools-test-vit", "--pretrained", "none", "--device", "cpu", "--templates", "single"]
FAST = [*TINY, "--scoring", "dense", "--proposals", "windows", "--threshold", "0",
        "--labels", ", ".join(CANONICAL_NEGATIVES)]


@pytest.fixture
def photos(tmp_path):
    d = tmp_path / "photos"
    d.mkdir()
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 255, (200, 300, 3), dtype=np.uint8)).save(d / "a.png")
    Image.fromarray(rng.integers(0, 255, (64, 64, 3), dtype=np.uint8)).save(d / "b.png")
    return d


def invoke(*args):
    return CliRunner().invoke(app, [*map(str, args)], catch_exceptions=False)


def test_missing_input_is_a_usage_error_before_the_model_loads(photos):
    t0 = time.perf_counter()
    r = invoke("detect", photos / "a.png", photos / "nope.png", *FAST)
    assert r.exit_code == 2 and "nope.png" in r.stderr and "no such file" in r.stderr
    assert "loading" not in r.stderr  # refused before any model was built
    r = invoke("classify", "'photos/*.jpeg'", *TINY, "--labels", "a")
    assert r.exit_code == 2 and "matches no image" in r.stderr
    assert time.perf_counter() - t0 < 30


def test_stage_lines_progress_and_random_weights_warning_off_a_terminal(photos, tmp_path):
    r = invoke("detect", photos, *FAST, "-o", tmp_path / "d.json")
    assert r.exit_code == 0, r.output
    err = r.stderr
    assert "detect: loading ovtools-test-vit (random weights)" in err
    assert "random weights" in err and "mean nothing" in err
    assert "detect: 2/2 images" in err  # a line per stage / at the end, though stderr is no terminal
    quiet = invoke("detect", photos, *FAST, "--quiet")
    assert quiet.exit_code == 0 and "detect:" not in quiet.stderr and quiet.stdout == ""


def test_pictures_at_the_original_size_and_named_by_command(photos, tmp_path):
    vis = tmp_path / "vis"
    r = invoke("detect", photos, *FAST, "--max-side", "64", "--save-vis", vis)
    assert r.exit_code == 0, r.output
    r = invoke("classify", photos, *TINY, "--labels", "a, b", "--save-vis", vis)
    assert r.exit_code == 0, r.output
    names = sorted(p.name for p in vis.iterdir())
    assert names == ["a.classify.png", "a.detect.png", "b.classify.png", "b.detect.png"]  # nothing replaced
    assert Image.open(vis / "a.detect.png").size == (300, 200)  # processed at 64 px, drawn at the original size
    r = invoke("detect", photos / "a.png", *FAST, "--save-vis", tmp_path / "small.png", "--vis-max-side", "100")
    assert r.exit_code == 0 and Image.open(tmp_path / "small.png").size == (100, 67)


def test_short_help_and_version():
    r = invoke("--version")
    assert r.exit_code == 0 and r.stdout.strip() == f"ovtools {__version__}"
    r = CliRunner().invoke(app, ["detect", "-h"], env={"COLUMNS": "200"})
    text = " ".join(r.stdout.split())  # click wraps help text
    assert r.exit_code == 0 and "--threshold" in text and "Default: 0.3 (preset detect-default)" in text
    assert "--contained-fraction" in text and "…" not in text  # long option names are never cut


def test_no_third_party_deprecation_notice_before_output():
    """timm 0.6.7 (pinned by nerfstudio, imported by open_clip) printed a torch.jit.script FutureWarning before
    every command's output; the help of an image command and of `field` must start with their usage line."""
    import subprocess
    import sys

    for args in (["detect", "-h"], ["field", "train", "-h"]):
        res = subprocess.run([sys.executable, "-m", "ovtools", *args], capture_output=True, text=True, timeout=300)
        assert res.returncode == 0, res.stderr
        assert "Warning" not in res.stderr and res.stdout.startswith("Usage:"), res.stderr
