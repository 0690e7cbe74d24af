"""NeRF tests: skipped with a reason where nerfstudio (the ``nerf`` extra) is not importable.

They run in the README's test command, which installs the ``nerf`` extra (``pip install -e ".[dev]"``)::

    python3 -m pytest tests/nerf -q
"""

from __future__ import annotations

import pytest

#: Every test module starts with ``pytest.importorskip("nerfstudio", reason=NEEDS_NERFSTUDIO)``.
NEEDS_NERFSTUDIO = 'needs nerfstudio: pip install "ovtools[nerf]"'


@pytest.fixture(scope="session")
def rgbd_scene(tmp_path_factory):
    """A generated 3D-world scene (4 objects, 20k points) and its 8-view ScanNet-layout RGB-D folder (120 x 160),
    with the ``transforms.json`` datagen writes beside it (read by nerfstudio-data)."""
    from ovtools.datasets.scenes3d import generate_scenes3d
    from ovtools.datasets.views3d import write_scene_rgbd

    scene = next(generate_scenes3d(1, seed=5, points=20_000, min_objects=4, max_objects=4))
    folder = write_scene_rgbd(scene, tmp_path_factory.mktemp("rgbd") / "scene", 8, size=(120, 160))
    return scene, folder


@pytest.fixture(scope="session")
def rgbd_only(rgbd_scene, tmp_path_factory):
    """:func:`rgbd_scene` without ``transforms.json``: read as an RGB-D folder by ovtools' dataparser (frame 4 is
    held out, 7 train)."""
    import shutil

    scene, folder = rgbd_scene
    copy = tmp_path_factory.mktemp("rgbd-only") / "scene"
    shutil.copytree(folder, copy, ignore=shutil.ignore_patterns("transforms.json"))
    return scene, copy


@pytest.fixture(scope="session")
def tiny_run(rgbd_only, tmp_path_factory):
    """A 2-iteration ovtools-field-small run on :func:`rgbd_only`, trained through ``ovtools field train``
    (``train_field``) with the shipped 3D-world CLIP; its CLIP-target and text caches in tmp; what the command
    printed is kept beside the run as ``train-output.txt``."""
    import os

    from typer.testing import CliRunner

    from ovtools.cli import app

    tmp = tmp_path_factory.mktemp("field")
    old = {k: os.environ.get(k) for k in ("OVTOOLS_PYRAMID_DIR", "OVTOOLS_CACHE_DIR")}
    os.environ["OVTOOLS_PYRAMID_DIR"], os.environ["OVTOOLS_CACHE_DIR"] = str(tmp / "pyramid"), str(tmp / "cache")
    try:
        res = CliRunner().invoke(app, ["field", "train", str(rgbd_only[1]), "--out", str(tmp / "run"),
                                       "--model", "ovtools-shapes", "--pretrained", "shapes3d", "--iterations", "2"])
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    assert res.exit_code == 0, res.output
    (tmp / "train-output.txt").write_text(res.output)  # what the command printed (test_method.py reads it)
    return tmp / "run"


@pytest.fixture(scope="session")
def tiny_field(tiny_run):
    """The tiny run loaded by :class:`~ovtools.nerf.pipeline.FeatureFieldPipeline` (renders 24 px wide)."""
    from ovtools.nerf.pipeline import FeatureFieldPipeline

    return FeatureFieldPipeline(tiny_run, "red cube, blue sphere, floor", render_side=24)
