"""Quality on the generated evaluation world, measured by `ovtools datagen/eval/probe` (ovtools.eval.report).

Held-out data (seeds 2000+; training used seeds 0 and 5000, tuning 1000-1999) and the committed
ovtools-shapes checkpoints (detect-shapes and segment-shapes use the region-trained `shapes-regions`).  Targets from issue 3: zero-shot top-1 >= 0.97,
16-shot linear probe >= zero-shot, detection AP50 >= 0.70 on 3-6 object
scenes, and an absent label not reported in >= 90% of scenes; issue 4: semantic
segmentation mIoU >= 0.70 with the classical `regions` mask proposals; issue 5: 3D mIoU
>= 0.60 from bare PLYs of held-out 3D scenes (fusion, distillation, ensemble).
"""

from __future__ import annotations

import pytest

from ovtools.eval.report import QualitySizes, markdown_table, shapes_quality
from ovtools.resources import checkpoints_dir

pytestmark = [pytest.mark.quality, pytest.mark.timeout(2400)]  # a busy 2-core machine took 20 min

SIZES = QualitySizes(classify_images=640, probe_train_images=1024, scenes=60, segment_scenes=30, scenes3d=3,
                     template_sets=("shapes", "openai_imagenet", "single"), scorings=("crop", "dense"))


@pytest.fixture(scope="module")
def quality(tmp_path_factory):
    if not (checkpoints_dir() / "ovtools-shapes.safetensors").is_file():
        pytest.fail("the shipped checkpoint ovtools/encoders/checkpoints/ovtools-shapes.safetensors is missing")
    result = shapes_quality(tmp_path_factory.mktemp("quality"), SIZES)
    print("\n" + markdown_table(result))
    return result


def test_zero_shot_top1(quality):
    assert quality["zero_shot"]["shapes"]["n"] == 640
    assert quality["zero_shot"]["shapes"]["top1"] >= 0.97


def test_template_sets_are_all_reported(quality):
    for tset in ("openai_imagenet", "single"):
        r = quality["zero_shot"][tset]
        assert r["templates"] == tset and 0.0 <= r["top1"] <= 1.0


def test_linear_probe_16_shot_at_least_zero_shot(quality):
    probes = {p["shots"]: p["test_accuracy"] for p in quality["probe"]["probes"]}
    assert probes[16] >= quality["probe"]["zero_shot_top1"]


@pytest.mark.parametrize("scoring", ["crop", "dense"])
def test_detection_ap50_and_absent_labels(quality, scoring):
    r = quality["detection"][scoring]
    assert r["n_images"] == 60
    if scoring == "crop":
        assert r["AP50"] >= 0.70
    assert r["absent_label_rejection"] >= 0.90


def test_detection_what_a_user_sees_at_the_default_threshold(quality):
    """Issue 11 at detect-shapes' default threshold (0.88, region-trained `shapes-regions` weights): precision
    >= 0.90, recall >= 0.80, <= 0.05 duplicates per object and look-alike absent labels (plain `--labels`) not
    reported >= 0.90."""
    r = quality["detection"]["crop"]
    op = r["at_threshold"]
    assert op["score_threshold"] == 0.88, op
    assert op["precision"] >= 0.90 and op["recall"] >= 0.80, op
    assert op["duplicates_per_object"] <= 0.05, op
    assert r["lookalike_label_rejection"] >= 0.90


def test_segmentation_what_a_user_sees_at_the_default_threshold(quality):
    """Issue 11 at segment-shapes' default threshold: precision >= 0.90, recall >= 0.80, look-alike absent
    labels (plain `--labels`) not reported >= 0.90."""
    r = quality["segmentation"]["crop"]
    op = r["at_threshold"]
    assert op["precision"] >= 0.90 and op["recall"] >= 0.80, op
    assert r["lookalike_label_rejection"] >= 0.90


@pytest.mark.parametrize("scoring", ["crop", "dense", "fusion"])
def test_segmentation_miou(quality, scoring):
    """Issue 4: semantic mIoU >= 0.70 with the classical `regions` masks (crop scoring); the others reported."""
    r = quality["segmentation"][scoring]
    assert r["n_images"] == SIZES.segment_scenes
    assert 0.0 <= r["mIoU"] <= 1.0 and 0.0 <= r["mask_AP50"] <= 1.0
    if scoring == "crop":
        assert r["mIoU"] >= 0.70
        assert r["absent_label_rejection"] >= 0.90


@pytest.mark.parametrize("mode", ["fusion", "distill", "ensemble"])
def test_3d_miou_from_bare_ply(quality, mode):
    """Issue 5: 3D mIoU >= 0.60 on held-out 3D scenes from bare PLYs, for fusion, distillation and the ensemble."""
    r = quality["segmentation3d"]
    assert r["n_scenes"] == SIZES.scenes3d
    assert r["modes"][mode]["mIoU"] >= 0.60, r["modes"][mode]
