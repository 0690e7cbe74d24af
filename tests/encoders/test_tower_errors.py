"""A model whose timm / Hugging Face tower cannot be built (package missing or too old, config not cached offline)
is one clear error naming the model, also with random weights; the CLI prints it as one line, exit 2."""

from __future__ import annotations

import json

import numpy as np
import open_clip
import pytest
from PIL import Image
from typer.testing import CliRunner

from ovtools.cli import app
from ovtools.encoders.loading import load_clip
from ovtools.errors import MissingDependencyError

NAME = "ovtools-test-missing-timm-tower"


@pytest.fixture(scope="module")
def missing_tower(tmp_path_factory):
    folder = tmp_path_factory.mktemp("configs")
    cfg = {"embed_dim": 64,
           "vision_cfg": {"timm_model_name": "ovtools_no_such_timm_model", "timm_model_pretrained": False,
                          "timm_pool": "avg", "timm_proj": "linear", "image_size": 64},
           "text_cfg": {"context_length": 16, "vocab_size": 49408, "width": 64, "heads": 2, "layers": 2}}
    (folder / f"{NAME}.json").write_text(json.dumps(cfg))
    open_clip.add_model_config(folder)
    return NAME


def test_load_clip_names_the_model_and_its_tower(missing_tower):
    with pytest.raises(MissingDependencyError, match=rf"model '{NAME}' has a timm tower that could not be built"):
        load_clip(missing_tower, None, device="cpu")


def test_cli_prints_one_error_line_and_exits_2(missing_tower, tmp_path):
    Image.fromarray(np.zeros((32, 32, 3), np.uint8)).save(tmp_path / "a.png")
    res = CliRunner().invoke(app, ["detect", str(tmp_path / "a.png"), "--labels", "cat", "--model", missing_tower,
                                   "--pretrained", "none"])
    assert res.exit_code == 2, res.output
    assert "timm tower that could not be built" in res.output and "Traceback" not in res.output
