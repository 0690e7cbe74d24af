"""The generated evaluation world: coloured shapes on cluttered backgrounds, with exact ground truth.

Eight shapes × eight colours (64 classes named ``"<colour> <shape>"``, e.g.
``"red star"``) are drawn, antialiased, onto muted backgrounds (plain, striped,
checkered, mottled, gradient) with pixel noise and thin distractor strokes that
are not shapes.  Every object carries its class, a tight box and the mask of its
*visible* part after occlusion by objects drawn later.

Everything is a pure function of a ``numpy.random.Generator``; the dataset
functions derive one generator per item from ``(seed, index)``, so item ``i`` is
the same bytes whatever range or process renders it.

Example:
    >>> scene = next(generate_scenes(1, seed=0, size=192))
    >>> scene.image.shape, scene.image.dtype
    ((192, 192, 3), dtype('uint8'))
    >>> all(o.mask.shape == (192, 192) for o in scene.objects)
    True
"""

from __future__ import annotations

import colorsys
import math
from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np
from PIL import Image, ImageDraw

SHAPES: tuple[str, ...] = ("circle", "square", "triangle", "star", "hexagon", "pentagon", "cross", "diamond")
COLOURS: dict[str, tuple[int, int, int]] = {
    "red": (222, 32, 38),
    "orange": (250, 140, 20),
    "yellow": (246, 226, 32),
    "green": (34, 168, 52),
    "cyan": (36, 212, 226),
    "blue": (36, 72, 228),
    "purple": (150, 50, 205),
    "white": (250, 250, 250),
}
CLASS_NAMES: tuple[str, ...] = tuple(f"{c} {s}" for c in COLOURS for s in SHAPES)
BACKGROUNDS: tuple[str, ...] = ("plain", "striped", "checkered", "mottled", "gradient")

_SUPERSAMPLE = 4
# Largest rotation (degrees) per shape; square and diamond stay near upright so they do not turn into each other.
_MAX_ROTATION = {"circle": 180.0, "square": 20.0, "diamond": 20.0}


def _unit_polygon(shape: str) -> np.ndarray:
    """Vertices (K, 2) of ``shape`` centred on its box centre, extent about [-1, 1], y down."""
    def ring(n: int, start: float = -90.0, radius=1.0) -> np.ndarray:
        a = np.deg2rad(start + 360.0 * np.arange(n) / n)
        r = np.broadcast_to(np.asarray(radius, dtype=np.float64), a.shape)
        return np.stack([r * np.cos(a), r * np.sin(a)], axis=1)

    if shape == "circle":
        return ring(48)
    if shape == "square":
        return np.array([[-0.8, -0.8], [0.8, -0.8], [0.8, 0.8], [-0.8, 0.8]])
    if shape == "triangle":
        return ring(3) + np.array([0.0, 0.25])
    if shape == "star":
        return ring(10, radius=np.tile([1.0, 0.45], 5))
    if shape == "hexagon":
        return ring(6, start=0.0)
    if shape == "pentagon":
        return ring(5) + np.array([0.0, 0.1])
    if shape == "cross":
        a, b = 0.32, 1.0
        return np.array([[-a, -b], [a, -b], [a, -a], [b, -a], [b, a], [a, a], [a, b], [-a, b],
                         [-a, a], [-b, a], [-b, -a], [-a, -a]])
    if shape == "diamond":
        return np.array([[0.0, -1.0], [0.62, 0.0], [0.0, 1.0], [-0.62, 0.0]])
    raise ValueError(f"unknown shape {shape!r}; valid shapes: {list(SHAPES)}")


_UNIT = {s: _unit_polygon(s) for s in SHAPES}


def shape_polygon(shape: str, cx: float, cy: float, diameter: float, angle: float = 0.0) -> np.ndarray:
    """Polygon of a shape in pixel coordinates.

    Args:
        shape: one of :data:`SHAPES`.
        cx, cy: centre in pixels (x right, y down).
        diameter: nominal size in pixels (the unrotated extent).
        angle: rotation in degrees, counter-clockwise on screen.

    Returns:
        float64 array (K, 2) of (x, y) vertices in pixels.

    Raises:
        ValueError: unknown shape.
    """
    if shape not in _UNIT:
        raise ValueError(f"unknown shape {shape!r}; valid shapes: {list(SHAPES)}")
    t = math.radians(angle)
    rot = np.array([[math.cos(t), math.sin(t)], [-math.sin(t), math.cos(t)]])
    return _UNIT[shape] @ rot * (diameter / 2.0) + np.array([cx, cy])


def polygon_area(poly: np.ndarray) -> float:
    """Area in square pixels of a simple polygon (K, 2) (shoelace formula)."""
    x, y = poly[:, 0], poly[:, 1]
    return 0.5 * abs(float(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1))))


def rasterize(poly: np.ndarray, height: int, width: int) -> tuple[np.ndarray, int, int] | None:
    """Antialiased coverage of a polygon, clipped to the canvas.

    Args:
        poly: (K, 2) vertices (x, y) in pixels.
        height, width: canvas size in pixels.

    Returns:
        ``(alpha, y0, x0)``: uint8 coverage (h, w) in [0, 255] of the canvas window
        whose top-left pixel is (x0, y0); ``None`` when the polygon misses the canvas.
    """
    x0 = max(int(math.floor(poly[:, 0].min())), 0)
    y0 = max(int(math.floor(poly[:, 1].min())), 0)
    x1 = min(int(math.ceil(poly[:, 0].max())) + 1, width)
    y1 = min(int(math.ceil(poly[:, 1].max())) + 1, height)
    if x1 <= x0 or y1 <= y0:
        return None
    s = _SUPERSAMPLE
    im = Image.new("L", ((x1 - x0) * s, (y1 - y0) * s), 0)
    pts = [((x - x0) * s, (y - y0) * s) for x, y in poly]
    ImageDraw.Draw(im).polygon(pts, fill=255)
    alpha = np.asarray(im.resize((x1 - x0, y1 - y0), Image.Resampling.BOX))
    return alpha, y0, x0


# ----------------------------------------------------------------------------- results
@dataclass(frozen=True)
class ShapeObject:
    """One drawn object and its ground truth.

    Attributes:
        shape: one of :data:`SHAPES`.
        colour: one of :data:`COLOURS`.
        box: float32 (4,) xyxy in pixels, tight around ``mask``; x2/y2 are pixel
            edges (exclusive), so ``x2 - x1`` is the width in pixels.
        mask: bool (H, W), the visible part after occlusion (coverage >= 50 %).
        diameter: nominal size in pixels (unrotated extent).
        angle: rotation in degrees.
        visible_fraction: visible mask area / full polygon area, in [0, 1].
    """

    shape: str
    colour: str
    box: np.ndarray
    mask: np.ndarray
    diameter: float
    angle: float
    visible_fraction: float

    @property
    def name(self) -> str:
        """Class name, ``"<colour> <shape>"``."""
        return f"{self.colour} {self.shape}"

    @property
    def class_id(self) -> int:
        """Index of :attr:`name` in :data:`CLASS_NAMES`."""
        return CLASS_NAMES.index(self.name)

    @property
    def area(self) -> int:
        """Visible area in pixels."""
        return int(self.mask.sum())


@dataclass(frozen=True)
class Scene:
    """A generated image and its objects.

    Attributes:
        image: uint8 (H, W, 3) RGB in [0, 255].
        objects: drawn objects, in drawing order (later ones may occlude earlier ones).
        background: background kind, one of :data:`BACKGROUNDS`.
    """

    image: np.ndarray
    objects: list[ShapeObject] = field(default_factory=list)
    background: str = "plain"

    def __post_init__(self) -> None:
        if self.image.ndim != 3 or self.image.shape[2] != 3 or self.image.dtype != np.uint8:
            raise ValueError(f"Scene.image must be uint8 (H, W, 3), got {self.image.dtype} {self.image.shape}")
        for o in self.objects:
            if o.mask.shape != self.image.shape[:2]:
                raise ValueError(f"object mask shape {o.mask.shape} != image shape {self.image.shape[:2]}")

    @property
    def boxes(self) -> np.ndarray:
        """float32 (N, 4) xyxy pixel boxes of the objects; (0, 4) when empty."""
        if not self.objects:
            return np.zeros((0, 4), np.float32)
        return np.stack([o.box for o in self.objects]).astype(np.float32)

    @property
    def class_ids(self) -> np.ndarray:
        """int64 (N,) indices into :data:`CLASS_NAMES`."""
        return np.array([o.class_id for o in self.objects], dtype=np.int64)


# ---------------------------------------------------------------------- backgrounds
def _muted(rng: np.random.Generator) -> np.ndarray:
    """A desaturated mid-luminance colour, float (3,) in [0, 255]: never confusable with a class colour."""
    r, g, b = colorsys.hsv_to_rgb(rng.random(), rng.uniform(0.0, 0.25), rng.uniform(0.3, 0.68))
    return np.array([r, g, b]) * 255.0


def _background(rng: np.random.Generator, h: int, w: int) -> tuple[np.ndarray, str]:
    kind = BACKGROUNDS[int(rng.integers(len(BACKGROUNDS)))]
    a, b = _muted(rng), _muted(rng)
    yy = np.arange(h, dtype=np.float32)[:, None]
    xx = np.arange(w, dtype=np.float32)[None, :]
    if kind == "plain":
        t = np.zeros((h, w), np.float32)
    elif kind == "striped":
        theta = rng.uniform(0, math.pi)
        period = rng.uniform(5, 18)
        t = (np.sin(2 * math.pi * (xx * math.cos(theta) + yy * math.sin(theta)) / period) > 0).astype(np.float32)
    elif kind == "checkered":
        cell = rng.uniform(6, 20)
        t = ((np.floor(xx / cell) + np.floor(yy / cell)) % 2).astype(np.float32)
    elif kind == "mottled":
        g = int(rng.integers(3, 12))
        low = Image.fromarray((rng.random((g, g)) * 255).astype(np.uint8))
        t = np.asarray(low.resize((w, h), Image.Resampling.BICUBIC), dtype=np.float32) / 255.0
    else:  # gradient
        theta = rng.uniform(0, 2 * math.pi)
        p = xx * math.cos(theta) + yy * math.sin(theta)
        t = (p - p.min()) / max(float(p.max() - p.min()), 1.0)
    t = np.broadcast_to(t, (h, w)).astype(np.float32)[..., None]
    a, b = a.astype(np.float32), b.astype(np.float32)
    return a + (b - a) * t, kind


def _strokes(rng: np.random.Generator, img: np.ndarray, n: int) -> np.ndarray:
    """Thin lines, arcs and dots that are not shapes (distractors)."""
    if n == 0:
        return img
    h, w = img.shape[:2]
    pil = Image.fromarray(np.clip(img, 0, 255).astype(np.uint8))
    d = ImageDraw.Draw(pil)
    names = list(COLOURS)
    for _ in range(n):
        if rng.random() < 0.25:
            base = np.array(COLOURS[names[int(rng.integers(len(names)))]], dtype=np.float64)
            col = tuple(int(v) for v in 0.6 * base + 0.4 * _muted(rng))
        else:
            col = tuple(int(v) for v in _muted(rng))
        kind = rng.random()
        x, y = rng.uniform(0, w), rng.uniform(0, h)
        if kind < 0.5:
            length, theta = rng.uniform(8, 0.5 * max(h, w)), rng.uniform(0, 2 * math.pi)
            d.line([(x, y), (x + length * math.cos(theta), y + length * math.sin(theta))], fill=col,
                   width=int(rng.integers(1, 3)))
        elif kind < 0.8:
            r = rng.uniform(5, 20)
            start = rng.uniform(0, 360)
            d.arc([x - r, y - r, x + r, y + r], start, start + rng.uniform(40, 200), fill=col, width=1)
        else:
            r = rng.uniform(0.8, 2.2)
            d.ellipse([x - r, y - r, x + r, y + r], fill=col)
    return np.asarray(pil, dtype=np.float32)


# --------------------------------------------------------------------------- drawing
@dataclass
class _Placed:
    shape: str
    colour: str
    diameter: float
    angle: float
    alpha: np.ndarray  # uint8 (h, w) window
    y0: int
    x0: int
    full: np.ndarray  # bool (H, W) coverage >= 50 %
    area: float  # polygon area (px^2), including any part outside the canvas


def _place(rng, h, w, shape, colour, diameter, cx, cy) -> _Placed | None:
    angle = float(rng.uniform(-1, 1) * _MAX_ROTATION.get(shape, 180.0))
    poly = shape_polygon(shape, cx, cy, diameter, angle)
    r = rasterize(poly, h, w)
    if r is None:
        return None
    alpha, y0, x0 = r
    full = np.zeros((h, w), bool)
    full[y0 : y0 + alpha.shape[0], x0 : x0 + alpha.shape[1]] = alpha >= 128
    return _Placed(shape, colour, diameter, angle, alpha, y0, x0, full, polygon_area(poly))


def _paint(rng: np.random.Generator, img: np.ndarray, p: _Placed) -> None:
    """Alpha-blend an object (base colour, mild shading) into ``img`` (float32 HWC) in place."""
    ah, aw = p.alpha.shape
    win = img[p.y0 : p.y0 + ah, p.x0 : p.x0 + aw]
    yy = np.arange(ah, dtype=np.float32)[:, None]
    xx = np.arange(aw, dtype=np.float32)[None, :]
    gx, gy = rng.normal(0, 1, 2)
    norm = max(ah, aw)
    shade = rng.uniform(0.88, 1.04) + 0.08 * (gx * (xx - aw / 2) + gy * (yy - ah / 2)) / norm
    colour = np.array(COLOURS[p.colour], np.float32)[None, None] * shade[..., None]
    a = (p.alpha.astype(np.float32) / 255.0)[..., None]
    win *= 1 - a
    win += a * colour


def _finish(rng: np.random.Generator, img: np.ndarray) -> np.ndarray:
    img = img + rng.standard_normal(img.shape, dtype=np.float32) * np.float32(rng.uniform(1.5, 6.0))
    return np.clip(np.rint(img), 0, 255).astype(np.uint8)


def _objects_from(placed: list[_Placed], h: int, w: int) -> list[ShapeObject]:
    out = []
    covered = np.zeros((h, w), bool)
    vis_masks = [None] * len(placed)
    for i in range(len(placed) - 1, -1, -1):
        vis_masks[i] = placed[i].full & ~covered
        covered |= placed[i].full
    for p, vis in zip(placed, vis_masks):
        ys, xs = np.nonzero(vis)
        if len(xs) == 0:
            continue
        box = np.array([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1], np.float32)
        out.append(ShapeObject(p.shape, p.colour, box, vis, p.diameter, p.angle,
                               float(min(1.0, vis.sum() / max(p.area, 1.0)))))
    return out


def _pick_class(rng: np.random.Generator, class_name: str | None) -> tuple[str, str]:
    if class_name is None:
        class_name = CLASS_NAMES[int(rng.integers(len(CLASS_NAMES)))]
    if class_name not in CLASS_NAMES:
        raise ValueError(f"unknown class {class_name!r}; valid classes are '<colour> <shape>' with colour in "
                         f"{list(COLOURS)} and shape in {list(SHAPES)}")
    colour, shape = class_name.split(" ")
    return shape, colour


def render_object_image(rng: np.random.Generator, size: int = 64, class_name: str | None = None,
                        fill: tuple[float, float] = (0.55, 0.9)) -> Scene:
    """One object, roughly centred, on a cluttered background.

    Args:
        rng: numpy random generator (all randomness comes from it).
        size: image side in pixels.
        class_name: ``"<colour> <shape>"``; random when ``None``.
        fill: range of the object's nominal diameter as a fraction of ``size``.

    Returns:
        A :class:`Scene` with exactly one object.

    Raises:
        ValueError: unknown class name or ``size < 16``.
    """
    if size < 16:
        raise ValueError(f"size must be >= 16 pixels, got {size}")
    shape, colour = _pick_class(rng, class_name)
    img, kind = _background(rng, size, size)
    img = _strokes(rng, img, int(rng.integers(0, 5)))
    d = rng.uniform(*fill) * size
    slack = max(size - d, 0.0) / 2
    cx = size / 2 + rng.uniform(-1, 1) * slack * 0.8
    cy = size / 2 + rng.uniform(-1, 1) * slack * 0.8
    p = _place(rng, size, size, shape, colour, d, cx, cy)
    _paint(rng, img, p)
    return Scene(_finish(rng, img), _objects_from([p], size, size), kind)


def render_scene(rng: np.random.Generator, size: int | tuple[int, int] = 192, n_objects: int = 4,
                 min_diameter: float = 24.0, max_diameter: float = 64.0, min_visible: float = 0.6,
                 max_tries: int = 30) -> Scene:
    """A cluttered scene of several objects with partial occlusion.

    Objects are placed one after another; a placement is kept only if every
    object (earlier ones included) keeps at least ``min_visible`` of its area
    visible and inside the canvas.  After ``max_tries`` failed placements an
    object is dropped, so a crowded request can yield fewer objects.

    Args:
        rng: numpy random generator.
        size: image side, or (height, width), in pixels.
        n_objects: objects to place.
        min_diameter, max_diameter: range of nominal object size in pixels.
        min_visible: smallest visible fraction of each object, in (0, 1].
        max_tries: placements tried per object.

    Returns:
        A :class:`Scene`.

    Raises:
        ValueError: non-positive size, n_objects < 0, or bad diameter range.
    """
    h, w = (size, size) if isinstance(size, int) else (int(size[0]), int(size[1]))
    if h < 16 or w < 16:
        raise ValueError(f"size must be >= 16 pixels, got {(h, w)}")
    if n_objects < 0:
        raise ValueError(f"n_objects must be >= 0, got {n_objects}")
    if not 0 < min_diameter <= max_diameter:
        raise ValueError(f"need 0 < min_diameter <= max_diameter, got {min_diameter}, {max_diameter}")
    img, kind = _background(rng, h, w)
    img = _strokes(rng, img, int(rng.integers(0, 10)))
    placed: list[_Placed] = []
    vis = []  # visible masks of placed objects
    for _ in range(n_objects):
        shape, colour = _pick_class(rng, None)
        for _try in range(max_tries):
            d = rng.uniform(min_diameter, min(max_diameter, 0.9 * min(h, w)))
            cx, cy = rng.uniform(0.2 * d, w - 0.2 * d), rng.uniform(0.2 * d, h - 0.2 * d)
            p = _place(rng, h, w, shape, colour, d, cx, cy)
            if p is None or p.full.sum() < max(min_visible, 0.8) * p.area:
                continue
            new_vis = [v & ~p.full for v in vis]
            if all(v.sum() >= min_visible * q.area for v, q in zip(new_vis, placed)):
                placed.append(p)
                vis = new_vis + [p.full]
                break
    for p in placed:
        _paint(rng, img, p)
    return Scene(_finish(rng, img), _objects_from(placed, h, w), kind)


# ----------------------------------------------------------------------- datasets
def item_rng(seed: int, index: int, stream: int = 0) -> np.random.Generator:
    """The generator for item ``index`` of a dataset with ``seed`` (``stream`` separates dataset kinds)."""
    return np.random.default_rng([int(seed), int(stream), int(index)])


def generate_classification(n: int, seed: int = 0, size: int = 64, start: int = 0) -> Iterator[Scene]:
    """Single-object images, classes balanced: item ``i`` shows ``CLASS_NAMES[i % 64]``.

    Args:
        n: number of images.
        seed: dataset seed; item ``i`` depends only on ``(seed, i)``.
        size: image side in pixels.
        start: index of the first item (to render a slice).

    Yields:
        :class:`Scene` objects with one object each.
    """
    for i in range(start, start + n):
        yield render_object_image(item_rng(seed, i, 1), size, CLASS_NAMES[i % len(CLASS_NAMES)])


def generate_scenes(n: int, seed: int = 0, size: int = 192, min_objects: int = 3, max_objects: int = 6,
                    start: int = 0, **kwargs) -> Iterator[Scene]:
    """Multi-object scenes for detection and segmentation.

    Args:
        n: number of scenes.
        seed: dataset seed; scene ``i`` depends only on ``(seed, i)``.
        size: image side in pixels.
        min_objects, max_objects: inclusive range of objects asked for per scene.
        start: index of the first scene.
        **kwargs: passed to :func:`render_scene` (``min_diameter``, ``max_diameter``, ...).

    Yields:
        :class:`Scene` objects.

    Raises:
        ValueError: ``min_objects > max_objects`` or negative.
    """
    if not 0 <= min_objects <= max_objects:
        raise ValueError(f"need 0 <= min_objects <= max_objects, got {min_objects}, {max_objects}")
    for i in range(start, start + n):
        rng = item_rng(seed, i, 2)
        yield render_scene(rng, size, int(rng.integers(min_objects, max_objects + 1)), **kwargs)


# ----------------------------------------------------------------------- captions
_ROWS = ("top", "middle", "bottom")
_COLS = ("left", "centre", "right")


def size_word(obj: ShapeObject, image_shape: tuple[int, ...]) -> str:
    """``"small"``, ``"medium"`` or ``"large"`` from the object's box size relative to the image."""
    rel = float(max(obj.box[2] - obj.box[0], obj.box[3] - obj.box[1])) / min(image_shape[:2])
    return "small" if rel < 0.2 else "medium" if rel < 0.3 else "large"


def position_phrase(obj: ShapeObject, image_shape: tuple[int, ...]) -> str:
    """Where the box centre lies on a 3×3 grid: "in the top left corner", "at the top", "in the centre" ..."""
    h, w = image_shape[:2]
    cx, cy = (obj.box[0] + obj.box[2]) / 2, (obj.box[1] + obj.box[3]) / 2
    row, col = _ROWS[min(int(3 * cy / h), 2)], _COLS[min(int(3 * cx / w), 2)]
    if row == "middle":
        return "in the centre" if col == "centre" else f"on the {col}"
    if col == "centre":
        return f"at the {row}"
    return f"in the {row} {col} corner"


def describe_object(obj: ShapeObject, image_shape: tuple[int, ...], detail: str = "name") -> str:
    """Caption of one object at a chosen granularity.

    Args:
        obj: the object.
        image_shape: (H, W[, 3]) of its image.
        detail: ``"name"`` → "a red star"; ``"size"`` → "a small red star";
            ``"position"`` → "a red star in the top left corner";
            ``"full"`` → "a small red star in the top left corner".

    Raises:
        ValueError: unknown ``detail``.
    """
    if detail == "name":
        return f"a {obj.name}"
    if detail == "size":
        return f"a {size_word(obj, image_shape)} {obj.name}"
    if detail == "position":
        return f"a {obj.name} {position_phrase(obj, image_shape)}"
    if detail == "full":
        return f"a {size_word(obj, image_shape)} {obj.name} {position_phrase(obj, image_shape)}"
    raise ValueError(f"detail must be one of ['name', 'size', 'position', 'full'], got {detail!r}")


def describe_scene(scene: Scene) -> str:
    """Whole-scene caption: "a red star and a blue circle on a striped background"."""
    names = [f"a {o.name}" for o in scene.objects]
    if not names:
        things = "nothing"
    elif len(names) == 1:
        things = names[0]
    else:
        things = ", ".join(names[:-1]) + " and " + names[-1]
    return f"{things} on a {scene.background} background"
