"""Proposal sources: registry, box validity, exact window grids, segment boxes, recall on generated scenes."""

from __future__ import annotations

import re

import numpy as np
import pytest
import torch
from torchvision.ops import box_iou

from ovtools.errors import UnknownNameError
from ovtools.proposals import SegmentProposals, SlidingWindows, available_proposals, create_proposals, register_proposals


def _build(name):
    if name == "sam":  # needs weights: a tiny random Segment Anything
        from ovtools.proposals.sam import build_tiny_sam

        return create_proposals(name, model=build_tiny_sam(), points_per_side=4, pred_iou_thresh=0.0,
                                stability_score_thresh=0.0)
    return create_proposals(name)


@pytest.mark.slow
@pytest.mark.parametrize("name", available_proposals("boxes") + available_proposals("masks"))
def test_every_source_returns_valid_boxes(name, rgb_image):
    """Every registered source (box or mask) gives valid, deterministic output; mask sources give
    bool (N, H, W) masks at the image's size."""
    src = _build(name)
    h, w = rgb_image.shape[:2]
    if getattr(src, "output", "boxes") == "masks":
        masks = src(rgb_image)
        assert masks.dtype == bool and masks.shape[1:] == (h, w) and len(masks) > 0
        assert masks.reshape(len(masks), -1).any(1).all()  # no empty mask
        np.testing.assert_array_equal(masks, _build(name)(rgb_image))
        return
    boxes = src(rgb_image)
    assert boxes.dtype == np.float32 and boxes.ndim == 2 and boxes.shape[1] == 4 and len(boxes) > 0
    assert (boxes[:, 0] >= 0).all() and (boxes[:, 1] >= 0).all()
    assert (boxes[:, 2] <= w + 1e-3).all() and (boxes[:, 3] <= h + 1e-3).all()
    assert (boxes[:, 2] > boxes[:, 0]).all() and (boxes[:, 3] > boxes[:, 1]).all()
    np.testing.assert_array_equal(boxes, _build(name)(rgb_image))  # deterministic


def test_registry_errors():
    assert {"windows", "segments", "hybrid"} <= set(available_proposals())
    with pytest.raises(UnknownNameError, match="segments") as info:
        create_proposals("no-such-source")
    assert "windows" in str(info.value)
    with pytest.raises(ValueError, match="already registered"):
        register_proposals("windows")(SlidingWindows)


def test_window_grid_is_exact():
    img = np.zeros((100, 100, 3), np.uint8)
    boxes = SlidingWindows(scales=(0.5,), aspect_ratios=(1.0,), overlap=0.5)(img)
    assert len(boxes) == 9
    assert sorted(set(boxes[:, 0].tolist())) == [0.0, 25.0, 50.0]
    assert np.allclose(boxes[:, 2] - boxes[:, 0], 50) and np.allclose(boxes[:, 3] - boxes[:, 1], 50)
    wide = SlidingWindows(scales=(0.5,), aspect_ratios=(4.0,), overlap=0.0)(np.zeros((100, 200, 3), np.uint8))
    assert len(wide) == 8  # 100 x 25 windows (50*sqrt(4) x 50/sqrt(4)): 2 columns x 4 rows
    assert np.allclose(wide[:, 2] - wide[:, 0], 100) and np.allclose(wide[:, 3] - wide[:, 1], 25)
    capped = SlidingWindows(scales=(0.1, 0.2), overlap=0.9, max_boxes=50)(img)
    assert 0 < len(capped) <= 50
    with pytest.raises(ValueError, match="overlap"):
        SlidingWindows(overlap=1.0)
    with pytest.raises(ValueError, match="scales"):
        SlidingWindows(scales=())
    with pytest.raises(ValueError, match="uint8"):
        SlidingWindows()(np.zeros((10, 10, 3), np.float32))


@pytest.mark.slow
def test_segments_find_solid_objects_also_when_downscaled():
    rng = np.random.default_rng(0)
    img = rng.integers(100, 130, (200, 300, 3), dtype=np.uint8)
    img[20:70, 30:90] = (220, 30, 30)
    img[120:180, 200:240] = (30, 40, 220)
    gt = torch.tensor([[30.0, 20, 90, 70], [200.0, 120, 240, 180]])
    for max_side in (None, 150):  # 150: segmented at half size, boxes returned in input pixels
        boxes = SegmentProposals(max_side=max_side)(img)
        best = box_iou(gt, torch.as_tensor(boxes)).max(1).values
        assert (best >= (0.9 if max_side is None else 0.85)).all(), (max_side, best)
    flat = SegmentProposals(merge=False, scales=(100.0,))(img)
    assert 0 < len(flat) < len(SegmentProposals(scales=(100.0,))(img)) + 1
    with pytest.raises(ValueError, match="color_spaces"):
        SegmentProposals(color_spaces=("xyz",))


@pytest.mark.slow
def test_segments_recall_on_generated_scenes():
    from ovtools.datasets.shapes import generate_scenes

    hit = total = 0
    for scene in generate_scenes(6, seed=777, size=176):
        boxes = create_proposals("segments")(scene.image)
        assert len(boxes) <= 500
        iou = box_iou(torch.as_tensor(scene.boxes), torch.as_tensor(boxes))
        hit += int((iou.max(1).values >= 0.5).sum())
        total += len(scene.boxes)
    assert total > 0 and hit / total >= 0.95


@pytest.mark.parametrize("name", ["segments", "regions"])
def test_segmentations_in_threads_give_the_same_proposals(name):
    """The per-scale segmentations run in threads (skimage's Felzenszwalb releases the GIL); the seeded
    ranking must not depend on which thread finishes first."""
    from ovtools.datasets.shapes import generate_scenes
    from ovtools.proposals import image_input

    images = [s.image for s in generate_scenes(3, seed=7, size=160)]
    serial = create_proposals(name, workers=1)
    many = create_proposals(name, workers=3, scales=(30.0, 80.0, 150.0, 400.0))
    serial4 = create_proposals(name, workers=1, scales=(30.0, 80.0, 150.0, 400.0))
    for im in images:
        assert np.array_equal(serial(im), create_proposals(name)(im))
        assert np.array_equal(many(im), serial4(im))
    calls = []
    real = image_input.ThreadPoolExecutor

    class Spy(real):
        def __init__(self, n, **kw):
            calls.append(n)
            super().__init__(n, **kw)

    image_input.ThreadPoolExecutor = Spy
    try:
        many(images[0])
        serial(images[0])
    finally:
        image_input.ThreadPoolExecutor = real
    assert calls == [3]  # workers=3 asked for: 3 threads for the 4 segmentations; workers=1: none
    with pytest.raises(ValueError, match=rf"{name}: workers \(threads.*must be a finite number >= 1 or None, got 0"):
        create_proposals(name, workers=0)


def test_proposal_options_are_checked_by_name_and_type():
    """A preset's proposal_options: an unknown option or a value of the wrong type is named, not int('two')
    deep inside the source or silently truncated (workers: 1.5 -> 1)."""
    cases = [
        ("segments", "workers", "two", "option workers='two' must be int | None"),
        ("segments", "workers", 1.5, "option workers=1.5 must be int | None"),
        ("segments", "workers", True, "option workers=True must be int | None"),
        ("segments", "merge", 1, "option merge=1 must be bool"),
        ("windows", "scales", [0.2, "x"], "option scales=[0.2, 'x'] must be Sequence[float]"),
        ("regions", "max_side", "big", "option max_side='big' must be int | None"),
    ]
    for name, key, value, message in cases:
        with pytest.raises(TypeError, match=re.escape(message)):
            create_proposals(name, **{key: value})
    with pytest.raises(TypeError, match=r"'hybrid: segments': option sigma='x' must be float"):
        create_proposals("hybrid", segments={"sigma": "x"})
    with pytest.raises(TypeError, match=r"'segments' has no option 'device'; its options: \['scales'"):
        create_proposals("segments", device="cuda")
    # ints and numpy numbers for float options, numpy ints for int options, None where allowed: fine
    src = create_proposals("segments", sigma=1, min_box=np.float32(4.0), max_boxes=np.int64(50), max_side=None,
                           scales=(50, 150.0))
    assert src.max_boxes == 50 and src.max_side is None


def test_proposal_options_out_of_range_are_named_not_silently_used():
    """NaN, negative or out-of-range numbers: a ValueError naming the source and option at build time, not
    silently wrong proposals (max_side=-5 segmented a 1x1 image, dedup_iou=-1 kept one box, hybrid
    max_boxes=-1 dropped the last box) or a deep skimage/numpy error on the first image (sigma=-1, seed=-1)."""
    nan = float("nan")
    cases = [
        ("segments", {"max_side": -5}, "segments: max_side must be a finite number >= 16 or None, got -5"),
        ("segments", {"max_side": 0}, "segments: max_side"),
        ("segments", {"dedup_iou": -1}, "segments: dedup_iou must be a finite number > 0 and <= 1, got -1"),
        ("segments", {"dedup_iou": nan}, "segments: dedup_iou"),
        ("segments", {"sigma": -0.5}, "segments: sigma must be a finite number >= 0, got -0.5"),
        ("segments", {"sigma": float("inf")}, "segments: sigma"),
        ("segments", {"min_box": nan}, "segments: min_box"),
        ("segments", {"max_aspect": nan}, "segments: max_aspect must be a number >= 1"),
        ("segments", {"seed": -1}, "segments: seed"),
        ("segments", {"scales": [50.0, nan]}, "segments: scales must be a finite number > 0, got nan"),
        ("regions", {"max_side": -5}, "regions: max_side"),
        ("regions", {"sigma": nan}, "regions: sigma"),
        ("regions", {"seed": -1}, "regions: seed"),
        ("regions", {"scales": [nan]}, "regions: scales"),
        ("windows", {"aspect_ratios": [nan]}, "windows: aspect_ratios"),
        ("windows", {"scales": [0.5, nan]}, "windows: scales"),
        ("windows", {"min_size": -1}, "windows: min_size"),
        ("hybrid", {"max_boxes": -1}, "hybrid: max_boxes must be a finite number >= 1, got -1"),
        ("hybrid", {"max_boxes": 0}, "hybrid: max_boxes"),
        ("hybrid", {"dedup_iou": -1}, "hybrid: dedup_iou"),
        ("hybrid", {"segments": {"max_side": -5}}, "segments: max_side"),
        ("hybrid", {"windows": {"overlap": 1.5}}, "windows: overlap must be in [0, 1), got 1.5"),
        ("segments", {"max_boxes": 0}, "segments: max_boxes must be a finite number >= 1, got 0"),
        ("regions", {"max_masks": 0}, "regions: max_masks"),
        ("windows", {"max_boxes": 0}, "windows: max_boxes"),
    ]
    for name, options, message in cases:
        with pytest.raises(ValueError, match=re.escape(message)):
            create_proposals(name, **options)
    # the limits themselves and "no limit" values still build
    create_proposals("segments", max_side=16, dedup_iou=1.0, sigma=0.0, min_box=0, max_aspect=float("inf"), seed=0)
    create_proposals("hybrid", max_boxes=1, dedup_iou=1)


def test_numpy_option_values_pass_the_type_check():
    """Python callers pass numpy arrays and numpy bools; the type check must not turn them away."""
    img = np.random.default_rng(0).integers(0, 255, (60, 80, 3), dtype=np.uint8)
    a = create_proposals("segments", scales=np.array([50.0, 150.0]), merge=np.bool_(True))
    b = create_proposals("segments", scales=(50.0, 150.0), merge=True)
    np.testing.assert_array_equal(a(img), b(img))
    create_proposals("windows", scales=np.array([0.5]), aspect_ratios=np.array([1.0]))
    with pytest.raises(TypeError, match=re.escape("option scales=array([[50.]]) must be Sequence[float]")):
        create_proposals("segments", scales=np.array([[50.0]]))


def test_plug_in_factories_without_annotations_or_with_kwargs():
    """A plug-in's factory: no annotations → any value passes to it, unknown names are still named;
    ``**kwargs`` → every option passes through; a ``*args`` name is not a keyword option."""
    from ovtools.proposals.registry import check_options

    def plain(a, b=2, *rest):
        return lambda image: np.zeros((0, 4), np.float32)

    def loose(**kwargs):
        return lambda image: np.zeros((0, 4), np.float32)

    check_options("plain", plain, {"a": "anything", "b": [1, 2]})
    check_options("loose", loose, {"zz": [1], "device": "cuda"})
    for bad in ("c", "rest"):
        with pytest.raises(TypeError, match=re.escape(f"'plain' has no option {bad!r}; its options: ['a', 'b']")):
            check_options("plain", plain, {"a": 1, bad: 1})


def test_proposal_option_out_of_range_names_the_source():
    """A preset's 'workers: 0' (or any value the source rejects) is named with its source, as a
    mistyped option is, not a bare 'workers must be >= 1' with no hint of where it came from."""
    cases = [
        ("segments", {"workers": 0}, r"^segments: workers .* must be a finite number >= 1 or None, got 0"),
        ("regions", {"workers": -1}, r"^regions: workers .* must be a finite number >= 1 or None, got -1"),
        ("hybrid", {"segments": {"workers": 0}}, r"^segments: workers .* must be a finite number >= 1"),
    ]
    for name, options, message in cases:
        with pytest.raises(ValueError, match=message):
            create_proposals(name, **options)
