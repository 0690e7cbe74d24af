"""Pipelines: load once, call on arrays / paths / PIL, change labels without reloading, threads, presets."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from PIL import Image

from ovtools.errors import ConfigError, UnknownNameError
from ovtools.pipelines import ClassifyPipeline, DetectPipeline, available_presets
from ovtools.prompts import CANONICAL_NEGATIVES, ClassSpace

FAST_DETECT = dict(proposals="windows", scoring="dense", templates="single", score_threshold=0.0)


@pytest.fixture
def counting_encoder(tiny_encoder, monkeypatch):
    """The tiny encoder with a counter of text-encoder calls."""
    calls = {"texts": 0}
    orig = tiny_encoder.encode_texts

    def counted(texts, batch_size=256):
        calls["texts"] += 1
        return orig(texts, batch_size=batch_size)

    monkeypatch.setattr(tiny_encoder, "encode_texts", counted)
    return tiny_encoder, calls


@pytest.fixture
def no_new_encoders(monkeypatch):
    """Fail the test if any CLIPEncoder gets built."""
    import ovtools.encoders as enc_mod

    def boom(*a, **k):
        raise AssertionError("a new CLIPEncoder was created")

    monkeypatch.setattr(enc_mod, "CLIPEncoder", boom)


def test_presets_shipped():
    assert {"detect-default", "classify-default", "detect-shapes", "classify-shapes"} <= set(available_presets())


def test_classify_on_array_path_and_pil(tiny_encoder, rgb_image, tmp_path):
    pipe = ClassifyPipeline(encoder=tiny_encoder, labels="zebra, goat, grass plain", templates="single", top_k=2)
    p = tmp_path / "img.png"
    Image.fromarray(rgb_image).save(p)
    a, b, c = pipe(rgb_image), pipe(p), pipe(Image.fromarray(rgb_image))
    assert a.class_id.shape == (1, 2) and a.confidence.dtype == np.float32
    assert a.class_names == ["zebra", "goat", "grass plain"]
    np.testing.assert_array_equal(a.class_id, b.class_id)
    np.testing.assert_allclose(a.confidence, c.confidence, atol=1e-6)
    batch = pipe.classify_batch([rgb_image, p])
    assert batch.class_id.shape == (2, 2)


def test_detect_on_array_and_path(tiny_encoder, rgb_image, tmp_path):
    pipe = DetectPipeline(encoder=tiny_encoder, labels=list(CANONICAL_NEGATIVES), **FAST_DETECT)
    p = tmp_path / "img.jpg"
    Image.fromarray(rgb_image).save(p, quality=95)
    d = pipe(rgb_image)
    assert d.image_size == (120, 160) and len(d) > 0
    assert (d.xyxy[:, 2] <= 160).all() and (d.xyxy[:, 3] <= 120).all()
    assert d.xyxy.dtype == np.float32 and d.class_id.max() < 4
    assert pipe(p).image_size == (120, 160)


def test_set_labels_without_reloading(counting_encoder, rgb_image, no_new_encoders):
    enc, calls = counting_encoder
    pipe = DetectPipeline(encoder=enc, labels="cat, dog", **FAST_DETECT)
    assert pipe.encoder is enc and calls["texts"] == 1
    pipe.set_labels("mug, kettle, spoon")
    assert pipe.labels == ["mug", "kettle", "spoon"] and calls["texts"] == 2
    pipe(rgb_image)
    pipe.set_labels("cat, dog")  # in-memory memo: no text forward pass
    assert pipe.labels == ["cat", "dog"] and calls["texts"] == 2
    assert pipe.encoder is enc


def test_set_labels_class_space_uses_disk_cache(counting_encoder):
    enc, calls = counting_encoder
    space = ClassSpace.from_names(["red square", "blue circle"], name="shapes-test")
    ClassifyPipeline(encoder=enc, labels=space, templates="single")
    assert calls["texts"] == 1
    other = ClassifyPipeline(encoder=enc, labels="zebra", templates="single")  # a second pipeline, same encoder
    assert calls["texts"] == 2
    other.set_labels(space)  # computed by the first pipeline: read from the disk cache
    assert calls["texts"] == 2 and other.labels == ["red square", "blue circle"]


def test_two_pipelines_share_one_encoder(tiny_encoder, rgb_image, no_new_encoders):
    det = DetectPipeline(encoder=tiny_encoder, labels="a, b", **FAST_DETECT)
    clf = ClassifyPipeline(encoder=det.encoder, labels="a, b", templates="single")
    assert clf.encoder is det.encoder
    clf(rgb_image)
    det(rgb_image)


def test_threads_match_serial(tiny_encoder):
    rng = np.random.default_rng(1)
    frames = [rng.integers(0, 255, (64, 96, 3), dtype=np.uint8) for _ in range(3)]
    clf = ClassifyPipeline(encoder=tiny_encoder, labels="a, b, c", templates="single", top_k=3)
    det = DetectPipeline(encoder=tiny_encoder, labels=list(CANONICAL_NEGATIVES), **FAST_DETECT)
    serial = [(clf(f).confidence, det(f).xyxy) for f in frames]
    jobs = [i % len(frames) for i in range(12)]  # 4 threads x 3 calls each
    with ThreadPoolExecutor(4) as ex:
        out = list(ex.map(lambda i: (i, clf(frames[i]).confidence, det(frames[i]).xyxy), jobs))
    for i, conf, boxes in out:
        np.testing.assert_allclose(conf, serial[i][0], atol=1e-5)
        np.testing.assert_allclose(boxes, serial[i][1], atol=1e-3)


def test_set_labels_while_running(tiny_encoder):
    """Calls during a label change see the old or the new classes, never a mix."""
    frame = np.random.default_rng(2).integers(0, 255, (64, 64, 3), dtype=np.uint8)
    clf = ClassifyPipeline(encoder=tiny_encoder, labels="a, b", templates="single", top_k=1)
    clf.set_labels("c, d, e")
    clf.set_labels("a, b")  # both now memoised
    seen, stop = set(), threading.Event()

    def worker():
        while not stop.is_set():
            seen.add(tuple(clf(frame).class_names))

    threads = [threading.Thread(target=worker) for _ in range(2)]
    for t in threads:
        t.start()
    for k in range(20):
        clf.set_labels("c, d, e" if k % 2 else "a, b")
    stop.set()
    for t in threads:
        t.join()
    assert seen <= {("a", "b"), ("c", "d", "e")}


def test_kwargs_override_preset(tiny_encoder):
    pipe = DetectPipeline("detect-default", encoder=tiny_encoder, labels="x, y", nms_iou=0.3, templates="single")
    assert pipe.config.nms_iou == 0.3
    assert pipe.config.proposals == "segments"  # from the preset
    assert pipe.labels == ["x", "y"]  # labels replace the preset's class space (coco)


def test_preset_class_space(tiny_encoder):
    pipe = ClassifyPipeline(encoder=tiny_encoder, classes="coco", templates="single")
    assert len(pipe.labels) == 80


def test_unknown_preset_key(tmp_path, tiny_encoder):
    p = tmp_path / "mine.yaml"
    p.write_text("task: detect\nscoring: dense\nscore_treshold: 0.2\n")
    with pytest.raises(ConfigError, match=r"mine\.yaml.*score_treshold"):
        DetectPipeline(p, encoder=tiny_encoder, labels="a")


def test_preset_for_other_task(tmp_path, tiny_encoder):
    with pytest.raises(ConfigError, match="task"):
        ClassifyPipeline("detect-default", encoder=tiny_encoder, labels="a")


def test_bad_preset_value_names_file(tmp_path, tiny_encoder):
    p = tmp_path / "bad.yaml"
    p.write_text("scoring: sparse\n")
    with pytest.raises(ConfigError, match=r"bad\.yaml.*scoring"):
        DetectPipeline(p, encoder=tiny_encoder, labels="a")


def test_unknown_preset_and_kwarg(tiny_encoder):
    with pytest.raises(UnknownNameError, match="detect-default"):
        DetectPipeline("no-such-preset", encoder=tiny_encoder, labels="a")
    with pytest.raises(TypeError, match="treshold"):
        DetectPipeline(encoder=tiny_encoder, labels="a", treshold=0.2)
    with pytest.raises(ValueError, match="encoder"):
        ClassifyPipeline(encoder=tiny_encoder, labels="a", model="ViT-B-32")


def test_builds_its_own_encoder_from_kwargs():
    pipe = ClassifyPipeline(model="ovtools-test-vit", pretrained="none", device="cpu", labels="a, b",
                            templates="single")
    assert pipe.encoder.pretrained is None and pipe.encoder.name == "ovtools-test-vit"


def test_no_labels_yet_is_clear(tiny_encoder, rgb_image):
    pipe = ClassifyPipeline(None, encoder=tiny_encoder)
    assert pipe.labels == []
    with pytest.raises(RuntimeError, match="set_labels"):
        pipe(rgb_image)


def test_empty_labels_rejected(tiny_encoder):
    pipe = ClassifyPipeline(None, encoder=tiny_encoder, labels="a")
    with pytest.raises(ValueError):
        pipe.set_labels("  ,  ")
    assert pipe.labels == ["a"]  # unchanged after a failed change


@pytest.mark.parametrize("name", ["detect-default", "classify-default", "detect-shapes", "classify-shapes",
                                  "segment-default", "segment-shapes", "segment3d-default", "segment3d-shapes"])
def test_shipped_presets_are_valid(name):
    """Every key of every shipped preset is known, and every preset builds its head's config."""
    from ovtools.config import config_defaults
    from ovtools.pipelines import pipeline_class
    from ovtools.pipelines.presets import preset_path, read_preset, resolve_settings

    task = name.split("-")[0]
    cls = pipeline_class(task)
    allowed = cls._allowed_keys()
    data = read_preset(preset_path(name), allowed, task)
    assert data["task"] == task and data["model"] and "classes" in data
    settings = resolve_settings(task, allowed, name, {})
    config = cls.spec().config
    config(**{k: settings[k] for k in config_defaults(config)})
