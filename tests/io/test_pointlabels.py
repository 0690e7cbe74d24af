"""Per-point 3D outputs: labelled and relevancy PLYs, feature arrays (ovtools.io.pointlabels)."""

from __future__ import annotations

import numpy as np
import pytest

plyfile = pytest.importorskip("plyfile")

from ovtools.io.pointlabels import (
    NOTHING_COLOR,
    class_colors,
    heat_colors,
    write_point_features,
    write_point_labels,
    write_relevancy,
)
from ovtools.io.vis import class_color
from ovtools.io.writers import OutputPathError
from ovtools.structures import PointLabels

PTS = np.array([[0, 0, 0], [1, 0, 0], [0, 1, 0], [0, 0, 1]], np.float32)


def _vertex(path):
    return plyfile.PlyData.read(str(path))["vertex"]


def test_heat_colors_blue_to_red_clipped():
    c = heat_colors(np.array([0.0, 0.5, 1.0, -3.0, 7.0], np.float32))
    assert c.dtype == np.uint8 and c.shape == (5, 3)
    assert c[0].tolist() == [40, 60, 230] and c[2].tolist() == [230, 40, 40]
    assert c[1].tolist() == [135, 50, 135]  # the midpoint, rounded
    assert c[3].tolist() == c[0].tolist() and c[4].tolist() == c[2].tolist()


def test_class_colors_use_the_overlay_palette_and_grey_for_nothing():
    c = class_colors(np.array([2, -1, 0, 2]))
    assert c.dtype == np.uint8
    assert c[0].tolist() == list(class_color(2)) == c[3].tolist() and c[2].tolist() == list(class_color(0))
    assert c[1].tolist() == list(NOTHING_COLOR)
    assert class_colors(np.array([-1, -1])).tolist() == [list(NOTHING_COLOR)] * 2


def test_write_point_labels_round_trip(tmp_path):
    labels = PointLabels(np.array([1, -1, 0, 1]), np.array([0.9, 0.2, 0.5, 0.7], np.float32), ["a", "b"])
    out = write_point_labels(tmp_path / "l.ply", PTS, labels)
    v = _vertex(out)
    assert v.data.dtype["label"].kind == "i" and v.data.dtype["score"].kind == "f"
    np.testing.assert_array_equal(v["label"], [1, -1, 0, 1])
    np.testing.assert_allclose(v["score"], [0.9, 0.2, 0.5, 0.7])
    np.testing.assert_allclose(np.stack([v["x"], v["y"], v["z"]], 1), PTS)
    rgb = np.stack([v["red"], v["green"], v["blue"]], 1)
    np.testing.assert_array_equal(rgb, class_colors(labels.class_id))
    with pytest.raises(ValueError, match="3 rows for 4 points"):
        write_point_labels(tmp_path / "x.ply", PTS, PointLabels(np.zeros(3, int), np.zeros(3), ["a"]))


def test_write_relevancy_and_features(tmp_path):
    rel = np.array([0.1, 0.6, 1.0, 0.0], np.float32)
    v = _vertex(write_relevancy(tmp_path / "r.ply", PTS, rel))
    assert "label" not in v.data.dtype.names
    np.testing.assert_allclose(v["relevancy"], rel)
    np.testing.assert_array_equal(np.stack([v["red"], v["green"], v["blue"]], 1), heat_colors(rel))
    f = np.random.default_rng(0).normal(size=(4, 8)).astype(np.float32)
    out = write_point_features(tmp_path / "f.npy", f)
    got = np.load(out)
    assert got.dtype == np.float16 and got.shape == (4, 8)
    np.testing.assert_allclose(got, f, atol=1e-2)
    with pytest.raises(ValueError, match=r"\(N, D\)"):
        write_point_features(tmp_path / "g.npy", f[0])
    with pytest.raises(OutputPathError):
        write_point_features(out, f, protect=[out])


def test_heat_overlay_blends_by_relevancy():
    from ovtools.io.pointlabels import HEAT_HIGH, heat_overlay

    rgb = np.full((2, 3, 3), 100, np.uint8)
    rel = np.array([[0.0, 1.0, 0.5], [0.0, 0.0, 2.0]])
    out = np.asarray(heat_overlay(rgb, rel, alpha=1.0))
    assert out.shape == (2, 3, 3) and (out[0, 0] == 100).all()  # relevancy 0: the view unchanged
    assert tuple(out[0, 1]) == HEAT_HIGH and tuple(out[1, 2]) == HEAT_HIGH  # 1 (and clipped 2): pure heat
    with pytest.raises(ValueError, match="shape"):
        heat_overlay(rgb, np.zeros((3, 3)))
