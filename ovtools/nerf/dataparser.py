"""A nerfstudio DataParser for posed RGB-D folders in the ScanNet layout, read by ovtools' own reader.

Frames come from :class:`ovtools.scene3d.RGBDFolder`, so everything it handles holds here too:
depth units (``_info.txt`` / ``depth_scale``), colour and depth cameras with other intrinsics or an
extrinsic between them, OpenCV distortion, ``-inf`` poses of lost tracking.

Frames and conventions:

* ovtools poses are camera-to-world with OpenCV camera axes (x right, y down, z forward);
  nerfstudio wants OpenGL axes (x right, y up, z backward): ``c2w_gl = c2w_cv @ diag(1, -1, -1, 1)``
  (:func:`opencv_to_opengl`).
* ovtools intrinsics put pixel centres at integer coordinates (OpenCV); nerfstudio puts them at
  ``+0.5``, so ``cx``/``cy`` move by half a pixel.
* The cameras are those of the colour images (``pose @ inv(color_from_depth)``).
* Poses are centred (``center_method``) and scaled so that every camera centre lies in [-1, 1]
  (nerfstudio's ScanNet parser does the same); the run saves that ``dataparser_transform`` (3, 4)
  and ``dataparser_scale`` and :func:`to_model_frame` applies them: ``x_model = scale * (R x + t)``.

Depth for depth supervision: ``metadata["depth_filenames"]`` and ``["depth_unit_scale_factor"]``
as nerfstudio's ``DepthDataset`` reads them.  A folder whose 16-bit depth PNGs already match the
colour images (no distortion, one camera centre, depth intrinsics = colour intrinsics rescaled) is
used as it is; any other folder is *registered* once into a cache (undistorted colour PNGs, depth
re-projected into the colour camera as float32 metres ``.npy``, 0 = no depth), keyed by the
folder's files, so training and later ``eval_setup`` read the same frames.

Held-out views: every ``eval_interval``-th frame (``i % eval_interval == eval_interval // 2``) is
the ``val``/``test`` split, the rest is ``train``; 0 = every frame trains and is also the test split.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, Optional, Type

import numpy as np
import torch
from PIL import Image

from nerfstudio.cameras import camera_utils
from nerfstudio.cameras.cameras import Cameras, CameraType
from nerfstudio.data.dataparsers.base_dataparser import DataParser, DataParserConfig, DataparserOutputs
from nerfstudio.data.scene_box import SceneBox
from nerfstudio.plugins.registry_dataparser import DataParserSpecification

from ..prompts.cache import cache_key, default_cache_dir
from ..scene3d import Camera, RGBDFolder, RGBDFrame, read_depth, scale_intrinsics

OPENCV_TO_OPENGL = np.diag([1.0, -1.0, -1.0, 1.0])
_REGISTERED = "frames-v1"  # bump when the registered layout changes


def is_rgbd_folder(path: str | Path) -> bool:
    """Whether ``path`` is a folder in the ScanNet layout (``color/ depth/ pose/ intrinsic/``)."""
    p = Path(path)
    return p.is_dir() and all((p / d).is_dir() for d in ("color", "depth", "pose", "intrinsic"))


def opencv_to_opengl(c2w: np.ndarray) -> np.ndarray:
    """float64 (..., 4, 4) camera-to-world with OpenGL camera axes from OpenCV ones (and back: it is an involution)."""
    return np.asarray(c2w, np.float64) @ OPENCV_TO_OPENGL


def to_model_frame(points: np.ndarray, transform: np.ndarray, scale: float) -> np.ndarray:
    """Points of the data's world frame (metres) in the field's frame: ``scale * (R @ x + t)``.

    Args:
        points: (N, 3) world coordinates.
        transform: (3, 4) or (4, 4) ``dataparser_transform`` of the run.
        scale: ``dataparser_scale`` of the run.

    Returns:
        float64 (N, 3).
    """
    T = np.asarray(transform, np.float64)
    return scale * (np.asarray(points, np.float64) @ T[:3, :3].T + T[:3, 3])


def from_model_frame(points: np.ndarray, transform: np.ndarray, scale: float) -> np.ndarray:
    """Inverse of :func:`to_model_frame`: float64 (N, 3) world metres of field-frame points."""
    T = np.asarray(transform, np.float64)
    return (np.asarray(points, np.float64) / scale - T[:3, 3]) @ T[:3, :3]


def nerfstudio_cameras(cameras: Sequence[Camera], transform: np.ndarray, scale: float) -> Cameras:
    """nerfstudio :class:`Cameras` (model frame, OpenGL axes, pixel centres at +0.5) of ovtools cameras.

    Args:
        cameras: :class:`~ovtools.scene3d.Camera` s in the data's world frame (OpenCV axes, metres).
        transform: (3, 4) ``dataparser_transform`` of the run.
        scale: ``dataparser_scale`` of the run.
    """
    T = np.eye(4)
    T[:3, :4] = np.asarray(transform, np.float64)[:3, :4]
    c2w = []
    for c in cameras:
        m = T @ c.pose
        m[:3, 3] *= scale
        c2w.append(opencv_to_opengl(m)[:3, :4])
    col = lambda vals: torch.tensor(vals, dtype=torch.float32)[:, None]  # noqa: E731
    return Cameras(
        fx=col([c.K[0, 0] for c in cameras]), fy=col([c.K[1, 1] for c in cameras]),
        cx=col([c.K[0, 2] + 0.5 for c in cameras]), cy=col([c.K[1, 2] + 0.5 for c in cameras]),
        height=torch.tensor([[c.size[0]] for c in cameras]), width=torch.tensor([[c.size[1]] for c in cameras]),
        camera_to_worlds=torch.from_numpy(np.stack(c2w)).float(), camera_type=CameraType.PERSPECTIVE)


def cameras_to_ovtools(cameras: Cameras, transform: np.ndarray, scale: float) -> list[Camera]:
    """The inverse of :func:`nerfstudio_cameras`: ovtools cameras in the data's world frame (OpenCV axes, metres)."""
    T = np.eye(4)
    T[:3, :4] = np.asarray(transform, np.float64)[:3, :4]
    Tinv = np.linalg.inv(T)
    out = []
    for i in range(cameras.shape[0]):
        m = np.eye(4)
        m[:3, :4] = cameras.camera_to_worlds[i].double().cpu().numpy()
        m[:3, 3] /= scale
        pose = Tinv @ opencv_to_opengl(m)
        K = np.array([[float(cameras.fx[i]), 0.0, float(cameras.cx[i]) - 0.5],
                      [0.0, float(cameras.fy[i]), float(cameras.cy[i]) - 0.5], [0.0, 0.0, 1.0]])
        out.append(Camera(K, pose, (int(cameras.height[i]), int(cameras.width[i])), f"dataset-{i}"))
    return out


def register_depth(frame: RGBDFrame) -> np.ndarray:
    """The depth of ``frame`` as the colour camera sees it: float32 (H, W) metres at the colour size, 0 = none.

    Depth pixels are unprojected with ``K_depth``, moved by ``color_from_depth`` and projected with
    ``K_color`` (nearest pixel, the nearest surface wins).
    """
    d = frame.depth
    H, W = frame.color.shape[:2]
    v, u = np.nonzero((d > 0) & np.isfinite(d))
    z = d[v, u].astype(np.float64)
    K, Kc, E = frame.K_depth, frame.K_color, frame.color_from_depth
    cam = np.stack([(u - K[0, 2]) * z / K[0, 0], (v - K[1, 2]) * z / K[1, 1], z], 1) @ E[:3, :3].T + E[:3, 3]
    zc = cam[:, 2]
    front = zc > 1e-6
    cam, zc = cam[front], zc[front]
    cu = np.floor(Kc[0, 0] * cam[:, 0] / zc + Kc[0, 1] * cam[:, 1] / zc + Kc[0, 2] + 0.5).astype(np.int64)
    cv = np.floor(Kc[1, 1] * cam[:, 1] / zc + Kc[1, 2] + 0.5).astype(np.int64)
    inside = (cu >= 0) & (cu < W) & (cv >= 0) & (cv < H)
    cu, cv, zc = cu[inside], cv[inside], zc[inside]
    out = np.full(H * W, np.inf)
    np.minimum.at(out, cv * W + cu, zc)
    out[~np.isfinite(out)] = 0.0
    return out.reshape(H, W).astype(np.float32)


def _needs_registration(scan: RGBDFolder) -> bool:
    """Whether the folder's files cannot be given to nerfstudio as they are (see the module docs)."""
    if scan.distortion["color"] is not None or scan.distortion["depth"] is not None:
        return True
    if not np.allclose(scan.color_from_depth, np.eye(4), atol=1e-9):
        return True
    color_file, depth_file = scan.files(0)
    if depth_file.suffix.lower() != ".png":
        return True
    with Image.open(color_file) as im:
        cw, ch = im.size
    with Image.open(depth_file) as im:
        dw, dh = im.size
        if im.mode not in ("I;16", "I;16B", "I"):
            return True
    if scan.K_depth is not None and not np.allclose(scale_intrinsics(scan.K_color, (ch, cw), (dh, dw)),
                                                    scan.K_depth, atol=0.5):
        return True
    return False


def _folder_key(scan: RGBDFolder, depth_scale: float | None) -> str:
    stats = [p.stat() for p in scan.folder.rglob("*") if p.is_file()]
    return cache_key(_REGISTERED, str(scan.folder.resolve()), str(len(stats)), str(sum(s.st_size for s in stats)),
                     str(max((s.st_mtime_ns for s in stats), default=0)), str(depth_scale), ",".join(scan.names))


def registered_frames(scan: RGBDFolder, cache_dir: Path, depth_scale: float | None) -> tuple[list[Path], list[Path]]:
    """Write (once) undistorted colour PNGs and colour-registered depth ``.npy`` (metres) of every frame.

    Returns:
        ``(colour files, depth files)`` in frame order, under ``cache_dir/<key>/``.
    """
    out = cache_dir / _folder_key(scan, depth_scale)
    colors = [out / "color" / f"{n}.png" for n in scan.names]
    depths = [out / "depth" / f"{n}.npy" for n in scan.names]
    if (out / "done").is_file():
        return colors, depths
    for d in ("color", "depth"):
        (out / d).mkdir(parents=True, exist_ok=True)
    for i, f in enumerate(scan):
        tmp = colors[i].with_suffix(f".tmp{os.getpid()}.png")
        Image.fromarray(f.color).save(tmp)
        os.replace(tmp, colors[i])
        tmp = depths[i].with_suffix(f".tmp{os.getpid()}.npy")
        np.save(tmp, register_depth(f))
        os.replace(tmp, depths[i])
    (out / "done").write_text(f"{scan.folder}\n")
    return colors, depths


@dataclass
class RGBDFolderDataParserConfig(DataParserConfig):
    """A ScanNet-layout posed RGB-D folder read by :class:`ovtools.scene3d.RGBDFolder` (module docs)."""

    _target: Type = field(default_factory=lambda: RGBDFolderDataParser)
    data: Path = Path()
    """The folder holding color/, depth/, pose/ and intrinsic/."""
    depth_scale: Optional[float] = None
    """Stored depth units per metre (ScanNet 1000, TUM 5000); None = _info.txt m_depthShift, else 1000."""
    frame_skip: int = 1
    """Use every frame_skip-th frame."""
    eval_interval: int = 8
    """Every eval_interval-th frame is held out for val/test; 0 = none held out."""
    center_method: Literal["poses", "focus", "none"] = "poses"
    """How the poses are centred (nerfstudio's camera_utils.auto_orient_and_center_poses)."""
    auto_scale_poses: bool = True
    """Scale the poses so that every camera centre lies in [-1, 1]."""
    scale_factor: float = 1.0
    """Extra scale applied after auto_scale_poses."""
    scene_scale: float = 1.0
    """Half-side of the scene box (in the scaled frame)."""
    cache_dir: Optional[Path] = None
    """Where registered frames go; None = $OVTOOLS_CACHE_DIR/../nerf-frames (default ~/.cache/ovtools/nerf-frames)."""


@dataclass
class RGBDFolderDataParser(DataParser):
    """Builds nerfstudio's :class:`DataparserOutputs` from an :class:`~ovtools.scene3d.RGBDFolder`.

    Raises:
        FileNotFoundError, ValueError: as :class:`~ovtools.scene3d.RGBDFolder` (missing folder or
            sub-folder, malformed intrinsics, no valid frame); ``ValueError`` for an unknown split.
    """

    config: RGBDFolderDataParserConfig

    def split_indices(self, n: int, split: str) -> np.ndarray:
        """int64 frame indices of ``split`` (``train``; ``val``/``test`` the held-out frames) among ``n`` frames."""
        every = self.config.eval_interval
        idx = np.arange(n)
        held = (idx % every == every // 2) if every > 0 and n > 1 else np.zeros(n, bool)
        if split == "train":
            return idx[~held]
        if split in ("val", "test"):
            return idx[held] if held.any() else idx
        raise ValueError(f"unknown split {split!r}; expected train, val or test")

    def _generate_dataparser_outputs(self, split: str = "train", **kwargs) -> DataparserOutputs:
        cfg = self.config
        scan = RGBDFolder(cfg.data, depth_scale=cfg.depth_scale, frame_skip=cfg.frame_skip)
        n = len(scan)
        with Image.open(scan.files(0)[0]) as im:
            w, h = im.size
        if _needs_registration(scan):
            root = Path(cfg.cache_dir) if cfg.cache_dir is not None else default_cache_dir().parent / "nerf-frames"
            colors, depths = registered_frames(scan, root, cfg.depth_scale)
            unit = 1.0
        else:
            colors, depths = (list(x) for x in zip(*(scan.files(i) for i in range(n))))
            unit = 1.0 / read_depth(depths[0], cfg.depth_scale)[1]  # metres per stored unit
        c2w = np.stack([opencv_to_opengl(scan.pose(i) @ np.linalg.inv(scan.color_from_depth)) for i in range(n)])
        poses, transform = camera_utils.auto_orient_and_center_poses(
            torch.from_numpy(c2w).float(), method="none", center_method=cfg.center_method)
        scale = 1.0
        if cfg.auto_scale_poses:
            scale /= max(float(poses[:, :3, 3].abs().max()), 1e-6)
        scale *= cfg.scale_factor
        poses[:, :3, 3] *= scale
        idx = self.split_indices(n, split)
        m = len(idx)
        K = scan.K_color
        s = cfg.scene_scale
        cameras = Cameras(
            fx=torch.full((m, 1), float(K[0, 0])), fy=torch.full((m, 1), float(K[1, 1])),
            cx=torch.full((m, 1), float(K[0, 2]) + 0.5), cy=torch.full((m, 1), float(K[1, 2]) + 0.5),
            height=torch.full((m, 1), h), width=torch.full((m, 1), w),
            camera_to_worlds=poses[torch.from_numpy(idx)][:, :3, :4], camera_type=CameraType.PERSPECTIVE)
        return DataparserOutputs(
            image_filenames=[Path(colors[i]) for i in idx], cameras=cameras,
            scene_box=SceneBox(aabb=torch.tensor([[-s, -s, -s], [s, s, s]], dtype=torch.float32)),
            dataparser_transform=transform, dataparser_scale=scale,
            metadata={"depth_filenames": [Path(depths[i]) for i in idx], "depth_unit_scale_factor": unit,
                      "frame_names": [scan.names[i] for i in idx], "frame_indices": idx.tolist()})


ovtools_rgbd = DataParserSpecification(
    config=RGBDFolderDataParserConfig(),
    description="ScanNet-layout posed RGB-D folders read by ovtools (depth units, two cameras, distortion)")
