"""connected_instances and instance_boxes: clusters of one class are split, boxes are exact."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from ovtools.scene3d import connected_instances, instance_boxes


def _grid(origin, shape, step=0.05):
    axes = [np.arange(s) * step for s in shape]
    g = np.stack(np.meshgrid(*axes, indexing="ij"), -1).reshape(-1, 3)
    return (g + origin).astype(np.float32)


def test_two_clusters_of_one_class_and_boxes():
    a = _grid((0, 0, 0), (4, 3, 2))       # class 1, 24 points
    b = _grid((2, 0, 0), (2, 2, 2))       # class 1, 8 points, 2 m away
    c = _grid((0.05, 0, 0), (3, 3, 1))    # class 2, interleaved with a but another class
    noise = np.array([[9.0, 9.0, 9.0]], np.float32)
    pts = np.concatenate([a, b, c, noise])
    labels = np.array([1] * 24 + [1] * 8 + [2] * 9 + [1])
    ids = connected_instances(torch.from_numpy(pts), torch.from_numpy(labels), radius=0.06, min_points=2)
    assert ids.dtype == np.int32 and ids.shape == (len(pts),)
    assert (ids[:24] == 0).all() and (ids[24:32] == 1).all() and (ids[32:41] == 2).all() and ids[41] == -1
    boxes = instance_boxes(pts, ids, labels)
    assert [b["instance_id"] for b in boxes] == [0, 1, 2] and [b["label"] for b in boxes] == [1, 1, 2]
    assert [b["n_points"] for b in boxes] == [24, 8, 9]
    assert np.allclose(boxes[0]["min"], [0, 0, 0]) and np.allclose(boxes[0]["max"], [0.15, 0.1, 0.05])
    assert np.allclose(boxes[1]["centre"], [2.025, 0.025, 0.025]) and np.allclose(boxes[1]["size"], [0.05] * 3)
    json.dumps(boxes)  # JSON-ready


def test_min_points_unlabelled_and_radius():
    pts = np.array([[0, 0, 0], [0.1, 0, 0], [0.2, 0, 0], [1, 0, 0]], np.float32)
    assert connected_instances(pts, [0, 0, 0, 0], radius=0.15).tolist() == [0, 0, 0, 1]
    assert connected_instances(pts, [0, 0, 0, 0], radius=0.15, min_points=2).tolist() == [0, 0, 0, -1]
    assert connected_instances(pts, [0, 0, 0, 0], radius=0.05).tolist() == [0, 1, 2, 3]
    assert connected_instances(pts, [-1, 3, -1, 3], radius=2).tolist() == [-1, 0, -1, 0]
    assert instance_boxes(pts, [-1, -1, -1, -1]) == []


def test_errors():
    pts = np.zeros((3, 3), np.float32)
    with pytest.raises(ValueError, match="labels must have shape"):
        connected_instances(pts, [0, 0], radius=1)
    with pytest.raises(ValueError, match="radius"):
        connected_instances(pts, [0, 0, 0], radius=0)
    with pytest.raises(ValueError, match="integers"):
        connected_instances(pts, [0.5, 0, 0], radius=1)
    with pytest.raises(ValueError, match="instance_id"):
        instance_boxes(pts, [0])


def test_duplicated_points_cost_no_pairs():
    """25k copies of one point (merged scans have such duplicates) must not build 3e8 point pairs."""
    pts = np.concatenate([np.zeros((25_000, 3), np.float32), np.array([[0.01, 0, 0], [5, 5, 5]], np.float32)])
    ids = connected_instances(pts, np.zeros(len(pts), int), radius=0.03, min_points=2)
    assert (ids[:-1] == 0).all() and ids[-1] == -1
