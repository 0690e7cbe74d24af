"""``$OVTOOLS_MODEL_CONFIGS`` is honoured by the Python API (encoder loader), not only by the CLI."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from ovtools.encoders import CLIPEncoder
from ovtools.encoders.loading import MODEL_CONFIGS_ENV, register_model_configs
from ovtools.errors import ConfigError, UnknownNameError
from tests.conftest import ASSETS


def _config_folder(tmp_path, name):
    folder = tmp_path / "archs"
    folder.mkdir()
    shutil.copy(ASSETS / "ovtools-test-vit.json", folder / f"{name}.json")
    return folder


def test_encoder_and_pipeline_honour_the_variable(tmp_path, monkeypatch):
    name = "ovtools-env-vit-a"  # a name nothing else registers
    monkeypatch.delenv(MODEL_CONFIGS_ENV, raising=False)
    with pytest.raises(UnknownNameError, match=name):
        CLIPEncoder(name, None, device="cpu")
    monkeypatch.setenv(MODEL_CONFIGS_ENV, str(_config_folder(tmp_path, name)))
    enc = CLIPEncoder(name, None, device="cpu")
    assert enc.embed_dim == 64 and enc.encode_texts(["a cat"]).shape == (1, 64)

    from ovtools.pipelines import ClassifyPipeline

    pipe = ClassifyPipeline(None, model=name, pretrained=None, device="cpu", labels=["cat", "dog"])
    res = pipe(np.zeros((32, 32, 3), np.uint8))
    assert res.logits.shape == (1, 2)
    assert register_model_configs() == []  # already registered: nothing added twice


def test_a_single_json_file_and_a_path_list(tmp_path, monkeypatch):
    folder = _config_folder(tmp_path, "ovtools-env-vit-b")
    other = tmp_path / "ovtools-env-vit-c.json"
    shutil.copy(ASSETS / "ovtools-test-vit.json", other)
    import os

    monkeypatch.setenv(MODEL_CONFIGS_ENV, os.pathsep.join([str(folder / "ovtools-env-vit-b.json"), str(other)]))
    assert CLIPEncoder("ovtools-env-vit-b", None, device="cpu").embed_dim == 64
    assert CLIPEncoder("ovtools-env-vit-c", None, device="cpu").embed_dim == 64


@pytest.mark.parametrize("kind,message", [("missing", "does not exist"), ("txt", "not a folder or a .json"),
                                          ("bad_json", "not a JSON architecture config")])
def test_bad_entries_raise_a_config_error_naming_the_variable(tmp_path, monkeypatch, kind, message):
    path = tmp_path / {"missing": "nope", "txt": "arch.txt", "bad_json": "arch.json"}[kind]
    if kind != "missing":
        path.write_text("{not json")
    monkeypatch.setenv(MODEL_CONFIGS_ENV, str(path))
    with pytest.raises(ConfigError, match=message) as e:
        CLIPEncoder("ovtools-test-vit", None, device="cpu")
    assert MODEL_CONFIGS_ENV in str(e.value) and str(path) in str(e.value)
