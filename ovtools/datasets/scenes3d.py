"""The 3D evaluation world: coloured primitives on a floor, as point clouds with exact ground truth.

Five primitives (:data:`SHAPES3D`) in the eight colours of the 2D world
(:data:`ovtools.datasets.shapes.COLOURS`) rest on a muted grey/beige floor.
Class ``0`` is the floor; the others are ``"<colour> <shape>"`` (e.g. ``"red
cube"``), 41 classes in all (:data:`SCENE3D_CLASS_NAMES`, the class space
``configs/classes/shapes3d.yaml``).

Frame: metres, right-handed, +z up, the floor is the plane z = 0, a square of
:data:`FLOOR_SIZE` m centred on the origin.  Objects (3–6 per scene, nominal size
0.15–0.4 m, random yaw) stand in the central 2 × 2 m without touching each
other.  Points are sampled uniformly by area on the surfaces a camera can see:
not the bottom of a cube, cylinder or cone, nor the floor under them.  Colours
are the object's colour with ±8 uniform noise per channel.

Everything is a pure function of ``(seed, index)`` through
:func:`~ovtools.datasets.shapes.item_rng`, as in the 2D world.

Example:
    >>> scene = next(generate_scenes3d(1, seed=0, points=20_000))
    >>> scene.points.shape, scene.class_id.dtype
    ((20000, 3), dtype('int32'))
    >>> SCENE3D_CLASS_NAMES[0], len(SCENE3D_CLASS_NAMES)
    ('floor', 41)
"""

from __future__ import annotations

import colorsys
import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..io.ply import PointCloud, write_ply
from ..io.writers import OutputPathError, write_json
from .shapes import COLOURS, item_rng

SHAPES3D: tuple[str, ...] = ("sphere", "cube", "cylinder", "cone", "torus")
SCENE3D_CLASS_NAMES: tuple[str, ...] = ("floor",) + tuple(f"{c} {s}" for c in COLOURS for s in SHAPES3D)
FLOOR_SIZE = 3.0  # metres, side of the square floor
AREA_SIZE = 2.0  # metres, side of the square where objects stand
SIZE_RANGE = (0.15, 0.4)  # metres, nominal object size (footprint diameter or cube edge)
COLOUR_NOISE = 8  # ± per channel
_STREAM = 13  # item_rng stream of the 3D scenes (the 2D world uses 1-3)


@dataclass(frozen=True, eq=False)
class Object3D:
    """One primitive and its ground truth.

    Attributes:
        shape: one of :data:`SHAPES3D`.
        colour: one of :data:`~ovtools.datasets.shapes.COLOURS`.
        centre: float32 (3,) centre of the object's box, metres, world frame (z up).
        extent: float32 (3,) full box size along the object's own x, y, z axes, metres.
        yaw: rotation about +z in radians (object axes = world axes rotated by ``yaw``).
        size: nominal size in metres (footprint diameter, or cube edge).
    """

    shape: str
    colour: str
    centre: np.ndarray
    extent: np.ndarray
    yaw: float
    size: float

    @property
    def name(self) -> str:
        """Class name, ``"<colour> <shape>"``."""
        return f"{self.colour} {self.shape}"

    @property
    def class_id(self) -> int:
        """Index of :attr:`name` in :data:`SCENE3D_CLASS_NAMES` (>= 1)."""
        return SCENE3D_CLASS_NAMES.index(self.name)

    @property
    def area(self) -> float:
        """Visible surface area in m² (the face resting on the floor excluded)."""
        return _surface_area(self.shape, self.size, _params(self))

    def to_local(self, points: np.ndarray) -> np.ndarray:
        """World points (N, 3) → float64 (N, 3) in the box frame (origin at :attr:`centre`)."""
        c, s = math.cos(self.yaw), math.sin(self.yaw)
        d = np.asarray(points, np.float64) - self.centre
        return np.stack([c * d[:, 0] + s * d[:, 1], -s * d[:, 0] + c * d[:, 1], d[:, 2]], axis=1)

    def contains(self, points: np.ndarray, tol: float = 1e-4) -> np.ndarray:
        """bool (N,): which world points (N, 3) lie in the oriented box, within ``tol`` metres."""
        return (np.abs(self.to_local(points)) <= self.extent / 2 + tol).all(axis=1)

    def corners(self) -> np.ndarray:
        """float32 (8, 3) box corners in world metres."""
        signs = np.array([[x, y, z] for x in (-1, 1) for y in (-1, 1) for z in (-1, 1)], np.float64)
        local = signs * self.extent / 2
        c, s = math.cos(self.yaw), math.sin(self.yaw)
        rot = np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])
        return (local @ rot.T + self.centre).astype(np.float32)

    def to_dict(self) -> dict:
        """JSON-ready description (metres, radians)."""
        return {"name": self.name, "class_id": self.class_id, "shape": self.shape, "colour": self.colour,
                "centre": [round(float(v), 6) for v in self.centre],
                "extent": [round(float(v), 6) for v in self.extent],
                "yaw": round(float(self.yaw), 6), "size": round(float(self.size), 6)}


@dataclass
class Scene3D:
    """A generated 3D scene: N surface points and their ground truth.

    Attributes:
        points: float32 (N, 3) metres, world frame (+z up, floor at z = 0).
        colors: uint8 (N, 3) RGB in [0, 255].
        normals: float32 (N, 3) unit outward surface normals.
        class_id: int32 (N,) index into :data:`SCENE3D_CLASS_NAMES` (0 = floor).
        instance_id: int32 (N,) 0 for the floor, ``k`` for ``objects[k - 1]``.
        objects: the primitives, in instance order.

    Raises:
        ValueError: arrays of the wrong shape or dtype.
    """

    points: np.ndarray
    colors: np.ndarray
    normals: np.ndarray
    class_id: np.ndarray
    instance_id: np.ndarray
    objects: list[Object3D] = field(default_factory=list)

    def __post_init__(self) -> None:
        n = len(self.points)
        for name, shape, dtype in (("points", (n, 3), np.float32), ("colors", (n, 3), np.uint8),
                                   ("normals", (n, 3), np.float32), ("class_id", (n,), np.int32),
                                   ("instance_id", (n,), np.int32)):
            arr = getattr(self, name)
            if arr.shape != shape or arr.dtype != dtype:
                raise ValueError(f"Scene3D.{name} must be {np.dtype(dtype).name} {shape}, got {arr.dtype} {arr.shape}")

    def to_point_cloud(self) -> PointCloud:
        """The scene as a :class:`~ovtools.io.ply.PointCloud` with fields ``class_id`` and ``instance_id``."""
        return PointCloud(self.points, self.colors, self.normals,
                          {"class_id": self.class_id, "instance_id": self.instance_id})


# ------------------------------------------------------------------------ primitives
def _extent(rng: np.random.Generator, shape: str, size: float) -> np.ndarray:
    """Box extent (3,) in metres of a primitive of nominal ``size`` (random height or tube radius)."""
    ranges = {"cylinder": (0.8, 1.6), "cone": (0.9, 1.6), "torus": (0.28, 0.4)}  # torus: tube / outer diameter
    height = rng.uniform(*ranges[shape]) if shape in ranges else 1.0
    return np.array([size, size, size * height])


def _surface_area(shape: str, size: float, p: dict) -> float:
    """Visible surface area in m² of a primitive (the face on the floor excluded)."""
    if shape == "sphere":
        return 4 * math.pi * p["r"] ** 2
    if shape == "cube":
        return 5 * size**2
    if shape == "cylinder":
        return 2 * math.pi * p["r"] * p["h"] + math.pi * p["r"] ** 2
    if shape == "cone":
        return math.pi * p["r"] * math.hypot(p["r"], p["h"])
    return 4 * math.pi**2 * p["R"] * p["a"]  # torus


def _sample_local(rng: np.random.Generator, shape: str, size: float, p: dict, k: int):
    """``k`` points uniform by area on the visible surface, object frame (base centre at origin).

    Returns float64 (k, 3) points and (k, 3) unit normals.
    """
    theta = rng.uniform(0, 2 * math.pi, k)
    cos, sin = np.cos(theta), np.sin(theta)
    if shape == "sphere":
        n = rng.standard_normal((k, 3))
        n /= np.maximum(np.linalg.norm(n, axis=1, keepdims=True), 1e-12)
        return n * p["r"] + [0, 0, p["r"]], n
    if shape == "cube":
        face = rng.integers(0, 5, k)  # 0 top, 1 +x, 2 -x, 3 +y, 4 -y
        u, v = rng.uniform(-0.5, 0.5, (2, k)) * size
        normal = np.array([[0, 0, 1], [1, 0, 0], [-1, 0, 0], [0, 1, 0], [0, -1, 0]], np.float64)[face]
        top = face == 0
        pts = np.empty((k, 3))
        pts[:, 0] = np.where(top | (face >= 3), u, normal[:, 0] * size / 2)
        pts[:, 1] = np.where(top, v, np.where(face >= 3, normal[:, 1] * size / 2, u))
        pts[:, 2] = np.where(top, size, v + size / 2)
        return pts, normal
    if shape == "cylinder":
        r, h = p["r"], p["h"]
        side = rng.random(k) < 2 * h / (2 * h + r)  # side area / visible area
        rho = np.where(side, r, r * np.sqrt(rng.random(k)))
        z = np.where(side, rng.uniform(0, h, k), h)
        normal = np.where(side[:, None], np.stack([cos, sin, np.zeros(k)], 1), [0.0, 0.0, 1.0])
        return np.stack([rho * cos, rho * sin, z], 1), normal
    if shape == "cone":
        r, h = p["r"], p["h"]
        t = np.sqrt(rng.random(k))  # distance from the apex, as a fraction of the slant height
        normal = np.stack([h * cos, h * sin, np.full(k, r)], 1) / math.hypot(r, h)
        return np.stack([r * t * cos, r * t * sin, h * (1 - t)], 1), normal
    big_r, a = p["R"], p["a"]  # torus lying flat: accept tube angle v with density ∝ (R + a cos v)
    v = np.empty(0)
    while len(v) < k:
        cand = rng.uniform(0, 2 * math.pi, 2 * k + 16)
        v = np.r_[v, cand[rng.random(len(cand)) * (big_r + a) < big_r + a * np.cos(cand)]]
    v = v[:k]
    ring = big_r + a * np.cos(v)
    normal = np.stack([np.cos(v) * cos, np.cos(v) * sin, np.sin(v)], 1)
    return np.stack([ring * cos, ring * sin, a + a * np.sin(v)], 1), normal


def _footprint(obj: Object3D, xy: np.ndarray) -> np.ndarray:
    """bool (N,): floor points (N, 2) covered by the object's base (hidden from every camera)."""
    local = obj.to_local(np.c_[xy, np.zeros(len(xy))])
    if obj.shape == "cube":
        return (np.abs(local[:, :2]) < obj.size / 2).all(axis=1)
    if obj.shape in ("cylinder", "cone"):
        return np.hypot(local[:, 0], local[:, 1]) < obj.size / 2
    return np.zeros(len(xy), bool)  # sphere and torus touch the floor along a point or a circle


def _footprint_area(obj: Object3D) -> float:
    return obj.size**2 if obj.shape == "cube" else math.pi * (obj.size / 2) ** 2 if obj.shape in (
        "cylinder", "cone") else 0.0


def _floor_colours(rng: np.random.Generator, xy: np.ndarray) -> np.ndarray:
    """A muted grey/beige floor with a faint texture (plain, tiles or mottled), float (N, 3)."""
    hue = rng.uniform(0.07, 0.13) if rng.random() < 0.6 else rng.random()
    base = np.array(colorsys.hsv_to_rgb(hue, rng.uniform(0.0, 0.2), rng.uniform(0.45, 0.68))) * 255
    kind = rng.integers(3)
    if kind == 1:  # tiles
        cell = rng.uniform(0.3, 0.6)
        t = (np.floor(xy[:, 0] / cell) + np.floor(xy[:, 1] / cell)) % 2 - 0.5
    elif kind == 2:  # mottled: a few low-frequency waves
        t = sum(np.sin(xy @ rng.normal(0, 4, 2) + rng.uniform(0, 2 * math.pi)) for _ in range(3)) / 3
    else:
        t = np.zeros(len(xy))
    return base + 12.0 * t[:, None]


def _counts(areas: list[float], total: int) -> np.ndarray:
    """Split ``total`` points proportionally to ``areas`` (largest remainder, exact sum)."""
    share = np.asarray(areas) / sum(areas) * total
    counts = np.floor(share).astype(np.int64)
    counts[np.argsort(-(share - counts), kind="stable")[: total - counts.sum()]] += 1
    return counts


def _place(rng: np.random.Generator, n_objects: int, max_tries: int = 100) -> list[Object3D]:
    objects, discs = [], []  # discs: (x, y, radius) of the footprints' bounding circles
    for _ in range(n_objects):
        colour = list(COLOURS)[int(rng.integers(len(COLOURS)))]
        shape = SHAPES3D[int(rng.integers(len(SHAPES3D)))]
        size = float(rng.uniform(*SIZE_RANGE))
        extent = _extent(rng, shape, size)
        radius = size / math.sqrt(2) if shape == "cube" else size / 2
        yaw = float(rng.uniform(0, 2 * math.pi))
        for _try in range(max_tries):
            x, y = rng.uniform(-AREA_SIZE / 2 + radius, AREA_SIZE / 2 - radius, 2)
            if all(math.hypot(x - ox, y - oy) > radius + orad + 0.04 for ox, oy, orad in discs):
                discs.append((x, y, radius))
                objects.append(Object3D(shape, colour, np.array([x, y, extent[2] / 2], np.float32),
                                        extent.astype(np.float32), yaw, size))
                break
    return objects


def _params(obj: Object3D) -> dict:
    r = obj.size / 2
    if obj.shape == "torus":
        a = float(obj.extent[2]) / 2
        return {"R": r - a, "a": a}
    return {"r": r, "h": float(obj.extent[2])}


def render_scene3d(rng: np.random.Generator, points: int = 150_000, n_objects: int = 4) -> Scene3D:
    """One scene of ``n_objects`` primitives on the floor.

    Args:
        rng: numpy random generator (all randomness comes from it).
        points: total number of surface points, split over the surfaces by visible
            area (uniform density; the floor gets most of them).
        n_objects: primitives to place (a placement that fails 100 times is dropped).

    Returns:
        A :class:`Scene3D` of exactly ``points`` points: the floor first, then each
        object in instance order.

    Raises:
        ValueError: ``points < 1`` or ``n_objects < 0``.
    """
    if points < 1 or n_objects < 0:
        raise ValueError(f"need points >= 1 and n_objects >= 0, got {points}, {n_objects}")
    objects = _place(rng, n_objects)
    floor_area = FLOOR_SIZE**2 - sum(_footprint_area(o) for o in objects)
    counts = _counts([floor_area] + [o.area for o in objects], points)
    xy = np.zeros((0, 2))
    while len(xy) < counts[0]:
        cand = rng.uniform(-FLOOR_SIZE / 2, FLOOR_SIZE / 2, (int(counts[0] * 1.1) + 64, 2))
        hidden = np.zeros(len(cand), bool)
        for o in objects:
            hidden |= _footprint(o, cand)
        xy = np.r_[xy, cand[~hidden]]
    xy = xy[: counts[0]]
    pts = [np.c_[xy, np.zeros(len(xy))]]
    normals = [np.tile([0.0, 0.0, 1.0], (len(xy), 1))]
    colours = [_floor_colours(rng, xy)]
    class_id = [np.zeros(len(xy), np.int32)]
    instance_id = [np.zeros(len(xy), np.int32)]
    for k, (o, count) in enumerate(zip(objects, counts[1:]), start=1):
        local, nrm = _sample_local(rng, o.shape, o.size, _params(o), int(count))
        c, s = math.cos(o.yaw), math.sin(o.yaw)
        rot = np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])
        pts.append(local @ rot.T + [o.centre[0], o.centre[1], 0.0])
        normals.append(nrm @ rot.T)
        colours.append(np.broadcast_to(np.array(COLOURS[o.colour], np.float64), (int(count), 3)))
        class_id.append(np.full(int(count), o.class_id, np.int32))
        instance_id.append(np.full(int(count), k, np.int32))
    noise = rng.integers(-COLOUR_NOISE, COLOUR_NOISE + 1, (points, 3))
    rgb = np.clip(np.rint(np.concatenate(colours)) + noise, 0, 255).astype(np.uint8)
    return Scene3D(np.concatenate(pts).astype(np.float32), rgb, np.concatenate(normals).astype(np.float32),
                   np.concatenate(class_id), np.concatenate(instance_id), objects)


# ------------------------------------------------------------------------ datasets
def generate_scenes3d(n: int, seed: int = 0, start: int = 0, points: int = 150_000, min_objects: int = 3,
                      max_objects: int = 6) -> Iterator[Scene3D]:
    """Seeded 3D scenes; scene ``i`` depends only on ``(seed, i)``.

    Args:
        n: number of scenes.
        seed: dataset seed.
        start: index of the first scene (to render a slice).
        points: surface points per scene.
        min_objects, max_objects: inclusive range of objects per scene.

    Yields:
        :class:`Scene3D` objects.

    Raises:
        ValueError: ``n < 0``, ``points < 1`` or a bad object range (raised at the call).
    """
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    if not 0 <= min_objects <= max_objects:
        raise ValueError(f"need 0 <= min_objects <= max_objects, got {min_objects}, {max_objects}")
    if points < 1:
        raise ValueError(f"points must be >= 1, got {points}")

    def scenes() -> Iterator[Scene3D]:
        for i in range(start, start + n):
            rng = item_rng(seed, i, _STREAM)
            yield render_scene3d(rng, points, int(rng.integers(min_objects, max_objects + 1)))

    return scenes()


def write_scenes3d(out_dir: str | Path, n: int, seed: int = 0, start: int = 0, points: int = 150_000,
                   min_objects: int = 3, max_objects: int = 6) -> Path:
    """Write scenes as binary PLY files plus a JSON manifest.

    ``OUT/scene_<index:04d>.ply`` holds x y z, nx ny nz, red green blue and the int
    fields ``class_id`` and ``instance_id``.  ``OUT/scenes3d.json`` holds
    ``{"kind", "seed", "points", "frame", "class_names", "scenes": [{"index", "file",
    "num_points", "objects": [Object3D.to_dict() ...]}]}``; an object's
    ``instance_id`` is its position in ``objects`` + 1.

    Returns:
        The output folder.

    Raises:
        OutputPathError: ``out_dir`` is a file, or a folder that is not empty.
        ValueError: ``n < 0``, ``points < 1`` or a bad object range.
    """
    out = Path(out_dir)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise OutputPathError(f"output folder {out} " + ("is a file" if not out.is_dir() else
                              "is not empty; refusing to write the 3D scenes there"))
    scenes = generate_scenes3d(n, seed, start, points, min_objects, max_objects)  # validates arguments
    out.mkdir(parents=True, exist_ok=True)
    records = []
    for i, scene in enumerate(scenes, start=start):
        name = f"scene_{i:04d}.ply"
        write_ply(out / name, scene.to_point_cloud())
        records.append({"index": i, "file": name, "num_points": len(scene.points),
                        "objects": [o.to_dict() for o in scene.objects]})
    write_json(out / "scenes3d.json", {
        "kind": "scenes3d", "seed": seed, "points": points,
        "frame": "metres, right-handed, +z up, floor plane z = 0 centred on the origin",
        "class_names": list(SCENE3D_CLASS_NAMES), "scenes": records})
    return out
