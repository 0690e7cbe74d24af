"""Label-map PNGs (``ovtools segment --save-labels``): palette and 16-bit round trips, bad inputs, safe writes."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from ovtools.io.labelmap import label_png, read_label_png, save_label_png
from ovtools.io.vis import class_color
from ovtools.io.writers import OutputPathError


def _label_map(h, w, num_classes, seed=0):
    """int32 (h, w) ids in [-1, num_classes), every value present at least once when h*w allows."""
    rng = np.random.default_rng(seed)
    lm = rng.integers(-1, num_classes, (h, w)).astype(np.int32)
    flat = lm.reshape(-1)
    k = min(flat.size, num_classes + 1)
    flat[:k] = np.arange(-1, k - 1)
    return lm


def test_palette_png_round_trip(tmp_path):
    lm = _label_map(7, 11, 5)
    p = save_label_png(lm, 5, tmp_path / "labels.png")
    assert p == tmp_path / "labels.png"
    with Image.open(p) as im:
        assert im.mode == "P" and im.size == (11, 7)
        np.testing.assert_array_equal(np.asarray(im), lm + 1)  # 0 = background, k = class k-1
        pal = np.asarray(im.getpalette()[: 3 * 6]).reshape(6, 3)
    assert tuple(pal[0]) == (0, 0, 0)
    for k in range(1, 6):
        assert tuple(pal[k]) == class_color(k - 1), k
    back = read_label_png(p)
    assert back.dtype == np.int32 and back.shape == (7, 11)
    np.testing.assert_array_equal(back, lm)


def test_palette_png_at_255_classes(tmp_path):
    """255 classes still fit 8 bits: value 255 is class 254."""
    lm = _label_map(16, 17, 255)
    assert lm.max() == 254
    p = save_label_png(lm, 255, tmp_path / "l.png")
    with Image.open(p) as im:
        assert im.mode == "P"
    np.testing.assert_array_equal(read_label_png(p), lm)


def test_all_background_and_unused_classes(tmp_path):
    lm = np.full((5, 6), -1, np.int64)  # any integer dtype is accepted
    p = save_label_png(lm, 3, tmp_path / "bg.png")
    with Image.open(p) as im:
        assert not np.asarray(im).any()
    np.testing.assert_array_equal(read_label_png(p), lm)


@pytest.mark.parametrize("num_classes", [256, 300])
def test_more_than_255_classes_is_16_bit(tmp_path, num_classes):
    lm = _label_map(20, 19, num_classes)
    assert lm.max() == num_classes - 1
    p = save_label_png(lm, num_classes, tmp_path / "wide.png")
    with Image.open(p) as im:
        assert im.mode in ("I;16", "I") and im.size == (19, 20)
        assert im.getpalette() is None
        np.testing.assert_array_equal(np.asarray(im).astype(np.int64), lm + 1)
    np.testing.assert_array_equal(read_label_png(p), lm)


@pytest.mark.parametrize("bad,num_classes,match", [
    (np.zeros((4, 5, 3), np.int32), 3, "shape"),
    (np.zeros(5, np.int32), 3, "shape"),
    (np.array([[0, 3]]), 3, "outside"),   # id == C
    (np.array([[-2, 0]]), 3, "outside"),  # below background
])
def test_bad_label_maps_raise_value_error(tmp_path, bad, num_classes, match):
    with pytest.raises(ValueError, match=match):
        label_png(bad, num_classes)
    target = tmp_path / "x.png"
    with pytest.raises(ValueError, match=match):
        save_label_png(bad, num_classes, target)
    assert not target.exists() and list(tmp_path.iterdir()) == []


def test_refuses_to_overwrite_an_input(tmp_path):
    src = tmp_path / "photo.png"
    Image.fromarray(np.full((4, 4, 3), 7, np.uint8)).save(src)
    before = src.read_bytes()
    lm = np.zeros((4, 4), np.int32)
    with pytest.raises(OutputPathError, match="input"):
        save_label_png(lm, 1, src, [src])
    with pytest.raises(OutputPathError, match="input"):  # the same file under another spelling
        save_label_png(lm, 1, tmp_path / "." / "photo.png", [str(src)])
    assert src.read_bytes() == before
    with pytest.raises(OutputPathError, match="folder"):
        save_label_png(lm, 1, tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["photo.png"]  # no temporary file left


def test_creates_folders_and_replaces_old_file(tmp_path):
    target = tmp_path / "a" / "b" / "labels.png"
    save_label_png(np.zeros((3, 3), np.int32), 2, target)
    save_label_png(np.ones((3, 3), np.int32), 2, target)
    np.testing.assert_array_equal(read_label_png(target), np.ones((3, 3)))
    assert [p.name for p in target.parent.iterdir()] == ["labels.png"]
