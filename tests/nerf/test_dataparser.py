"""The RGB-D folder DataParser: cameras in nerfstudio's conventions, depth, splits, registration."""

from __future__ import annotations

import numpy as np
import pytest

from .conftest import NEEDS_NERFSTUDIO

pytest.importorskip("nerfstudio", reason=NEEDS_NERFSTUDIO)

import torch  # noqa: E402

from ovtools.nerf.dataparser import (  # noqa: E402
    RGBDFolderDataParserConfig,
    from_model_frame,
    is_rgbd_folder,
    to_model_frame,
)
from ovtools.scene3d import RGBDFolder, RGBDFrame, write_rgbd_folder  # noqa: E402


def _pixel_point(frame, u, v):
    """World point (3,) seen at depth pixel (u, v) of an ovtools frame (OpenCV camera, pixel centres at integers)."""
    z = float(frame.depth[v, u])
    K = frame.K_depth
    cam = np.array([(u - K[0, 2]) * z / K[0, 0], (v - K[1, 2]) * z / K[1, 1], z, 1.0])
    return (frame.pose @ cam)[:3]


def _ray_distance(outputs, cam_index, u, v, point_world):
    """Distance of the field-frame point to nerfstudio's ray through pixel (u, v), and the depth along the ray."""
    cams = outputs.cameras
    ray = cams.generate_rays(camera_indices=cam_index, coords=torch.tensor([[v + 0.5, u + 0.5]]))
    o, d = ray.origins[0].double().numpy(), ray.directions[0].double().numpy()
    p = to_model_frame(point_world[None], outputs.dataparser_transform.numpy(), outputs.dataparser_scale)[0]
    t = float((p - o) @ d)
    return float(np.linalg.norm(o + t * d - p)), t


def test_known_point_projects_through_its_pixel(rgbd_only):
    _, folder = rgbd_only
    assert is_rgbd_folder(folder) and not is_rgbd_folder(folder / "color")
    parser = RGBDFolderDataParserConfig(data=folder, eval_interval=0).setup()
    out = parser.get_dataparser_outputs("train")
    scan = RGBDFolder(folder)
    assert len(out.image_filenames) == len(scan) == 8
    for k in (0, 5):
        f = scan[k]
        v, u = np.argwhere(f.depth > 0)[len(np.argwhere(f.depth > 0)) // 3]
        X = _pixel_point(f, u, v)
        dist, t = _ray_distance(out, k, u, v, X)
        assert dist < 1e-4 * out.dataparser_scale + 1e-5
        assert t > 0  # in front of the camera: OpenGL looks down -z, the OpenCV +z became -z
        # depth supervision: the depth file, in metres x scale, is the distance along the optical axis
        depth = np.asarray(
            __import__("nerfstudio.data.utils.data_utils", fromlist=["x"]).get_depth_image_from_path(
                out.metadata["depth_filenames"][k], 120, 160, out.metadata["depth_unit_scale_factor"]))[..., 0]
        assert depth[v, u] == pytest.approx(f.depth[v, u], abs=1e-3)
    pts = np.random.default_rng(0).normal(size=(5, 3))
    back = from_model_frame(to_model_frame(pts, out.dataparser_transform.numpy(), 0.3),
                            out.dataparser_transform.numpy(), 0.3)
    assert np.allclose(back, pts)
    assert float(out.cameras.camera_to_worlds[:, :3, 3].abs().max()) == pytest.approx(1.0, abs=1e-5)


def test_held_out_views(rgbd_only):
    _, folder = rgbd_only
    parser = RGBDFolderDataParserConfig(data=folder, eval_interval=4).setup()
    train, test = parser.get_dataparser_outputs("train"), parser.get_dataparser_outputs("test")
    assert test.metadata["frame_indices"] == [2, 6]
    assert sorted(train.metadata["frame_indices"] + test.metadata["frame_indices"]) == list(range(8))
    assert np.allclose(train.dataparser_transform, test.dataparser_transform)  # one frame for both splits
    with pytest.raises(ValueError, match="unknown split"):
        parser.get_dataparser_outputs("bogus")


def test_two_cameras_are_registered(rgbd_only, tmp_path):
    """A depth camera with other intrinsics, size and a 5 cm offset: depth is re-projected into the colour camera."""
    _, folder = rgbd_only
    scan = RGBDFolder(folder)
    E = np.eye(4)
    E[0, 3] = 0.05  # colour camera 5 cm to the depth camera's left: x_color = x_depth + 0.05
    Kd = scan.K_color * [[0.5], [0.5], [1]]
    frames = []
    for f in scan:
        d = f.depth[::2, ::2]
        frames.append(RGBDFrame(f.color, d, f.pose, f.K_color, Kd, f.name, E))
    two = write_rgbd_folder(tmp_path / "two", frames)
    parser = RGBDFolderDataParserConfig(data=two, eval_interval=0, cache_dir=tmp_path / "cache").setup()
    out = parser.get_dataparser_outputs("train")
    assert out.image_filenames[0].parent.parent.parent == tmp_path / "cache"
    assert out.metadata["depth_unit_scale_factor"] == 1.0
    reg = np.load(out.metadata["depth_filenames"][3])
    assert reg.shape == (120, 160) and (reg > 0).mean() > 0.04  # a quarter of the pixels of a half-size map
    f2 = RGBDFolder(two)[3]
    v, u = np.argwhere(f2.depth > 0)[100]
    X = _pixel_point(f2, u, v)  # the world point, through the depth camera
    Xc = np.linalg.inv(f2.pose @ np.linalg.inv(E)) @ np.r_[X, 1]  # in the colour camera
    uc, vc = (f2.K_color @ (Xc[:3] / Xc[2]))[:2]
    dist, _ = _ray_distance(out, 3, uc, vc, X)
    assert dist < 2e-3 * out.dataparser_scale  # colour pixel's ray passes the point (sub-pixel rounding aside)
    assert reg[int(round(vc)), int(round(uc))] == pytest.approx(Xc[2], abs=5e-3)
    again = parser.get_dataparser_outputs("train")  # the cache is reused, not rewritten
    assert again.metadata["depth_filenames"] == out.metadata["depth_filenames"]


def test_missing_folder_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        RGBDFolderDataParserConfig(data=tmp_path / "nope").setup().get_dataparser_outputs("train")


def test_entry_point_declared_and_loadable():
    """pyproject declares the dataparser under nerfstudio's entry-point group, and the object is a specification."""
    import tomllib
    from importlib import import_module
    from pathlib import Path

    from nerfstudio.plugins.registry_dataparser import DataParserSpecification

    meta = tomllib.loads((Path(__file__).parents[2] / "pyproject.toml").read_text())
    target = meta["project"]["entry-points"]["nerfstudio.dataparser_configs"]["ovtools-rgbd"]
    module, name = target.split(":")
    spec = getattr(import_module(module), name)
    assert isinstance(spec, DataParserSpecification)
    assert isinstance(spec.config, RGBDFolderDataParserConfig)
