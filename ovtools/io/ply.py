"""Point clouds: the :class:`PointCloud` type, PLY reading and writing (voxel down-sampling:
:mod:`ovtools.scene3d.voxels`).

``plyfile`` (reading/writing) and ``open3d`` (``.pcd``/``.xyz``/``.pts``) are the
optional extra ``ovtools[3d]``, imported only when needed.  Reading understands
colours named ``red/green/blue``, ``r/g/b``, ``R/G/B`` or ``diffuse_*`` stored as
uint8, uint16 (scaled down) or float (0–1 ×255, or 0–255 when the max is above 1);
no colours (``colors=None``); meshes (vertices, or points sampled by area over the
faces); extra numeric vertex properties (``class_id``, ``label``...) kept in
:attr:`PointCloud.fields`; NaN/inf points dropped with a warning, or kept as invalid
rows with ``keep_invalid=True``.  Double-precision coordinates stay float64 (a scan in
survey coordinates keeps its millimetres) and are written back as ``double``.
Organized clouds keep their ``(height, width)``: PCD ``WIDTH``/``HEIGHT`` and PLY
``obj_info num_cols``/``obj_info num_rows`` (PCL's PLY header) are read, and the
latter is written.

Example:
    >>> cloud = PointCloud(np.zeros((4, 3), np.float32), fields={"label": np.arange(4, dtype=np.int32)})
    >>> write_ply("out.ply", cloud)  # doctest: +SKIP
"""

from __future__ import annotations

import io
import warnings
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import PointCloudError, import_extra
from .pcd import read_pcd
from .writers import atomic_write_bytes, check_output_path

_COLOUR_NAMES = (("red", "green", "blue"), ("r", "g", "b"), ("R", "G", "B"),
                 ("diffuse_red", "diffuse_green", "diffuse_blue"))
_RESERVED = {"x", "y", "z", "nx", "ny", "nz", "alpha", "a", "A", "diffuse_alpha",
             *(n for names in _COLOUR_NAMES for n in names)}
_FIELD_TYPES = {"int8": "i1", "uint8": "u1", "int16": "i2", "uint16": "u2", "int32": "i4", "uint32": "u4",
                "float16": "f4", "float32": "f4", "float64": "f8", "bool": "u1"}
OPEN3D_SUFFIXES = (".pcd", ".xyz", ".pts", ".xyzn", ".xyzrgb")


@dataclass
class PointCloud:
    """Points with optional colours, normals and extra per-point fields.

    Attributes:
        points: float32 or float64 (N, 3) x, y, z in metres, in the world frame of the file.
            float64 stays float64 (survey coordinates far from the origin keep their
            precision); other real dtypes are converted to float32.  Rows with NaN/inf
            coordinates are *invalid points* (as in organized scans: a pixel without a
            return); :attr:`valid` tells them apart and processing functions
            (:func:`sample_mesh`, :func:`ovtools.scene3d.voxels.voxel_downsample`) refuse them.
        colors: uint8 (N, 3) RGB in [0, 255], or None.
        normals: float32 (N, 3) (unit length when the source had them), or None.
        fields: extra per-point 1-D arrays of length N, numeric or bool (e.g. int32
            ``class_id`` / ``instance_id`` ground truth), by property name.
        organized: ``(height, width)`` of an organized cloud (row ``r * width + c`` is
            pixel ``(r, c)``, as PCL's), or ``None`` for an unorganized one.

    Raises:
        ValueError: a wrong shape or dtype, non-finite normals of valid points, or an
            ``organized`` shape whose area is not N; the message names the field and the
            expected and actual shape.
    """

    points: np.ndarray
    colors: np.ndarray | None = None
    normals: np.ndarray | None = None
    fields: dict[str, np.ndarray] = field(default_factory=dict)
    organized: tuple[int, int] | None = None

    def __post_init__(self) -> None:
        pts = np.asarray(self.points)
        if pts.ndim != 2 or pts.shape[1] != 3:
            raise ValueError(f"PointCloud.points must have shape (N, 3), got {pts.shape}")
        if not (np.issubdtype(pts.dtype, np.floating) or np.issubdtype(pts.dtype, np.integer)):
            raise ValueError(f"PointCloud.points must be real numbers (float32 metres), got dtype {pts.dtype}")
        self.points = np.ascontiguousarray(pts, dtype=np.float64 if pts.dtype == np.float64 else np.float32)
        n = len(self.points)
        if self.organized is not None:
            shape = tuple(int(v) for v in self.organized)
            if len(shape) != 2 or min(shape) < 1 or shape[0] * shape[1] != n:
                raise ValueError(f"PointCloud.organized must be (height, width) with height * width = {n} "
                                 f"points, got {self.organized}")
            self.organized = shape
        for name in ("colors", "normals"):
            arr = getattr(self, name)
            if arr is None:
                continue
            arr = np.asarray(arr)
            if arr.shape != (n, 3):
                raise ValueError(f"PointCloud.{name} must have shape ({n}, 3), got {arr.shape}")
            if name == "colors" and arr.dtype != np.uint8:
                raise ValueError(f"PointCloud.colors must be uint8 RGB in [0, 255], got dtype {arr.dtype} "
                                 "(scale floats in [0, 1] by 255 and round)")
            arr = np.ascontiguousarray(arr, dtype=np.uint8 if name == "colors" else np.float32)
            if name == "normals" and not np.isfinite(arr[self.valid]).all():
                raise ValueError("PointCloud.normals has non-finite values (NaN/inf)")
            setattr(self, name, arr)
        fields = {}
        for name, arr in dict(self.fields).items():
            arr = np.asarray(arr)
            if arr.shape != (n,):
                raise ValueError(f"PointCloud.fields[{name!r}] must have shape ({n},), got {arr.shape}")
            if arr.dtype.kind not in "biuf":
                raise ValueError(f"PointCloud.fields[{name!r}] must be numeric or bool, got dtype {arr.dtype}")
            fields[str(name)] = arr.astype(arr.dtype.newbyteorder("="), copy=False)
        self.fields = fields

    def __len__(self) -> int:
        return len(self.points)

    @property
    def valid(self) -> np.ndarray:
        """bool (N,): rows whose three coordinates are finite."""
        return np.isfinite(self.points).all(axis=1)

    def select(self, index: np.ndarray) -> PointCloud:
        """The cloud restricted to ``index`` (bool (N,) mask or int indices), every attribute alike
        (an organized cloud's selection is unorganized)."""
        return PointCloud(self.points[index], None if self.colors is None else self.colors[index],
                          None if self.normals is None else self.normals[index],
                          {k: v[index] for k, v in self.fields.items()})


# --------------------------------------------------------------------------- reading
def _colours_from(vertex) -> np.ndarray | None:
    names = set(vertex.data.dtype.names)
    for rgb in _COLOUR_NAMES:
        if set(rgb) <= names:
            c = np.stack([np.asarray(vertex[k]) for k in rgb], axis=1)
            break
    else:
        return None
    return colors_to_uint8(c)


def colors_to_uint8(c: np.ndarray) -> np.ndarray:
    """RGB colours (N, 3) of any numeric type → uint8 [0, 255]: uint8 as is, uint16 (or integers above 255)
    divided by 257, other integers clipped, floats ×255 when their maximum is <= 1 (else taken as 0-255);
    NaN/inf → 0."""
    c = np.asarray(c)
    if c.dtype == np.bool_ or not np.issubdtype(c.dtype, np.number) or np.iscomplexobj(c):
        raise ValueError(f"colours must be numeric RGB values, got dtype {c.dtype}")
    if c.dtype == np.uint8:
        return c.copy()
    if np.issubdtype(c.dtype, np.integer):
        if c.dtype.itemsize >= 2 and (c.dtype == np.uint16 or c.max(initial=0) > 255):
            return np.clip(np.rint(c.astype(np.float64) / 257.0), 0, 255).astype(np.uint8)
        return np.clip(c, 0, 255).astype(np.uint8)
    c = np.nan_to_num(c.astype(np.float64), nan=0.0, posinf=0.0, neginf=0.0)
    scale = 255.0 if c.max(initial=0.0) <= 1.0 else 1.0
    return np.clip(np.rint(c * scale), 0, 255).astype(np.uint8)


def _triangles(face, n_vertices: int, path: Path) -> np.ndarray:
    """Faces → int64 (F, 3) triangles (polygons fan-triangulated)."""
    key = next((k for k in ("vertex_indices", "vertex_index") if k in face.data.dtype.names), None)
    if key is None:
        raise PointCloudError(f"{path}: 'face' element has no 'vertex_indices' or 'vertex_index' property")
    polys = face[key]
    if len(polys) == 0:
        return np.zeros((0, 3), np.int64)
    lengths = np.fromiter((len(p) for p in polys), np.int64, len(polys))
    tris = []
    for k in np.unique(lengths[lengths >= 3]):
        f = np.stack([np.asarray(p, np.int64) for p in polys[lengths == k]])
        tris += [np.stack([f[:, 0], f[:, j], f[:, j + 1]], axis=1) for j in range(1, int(k) - 1)]
    tris = np.concatenate(tris) if tris else np.zeros((0, 3), np.int64)
    if len(tris) and (tris.min() < 0 or tris.max() >= n_vertices):
        raise PointCloudError(f"{path}: face vertex index out of range [0, {n_vertices})")
    return tris


def sample_mesh(cloud: PointCloud, triangles: np.ndarray, n: int, seed: int = 0) -> PointCloud:
    """Sample ``n`` points uniformly by area on a triangle mesh.

    Args:
        cloud: the mesh vertices (V points) with their colours and fields.
        triangles: int (F, 3) vertex indices.
        n: points to sample, >= 1.
        seed: random seed (the result is a pure function of the inputs and seed).

    Returns:
        A cloud of ``n`` points: colours and float fields interpolated
        barycentrically, integer fields from the nearest vertex, normals of the faces.

    Raises:
        ValueError: ``n < 1``, non-finite vertices, or the mesh has no face of positive area.
    """
    if n < 1:
        raise ValueError(f"sample_points must be >= 1, got {n}")
    if not cloud.valid.all():
        raise ValueError("sample_mesh needs finite vertices; select the valid ones first (PointCloud.valid)")
    v = cloud.points.astype(np.float64)[triangles]  # (F, 3 corners, 3)
    cross = np.cross(v[:, 1] - v[:, 0], v[:, 2] - v[:, 0])
    area = 0.5 * np.linalg.norm(cross, axis=1)
    if not area.sum() > 0:
        raise ValueError("mesh has no face of positive area to sample")
    rng = np.random.default_rng(seed)
    tri = rng.choice(len(triangles), size=n, p=area / area.sum())
    u, w = rng.random(n), rng.random(n)
    flip = u + w > 1
    u[flip], w[flip] = 1 - u[flip], 1 - w[flip]
    bary = np.stack([1 - u - w, u, w], axis=1)  # (n, 3)
    pts = np.einsum("nk,nkd->nd", bary, v[tri])
    idx = triangles[tri]  # (n, 3) vertex ids
    colors = None
    if cloud.colors is not None:
        colors = np.clip(np.rint(np.einsum("nk,nkd->nd", bary, cloud.colors[idx].astype(np.float64))), 0, 255)
        colors = colors.astype(np.uint8)
    nearest = idx[np.arange(n), bary.argmax(1)]
    fields = {k: (np.einsum("nk,nk->n", bary, f[idx]).astype(f.dtype) if f.dtype.kind == "f" else f[nearest])
              for k, f in cloud.fields.items()}
    normals = cross[tri] / np.maximum(np.linalg.norm(cross[tri], axis=1, keepdims=True), 1e-30)
    return PointCloud(pts.astype(cloud.points.dtype), colors, normals, fields)


def _read_open3d(path: Path):
    """``(points, colors, normals, fields, organized)`` of a .pcd/.xyz/.pts file, every row kept.

    PCD ``ascii``/``binary`` data is read by :func:`~ovtools.io.pcd.read_pcd` (exact doubles, all
    fields); open3d reads the text formats and LZF-compressed PCD.
    """
    organized, double = None, path.suffix.lower() != ".pcd"  # text formats: as many digits as the file has
    if path.suffix.lower() == ".pcd":
        pcd = read_pcd(path)
        if not pcd.binary_compressed:
            return pcd.points, pcd.colors, pcd.normals, pcd.fields, pcd.organized
        organized, double = pcd.organized, pcd.double
    o3d = import_extra("open3d", "3d", f"reading {path}")
    cloud = o3d.io.read_point_cloud(str(path), remove_nan_points=False, remove_infinite_points=False)
    pts = np.asarray(cloud.points, np.float64 if double else np.float32)
    if organized is not None and organized[0] * organized[1] != len(pts):
        organized = None
    colors = None
    if cloud.has_colors():
        colors = np.clip(np.rint(np.nan_to_num(np.asarray(cloud.colors)) * 255.0), 0, 255).astype(np.uint8)
    normals = np.asarray(cloud.normals, np.float32) if cloud.has_normals() else None
    return pts, colors, normals, {}, organized


def read_point_cloud(path: str | Path, *, mesh: str = "vertices", sample_points: int = 200_000,
                     seed: int = 0, keep_invalid: bool = False) -> PointCloud:
    """Read a PLY file (any encoding and property naming) as a :class:`PointCloud`.

    Args:
        path: a ``.ply`` file, a ``.pcd`` file (:mod:`ovtools.io.pcd`), or ``.xyz``/``.pts`` (open3d).
        mesh: for a PLY with faces: ``"vertices"`` keeps the vertices, ``"sample"``
            samples ``sample_points`` points uniformly by area (see :func:`sample_mesh`).
            Ignored for files without faces.
        sample_points: points to sample with ``mesh="sample"``.
        seed: random seed of the sampling.
        keep_invalid: keep rows with NaN/inf coordinates (as invalid points, in file order,
            and an organized cloud's ``(height, width)``) instead of dropping them.

    Returns:
        The cloud: points in metres (file frame; float64 when the file stores doubles — PLY
        ``double`` x, PCD ``SIZE 8``, text formats — else float32), uint8 colours or None,
        normals (``nx/ny/nz``) or None, other numeric vertex properties in ``fields``,
        ``organized`` from PCD ``WIDTH``/``HEIGHT`` (``HEIGHT > 1``) or PLY ``obj_info
        num_cols``/``num_rows`` when every row is kept.

    Raises:
        FileNotFoundError: no such file.
        PointCloudError: not a PLY, corrupt or truncated, no ``x/y/z``, or fewer than
            two valid points; the message names the file.
        ValueError: ``mesh`` is not ``"vertices"`` or ``"sample"``.
        MissingDependencyError: plyfile (or, for ``.pcd``/``.xyz``/``.pts``, open3d) is not installed or
            cannot load (the message names the missing system library).

    Warns:
        UserWarning: points with NaN/inf coordinates were dropped (gives the count).
    """
    if mesh not in ("vertices", "sample"):
        raise ValueError(f"mesh must be 'vertices' or 'sample', got {mesh!r}")
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"point cloud {path} does not exist")
    if path.is_dir():
        raise PointCloudError(f"point cloud {path} is a folder, not a file")
    if path.suffix.lower() in OPEN3D_SUFFIXES:
        pts, colors, normals, fields, organized = _read_open3d(path)
        triangles = None
    else:
        pts, colors, normals, fields, triangles, organized = _read_ply(path)
    bad = ~np.isfinite(pts).all(axis=1)
    if normals is not None and not np.isfinite(normals[~bad]).all():
        warnings.warn(f"{path}: non-finite normals; normals dropped", UserWarning, stacklevel=2)
        normals = None
    sample = triangles is not None and len(triangles) and mesh == "sample"
    if bad.any() and (sample or not keep_invalid):
        warnings.warn(f"{path}: dropped {int(bad.sum())} of {len(pts)} points with NaN/inf coordinates",
                      UserWarning, stacklevel=2)
    try:
        if sample:  # faces touching a bad vertex go too
            vertices = PointCloud(np.where(bad[:, None], 0.0, pts), colors, None, fields)
            cloud = sample_mesh(vertices, triangles[~bad[triangles].any(axis=1)], sample_points, seed)
        elif keep_invalid:
            cloud = PointCloud(pts, colors, normals, fields, organized)
        else:
            cloud = PointCloud(pts, colors, normals, fields, organized)
            if bad.any():
                cloud = cloud.select(~bad)
    except ValueError as e:
        raise PointCloudError(f"{path}: {e}") from None
    n_valid = int(cloud.valid.sum())
    if n_valid < 2:
        raise PointCloudError(f"point cloud {path} has {'no points' if n_valid == 0 else 'a single point'}"
                              + (" after dropping NaN/inf points" if bad.any() else ""))
    return cloud


def _obj_info_shape(data) -> tuple[int, int] | None:
    """``(num_rows, num_cols)`` from PCL's PLY header lines ``obj_info num_cols W`` / ``num_rows H``."""
    info = {}
    for line in getattr(data, "obj_info", []) or []:
        parts = str(line).split()
        if len(parts) == 2 and parts[0] in ("num_cols", "num_rows") and parts[1].isdigit():
            info[parts[0]] = int(parts[1])
    if info.get("num_rows", 0) > 1 and info.get("num_cols", 0) >= 1:
        return info["num_rows"], info["num_cols"]
    return None


def _read_ply(path: Path):
    plyfile = import_extra("plyfile", "3d", "point-cloud IO")
    try:
        with open(path, "rb") as f:
            head = f.read(4)
            if not head:
                raise PointCloudError(f"point cloud {path} is an empty file (0 bytes)")
            if head[:3] != b"ply":
                raise PointCloudError(f"{path} is not a PLY file (no 'ply' magic line)")
            f.seek(0)
            data = plyfile.PlyData.read(f)
        if "vertex" not in data:
            raise PointCloudError(f"{path}: no 'vertex' element (elements: {[e.name for e in data.elements]})")
        vertex = data["vertex"]
        names = vertex.data.dtype.names or ()
        if not {"x", "y", "z"} <= set(names):
            raise PointCloudError(f"{path}: vertex element lacks x/y/z (properties: {list(names)})")
        double = any(vertex.data.dtype[k].itemsize >= 8 or vertex.data.dtype[k].kind in "iu"
                     and vertex.data.dtype[k].itemsize >= 4 for k in "xyz")
        pts = np.stack([np.asarray(vertex[k], np.float64 if double else np.float32) for k in "xyz"], axis=1)
        colors = _colours_from(vertex)
        normals = None
        if {"nx", "ny", "nz"} <= set(names):
            normals = np.stack([np.asarray(vertex[k], np.float32) for k in ("nx", "ny", "nz")], axis=1)
        fields = {k: np.asarray(vertex[k]) for k in names
                  if k not in _RESERVED and vertex.data.dtype[k].kind in "biuf" and vertex.data.dtype[k].shape == ()}
        triangles = None
        if "face" in data:
            triangles = _triangles(data["face"], len(pts), path)
        organized = _obj_info_shape(data)
        if organized is not None and organized[0] * organized[1] != len(pts):
            organized = None
    except PointCloudError:
        raise
    except Exception as e:  # noqa: BLE001 - plyfile header/element errors, truncation, struct/EOF/Unicode errors
        raise PointCloudError(f"{path}: not a readable PLY file ({type(e).__name__}: {e})") from None
    return pts, colors, normals, fields, triangles, organized


# -------------------------------------------------------------------------- writing
def write_ply(path: str | Path, cloud: PointCloud, *, binary: bool = True,
              protect: Iterable[str | Path] = ()) -> Path:
    """Write a cloud as PLY, atomically (temporary file + ``os.replace``).

    Vertex properties: ``x y z`` float, or double for float64 points (coordinates come back
    exactly as given); ``nx ny nz`` float if normals; ``red green blue``
    uchar if colours; then every array of ``fields`` (int32 → ``int``, float32 and
    float16 → ``float``, float64 → ``double``, uint8 and bool → ``uchar``, int64 →
    ``int`` when its values fit).  Invalid (NaN/inf) rows are written as they are; an
    organized cloud's ``(height, width)`` goes into PCL's header lines ``obj_info num_cols
    W`` and ``obj_info num_rows H``.  Readable by open3d, PCL and plyfile.

    Args:
        path: destination ``.ply`` file.
        cloud: the cloud; at least one point.
        binary: binary little-endian (default) or ASCII.
        protect: input files that must not be overwritten.

    Returns:
        The destination path.

    Raises:
        OutputPathError: ``path`` is one of ``protect`` or a folder.
        ValueError: an empty cloud, a field name that is not a plain identifier or
            that clashes with ``x``/``red``/..., an int64 field outside the int32 range.
        MissingDependencyError: plyfile is not installed or cannot load.
    """
    plyfile = import_extra("plyfile", "3d", "point-cloud IO")
    protect = list(protect)
    check_output_path(path, protect)
    if len(cloud) == 0:
        raise ValueError(f"refusing to write an empty point cloud to {path}")
    xyz = "f8" if cloud.points.dtype == np.float64 else "f4"
    cols = [("x", xyz), ("y", xyz), ("z", xyz)]
    values = list(cloud.points.T)
    if cloud.normals is not None:
        cols += [("nx", "f4"), ("ny", "f4"), ("nz", "f4")]
        values += list(cloud.normals.T)
    if cloud.colors is not None:
        cols += [("red", "u1"), ("green", "u1"), ("blue", "u1")]
        values += list(cloud.colors.T)
    for name, arr in cloud.fields.items():
        if not name.isidentifier() or name in _RESERVED:
            raise ValueError(f"field name {name!r} cannot be a PLY property (identifier, not one of x/y/z/"
                             "nx/ny/nz/red/green/blue/...)")
        kind = _FIELD_TYPES.get(arr.dtype.name)
        if kind is None and arr.dtype.kind == "i" and (len(arr) == 0 or (arr.min() >= -2**31 and arr.max() < 2**31)):
            kind = "i4"
        if kind is None:
            raise ValueError(f"field {name!r}: dtype {arr.dtype} has no PLY type (values outside int32?)")
        cols.append((name, kind))
        values.append(arr)
    vertex = np.empty(len(cloud), dtype=cols)
    for (name, _), v in zip(cols, values):
        vertex[name] = v
    buf = io.BytesIO()
    obj_info = [] if cloud.organized is None else [f"num_cols {cloud.organized[1]}",
                                                   f"num_rows {cloud.organized[0]}"]
    plyfile.PlyData([plyfile.PlyElement.describe(vertex, "vertex")], text=not binary,
                    byte_order="<", obj_info=obj_info).write(buf)
    return atomic_write_bytes(path, buf.getvalue(), protect)


# ----------------------------------------------------------------------- processing
