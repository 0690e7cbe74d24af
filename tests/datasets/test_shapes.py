"""The generated evaluation world: determinism, exact ground truth, writers and readers."""

from __future__ import annotations

import csv

import numpy as np
import pytest

from ovtools.datasets import export
from ovtools.datasets.readers import read_caption_csv, read_coco, read_image_folder
from ovtools.datasets.shapes import (
    CLASS_NAMES,
    COLOURS,
    SHAPES,
    Scene,
    describe_object,
    describe_scene,
    generate_classification,
    generate_scenes,
    position_phrase,
    render_object_image,
    render_scene,
    shape_polygon,
)


def _same(a: Scene, b: Scene) -> bool:
    return (a.image.tobytes() == b.image.tobytes() and len(a.objects) == len(b.objects)
            and all(np.array_equal(x.mask, y.mask) and np.array_equal(x.box, y.box) and x.name == y.name
                    for x, y in zip(a.objects, b.objects)))


def test_64_distinct_classes_and_colours():
    assert len(SHAPES) == 8 and len(COLOURS) == 8 and len(set(CLASS_NAMES)) == 64
    rgb = np.array(list(COLOURS.values()), float)
    dist = np.linalg.norm(rgb[:, None] - rgb[None], axis=2) + np.eye(8) * 1e3
    assert dist.min() > 60  # clearly distinct colours


def test_same_seed_same_bytes_and_items_are_independent():
    a = list(generate_scenes(3, seed=5, size=128))
    b = list(generate_scenes(3, seed=5, size=128))
    assert all(_same(x, y) for x, y in zip(a, b))
    third = next(generate_scenes(1, seed=5, size=128, start=2))
    assert _same(a[2], third)
    other = next(generate_scenes(1, seed=6, size=128))
    assert other.image.tobytes() != a[0].image.tobytes()


def test_scene_ground_truth_is_exact():
    for scene in generate_scenes(8, seed=1, size=160, min_objects=3, max_objects=6):
        h, w = scene.image.shape[:2]
        assert scene.image.dtype == np.uint8 and scene.image.shape == (160, 160, 3)
        assert 1 <= len(scene.objects) <= 6
        union = np.zeros((h, w), int)
        for o in scene.objects:
            assert o.name in CLASS_NAMES and o.mask.dtype == bool and o.mask.any()
            x1, y1, x2, y2 = o.box
            assert 0 <= x1 < x2 <= w and 0 <= y1 < y2 <= h
            ys, xs = np.nonzero(o.mask)
            assert (xs.min(), ys.min(), xs.max() + 1, ys.max() + 1) == (x1, y1, x2, y2)  # tight
            assert o.visible_fraction >= 0.55
            union += o.mask
        assert union.max() <= 1  # visible masks do not overlap


def test_occluded_part_is_not_in_the_mask():
    # the pixels of a visible mask have the object's colour family, not the occluder's
    for scene in generate_scenes(6, seed=3, size=160, min_objects=5, max_objects=6):
        for o in scene.objects:
            mean = scene.image[o.mask].astype(float).mean(0)
            ref = np.array(COLOURS[o.colour], float)
            assert np.linalg.norm(mean - ref) < 60, (o.name, mean)


def test_classification_is_balanced_and_objects_are_large():
    items = list(generate_classification(70, seed=2, size=64))
    assert [s.objects[0].name for s in items] == [CLASS_NAMES[i % 64] for i in range(70)]
    for s in items[:20]:
        x1, y1, x2, y2 = s.objects[0].box
        assert max(x2 - x1, y2 - y1) >= 0.4 * 64


def test_bad_arguments_raise_value_error():
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError, match="unknown class"):
        render_object_image(rng, 64, "pink star")
    with pytest.raises(ValueError, match="min_diameter"):
        render_scene(rng, 64, 2, min_diameter=30, max_diameter=10)
    with pytest.raises(ValueError, match="min_objects"):
        next(generate_scenes(1, min_objects=4, max_objects=2))
    with pytest.raises(ValueError, match="unknown shape"):
        shape_polygon("blob", 0, 0, 10)


def test_captions_at_several_granularities():
    scene = next(generate_scenes(1, seed=0, size=192))
    o = scene.objects[0]
    assert describe_object(o, scene.image.shape) == f"a {o.name}"
    full = describe_object(o, scene.image.shape, "full")
    assert o.name in full and full.split()[1] in ("small", "medium", "large")
    text = describe_scene(scene)
    assert text.endswith(f"on a {scene.background} background") and all(x.name in text for x in scene.objects)
    assert position_phrase(o, (192, 192)) in full
    with pytest.raises(ValueError, match="detail"):
        describe_object(o, scene.image.shape, "poem")


def test_context_square_stays_square_and_inside():
    for box in ([0, 0, 10, 30], [180, 170, 192, 192], [50, 60, 90, 80], [0, 0, 300, 10]):
        x1, y1, x2, y2 = export.context_square(box, (192, 192, 3), 0.15)
        assert 0 <= x1 and 0 <= y1 and x2 <= 192 + 1e-9 and y2 <= 192 + 1e-9
        assert x2 - x1 == pytest.approx(y2 - y1)
    assert export.context_crop(np.zeros((50, 80, 3), np.uint8), [10, 10, 30, 20], 0.15, 32).shape == (32, 32, 3)


def test_rle_round_trip_and_coco_file(tmp_path):
    from pycocotools import mask as mask_utils

    out = export.write_scenes(tmp_path / "scenes", 3, seed=4, size=128)
    coco = read_coco(out / "annotations.json")
    assert len(coco) == 3 and coco.categories == list(CLASS_NAMES)
    assert all(p.is_file() for p in coco.paths)
    scenes = list(generate_scenes(3, seed=4, size=128))
    anns = coco.coco.loadAnns(coco.coco.getAnnIds())
    assert len(anns) == sum(len(s.objects) for s in scenes)
    for img_id, scene in zip(coco.image_ids, scenes):
        for ann, obj in zip(coco.coco.loadAnns(coco.coco.getAnnIds(imgIds=img_id)), scene.objects):
            m = coco.coco.annToMask(ann).astype(bool)
            assert np.array_equal(m, obj.mask)
            assert ann["category_id"] == obj.class_id + 1 and ann["area"] == obj.area
            x, y, w, h = mask_utils.toBbox(ann["segmentation"])
            assert np.allclose([x, y, x + w, y + h], obj.box)
    rows = list(csv.DictReader(open(out / "captions.csv")))
    assert rows[0]["caption"] == describe_scene(scenes[0])


def test_image_folder_round_trip(tmp_path):
    out = export.write_classification(tmp_path / "cls", 10, seed=0, size=48)
    data = read_image_folder(out)
    assert len(data) == 10 and data.classes == sorted(CLASS_NAMES[:10])
    assert [data.classes[i] for i in data.labels] == [p.parent.name for p in data.paths]


def test_training_mix_csv_is_deterministic_for_any_worker_count(tmp_path):
    a = export.write_captions(tmp_path / "a", 24, seed=0, size=48, workers=1)
    b = export.write_captions(tmp_path / "b", 24, seed=0, size=48, workers=2)
    assert (a / "captions.csv").read_text() == (b / "captions.csv").read_text()
    rows = read_caption_csv(a / "captions.csv")
    assert len(rows) == 24 and all(p.is_file() for p in rows.paths)
    assert [p.read_bytes() for p in rows.paths] == [(b / p.relative_to(a)).read_bytes() for p in rows.paths]
    assert rows.labels is not None and rows.image_labels is not None
    assert all(lab in il for lab, il in zip(rows.labels, rows.image_labels))
    assert export.NEGATIVE_LABEL in rows.labels  # negative crops are in the mix
    assert any(lab in CLASS_NAMES for lab in rows.labels)


def test_readers_name_the_bad_input(tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text("path,text\nx.png,a cat\n")
    with pytest.raises(ValueError, match="bad.csv.*filepath"):
        read_caption_csv(bad)
    with pytest.raises(FileNotFoundError, match="nope"):
        read_caption_csv(tmp_path / "nope.csv")
    with pytest.raises(FileNotFoundError, match="nofolder"):
        read_image_folder(tmp_path / "nofolder")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="empty"):
        read_image_folder(tmp_path / "empty")


def test_class_space_and_templates_match_the_generator():
    from ovtools.prompts.classspace import ClassSpace
    from ovtools.prompts.templates import load_templates

    assert ClassSpace.load("shapes").names == list(CLASS_NAMES)
    assert ClassSpace.load("shapes-shape").names == list(SHAPES)
    assert load_templates("shapes").templates == export.SHAPES_TEMPLATES


def test_datagen_cli(tmp_path):
    from typer.testing import CliRunner

    from ovtools.cli import app

    runner = CliRunner()
    r = runner.invoke(app, ["datagen", str(tmp_path / "s"), "--kind", "scenes", "--n", "2", "--image-size", "96"])
    assert r.exit_code == 0, r.output
    assert len(read_coco(tmp_path / "s" / "annotations.json")) == 2
    r = runner.invoke(app, ["datagen", str(tmp_path / "s"), "--kind", "scenes", "--min-objects", "4",
                            "--max-objects", "2"])
    assert r.exit_code == 2 and "--min-objects" in r.output
    r = runner.invoke(app, ["datagen", str(tmp_path / "s"), "--kind", "poems"])
    assert r.exit_code == 2
