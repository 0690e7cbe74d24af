"""PCD reading (PCL's format): organized clouds, NaN rows, doubles, packed colours, extra fields."""

from __future__ import annotations

import numpy as np
import pytest

from ovtools.errors import PointCloudError
from ovtools.io.pcd import read_pcd
from ovtools.io.ply import read_point_cloud

RNG = np.random.default_rng(0)
XYZ = RNG.uniform(-1, 1, (48, 3))
RGB = RNG.integers(0, 256, (48, 3)).astype(np.uint32)
PACKED = (RGB[:, 0] << 16) | (RGB[:, 1] << 8) | RGB[:, 2]


def _header(fields, sizes, types, w, h, data):
    return (f"# .PCD v0.7\nVERSION 0.7\nFIELDS {' '.join(fields)}\nSIZE {' '.join(map(str, sizes))}\n"
            f"TYPE {' '.join(types)}\nCOUNT {' '.join('1' for _ in fields)}\nWIDTH {w}\nHEIGHT {h}\n"
            f"VIEWPOINT 0 0 0 1 0 0 0\nPOINTS {w * h}\nDATA {data}\n").encode()


def test_binary_organized_doubles_colours_and_labels(tmp_path):
    """A 6 x 8 organized cloud in survey coordinates: open3d 0.20 reads binary doubles as zeros."""
    pts = XYZ + [512345.0, 5412345.0, 310.0]
    pts[[3, 9]] = np.nan
    rec = np.empty(48, [("x", "<f8"), ("y", "<f8"), ("z", "<f8"), ("rgb", "<f4"), ("label", "<u4")])
    for i, k in enumerate("xyz"):
        rec[k] = pts[:, i]
    rec["rgb"] = PACKED.astype("<u4").view("<f4")  # PCL packs 0x00RRGGBB into a float's bytes
    rec["label"] = np.arange(48)
    path = tmp_path / "a.pcd"
    path.write_bytes(_header(["x", "y", "z", "rgb", "label"], [8, 8, 8, 4, 4], "FFFFU", 8, 6, "binary")
                     + rec.tobytes())
    cloud = read_point_cloud(path, keep_invalid=True)
    assert cloud.organized == (6, 8) and cloud.points.dtype == np.float64 and len(cloud) == 48
    np.testing.assert_array_equal(cloud.points, pts)  # NaN rows in place, every digit kept
    np.testing.assert_array_equal(cloud.colors, RGB.astype(np.uint8))
    np.testing.assert_array_equal(cloud.fields["label"], np.arange(48))
    with pytest.warns(UserWarning, match="dropped 2 of 48"):
        assert len(read_point_cloud(path)) == 46


def test_ascii_with_integer_packed_rgb(tmp_path):
    lines = "\n".join(f"{x:.6f} {y:.6f} {z:.6f} {c}" for (x, y, z), c in zip(XYZ, PACKED))
    path = tmp_path / "b.pcd"
    path.write_bytes(_header(["x", "y", "z", "rgb"], [4, 4, 4, 4], "FFFF", 48, 1, "ascii") + lines.encode())
    pcd = read_pcd(path)
    assert pcd.organized is None and pcd.points.dtype == np.float32
    np.testing.assert_allclose(pcd.points, XYZ, atol=1e-6)
    np.testing.assert_array_equal(pcd.colors, RGB.astype(np.uint8))


@pytest.mark.parametrize("text,match", [
    ("VERSION 0.7\nFIELDS x y\nSIZE 4 4\nTYPE F F\nWIDTH 1\nHEIGHT 1\nPOINTS 1\nDATA ascii\n1 2\n", "x y z"),
    ("VERSION 0.7\nFIELDS x y z\nSIZE 4 4 4\nTYPE F F F\nWIDTH 2\nHEIGHT 2\nPOINTS 3\nDATA ascii\n", "POINTS 3"),
    ("VERSION 0.7\nFIELDS x y z\nSIZE 4 4 4\nTYPE F F F\nWIDTH 4\nHEIGHT 1\nPOINTS 4\nDATA binary\n\0\0", "truncated"),
    ("hello\n", "not a PCD"),
])
def test_malformed_pcd_named(tmp_path, text, match):
    path = tmp_path / "bad.pcd"
    path.write_bytes(text.encode())
    with pytest.raises(PointCloudError, match=match) as e:
        read_point_cloud(path)
    assert str(path) in str(e.value)
