"""Posed RGB-D folders in the ScanNet layout: read, write, back-project.

Layout (as exported by ScanNet's ``SensReader``, Dai et al., "ScanNet",
CVPR 2017)::

    <folder>/color/<stem>.jpg|.png        RGB, any size
    <folder>/depth/<stem>.png|.tif|.npy   16-bit depth x depth_scale (ScanNet 1000, TUM 5000 per metre),
                                          or 32-bit float metres; 0/NaN = invalid (see ovtools.scene3d.depth)
    <folder>/pose/<stem>.txt              4x4 camera-to-world of the sensor (OpenCV camera axes)
    <folder>/intrinsic/intrinsic_color.txt   4x4 (top-left 3x3 = K of the colour images)
    <folder>/intrinsic/intrinsic_depth.txt   4x4 (optional; default: colour K rescaled to the depth size)
    <folder>/intrinsic/extrinsic_color.txt   4x4 colour camera-to-sensor (optional; default identity)
    <folder>/intrinsic/extrinsic_depth.txt   4x4 depth camera-to-sensor (optional; default identity)
    <folder>/intrinsic/distortion_color.txt  OpenCV distortion k1 k2 p1 p2 [k3 [k4 k5 k6]] (optional)
    <folder>/intrinsic/distortion_depth.txt  the same for the depth camera (optional)
    <folder>/_info.txt                    optional; its ``m_depthShift = 5000`` line sets the depth units

The colour and depth cameras may differ (ScanNet: 1296x968 colour, 640x480 depth, other
focal lengths and principal points): depth pixels are unprojected with the depth
intrinsics and projected into the colour image with the colour intrinsics, through the
colour-from-depth extrinsic ``inv(extrinsic_color) @ extrinsic_depth`` (the two
``extrinsic_*`` files are camera-to-sensor transforms as in the ``.sens`` format; the
depth camera's pose is ``pose @ extrinsic_depth``).

With a ``distortion_*.txt`` file, that camera's images are undistorted when read
(``cv2.undistort``; depth with nearest-neighbour sampling, so depths of two surfaces are
never blended) and keep their intrinsics, so fusion and back-projection stay pinhole.

Frames are matched by file stem and sorted numerically when every stem is an
integer (``"10"`` after ``"9"``).  ScanNet writes ``-inf`` poses where tracking
was lost; those frames are skipped with one warning that counts them.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import cv2
from PIL import Image

from .camera import as_tensor, check_K, check_pose, scale_intrinsics
from .depth import DEPTH_SUFFIXES, folder_depth_scale, read_depth

_COLOR_EXT = (".jpg", ".jpeg", ".png")


@dataclass
class RGBDFrame:
    """One posed RGB-D frame.

    Attributes:
        color: uint8 (H, W, 3) RGB.
        depth: float32 (h, w) metres along the optical axis; 0 = invalid.  May differ in size from ``color``.
        pose: float64 (4, 4) camera-to-world of the depth camera.
        K_color: float64 (3, 3) intrinsics of ``color`` in pixels.
        K_depth: float64 (3, 3) intrinsics of ``depth`` in pixels.
        name: file stem (``"0"``, ``"20"``, ...).
        color_from_depth: float64 (4, 4) rigid transform from depth-camera to colour-camera
            coordinates (identity: one centre and axes, as in most ScanNet exports).

    Raises:
        ValueError: on construction, if a shape or dtype is wrong or the pose is not finite.
    """

    color: np.ndarray
    depth: np.ndarray
    pose: np.ndarray
    K_color: np.ndarray
    K_depth: np.ndarray
    name: str = ""
    color_from_depth: np.ndarray | None = None

    def __post_init__(self) -> None:
        self.color = np.asarray(self.color)
        if self.color.ndim != 3 or self.color.shape[2] != 3 or self.color.dtype != np.uint8:
            raise ValueError(f"color must be uint8 (H, W, 3), got {self.color.dtype} {self.color.shape}")
        self.depth = np.asarray(self.depth, dtype=np.float32)
        if self.depth.ndim != 2:
            raise ValueError(f"depth must have shape (h, w), got {self.depth.shape}")
        self.pose = check_pose(self.pose)
        self.K_color = check_K(self.K_color)
        self.K_depth = check_K(self.K_depth)
        self.color_from_depth = (np.eye(4) if self.color_from_depth is None
                                 else check_pose(self.color_from_depth, "color_from_depth"))


def _read_matrix(path: Path) -> np.ndarray:
    try:
        m = np.loadtxt(path, dtype=np.float64, ndmin=2)
    except ValueError as e:
        raise ValueError(f"{path} is not a whitespace-separated matrix: {e}") from e
    return m


def _read_K(path: Path) -> np.ndarray:
    m = _read_matrix(path)
    if m.shape not in ((3, 3), (4, 4)):
        raise ValueError(f"{path} must hold a 3x3 or 4x4 matrix, got shape {m.shape}")
    return check_K(m[:3, :3])


def _read_distortion(path: Path) -> np.ndarray | None:
    """OpenCV distortion coefficients (4, 5, 8, 12 or 14 values) of ``path``, or ``None`` if absent or all zero."""
    if not path.is_file():
        return None
    d = _read_matrix(path).reshape(-1)
    if d.size not in (4, 5, 8, 12, 14) or not np.isfinite(d).all():
        raise ValueError(f"{path} must hold 4, 5, 8, 12 or 14 finite OpenCV distortion coefficients "
                         f"(k1 k2 p1 p2 [k3 [k4 k5 k6 [s1 s2 s3 s4 [tx ty]]]]), got {d.size} values")
    return d if d.any() else None


def _undistort(image: np.ndarray, K: np.ndarray, dist: np.ndarray, nearest: bool) -> np.ndarray:
    """The image as a pinhole camera with the same ``K`` would see it (OpenCV's distortion model)."""
    h, w = image.shape[:2]
    mx, my = cv2.initUndistortRectifyMap(K, dist, None, K, (w, h), cv2.CV_32FC1)
    return cv2.remap(image, mx, my, cv2.INTER_NEAREST if nearest else cv2.INTER_LINEAR,
                     borderMode=cv2.BORDER_CONSTANT, borderValue=0)


def _sorted_stems(stems: Iterable[str]) -> list[str]:
    stems = list(stems)
    if all(s.isdigit() for s in stems):
        return sorted(stems, key=int)
    return sorted(stems)


class RGBDFolder:
    """Lazy reader of a ScanNet-layout posed RGB-D folder.

    Images are decoded only when a frame is indexed, so a 5000-frame scan costs
    a few KB of memory until iterated.

    Args:
        folder: the scan folder (holding ``color/``, ``depth/``, ``pose/``, ``intrinsic/``).
        depth_scale: stored depth units per metre (ScanNet: 1000, millimetres; TUM: 5000);
            ``None``: the folder's ``_info.txt`` ``m_depthShift`` if any, else 1000 for
            integer maps and metres for float maps.
        frame_skip: keep every ``frame_skip``-th of the stem-sorted matched frames
            (OpenScene uses 20 on ScanNet); applied before invalid poses are dropped.

    Attributes:
        folder: the folder, as a ``Path``.
        names: stems of the frames kept, in order.
        K_color: float64 (3, 3) intrinsics of the colour images.
        K_depth: float64 (3, 3) intrinsics of the depth images from
            ``intrinsic_depth.txt``, or ``None`` when absent (each frame then
            rescales ``K_color`` to its depth size; see :meth:`__getitem__`).
        color_from_depth: float64 (4, 4) depth-camera to colour-camera transform
            (``inv(extrinsic_color) @ extrinsic_depth``; identity without those files).
        depth_scale: the ``depth_scale`` given or declared by ``_info.txt``, or ``None``.
        depth_scale_source: where the units come from, for messages.
        unit_scale: units per metre applied to the last depth map read.
        distortion: ``{"color": coefficients or None, "depth": ...}`` from ``distortion_*.txt``.
        n_invalid_poses: frames dropped for non-finite or singular poses.
        n_unmatched: colour/depth/pose files without their two counterparts.

    Raises:
        FileNotFoundError: the folder, a sub-folder or ``intrinsic_color.txt`` is missing.
        ValueError: ``depth_scale <= 0``, ``frame_skip < 1``, a malformed intrinsic, or no frame
            has colour, depth and a valid pose.

    Example:
        >>> scan = RGBDFolder("scans/scene0000_00", frame_skip=20)   # doctest: +SKIP
        >>> frame = scan[0]; frame.depth.shape                          # doctest: +SKIP
        (480, 640)
    """

    def __init__(self, folder, depth_scale: float | None = None, frame_skip: int = 1) -> None:
        self.folder = Path(folder)
        if depth_scale is not None and not depth_scale > 0:
            raise ValueError(f"depth_scale must be > 0, got {depth_scale}")
        if frame_skip < 1:
            raise ValueError(f"frame_skip must be >= 1, got {frame_skip}")
        if not self.folder.is_dir():
            raise FileNotFoundError(f"RGB-D folder {self.folder} does not exist")
        self.depth_scale_source = "the depth_scale setting"
        if depth_scale is None:
            depth_scale = folder_depth_scale(self.folder)
            self.depth_scale_source = ("m_depthShift of _info.txt" if depth_scale is not None else
                                       "the default: 1000 for 16-bit maps, metres for float maps")
        self.depth_scale = None if depth_scale is None else float(depth_scale)
        self.unit_scale = self.depth_scale or 1000.0
        dirs = {d: self.folder / d for d in ("color", "depth", "pose", "intrinsic")}
        missing = [d for d, p in dirs.items() if not p.is_dir()]
        if missing:
            tum = (self.folder / "rgb").is_dir() and (self.folder / "groundtruth.txt").is_file()
            raise FileNotFoundError(f"RGB-D folder {self.folder} lacks sub-folder(s) {missing}; expected the "
                                    "ScanNet layout color/, depth/, pose/, intrinsic/" + (
                                        " (this looks like a TUM RGB-D sequence: rgb/, depth/, groundtruth.txt; "
                                        "associate frames and write them in the ScanNet layout, depth_scale 5000)"
                                        if tum else ""))
        kc = dirs["intrinsic"] / "intrinsic_color.txt"
        if not kc.is_file():
            raise FileNotFoundError(f"{kc} is missing (the colour camera's intrinsics)")
        self.K_color = _read_K(kc)
        kd = dirs["intrinsic"] / "intrinsic_depth.txt"
        self._K_depth_file = _read_K(kd) if kd.is_file() else None
        self.distortion = {k: _read_distortion(dirs["intrinsic"] / f"distortion_{k}.txt") for k in ("color", "depth")}
        ext = {k: dirs["intrinsic"] / f"extrinsic_{k}.txt" for k in ("color", "depth")}
        ext = {k: check_pose(_read_matrix(f), str(f)) if f.is_file() else np.eye(4) for k, f in ext.items()}
        self._depth_to_sensor = ext["depth"]
        self.color_from_depth = np.linalg.inv(ext["color"]) @ ext["depth"]

        colors = {p.stem: p for p in dirs["color"].iterdir() if p.suffix.lower() in _COLOR_EXT}
        depths = {p.stem: p for p in dirs["depth"].iterdir() if p.suffix.lower() in DEPTH_SUFFIXES}
        poses = {p.stem: p for p in dirs["pose"].iterdir() if p.suffix.lower() == ".txt"}
        common = set(colors) & set(depths) & set(poses)
        self.n_unmatched = len((set(colors) | set(depths) | set(poses)) - common)
        stems = _sorted_stems(common)[::frame_skip]
        self._colors, self._depths, self._poses = colors, depths, poses
        self.names: list[str] = []
        self._pose_of: dict[str, np.ndarray] = {}
        bad = 0
        for s in stems:
            try:
                self._pose_of[s] = check_pose(_read_matrix(poses[s]))
                self.names.append(s)
            except ValueError:
                bad += 1
        self.n_invalid_poses = bad
        if bad:
            warnings.warn(f"{self.folder}: skipped {bad} of {len(stems)} frames with invalid (inf/NaN) poses",
                          UserWarning, stacklevel=2)
        if not self.names:
            raise ValueError(f"RGB-D folder {self.folder} has no frame with matching color/, depth/ and a valid "
                             f"pose/ file ({len(colors)} colour, {len(depths)} depth, {len(poses)} pose files)")
        if self.n_unmatched:
            warnings.warn(f"{self.folder}: {self.n_unmatched} colour/depth/pose file(s) have no counterpart "
                          "and were ignored", UserWarning, stacklevel=2)
        self.K_depth = self._K_depth_file

    def __len__(self) -> int:
        return len(self.names)

    def __iter__(self):
        for i in range(len(self)):
            yield self[i]

    def pose(self, i: int) -> np.ndarray:
        """float64 (4, 4) camera-to-world of frame ``i``'s depth camera (OpenCV axes), without decoding images."""
        return self._pose_of[self.names[i]] @ self._depth_to_sensor

    def files(self, i: int) -> tuple[Path, Path]:
        """``(colour file, depth file)`` of frame ``i`` as stored (before undistortion or unit conversion)."""
        s = self.names[i]
        return self._colors[s], self._depths[s]

    def __getitem__(self, i: int) -> RGBDFrame:
        """Decode frame ``i``: colour, depth in metres, the depth camera's pose, both intrinsics and
        the colour-from-depth extrinsic.

        Without ``intrinsic_depth.txt`` the depth intrinsics are the colour ones
        rescaled from the colour size to the depth size.

        Raises:
            IndexError: ``i`` out of range.
            ValueError: an image cannot be decoded, or the depth is not a single-channel 16-bit
                or float image (:func:`~ovtools.scene3d.depth.read_depth`).
        """
        s = self.names[i]
        try:
            with Image.open(self._colors[s]) as im:
                color = np.asarray(im.convert("RGB"))
        except OSError as e:
            raise ValueError(f"{self.folder}: cannot decode frame {s!r}: {e}") from e
        depth, self.unit_scale = read_depth(self._depths[s], self.depth_scale)
        if self._K_depth_file is not None:
            K_depth = self._K_depth_file
        else:
            K_depth = scale_intrinsics(self.K_color, color.shape[:2], depth.shape)
        if self.distortion["color"] is not None:
            color = _undistort(color, self.K_color, self.distortion["color"], nearest=False)
        if self.distortion["depth"] is not None:
            depth = _undistort(depth, K_depth, self.distortion["depth"], nearest=True)
        return RGBDFrame(color, depth, self.pose(i), self.K_color, K_depth, s,
                         self.color_from_depth)


def write_rgbd_folder(out_dir, frames: Iterable[RGBDFrame], depth_scale: float = 1000.0,
                      color_format: str = "jpg", jpeg_quality: int = 95, depth_format: str = "png") -> Path:
    """Write frames in the ScanNet layout (readable by :class:`RGBDFolder`).

    With ``depth_format="png"`` depth is stored as uint16 PNG ``round(depth * depth_scale)``,
    clipped to [0, 65535], and ``_info.txt`` declares ``m_depthShift = depth_scale``; with
    ``"tiff"`` as 32-bit float TIFF in metres.  Non-finite or negative depth becomes 0
    (invalid).  A colour camera that is not the depth camera (``color_from_depth`` not the
    identity) is written as ``extrinsic_color.txt`` (its inverse; ``extrinsic_depth.txt`` is
    the identity).  Frames are named by their ``name`` or, if empty, their position.

    Args:
        out_dir: folder to create or fill.
        frames: :class:`RGBDFrame` s sharing one ``K_color``, one ``K_depth`` and one ``color_from_depth``.
        depth_scale: stored units per metre of PNG depth (1000 = millimetres).
        color_format: ``"jpg"`` or ``"png"`` (lossless).
        jpeg_quality: JPEG quality 1–95.
        depth_format: ``"png"`` (16-bit) or ``"tiff"`` (32-bit float metres).

    Returns:
        ``out_dir`` as a ``Path``.

    Raises:
        ValueError: bad ``color_format`` / ``depth_format`` / ``depth_scale``, no frames, or frames
            with differing intrinsics or extrinsics.
    """
    if color_format not in ("jpg", "png"):
        raise ValueError(f"color_format must be 'jpg' or 'png', got {color_format!r}")
    if depth_format not in ("png", "tiff"):
        raise ValueError(f"depth_format must be 'png' or 'tiff', got {depth_format!r}")
    if not depth_scale > 0:
        raise ValueError(f"depth_scale must be > 0, got {depth_scale}")
    out = Path(out_dir)
    for d in ("color", "depth", "pose", "intrinsic"):
        (out / d).mkdir(parents=True, exist_ok=True)
    Kc = Kd = Ecd = None
    n = 0
    for i, f in enumerate(frames):
        if Kc is None:
            Kc, Kd, Ecd = f.K_color, f.K_depth, f.color_from_depth
        elif not (np.allclose(f.K_color, Kc) and np.allclose(f.K_depth, Kd) and np.allclose(f.color_from_depth, Ecd)):
            raise ValueError(f"frame {i} ({f.name!r}) has other intrinsics or extrinsics than frame 0; the "
                             "ScanNet layout stores one per folder")
        name = f.name or str(i)
        if color_format == "jpg":
            Image.fromarray(f.color).save(out / "color" / f"{name}.jpg", quality=int(jpeg_quality))
        else:
            Image.fromarray(f.color).save(out / "color" / f"{name}.png")
        d = np.nan_to_num(f.depth.astype(np.float64), nan=0.0, posinf=0.0, neginf=0.0)
        if depth_format == "png":
            d = np.clip(np.round(d * depth_scale), 0, 65535).astype(np.uint16)
            Image.fromarray(d).save(out / "depth" / f"{name}.png")
        else:
            Image.fromarray(np.maximum(d, 0).astype(np.float32)).save(out / "depth" / f"{name}.tiff")
        np.savetxt(out / "pose" / f"{name}.txt", f.pose, fmt="%.9f")
        n += 1
    if n == 0:
        raise ValueError("write_rgbd_folder needs at least one frame")
    for fname, K in (("intrinsic_color.txt", Kc), ("intrinsic_depth.txt", Kd)):
        m = np.eye(4)
        m[:3, :3] = K
        np.savetxt(out / "intrinsic" / fname, m, fmt="%.9f")
    if not np.allclose(Ecd, np.eye(4)):
        np.savetxt(out / "intrinsic" / "extrinsic_color.txt", np.linalg.inv(Ecd), fmt="%.9f")
        np.savetxt(out / "intrinsic" / "extrinsic_depth.txt", np.eye(4), fmt="%.9f")
    if depth_format == "png":
        (out / "_info.txt").write_text(f"m_depthShift = {depth_scale:g}\n")
    return out


def backproject_rgbd(frames: Iterable[RGBDFrame], voxel_size: float = 0.02, *, stride: int = 1,
                     min_depth: float = 0.1, max_depth: float = 10.0,
                     device: str | torch.device = "cpu") -> tuple[np.ndarray, np.ndarray]:
    """Build a coloured point cloud from posed RGB-D frames, one point per occupied voxel.

    Every valid depth pixel (``min_depth <= d <= max_depth``) is unprojected
    with ``K_depth``, coloured by projecting it into the colour camera (``color_from_depth``,
    then ``K_color``; nearest pixel; pixels outside the colour image are dropped), and moved
    to the world with the depth camera's pose.  Points are merged
    per voxel of side ``voxel_size``: the output point is the mean position and
    mean colour of its voxel.  Sums are merged incrementally, so memory stays
    proportional to the number of occupied voxels, not of pixels.

    Args:
        frames: :class:`RGBDFrame` s (e.g. an :class:`RGBDFolder`).
        voxel_size: voxel side in metres (> 0).
        stride: use every ``stride``-th depth pixel in each direction.
        min_depth, max_depth: valid depth range in metres.
        device: where to compute.

    Returns:
        ``(points, colors)``: float64 (N, 3) world metres and uint8 (N, 3), numpy,
        ordered by voxel key.  The work is done relative to the first camera centre, so
        poses in survey coordinates (UTM-like offsets) keep their precision.

    Raises:
        ValueError: ``voxel_size <= 0``, ``stride < 1`` or the scene spans more than 2**20 voxels
            from its first camera.
    """
    if not voxel_size > 0:
        raise ValueError(f"voxel_size must be > 0, got {voxel_size}")
    if stride < 1:
        raise ValueError(f"stride must be >= 1, got {stride}")
    dev = torch.device(device)
    acc: list[tuple[torch.Tensor, torch.Tensor]] = []  # (keys (M,), sums (M, 7): xyz, rgb, count)
    pending = 0
    origin = None  # the first camera centre: float32 work stays near the origin for survey coordinates
    for f in frames:
        if origin is None:
            origin = np.asarray(f.pose, np.float64)[:3, 3].copy()
        d = as_tensor(f.depth[::stride, ::stride], device=dev).float()
        h, w = d.shape
        vv, uu = torch.meshgrid(torch.arange(h, device=dev, dtype=torch.float32) * stride,
                                torch.arange(w, device=dev, dtype=torch.float32) * stride, indexing="ij")
        ok = (d >= min_depth) & (d <= max_depth)
        z, u, v = d[ok], uu[ok], vv[ok]
        if z.numel() == 0:
            continue
        Kd, Kc = f.K_depth.tolist(), f.K_color.tolist()  # python floats: safe with tensors on any device
        x = (u - Kd[0][2]) * z / Kd[0][0]
        y = (v - Kd[1][2]) * z / Kd[1][1]
        cam = torch.stack([x, y, z], 1)
        E = torch.as_tensor(f.color_from_depth, dtype=torch.float32, device=dev)
        pc = cam @ E[:3, :3].T + E[:3, 3]  # the point in the colour camera
        zc = pc[:, 2].clamp(min=1e-9)
        cu = torch.floor(Kc[0][0] * pc[:, 0] / zc + Kc[0][1] * pc[:, 1] / zc + Kc[0][2] + 0.5).long()
        cv = torch.floor(Kc[1][1] * pc[:, 1] / zc + Kc[1][2] + 0.5).long()
        H, W = f.color.shape[:2]
        inside = (pc[:, 2] > 1e-9) & (cu >= 0) & (cu < W) & (cv >= 0) & (cv < H)
        cam, cu, cv = cam[inside], cu[inside], cv[inside]
        rgb = as_tensor(f.color, device=dev)[cv, cu].float()
        pose = np.asarray(f.pose, np.float64).copy()
        pose[:3, 3] -= origin
        T = torch.as_tensor(pose, dtype=torch.float32, device=dev)
        world = cam @ T[:3, :3].T + T[:3, 3]  # relative to origin
        acc.append(_voxel_sums(world, rgb, voxel_size))
        pending += acc[-1][0].numel()
        if pending > 4_000_000 and len(acc) > 1:
            acc = [_merge(acc)]
            pending = acc[0][0].numel()
    if not acc:
        return np.zeros((0, 3), np.float64), np.zeros((0, 3), np.uint8)
    _, sums = _merge(acc)
    cnt = sums[:, 6:7]
    pts = (sums[:, :3] / cnt).cpu().numpy() + origin
    col = (sums[:, 3:6] / cnt).round().clamp(0, 255).to(torch.uint8).cpu().numpy()
    return pts, col


_BITS = 21
_OFF = 1 << (_BITS - 1)


def _voxel_sums(world: torch.Tensor, rgb: torch.Tensor, voxel: float) -> tuple[torch.Tensor, torch.Tensor]:
    q = torch.floor(world / voxel).long() + _OFF
    if bool(((q < 0) | (q >= (1 << _BITS))).any()):
        raise ValueError(f"points farther than {_OFF * voxel:g} m from the first camera cannot be voxelised at "
                         f"{voxel} m")
    key = (q[:, 0] << (2 * _BITS)) | (q[:, 1] << _BITS) | q[:, 2]
    vals = torch.cat([world.double(), rgb.double(), torch.ones_like(world[:, :1], dtype=torch.float64)], 1)
    return _reduce(key, vals)


def _reduce(key: torch.Tensor, vals: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    uk, inv = torch.unique(key, return_inverse=True)
    out = torch.zeros(uk.numel(), vals.shape[1], dtype=vals.dtype, device=vals.device)
    out.index_add_(0, inv, vals)
    return uk, out


def _merge(acc: list[tuple[torch.Tensor, torch.Tensor]]) -> tuple[torch.Tensor, torch.Tensor]:
    return _reduce(torch.cat([k for k, _ in acc]), torch.cat([v for _, v in acc]))
