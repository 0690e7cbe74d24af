"""SegmentPipeline: built from keyword arguments, label changes without reloading, per-call labels,
option and preset errors, and thread safety (regions and Segment Anything mask sources)."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from PIL import Image

from ovtools.errors import ConfigError
from ovtools.pipelines import SegmentPipeline
from ovtools.prompts import CANONICAL_NEGATIVES

# Labels equal to the canonical negatives leave no negative to beat: random weights still report masks.
LABELS = list(CANONICAL_NEGATIVES)
FAST = dict(templates="single", scoring="dense", score_threshold=0.0)


def _blocks(h, w, seed):
    """RGB uint8 (h, w, 3): a few flat colour blocks plus mild noise (few, quick region proposals)."""
    rng = np.random.default_rng(seed)
    img = np.empty((h, w, 3), np.uint8)
    img[:] = rng.integers(0, 255, 3)
    for _ in range(3):
        y0, x0 = rng.integers(0, h // 2), rng.integers(0, w // 2)
        img[y0:y0 + rng.integers(h // 4, h // 2), x0:x0 + rng.integers(w // 4, w // 2)] = rng.integers(0, 255, 3)
    noise = rng.integers(-6, 7, img.shape)
    return np.clip(img.astype(int) + noise, 0, 255).astype(np.uint8)


@pytest.fixture(scope="module")
def pipe():
    """Built from keyword arguments only: it loads its own tiny random-weight encoder."""
    return SegmentPipeline(None, model="ovtools-test-vit", pretrained=None, device="cpu", labels=LABELS, **FAST)


@pytest.fixture
def no_new_encoders(monkeypatch):
    import ovtools.encoders as enc_mod

    def boom(*a, **k):
        raise AssertionError("a new CLIPEncoder was created")

    monkeypatch.setattr(enc_mod, "CLIPEncoder", boom)


def _same(a, b):
    assert a.class_names == b.class_names and len(a) == len(b)
    np.testing.assert_array_equal(a.mask, b.mask)
    np.testing.assert_array_equal(a.class_id, b.class_id)
    np.testing.assert_array_equal(a.xyxy, b.xyxy)
    np.testing.assert_array_equal(a.confidence, b.confidence)


@pytest.mark.slow
def test_built_from_kwargs(pipe, tmp_path):
    assert pipe.task == "segment" and pipe.settings.source is None
    assert pipe.encoder.name == "ovtools-test-vit" and pipe.encoder.pretrained is None
    assert pipe.config.scoring == "dense" and pipe.config.proposals == "regions"  # built-in default source
    assert pipe.config.score_threshold == 0.0 and pipe.labels == LABELS
    img = _blocks(70, 90, 0)
    det = pipe(img)
    assert len(det) > 0 and det.mask.shape == (len(det), 70, 90) and det.mask.dtype == bool
    assert det.image_size == (70, 90) and det.class_names == LABELS
    assert np.all(np.diff(det.confidence) <= 0) and ((det.confidence >= 0) & (det.confidence <= 1)).all()
    assert (det.xyxy[:, 2] <= 90).all() and (det.xyxy[:, 3] <= 70).all()
    lm = det.label_map()
    assert lm.shape == (70, 90) and lm.dtype == np.int32 and lm.max() < len(LABELS)
    p = tmp_path / "x.png"
    Image.fromarray(img).save(p)
    _same(pipe(p), det)  # a path and a PIL image give the array's result
    _same(pipe(Image.fromarray(img)), det)


def test_set_labels_without_reloading(tiny_encoder, no_new_encoders):
    seg = SegmentPipeline(None, encoder=tiny_encoder, labels="cat, dog", **FAST)
    head = seg.head
    seg.set_labels(LABELS)
    assert seg.labels == LABELS and seg.encoder is tiny_encoder
    assert seg.head is head and seg.head.encoder is tiny_encoder
    det = seg(_blocks(64, 64, 1))
    assert det.class_names == LABELS
    seg.set_labels("mug, kettle")
    assert seg(_blocks(64, 64, 1)).class_names == ["mug", "kettle"] and seg.encoder is tiny_encoder


def test_per_call_labels_leave_the_pipeline_labels(pipe):
    img = _blocks(64, 72, 2)
    before = pipe(img)
    other = pipe(img, labels="red mug, blue kettle, spoon")
    assert other.class_names == ["red mug", "blue kettle", "spoon"]
    assert len(other) == 0 or other.class_id.max() < 3
    assert pipe.labels == LABELS
    _same(pipe(img), before)


def test_unknown_keyword_is_a_type_error(tiny_encoder):
    with pytest.raises(TypeError, match="score_treshold"):
        SegmentPipeline(None, encoder=tiny_encoder, labels="a", score_treshold=0.2)
    with pytest.raises(TypeError, match="dense_pool"):  # a detection-only key
        SegmentPipeline(None, encoder=tiny_encoder, labels="a", dense_pool="mean")


@pytest.mark.parametrize("line,key", [
    ("scoring: sparse", "scoring"),
    ("mask_fill: grey", "mask_fill"),
    ("score_threshold: 2.0", "score_threshold"),
    ("nms_iou: 0", "nms_iou"),
    ("max_detections: 0", "max_detections"),
    ("score_treshold: 0.1", "score_treshold"),  # unknown key
])
def test_invalid_head_setting_in_preset_names_the_file(tmp_path, tiny_encoder, line, key):
    p = tmp_path / "myseg.yaml"
    p.write_text(f"task: segment\n{line}\n")
    with pytest.raises(ConfigError, match=rf"myseg\.yaml.*{key}"):
        SegmentPipeline(p, encoder=tiny_encoder, labels="a")


def test_preset_of_another_task(tiny_encoder):
    with pytest.raises(ConfigError, match="detect"):
        SegmentPipeline("detect-default", encoder=tiny_encoder, labels="a")


def test_invalid_value_as_keyword_is_a_config_error(tiny_encoder):
    with pytest.raises(ConfigError, match="scoring"):
        SegmentPipeline(None, encoder=tiny_encoder, labels="a", scoring="sparse")


def _threads_match_serial(seg, frames):
    serial = [seg(f) for f in frames]
    barrier = threading.Barrier(len(frames))

    def call(i):
        barrier.wait(timeout=30)  # all four start together
        return seg(frames[i])

    with ThreadPoolExecutor(len(frames)) as ex:
        parallel = list(ex.map(call, range(len(frames))))
    for a, b in zip(serial, parallel):
        _same(a, b)
    return serial


@pytest.mark.slow
def test_threads_match_serial_regions(pipe):
    frames = [_blocks(56 + 8 * i, 80 - 4 * i, 10 + i) for i in range(4)]
    serial = _threads_match_serial(pipe, frames)
    assert all(len(d) > 0 for d in serial)
    assert [d.mask.shape[1:] for d in serial] == [f.shape[:2] for f in frames]


@pytest.mark.slow
def test_threads_match_serial_segment_anything(tiny_encoder):
    pytest.importorskip("segment_anything")
    from ovtools.proposals.sam import build_tiny_sam

    opts = {"model": build_tiny_sam(), "points_per_side": 4, "pred_iou_thresh": 0.0, "stability_score_thresh": 0.0}
    seg = SegmentPipeline(None, encoder=tiny_encoder, labels=LABELS, proposals="sam", proposal_options=opts, **FAST)
    assert seg.config.proposals == "sam"
    frames = [_blocks(48 + 8 * i, 64 + 8 * i, 20 + i) for i in range(4)]
    serial = _threads_match_serial(seg, frames)
    assert any(len(d) > 0 for d in serial)
    assert [d.mask.shape[1:] for d in serial] == [f.shape[:2] for f in frames]
