"""PCD files (the Point Cloud Library's format), read with numpy: every row kept, organized shape, doubles.

A PCD file is a text header (``FIELDS``/``SIZE``/``TYPE``/``COUNT``, ``WIDTH``/``HEIGHT``,
``POINTS``, ``DATA``) followed by the points as ASCII lines or packed binary records
(PCL, "The PCD (Point Cloud Data) file format",
https://pointclouds.org/documentation/tutorials/pcd_file_format.html).  ``ascii`` and
``binary`` data are read here, exactly as stored: ``SIZE 8`` coordinates stay float64
(open3d 0.20 reads binary doubles as zeros), NaN rows (pixels without a return) keep their
place, and ``HEIGHT > 1`` is an organized cloud of ``(HEIGHT, WIDTH)``.  Colours come from
PCL's packed ``rgb``/``rgba`` field (bytes ``0x00RRGGBB`` of a float32 or uint32); normals
from ``normal_x/normal_y/normal_z``; other single-value numeric fields (``label``,
``intensity``, ...) are kept as per-point fields.  ``binary_compressed`` data (LZF) is
left to open3d.

Example:
    >>> import tempfile, pathlib
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "a.pcd"
    >>> _ = p.write_text("VERSION 0.7\\nFIELDS x y z\\nSIZE 4 4 4\\nTYPE F F F\\nCOUNT 1 1 1\\nWIDTH 2\\n"
    ...                  "HEIGHT 1\\nPOINTS 2\\nDATA ascii\\n1 2 3\\nnan nan nan\\n")
    >>> pcd = read_pcd(p)
    >>> pcd.points.tolist()[0], pcd.organized, pcd.binary_compressed
    ([1.0, 2.0, 3.0], None, False)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import PointCloudError

_KINDS = {"F": "f", "I": "i", "U": "u"}


@dataclass
class PCDData:
    """What :func:`read_pcd` found.

    Attributes:
        points: float32 or float64 (N, 3), as stored (NaN rows kept); empty for ``binary_compressed``.
        colors: uint8 (N, 3) RGB from ``rgb``/``rgba``, or ``None``.
        normals: float32 (N, 3) or ``None``.
        fields: other numeric single-value fields by name, length N.
        organized: ``(HEIGHT, WIDTH)`` when ``HEIGHT > 1``, else ``None``.
        double: the coordinates are stored as 8-byte floats.
        binary_compressed: the data is LZF-compressed and was not decoded here.
    """

    points: np.ndarray
    colors: np.ndarray | None = None
    normals: np.ndarray | None = None
    fields: dict = field(default_factory=dict)
    organized: tuple[int, int] | None = None
    double: bool = False
    binary_compressed: bool = False


def _header(f, path: Path) -> dict[str, list[str]]:
    head: dict[str, list[str]] = {}
    for _ in range(64):
        line = f.readline()
        if not line:
            break
        text = line.decode("ascii", "replace").strip()
        if not text or text.startswith("#"):
            continue
        key, *values = text.split()
        head[key.upper()] = values
        if key.upper() == "DATA":
            return head
    raise PointCloudError(f"{path}: not a PCD file (no DATA line in its header)")


def read_pcd(path: str | Path) -> PCDData:
    """Read a PCD file's points (every row, in file order), colours, normals, fields and shape.

    Args:
        path: a ``.pcd`` file.

    Returns:
        :class:`PCDData`.

    Raises:
        PointCloudError: a malformed header (no x/y/z, sizes that do not match the types, a
            WIDTH × HEIGHT that is not POINTS) or truncated data; the message names the file.
    """
    path = Path(path)
    with open(path, "rb") as f:
        head = _header(f, path)
        body = f.read()
    names = head.get("FIELDS", [])
    sizes, types = head.get("SIZE", []), head.get("TYPE", [])
    counts = head.get("COUNT", ["1"] * len(names))
    if not {"x", "y", "z"} <= set(names) or not len(names) == len(sizes) == len(types) == len(counts):
        raise PointCloudError(f"{path}: PCD header needs x y z and one SIZE/TYPE/COUNT per field (FIELDS {names})")
    try:
        w, h = int(head.get("WIDTH", ["0"])[0]), int(head.get("HEIGHT", ["1"])[0])
        n = int(head.get("POINTS", [str(w * h)])[0])
        dtype = np.dtype([(f"{name}_{k}" if name == "_" else name, f"<{_KINDS[t.upper()]}{int(s)}", (int(c),))
                          for k, (name, s, t, c) in enumerate(zip(names, sizes, types, counts))])
    except (ValueError, KeyError, TypeError) as e:
        raise PointCloudError(f"{path}: malformed PCD header ({e})") from None
    if w * h != n:
        raise PointCloudError(f"{path}: WIDTH x HEIGHT = {w} x {h} is not POINTS {n}")
    organized = (h, w) if h > 1 else None
    double = dtype["x"].base.itemsize == 8
    mode = head["DATA"][0].lower() if head["DATA"] else ""
    if mode == "binary_compressed":
        return PCDData(np.zeros((0, 3)), organized=organized, double=double, binary_compressed=True)
    if mode == "binary":
        if len(body) < n * dtype.itemsize:
            raise PointCloudError(f"{path}: truncated PCD data ({len(body)} bytes for {n} points of "
                                  f"{dtype.itemsize} bytes)")
        rec = np.frombuffer(body, dtype=dtype, count=n)
    elif mode == "ascii":
        flat = [(name, dtype[name].base, dtype[name].shape[0]) for name in dtype.names]
        try:
            table = np.loadtxt(body.decode("ascii", "replace").splitlines(), dtype=np.float64, ndmin=2)
        except ValueError as e:
            raise PointCloudError(f"{path}: unreadable ASCII PCD data ({e})") from None
        if table.shape != (n, sum(c for _, _, c in flat)):
            raise PointCloudError(f"{path}: ASCII PCD data has shape {table.shape}, header says {n} points")
        rec = np.empty(n, dtype=dtype)
        col = 0
        for name, base, c in flat:
            vals = table[:, col : col + c]
            if name in ("rgb", "rgba") and base.kind == "f" and (vals == np.round(vals)).all():
                vals = vals.astype(np.uint32).view(np.float32)  # PCL writes packed colours as integers
            rec[name] = vals.astype(base).reshape(n, c)
            col += c
    else:
        raise PointCloudError(f"{path}: unknown PCD DATA mode {mode!r} (ascii, binary, binary_compressed)")
    points = np.stack([rec[k][:, 0] for k in "xyz"], 1).astype(np.float64 if double else np.float32)
    colors = None
    packed = next((k for k in ("rgb", "rgba") if k in dtype.names), None)
    if packed is not None:
        v = np.ascontiguousarray(rec[packed][:, 0]).view(np.uint32) if rec[packed].dtype.itemsize == 4 else \
            rec[packed][:, 0].astype(np.uint32)
        colors = np.stack([(v >> 16) & 255, (v >> 8) & 255, v & 255], 1).astype(np.uint8)
    normals = None
    if {"normal_x", "normal_y", "normal_z"} <= set(dtype.names):
        normals = np.stack([rec[k][:, 0] for k in ("normal_x", "normal_y", "normal_z")], 1).astype(np.float32)
    skip = {"x", "y", "z", "rgb", "rgba", "normal_x", "normal_y", "normal_z", "curvature"}
    fields = {k: np.array(rec[k][:, 0]) for k in dtype.names
              if k not in skip and dtype[k].shape == (1,) and k.isidentifier()}
    return PCDData(points, colors, normals, fields, organized, double)
