"""Regression tests for the bad inputs a tester found: each gives a clear error, never a deep traceback."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from ovtools.cli import app
from ovtools.encoders import CLIPEncoder
from ovtools.errors import ConfigError, WeightsUnavailableError
from ovtools.pipelines import ClassifyPipeline, DetectPipeline
from tests.conftest import TINY_VIT

TINY = ["--model", TINY_VIT, "--pretrained", "none"]


@pytest.fixture
def img(tmp_path):
    p = tmp_path / "in.png"
    Image.fromarray(np.full((40, 50, 3), 120, np.uint8)).save(p)
    return p


@pytest.mark.parametrize("content", [b"garbage" * 10, b""])
@pytest.mark.parametrize("suffix", [".safetensors", ".pt", ".bin"])
def test_corrupt_checkpoint_is_a_clear_error(tmp_path, content, suffix):
    bad = tmp_path / f"w{suffix}"
    bad.write_bytes(content)
    with pytest.raises(WeightsUnavailableError, match="cannot be read"):
        CLIPEncoder(TINY_VIT, str(bad), device="cpu")


def test_checkpoint_that_is_not_a_state_dict(tmp_path):
    import torch

    bad = tmp_path / "list.pt"
    torch.save([1, 2], bad)
    with pytest.raises(WeightsUnavailableError, match="state dict"):
        CLIPEncoder(TINY_VIT, str(bad), device="cpu")


def test_non_string_model_or_labels(tiny_encoder):
    with pytest.raises(TypeError, match="model must be"):
        CLIPEncoder(5, None, device="cpu")
    pipe = ClassifyPipeline(None, encoder=tiny_encoder, labels="a, b")
    with pytest.raises(TypeError, match="labels must be strings"):
        pipe.set_labels([1, 2])
    with pytest.raises(ValueError, match="empty"):
        pipe.set_labels(["  ", "red circle"])
    with pytest.raises(TypeError, match="list of images"):
        pipe.classify_batch(np.zeros((8, 8, 3), np.uint8))


@pytest.mark.parametrize("key,value", [("nms_iou", None), ("context_padding", 1000.0), ("multi_label", "maybe"),
                                       ("score_threshold", "high"), ("min_box_size", -1.0)])
def test_bad_detection_settings_are_config_errors(tiny_encoder, key, value):
    with pytest.raises(ConfigError, match=key):
        DetectPipeline(None, encoder=tiny_encoder, labels="a", **{key: value})


def test_mps_without_mps_is_usage_error(img):
    import torch

    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        pytest.skip("this machine has MPS")
    r = CliRunner().invoke(app, ["classify", str(img), "-l", "a, b", *TINY, "--device", "mps"])
    assert r.exit_code == 2 and "MPS is not available" in r.output


@pytest.mark.skipif(os.geteuid() == 0 if hasattr(os, "geteuid") else False, reason="root can write anywhere")
def test_unwritable_output_folder_is_refused_up_front(img, tmp_path):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    r = CliRunner().invoke(app, ["classify", str(img), "-l", "a, b", *TINY, "-o", str(ro / "x.json")])
    assert r.exit_code == 2 and "cannot write" in r.output


def test_output_under_a_file_is_refused_up_front(img):
    r = CliRunner().invoke(app, ["classify", str(img), "-l", "a, b", *TINY, "-o", str(img / "x.json")])
    assert r.exit_code == 2 and "is a file, not a folder" in r.output


def test_output_and_save_vis_naming_the_same_file(img, tmp_path):
    same = tmp_path / "out.png"
    r = CliRunner().invoke(app, ["detect", str(img), "-l", "a", *TINY, "-o", str(same), "--save-vis", str(same)])
    assert r.exit_code == 2 and "same file" in r.output
    assert not same.exists()


@pytest.mark.parametrize("option", ["--classes", "--templates", "--preset"])
def test_missing_yaml_path_says_file_not_found(img, option):
    extra = [] if option == "--classes" else ["-l", "a"]
    r = CliRunner().invoke(app, ["classify", str(img), *TINY, *extra, option, "/nonexistent/x.yaml"])
    assert r.exit_code == 2 and "file not found: /nonexistent/x.yaml" in r.output


@pytest.mark.parametrize("doc", [[], {"images": [{"id": 1}], "categories": [{"id": 1, "name": "a"}],
                                      "annotations": [{"id": 1, "image_id": 1, "category_id": 1,
                                                       "bbox": [0, 0, -5, "x"]}]}])
def test_malformed_coco_is_usage_error(tmp_path, doc):
    p = tmp_path / "bad.json"
    p.write_text(json.dumps(doc))
    r = CliRunner().invoke(app, ["eval", str(p), *TINY, "-l", "a"])
    assert r.exit_code == 2 and "bad.json" in r.output


def test_preset_of_the_other_task_says_so(img):
    r = CliRunner().invoke(app, ["classify", str(img), "--preset", "detect-shapes", "-l", "a"])
    assert r.exit_code == 2 and "for the 'detect' pipeline, not 'classify'" in r.output


def test_usage_error_prints_brackets_as_written(capsys):
    """Rich markup must not eat bracketed text of a message ("ovtools[nerf]", paths with [ ])."""
    import typer

    from ovtools.cli import options as opt

    with pytest.raises(typer.Exit) as e:
        opt.usage_error('pip install "ovtools[nerf]" for /tmp/a[b]/c')
    assert e.value.exit_code == 2
    assert 'pip install "ovtools[nerf]" for /tmp/a[b]/c' in capsys.readouterr().err


def test_a_bad_value_is_blamed_on_its_own_option_and_an_exclusive_bound_is_in_the_help(tmp_path):
    """The config error lists the options given ("with the options cascade_nms_iou, scoring"): the flag prefixed
    is the one of the setting the error is about, not the first option named in that list."""
    Image.fromarray(np.zeros((32, 32, 3), np.uint8)).save(tmp_path / "a.png")
    res = CliRunner().invoke(app, ["detect", str(tmp_path / "a.png"), "--preset", "detect-shapes", "--labels", "cat",
                                   "--scoring", "cascade", "--nms-iou", "0"])
    assert res.exit_code == 2
    assert "Error: --nms-iou: " in res.output and "must be > 0.0" in res.output, res.output
    helptext = " ".join(CliRunner().invoke(app, ["detect", "--help"], env={"COLUMNS": "200"}).output.split())
    assert "the weaker is removed. Must be > 0.0." in helptext
    # a nullable number takes `null` and checks its range itself, before anything loads
    res = CliRunner().invoke(app, ["detect", str(tmp_path / "a.png"), "--preset", "detect-shapes", "--labels", "cat",
                                   "--scoring", "cascade", "--cascade-nms-iou", "0"])
    assert res.exit_code == 2 and "'--cascade-nms-iou': 0 is out of range: must be > 0.0 and <= 1.0 (or null)" in \
        " ".join(res.output.split()), res.output
    assert "rank order only. Must be > 0.0 and <= 1.0." in helptext and "<float|null>" in helptext


@pytest.mark.parametrize(("command", "lines", "message"), [
    ("detect", "proposals: segments\nproposal_options: {max_side: -5}",
     "segments: max_side must be a finite number >= 16 or None, got -5"),
    ("detect", "proposals: hybrid\nproposal_options: {windows: {overlap: 1.5}}", "windows: overlap must be in [0, 1)"),
    ("detect", "proposals: hybrid\nproposal_options: {max_boxes: -1}",
     "hybrid: max_boxes must be a finite number >= 1"),
    ("segment", "proposals: regions\nproposal_options: {dedup_iou: .nan}", "regions: dedup_iou must be in (0, 1]"),
    ("segment", "proposals: sam\nproposal_options: {device: nonsense}", "SAM device='nonsense' is not a torch device"),
])
def test_preset_proposal_options_out_of_range_exit_2(img, tmp_path, command, lines, message):
    """A preset's proposal_options out of range: one line naming the source and option, exit 2 (max_side -5
    used to run on a 1x1 image and exit 0 with nothing found)."""
    preset = tmp_path / "p.yaml"
    preset.write_text(f"task: {command}\n{lines}\n")
    r = CliRunner().invoke(app, [command, str(img), "--preset", str(preset), *TINY, "-l", "a, b"])
    assert r.exit_code == 2, r.output
    assert message in r.output and "Traceback" not in r.output
