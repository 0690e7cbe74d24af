"""The transforms.json written by datagen, read by nerfstudio's own ``nerfstudio-data`` parser.

A known 3D point — a pixel back-projected with its depth by ovtools' OpenCV camera — must lie on
nerfstudio's ray through that pixel, at the distance nerfstudio's depth image (read with the
method's dataset) says, in the dataparser's normalised frame.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from .conftest import NEEDS_NERFSTUDIO

pytest.importorskip("nerfstudio", reason=NEEDS_NERFSTUDIO)

from nerfstudio.data.dataparsers.nerfstudio_dataparser import NerfstudioDataParserConfig  # noqa: E402

from ovtools.nerf.data import FieldDataset  # noqa: E402
from ovtools.scene3d import RGBDFolder  # noqa: E402


@pytest.fixture(scope="module")
def parsed(rgbd_scene):
    _, folder = rgbd_scene
    parser = NerfstudioDataParserConfig(data=folder, depth_unit_scale_factor=1e-3).setup()
    return folder, parser.get_dataparser_outputs(split="train")


def test_datagen_writes_transforms_json_beside_the_rgbd_folder(rgbd_scene):
    _, folder = rgbd_scene
    meta = json.loads((folder / "transforms.json").read_text())
    assert len(meta["frames"]) == 8
    assert all((folder / f["file_path"]).is_file() and (folder / f["depth_file_path"]).is_file()
               for f in meta["frames"])
    assert meta["depth_unit_scale_factor"] == pytest.approx(1e-3)


def test_nerfstudio_ray_through_a_pixel_hits_the_back_projected_point(parsed):
    folder, out = parsed
    frames = {f.name: f for f in RGBDFolder(folder)}
    dataset = FieldDataset(out)
    assert dataset.has_depth
    T = out.dataparser_transform.double().numpy()  # (3, 4) world → model frame (before scaling)
    scale = float(out.dataparser_scale)
    checked = 0
    for i, fname in enumerate(out.image_filenames):
        frame = frames[fname.stem]
        depth = frame.depth
        rows, cols = np.nonzero(depth > 0)
        k = len(rows) // 2
        r, c = int(rows[k]), int(cols[k])
        z = float(depth[r, c])
        cam_pt = z * np.linalg.inv(frame.K_color) @ np.array([c, r, 1.0])  # OpenCV: pixel centres at integers
        world = frame.pose[:3, :3] @ cam_pt + frame.pose[:3, 3]
        model_pt = scale * (T[:, :3] @ world + T[:, 3])

        rays = out.cameras.generate_rays(camera_indices=i, coords=torch.tensor([[r + 0.5, c + 0.5]]))
        o, d = rays.origins[0].double().numpy(), rays.directions[0].double().numpy()
        v = model_pt - o
        t = float(v @ d)
        assert np.linalg.norm(v - t * d) < 1e-4 * max(1.0, t), f"image {i}: the point is off nerfstudio's ray"
        # nerfstudio's depth image (z-depth, model units) × |direction in camera frame| = distance along the ray
        d_img = float(dataset.get_metadata({"image_idx": i})["depth_image"][r, c, 0])
        norm = float(rays.metadata["directions_norm"][0, 0])
        assert d_img * norm == pytest.approx(t, rel=2e-3)
        checked += 1
    assert checked == len(out.image_filenames) >= 6
