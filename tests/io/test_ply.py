"""PLY reading (every variant written here with plyfile), writing, voxel down-sampling."""

from __future__ import annotations

import sys
from contextlib import nullcontext

import numpy as np
import pytest

plyfile = pytest.importorskip("plyfile")

from ovtools.errors import MissingDependencyError, OvtoolsError, PointCloudError, import_extra
from ovtools.io.ply import PointCloud, read_point_cloud, write_ply
from ovtools.scene3d.voxels import voxel_downsample
from ovtools.io.writers import OutputPathError

RNG = np.random.default_rng(0)
XYZ = RNG.uniform(-1, 1, (50, 3)).astype(np.float32)
RGB = RNG.integers(0, 256, (50, 3), dtype=np.uint8)


def _write(path, props: dict, *, text=False, byte_order="<", faces=None, face_key="vertex_indices"):
    """Write a PLY with plyfile: ``props`` maps property name → 1-D array (its dtype is the PLY type)."""
    n = len(next(iter(props.values())))
    vertex = np.empty(n, dtype=[(k, v.dtype.str.lstrip("<>=|")) for k, v in props.items()])
    for k, v in props.items():
        vertex[k] = v
    elements = [plyfile.PlyElement.describe(vertex, "vertex")]
    if faces is not None:
        face = np.empty(len(faces), dtype=[(face_key, "O")])
        face[face_key] = [np.asarray(f, np.int32) for f in faces]
        elements.append(plyfile.PlyElement.describe(face, "face", val_types={face_key: "i4"}))
    plyfile.PlyData(elements, text=text, byte_order=byte_order).write(str(path))
    return path


def _xyz(pts=XYZ, dtype=np.float32):
    return {k: pts[:, i].astype(dtype) for i, k in enumerate("xyz")}


@pytest.mark.parametrize("text,order", [(False, "<"), (False, ">"), (True, "=")])
def test_encodings_round_trip(tmp_path, text, order):
    props = {**_xyz(), "red": RGB[:, 0], "green": RGB[:, 1], "blue": RGB[:, 2],
             "class_id": np.arange(50, dtype=np.int32), "score": np.linspace(0, 1, 50, dtype=np.float32)}
    cloud = read_point_cloud(_write(tmp_path / "a.ply", props, text=text, byte_order=order))
    np.testing.assert_allclose(cloud.points, XYZ, atol=1e-6)
    np.testing.assert_array_equal(cloud.colors, RGB)
    assert cloud.points.dtype == np.float32 and cloud.normals is None
    assert set(cloud.fields) == {"class_id", "score"}
    np.testing.assert_array_equal(cloud.fields["class_id"], np.arange(50))
    assert cloud.fields["class_id"].dtype == np.int32 and cloud.fields["class_id"].dtype.isnative


@pytest.mark.parametrize("names", [("red", "green", "blue"), ("r", "g", "b"), ("R", "G", "B"),
                                   ("diffuse_red", "diffuse_green", "diffuse_blue")])
def test_colour_names(tmp_path, names):
    props = {**_xyz(), **{n: RGB[:, i] for i, n in enumerate(names)}, "alpha": np.full(50, 255, np.uint8)}
    cloud = read_point_cloud(_write(tmp_path / "c.ply", props))
    np.testing.assert_array_equal(cloud.colors, RGB)
    assert cloud.fields == {}


@pytest.mark.parametrize("values", [
    RGB.astype(np.uint16) * 257,                  # uint16 0-65535
    RGB.astype(np.float32) / 255.0,               # float 0-1
    RGB.astype(np.float64) / 255.0,               # double 0-1
    RGB.astype(np.float32),                       # float 0-255
])
def test_colour_types(tmp_path, values):
    props = {**_xyz(XYZ, np.float64), **{n: values[:, i] for i, n in enumerate(("red", "green", "blue"))}}
    cloud = read_point_cloud(_write(tmp_path / "t.ply", props))
    assert cloud.colors.dtype == np.uint8
    np.testing.assert_array_equal(cloud.colors, RGB)


def test_no_colours_and_normals(tmp_path):
    nrm = np.tile(np.array([0, 0, 1], np.float32), (50, 1))
    props = {**_xyz(), **{k: nrm[:, i] for i, k in enumerate(("nx", "ny", "nz"))}}
    cloud = read_point_cloud(_write(tmp_path / "n.ply", props))
    assert cloud.colors is None
    np.testing.assert_array_equal(cloud.normals, nrm)


SQUARE = np.array([[0, 0, 0], [1, 0, 0], [1, 1, 0], [0, 1, 0], [0, 0, 2]], np.float32)


@pytest.mark.parametrize("face_key", ["vertex_indices", "vertex_index"])
def test_mesh_vertices_and_sample(tmp_path, face_key):
    col = np.array([[255, 0, 0], [255, 0, 0], [0, 0, 255], [0, 0, 255], [9, 9, 9]], np.uint8)
    props = {**_xyz(SQUARE), "red": col[:, 0], "green": col[:, 1], "blue": col[:, 2],
             "label": np.array([1, 1, 2, 2, 3], np.int32)}
    path = _write(tmp_path / "m.ply", props, faces=[[0, 1, 2, 3]], face_key=face_key)  # a unit quad; vertex 4 unused
    verts = read_point_cloud(path)
    assert len(verts) == 5 and verts.normals is None
    a = read_point_cloud(path, mesh="sample", sample_points=4000)
    b = read_point_cloud(path, mesh="sample", sample_points=4000)
    np.testing.assert_array_equal(a.points, b.points)  # seeded
    assert len(a) == 4000 and np.all(a.points[:, 2] == 0)
    assert (a.points[:, :2] >= 0).all() and (a.points[:, :2] <= 1).all()
    assert abs(a.points[:, 0].mean() - 0.5) < 0.03 and abs(a.points[:, 1].mean() - 0.5) < 0.03  # uniform
    np.testing.assert_allclose(np.abs(a.normals[:, 2]), 1.0, atol=1e-6)
    # colours interpolated: red at y=0, blue at y=1
    low, high = a.points[:, 1] < 0.1, a.points[:, 1] > 0.9
    assert a.colors[low, 0].mean() > 200 and a.colors[high, 2].mean() > 200
    assert set(np.unique(a.fields["label"])) <= {1, 2}


def test_mesh_triangles_sampled_by_area(tmp_path):
    pts = np.array([[0, 0, 0], [1, 0, 0], [0, 1, 0], [5, 0, 0], [8, 0, 0], [5, 3, 0]], np.float32)
    path = _write(tmp_path / "tri.ply", _xyz(pts), faces=[[0, 1, 2], [3, 4, 5]])  # areas 0.5 and 4.5
    cloud = read_point_cloud(path, mesh="sample", sample_points=5000)
    assert cloud.colors is None
    assert abs((cloud.points[:, 0] >= 5).mean() - 0.9) < 0.03


def test_nan_points_dropped_with_count(tmp_path):
    pts = XYZ.copy()
    pts[[3, 7, 9], 1] = [np.nan, np.inf, -np.inf]
    props = {**_xyz(pts), "red": RGB[:, 0], "green": RGB[:, 1], "blue": RGB[:, 2],
             "instance_id": np.arange(50, dtype=np.int32)}
    with pytest.warns(UserWarning, match="dropped 3 of 50"):
        cloud = read_point_cloud(_write(tmp_path / "nan.ply", props))
    keep = np.setdiff1d(np.arange(50), [3, 7, 9])
    assert len(cloud) == 47
    np.testing.assert_array_equal(cloud.fields["instance_id"], keep)
    np.testing.assert_array_equal(cloud.colors, RGB[keep])


@pytest.mark.parametrize("pts,match", [
    (np.zeros((0, 3), np.float32), "no points"),
    (np.zeros((1, 3), np.float32), "a single point"),
    (np.array([[0, 0, 0], [np.nan, 0, 0]], np.float32), "a single point after dropping"),
])
def test_empty_and_single_point(tmp_path, pts, match):
    path = _write(tmp_path / "few.ply", _xyz(pts))
    with pytest.warns(UserWarning) if np.isnan(pts).any() else nullcontext(), \
            pytest.raises(PointCloudError, match=match) as err:
        read_point_cloud(path)
    assert str(path) in str(err.value) and isinstance(err.value, OvtoolsError)


def test_missing_corrupt_and_non_ply(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.ply"):
        read_point_cloud(tmp_path / "nope.ply")
    (tmp_path / "text.ply").write_text("hello world\n")
    with pytest.raises(PointCloudError, match="text.ply"):
        read_point_cloud(tmp_path / "text.ply")
    good = _write(tmp_path / "good.ply", {**_xyz(), "red": RGB[:, 0], "green": RGB[:, 1], "blue": RGB[:, 2]})
    data = good.read_bytes()
    (tmp_path / "cut.ply").write_bytes(data[: len(data) - 100])  # truncated body
    with pytest.raises(PointCloudError, match="cut.ply"):
        read_point_cloud(tmp_path / "cut.ply")
    (tmp_path / "header.ply").write_bytes(b"ply\nformat binary_little_endian 1.0\nelement vertex x\n")
    with pytest.raises(PointCloudError, match="header.ply"):
        read_point_cloud(tmp_path / "header.ply")
    with pytest.raises(ValueError, match="mesh must be"):
        read_point_cloud(good, mesh="faces")


def test_point_cloud_validation():
    with pytest.raises(ValueError, match=r"points must have shape \(N, 3\), got \(4, 2\)"):
        PointCloud(np.zeros((4, 2)))
    with pytest.raises(ValueError, match=r"colors must have shape \(4, 3\), got \(3, 3\)"):
        PointCloud(np.zeros((4, 3)), np.zeros((3, 3), np.uint8))
    with pytest.raises(ValueError, match="uint8"):
        PointCloud(np.zeros((4, 3)), np.zeros((4, 3), np.float32))
    with pytest.raises(ValueError, match=r"fields\['label'\] must have shape \(4,\), got \(5,\)"):
        PointCloud(np.zeros((4, 3)), fields={"label": np.zeros(5, np.int32)})
    invalid = PointCloud(np.full((4, 3), np.nan))  # invalid rows are kept, and said so
    assert not invalid.valid.any()
    with pytest.raises(ValueError, match="finite"):
        voxel_downsample(invalid, 0.1)
    assert PointCloud(np.zeros((4, 3), np.float64)).points.dtype == np.float64  # survey precision kept
    assert PointCloud(np.zeros((4, 3), np.int32)).points.dtype == np.float32
    with pytest.raises(ValueError, match="organized"):
        PointCloud(np.zeros((4, 3)), organized=(3, 2))


def _cloud(n=200):
    rng = np.random.default_rng(1)
    nrm = rng.normal(size=(n, 3))
    return PointCloud(rng.uniform(-2, 2, (n, 3)), rng.integers(0, 256, (n, 3), dtype=np.uint8),
                      nrm / np.linalg.norm(nrm, axis=1, keepdims=True),
                      {"class_id": rng.integers(0, 5, n).astype(np.int32), "score": rng.random(n).astype(np.float32),
                       "conf": rng.random(n).astype(np.float16), "flag": rng.integers(0, 2, n).astype(np.uint8)})


@pytest.mark.parametrize("binary", [True, False])
def test_write_round_trip_plyfile_and_open3d(tmp_path, binary):
    o3d = pytest.importorskip("open3d", exc_type=ImportError)
    cloud = _cloud()
    path = write_ply(tmp_path / "out" / "c.ply", cloud, binary=binary)
    back = read_point_cloud(path)
    np.testing.assert_allclose(back.points, cloud.points, atol=1e-5)
    np.testing.assert_array_equal(back.colors, cloud.colors)
    np.testing.assert_allclose(back.normals, cloud.normals, atol=1e-5)
    np.testing.assert_array_equal(back.fields["class_id"], cloud.fields["class_id"])
    np.testing.assert_allclose(back.fields["conf"], cloud.fields["conf"].astype(np.float32), atol=1e-3)
    raw = plyfile.PlyData.read(str(path))["vertex"]
    assert {p.name: p.val_dtype for p in raw.properties if p.name in ("class_id", "score", "flag", "red")} == {
        "class_id": "i4", "score": "f4", "flag": "u1", "red": "u1"}
    pcd = o3d.io.read_point_cloud(str(path))
    assert pcd.has_colors() and len(pcd.points) == len(cloud)
    np.testing.assert_allclose(np.asarray(pcd.colors) * 255, cloud.colors, atol=0.01)
    np.testing.assert_allclose(np.asarray(pcd.points), cloud.points, atol=1e-5)
    assert not list((tmp_path / "out").glob(".*.tmp"))


def test_write_refuses_inputs_and_bad_fields(tmp_path):
    src = write_ply(tmp_path / "in.ply", _cloud())
    before = src.read_bytes()
    with pytest.raises(OutputPathError, match="also an input"):
        write_ply(tmp_path / "." / "in.ply", _cloud(10), protect=[src])
    assert src.read_bytes() == before
    with pytest.raises(ValueError, match="'red'"):
        write_ply(tmp_path / "x.ply", PointCloud(np.zeros((2, 3)), fields={"red": np.zeros(2, np.int32)}))
    with pytest.raises(ValueError, match="empty"):
        write_ply(tmp_path / "x.ply", PointCloud(np.zeros((0, 3))))
    big = PointCloud(np.zeros((2, 3)), fields={"id": np.array([0, 2**40], np.int64)})
    with pytest.raises(ValueError, match="int64"):
        write_ply(tmp_path / "x.ply", big)
    ok = write_ply(tmp_path / "y.ply", PointCloud(np.zeros((2, 3)), fields={"id": np.array([0, 7], np.int64)}))
    np.testing.assert_array_equal(read_point_cloud(ok).fields["id"], [0, 7])


def test_voxel_downsample_known_cloud():
    pts = np.array([[0.01, 0.01, 0.01], [0.09, 0.02, 0.03], [0.55, 0.0, 0.0], [0.52, 0.05, 0.01], [0.58, 0.0, 0.0],
                    [0.05, 0.95, 0.0]], np.float32)  # voxels (min corner at 0, size 0.1): A A B B B C
    col = np.array([[10, 0, 0], [20, 0, 0], [0, 30, 0], [0, 60, 0], [0, 90, 0], [1, 2, 3]], np.uint8)
    cloud = PointCloud(pts, col, fields={"label": np.array([4, 4, 7, 8, 8, 1], np.int32),
                                         "w": np.array([1, 3, 0, 0, 3, 5], np.float32)})
    small, inverse = voxel_downsample(cloud, 0.1)
    assert len(small) == 3 and inverse.dtype == np.int64 and inverse.shape == (6,)
    a, b, c = inverse[0], inverse[2], inverse[5]
    assert list(inverse) == [a, a, b, b, b, c] and len({a, b, c}) == 3
    np.testing.assert_allclose(small.points[a], pts[:2].mean(0), atol=1e-6)
    np.testing.assert_allclose(small.points[b], pts[2:5].mean(0), atol=1e-6)
    np.testing.assert_array_equal(small.colors[[a, b, c]], [[15, 0, 0], [0, 60, 0], [1, 2, 3]])
    np.testing.assert_array_equal(small.fields["label"][[a, b, c]], [4, 8, 1])  # majority vote
    np.testing.assert_allclose(small.fields["w"][[a, b, c]], [2, 1, 5])
    labels = np.array([100, 200, 300])
    np.testing.assert_array_equal(labels[inverse][[0, 2, 5]], labels[[a, b, c]])
    with pytest.raises(ValueError, match="voxel_size"):
        voxel_downsample(cloud, 0.0)


@pytest.mark.slow
def test_voxel_downsample_million_points():
    rng = np.random.default_rng(2)
    cloud = PointCloud(rng.uniform(0, 20, (1_000_000, 3)).astype(np.float32),
                       rng.integers(0, 256, (1_000_000, 3), dtype=np.uint8),
                       fields={"class_id": rng.integers(0, 20, 1_000_000).astype(np.int32)})
    small, inverse = voxel_downsample(cloud, 0.5)
    assert len(small) == 40**3 and inverse.shape == (1_000_000,)
    assert inverse.min() == 0 and inverse.max() == len(small) - 1
    lo = cloud.points.min(0)
    voxel = np.floor((cloud.points[:1000] - lo) / 0.5)  # the grid is aligned on the minimum corner
    np.testing.assert_array_equal(np.floor((small.points[inverse[:1000]] - lo) / 0.5), voxel)


def broken_open3d(monkeypatch, tmp_path):
    """Make ``import open3d`` fail as it does when its system library (libusb-1.0) is missing."""
    fake = tmp_path / "shadow" / "open3d"
    fake.mkdir(parents=True)
    (fake / "__init__.py").write_text(
        'raise ImportError("libusb-1.0.so.0: cannot open shared object file: No such file or directory")\n')
    monkeypatch.syspath_prepend(str(fake.parent))
    for name in [m for m in sys.modules if m == "open3d" or m.startswith("open3d.")]:
        monkeypatch.delitem(sys.modules, name)


def test_open3d_that_cannot_load_gives_one_line_naming_the_system_library(tmp_path, monkeypatch):
    path = tmp_path / "scan.xyz"
    path.write_text("0 0 0\n1 0 0\n0 1 0\n")
    broken_open3d(monkeypatch, tmp_path)
    with pytest.raises(MissingDependencyError) as err:
        read_point_cloud(path)
    msg = str(err.value)
    assert len(msg.splitlines()) == 1 and str(path) in msg
    assert "libusb-1.0.so.0" in msg and "apt-get install libusb-1.0-0" in msg and "pip install" not in msg
    assert isinstance(err.value, ImportError) and isinstance(err.value, OvtoolsError)


def test_import_extra_messages(monkeypatch):
    monkeypatch.setitem(sys.modules, "plyfile", None)  # not installed
    with pytest.raises(MissingDependencyError, match=r'^PLY IO needs plyfile, which is not installed: pip install '
                                                      r'"ovtools\[3d\]"$'):
        import_extra("plyfile", "3d", "PLY IO")
    assert import_extra("json", "3d", "x").__name__ == "json"


def test_double_coordinates_round_trip_exactly(tmp_path):
    """Survey coordinates (UTM-like) keep their millimetres: float64 in, float64 out (issue 10, item 2)."""
    far = XYZ.astype(np.float64) + [512345.0, 5412345.0, 310.0]
    cloud = read_point_cloud(_write(tmp_path / "utm.ply", _xyz(far, np.float64)))
    assert cloud.points.dtype == np.float64
    np.testing.assert_array_equal(cloud.points, far)
    out = write_ply(tmp_path / "out.ply", PointCloud(cloud.points, fields={"label": np.zeros(50, np.int32)}))
    v = plyfile.PlyData.read(str(out))["vertex"]
    assert v.data.dtype["x"] == np.dtype("<f8")
    np.testing.assert_array_equal(np.stack([v["x"], v["y"], v["z"]], 1), far)
    small, _ = voxel_downsample(cloud, 0.5)
    assert small.points.dtype == np.float64
    assert read_point_cloud(_write(tmp_path / "f.ply", _xyz())).points.dtype == np.float32  # float stays float


def _organized_ply(tmp_path, pts, h, w):
    vertex = np.empty(len(pts), dtype=[("x", "f4"), ("y", "f4"), ("z", "f4")])
    for i, k in enumerate("xyz"):
        vertex[k] = pts[:, i]
    path = tmp_path / "org.ply"
    plyfile.PlyData([plyfile.PlyElement.describe(vertex, "vertex")], byte_order="<",
                    obj_info=["is_cyberware_data 0", f"num_cols {w}", f"num_rows {h}"]).write(str(path))
    return path


def test_organized_ply_keeps_rows_and_shape(tmp_path):
    """PCL writes organized clouds with obj_info num_cols/num_rows and NaN for pixels without a return."""
    pts = XYZ[:48].copy()
    pts[[0, 7, 47]] = np.nan
    path = _organized_ply(tmp_path, pts, 6, 8)
    kept = read_point_cloud(path, keep_invalid=True)
    assert kept.organized == (6, 8) and len(kept) == 48
    np.testing.assert_array_equal(kept.valid, np.isfinite(pts).all(1))
    with pytest.warns(UserWarning, match="dropped 3 of 48"):
        dropped = read_point_cloud(path)
    assert dropped.organized is None and len(dropped) == 45
    out = write_ply(tmp_path / "out.ply", kept)
    data = plyfile.PlyData.read(str(out))
    assert {"num_cols 8", "num_rows 6"} <= set(map(str, data.obj_info))
    again = read_point_cloud(out, keep_invalid=True)
    assert again.organized == (6, 8)
    np.testing.assert_array_equal(again.points, kept.points)  # NaN rows in place
