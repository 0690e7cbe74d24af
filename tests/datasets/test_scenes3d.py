"""The generated 3D world: determinism, per-point ground truth, the PLY writer, its class spaces."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from ovtools.datasets.scenes3d import (
    SCENE3D_CLASS_NAMES,
    SHAPES3D,
    Scene3D,
    generate_scenes3d,
    render_scene3d,
    write_scenes3d,
)
from ovtools.datasets.shapes import COLOURS
from ovtools.io.writers import OutputPathError
from ovtools.prompts import ClassSpace

POINTS = 20_000


@pytest.fixture(scope="module")
def scenes() -> list[Scene3D]:
    return list(generate_scenes3d(6, seed=3, points=POINTS))


def test_class_names():
    assert SCENE3D_CLASS_NAMES[0] == "floor" and len(SCENE3D_CLASS_NAMES) == 1 + len(COLOURS) * len(SHAPES3D) == 41
    assert SCENE3D_CLASS_NAMES[1] == f"{next(iter(COLOURS))} {SHAPES3D[0]}"


def test_deterministic_per_index(scenes):
    again = next(generate_scenes3d(1, seed=3, start=4, points=POINTS))
    ref = scenes[4]
    for name in ("points", "colors", "normals", "class_id", "instance_id"):
        np.testing.assert_array_equal(getattr(again, name), getattr(ref, name))
    assert [o.to_dict() for o in again.objects] == [o.to_dict() for o in ref.objects]
    other = next(generate_scenes3d(1, seed=4, start=4, points=POINTS))
    assert not np.array_equal(other.points, ref.points)


def test_ground_truth_consistent(scenes):
    seen_shapes = set()
    for scene in scenes:
        assert len(scene.points) == POINTS and 3 <= len(scene.objects) <= 6
        assert scene.points.dtype == np.float32 and scene.class_id.dtype == np.int32
        assert scene.class_id.min() >= 0 and scene.class_id.max() < len(SCENE3D_CLASS_NAMES)
        floor = scene.instance_id == 0
        np.testing.assert_array_equal(scene.class_id == 0, floor)
        assert np.all(scene.points[floor, 2] == 0) and np.abs(scene.points[floor, :2]).max() <= 1.5
        assert np.all(scene.points[~floor, 2] >= -1e-6)
        np.testing.assert_allclose(np.linalg.norm(scene.normals, axis=1), 1.0, atol=1e-5)
        assert set(np.unique(scene.instance_id)) == set(range(len(scene.objects) + 1))
        for k, obj in enumerate(scene.objects, start=1):
            mine = scene.instance_id == k
            seen_shapes.add(obj.shape)
            assert np.all(scene.class_id[mine] == obj.class_id) and SCENE3D_CLASS_NAMES[obj.class_id] == obj.name
            assert obj.contains(scene.points[mine]).all(), obj.name
            assert not obj.contains(scene.points[~mine], tol=-0.002).any(), f"foreign points inside {obj.name}"
            assert 0.15 <= obj.size <= 0.4 and np.abs(obj.centre[:2]).max() <= 1.0
            assert np.all(np.abs(scene.colors[mine].astype(int) - COLOURS[obj.colour]) <= 8)
            corners = obj.corners()
            assert corners.shape == (8, 3) and abs(corners[:, 2].min()) < 1e-6  # resting on the floor
        for a in range(len(scene.objects)):  # non-overlapping footprints
            for b in range(a + 1, len(scene.objects)):
                oa, ob = scene.objects[a], scene.objects[b]
                assert math.dist(oa.centre[:2], ob.centre[:2]) > (oa.size + ob.size) / 2
    assert len(seen_shapes) >= 4


def test_points_uniform_by_area():
    scene = render_scene3d(np.random.default_rng(0), points=POINTS, n_objects=5)
    floor_density = (scene.instance_id == 0).sum() / 9.0  # the footprints are small next to 9 m²
    for k, obj in enumerate(scene.objects, start=1):
        density = (scene.instance_id == k).sum() / obj.area
        assert 0.8 < density / floor_density < 1.25, obj.name


def test_floor_colour_muted_and_bad_args(scenes):
    floor = scenes[0].colors[scenes[0].instance_id == 0].astype(float)
    assert floor.std(axis=1).mean() < 40  # greyish, not a class colour
    with pytest.raises(ValueError, match="min_objects"):
        generate_scenes3d(1, min_objects=4, max_objects=2)
    with pytest.raises(ValueError, match="points"):
        generate_scenes3d(1, points=0)


def test_writer_round_trip_and_refusal(tmp_path):
    from ovtools.io.ply import read_point_cloud

    out = write_scenes3d(tmp_path / "w", 2, seed=1, start=5, points=5_000)
    manifest = json.loads((out / "scenes3d.json").read_text())
    assert manifest["class_names"] == list(SCENE3D_CLASS_NAMES)
    assert [s["file"] for s in manifest["scenes"]] == ["scene_0005.ply", "scene_0006.ply"]
    ref = next(generate_scenes3d(1, seed=1, start=6, points=5_000))
    cloud = read_point_cloud(out / "scene_0006.ply")
    np.testing.assert_array_equal(cloud.points, ref.points)
    np.testing.assert_array_equal(cloud.colors, ref.colors)
    np.testing.assert_array_equal(cloud.fields["class_id"], ref.class_id)
    np.testing.assert_array_equal(cloud.fields["instance_id"], ref.instance_id)
    assert cloud.fields["class_id"].dtype == np.int32
    assert manifest["scenes"][1]["objects"] == [o.to_dict() for o in ref.objects]
    with pytest.raises(OutputPathError, match="not empty"):
        write_scenes3d(out, 1)
    (tmp_path / "file").write_text("x")
    with pytest.raises(OutputPathError, match="is a file"):
        write_scenes3d(tmp_path / "file", 1)


def test_class_spaces_load():
    space = ClassSpace.load("shapes3d")
    assert space.names == list(SCENE3D_CLASS_NAMES)
    by_name = {c.name: c for c in space.classes}
    assert "red ball" in by_name["red sphere"].synonyms
    assert {"blue box", "blue block"} <= set(by_name["blue cube"].synonyms)
    assert space.templates == "objects"
    scannet = ClassSpace.load("scannet20")
    assert len(scannet) == 20 and scannet.names[0] == "wall" and scannet.names[-1] == "other furniture"
    assert "otherfurniture" in scannet.classes[-1].synonyms and "shower curtain" in scannet.names
    assert "ceiling" in scannet.all_negatives()
    from ovtools.prompts import load_templates

    for s in (space, scannet):
        assert len(load_templates(s.templates)) > 0
