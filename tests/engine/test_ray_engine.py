"""The Ray engine gives the local engine's rows, byte for byte, on the evaluation world (2-CPU local cluster).

Runs in the normal test command (marker ``ray``; skipped only where ``ovtools[ray]`` is not installed).
"""

from __future__ import annotations

import json
import logging

import pytest
from typer.testing import CliRunner

from ovtools.cli import app
from ovtools.datasets.export import write_scenes
from ovtools.engine import EngineConfig, run_batch

ray = pytest.importorskip("ray")
pytestmark = pytest.mark.ray


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """``ovtools datagen DIR --kind scenes --n 4 --seed 1``, plus a corrupt image next to it."""
    d = tmp_path_factory.mktemp("world")
    write_scenes(d, 4, seed=1)
    (d / "corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\n not an image")
    return d


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    cache = tmp_path_factory.mktemp("ray-text-cache")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level=logging.WARNING,
             runtime_env={"env_vars": {"OVTOOLS_CACHE_DIR": str(cache)}})
    yield
    ray.shutdown()


def test_ray_rows_equal_local_rows(world, cluster, tmp_path):
    inputs = [world / "images", world / "corrupt.png", tmp_path / "missing.png"]
    local = run_batch("detect", inputs, tmp_path / "local.jsonl", preset="detect-shapes",
                      config=EngineConfig(progress=False, ray_batch_size=2))
    on_ray = run_batch("detect", inputs, tmp_path / "ray.jsonl", preset="detect-shapes",
                       config=EngineConfig(engine="ray", concurrency=2, ray_batch_size=2, progress=False))
    lines = (tmp_path / "ray.jsonl").read_text().splitlines()
    assert lines == (tmp_path / "local.jsonl").read_text().splitlines()  # same detections, same field order
    assert local.n_rows == on_ray.n_rows == 6 and local.n_errors == on_ray.n_errors == 2
    rows = [json.loads(line) for line in lines]
    assert rows[0] == {"image": str(tmp_path / "missing.png"), "error": "no such file or folder"}
    assert [r["image"].rsplit("/", 1)[-1] for r in rows[1:]] == [
        "000000.png", "000001.png", "000002.png", "000003.png", "corrupt.png"]
    assert all(r["detections"] and list(r) == ["image", "image_size", "detections"] for r in rows[1:5])
    assert "cannot decode" in rows[5]["error"] or "not an image" in rows[5]["error"]

    # the CLI's --engine wiring gives the same file (--engine local here: a second Ray run would add ~20 s)
    out = tmp_path / "cli.jsonl"
    r = CliRunner().invoke(app, ["detect", str(world / "images"), "--preset", "detect-shapes", "--engine", "local",
                                 "--output", str(out)], catch_exceptions=False)
    assert r.exit_code == 0, r.output
    assert out.read_text().splitlines() == lines[1:5]


def test_cluster_failures_name_their_cause():
    """An actor that cannot build its pipeline surfaces as the pipeline's error, not Ray's wrapper."""
    from ovtools.engine.ray import root_cause
    from ovtools.errors import UnknownNameError

    wrapped = ray.exceptions.RayTaskError("__init__", "Traceback (most recent call last): ...",
                                          UnknownNameError("unknown model 'nope'"))
    assert root_cause(wrapped) == "UnknownNameError: unknown model 'nope'"
    text_only = ray.exceptions.RayError("The actor died because of an error raised in its creation task\n"
                                        "  File \"x.py\", line 1\novtools.errors.ConfigError: bad preset")
    assert root_cause(text_only) == "ConfigError: bad preset"
