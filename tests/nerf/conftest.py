"""NeRF tests: skipped with a reason where nerfstudio (the ``nerf`` extra) is not importable.

Run them with the nerfstudio environment::

    PYTHONPATH=$PWD /work/venv-nerf/bin/python -m pytest tests/nerf -q
"""

from __future__ import annotations

import pytest

#: Every test module starts with ``pytest.importorskip("nerfstudio", reason=NEEDS_NERFSTUDIO)``.
NEEDS_NERFSTUDIO = 'needs nerfstudio: pip install "ovtools[nerf]" (here: /work/venv-nerf/bin/python)'


@pytest.fixture(scope="session")
def rgbd_scene(tmp_path_factory):
    """A generated 3D-world scene (4 objects, 20k points) and its 8-view ScanNet-layout RGB-D folder (120 x 160)."""
    from ovtools.datasets.scenes3d import generate_scenes3d
    from ovtools.datasets.views3d import write_scene_rgbd

    scene = next(generate_scenes3d(1, seed=5, points=20_000, min_objects=4, max_objects=4))
    folder = write_scene_rgbd(scene, tmp_path_factory.mktemp("rgbd") / "scene", 8, size=(120, 160))
    return scene, folder
