"""DetectHead with real tiny encoders: frames, scaling, both scorings, NMS, open-set reporting."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torchvision.ops import box_iou

from ovtools.heads import DetectConfig, DetectHead, create_head
from ovtools.geometry import square_context_boxes
from ovtools.io.images import LoadedImage
from ovtools.prompts import ClassSpace, EmbeddingCache, build_class_embeddings

from .test_scoring import make_emb

FAST = {"scales": (0.3, 0.5), "aspect_ratios": (1.0,), "overlap": 0.5}


@pytest.fixture(scope="module")
def scene():
    """RGB uint8 (240, 320, 3): grey noise with a red and a blue square."""
    rng = np.random.default_rng(0)
    img = rng.integers(90, 140, (240, 320, 3), dtype=np.uint8)
    img[40:120, 40:120] = (220, 30, 30)
    img[130:210, 200:280] = (30, 40, 220)
    return img


@pytest.fixture(scope="module")
def emb(tiny_encoder, scene):
    """Real text embeddings of 3 labels; the negative is the opposite of the scene's feature, so that the
    random-weight model reports something (every region beats it)."""
    e = build_class_embeddings(tiny_encoder, ClassSpace.from_labels("red square, blue square, dog"),
                               cache=EmbeddingCache(enabled=False))
    neg = -tiny_encoder.encode_images([scene])
    return make_emb(e.classes, neg, names=e.names)


@pytest.mark.slow
@pytest.mark.parametrize("scoring", ["crop", "dense"])
def test_boxes_in_original_pixels_when_processed_downscaled(tiny_encoder, scene, emb, scoring):
    head = DetectHead(tiny_encoder, DetectConfig(scoring=scoring, score_threshold=0.0, class_agnostic_iou=None))
    small = head(scene, emb)
    big = head(LoadedImage(scene, (960, 1280)), emb)
    assert len(small) > 0 and len(big) == len(small)
    assert big.image_size == (960, 1280) and small.image_size == (240, 320)
    assert big.xyxy.dtype == np.float32 and big.confidence.dtype == np.float32
    np.testing.assert_allclose(big.xyxy, small.xyxy * 4, rtol=1e-5, atol=1e-3)
    assert (big.xyxy >= 0).all() and (big.xyxy[:, [0, 2]] <= 1280).all() and (big.xyxy[:, [1, 3]] <= 960).all()
    assert np.all(np.diff(big.confidence) <= 1e-7)  # sorted by confidence


def test_max_side_downscales_processing_but_not_the_result(tiny_encoder, emb):
    rng = np.random.default_rng(1)
    img = rng.integers(0, 255, (300, 800, 3), dtype=np.uint8)
    det = DetectHead(tiny_encoder, scoring="dense", score_threshold=0.0, max_side=200,
                     proposals="windows", proposal_options=FAST)(img, emb)
    assert len(det) > 0 and det.image_size == (300, 800)
    assert det.xyxy[:, 2].max() <= 800 and det.xyxy[:, 3].max() <= 300
    assert det.xyxy[:, 2].max() > 400  # boxes span the full width, not the 200-px processing frame


def test_crop_and_dense_return_the_same_structure(tiny_encoder, tiny_rn_encoder, scene, emb):
    for enc in (tiny_encoder, tiny_rn_encoder):
        e = emb if enc is tiny_encoder else build_class_embeddings(
            enc, ClassSpace.from_labels("red square, blue square, dog"), cache=EmbeddingCache(enabled=False))
        outs = [create_head("detect", enc, scoring=s, score_threshold=0.0, proposals="windows",
                            proposal_options=FAST)(scene, e) for s in ("crop", "dense")]
        for d in outs:
            assert d.xyxy.shape[1:] == (4,) and d.class_names == e.names
            assert set(d.data) == {"logits", "relevancy"}
            assert d.data["logits"].shape == (len(d), 3) and d.data["relevancy"].shape == (len(d),)
            assert ((d.confidence >= 0) & (d.confidence <= 1)).all()
            assert (d.data["relevancy"] > 0.5).all()  # every reported label beat its negatives


def test_region_equal_to_class_is_detected_and_absent_class_is_not(tiny_encoder, scene):
    # 6 non-overlapping 120x120 windows (2 rows x 3 columns), so NMS cannot interfere
    head = DetectHead(tiny_encoder, scoring="crop", score_threshold=0.0, proposals="windows",
                      proposal_options={"scales": (0.5,), "aspect_ratios": (1.0,), "overlap": 0.0})
    boxes = torch.as_tensor(head.proposal_source(scene))
    assert len(boxes) == 6
    target = int(box_iou(torch.tensor([[40.0, 40, 120, 120]]), boxes).argmax())
    feats = head.crop_features(tiny_encoder.normalize(tiny_encoder.to_float(scene)).float(), boxes)
    others = F.normalize(torch.cat([feats[:target], feats[target + 1:]]).mean(0), dim=0)
    absent = F.normalize(torch.randn(feats.shape[1], generator=torch.Generator().manual_seed(0)), dim=0)
    # class 0 = the region's own feature; negative = the mean of the other regions; class 1 = unrelated
    emb = make_emb(torch.stack([feats[target], absent]), others[None], names=["thing", "absent thing"])
    det = head(LoadedImage(scene, (480, 640)), emb)
    hit = [i for i in range(len(det)) if np.allclose(det.xyxy[i], boxes[target].numpy() * 2, atol=1e-3)]
    assert len(hit) == 1 and det.labels[hit[0]] == "thing"
    assert det.confidence[hit[0]] > 0.5 and det.data["relevancy"][hit[0]] > 0.5
    assert "absent thing" not in det.labels


def test_nms_removes_duplicates(tiny_encoder, scene, emb):
    opts = {"scales": (0.3, 0.35), "aspect_ratios": (1.0,), "overlap": 0.8}
    loose = DetectHead(tiny_encoder, scoring="dense", score_threshold=0.0, proposals="windows",
                       proposal_options=opts, nms_iou=1.0, class_agnostic_iou=None, max_detections=1000)(scene, emb)
    tight = DetectHead(tiny_encoder, scoring="dense", score_threshold=0.0, proposals="windows",
                       proposal_options=opts, nms_iou=0.3, class_agnostic_iou=0.3, max_detections=1000)(scene, emb)
    assert len(tight) < len(loose)
    iou = box_iou(torch.as_tensor(tight.xyxy), torch.as_tensor(tight.xyxy)).fill_diagonal_(0)
    assert iou.max() <= 0.3 + 1e-6
    capped = DetectHead(tiny_encoder, scoring="dense", score_threshold=0.0, proposals="windows",
                        proposal_options=opts, nms_iou=1.0, max_detections=5)(scene, emb)
    assert len(capped) == 5


def test_empty_label_set_and_impossible_threshold(tiny_encoder, scene, emb):
    d = tiny_encoder.embed_dim
    none = make_emb(torch.zeros(0, d), torch.randn(2, d))
    det = DetectHead(tiny_encoder)(scene, none)
    assert len(det) == 0 and det.xyxy.shape == (0, 4) and det.xyxy.dtype == np.float32
    det = DetectHead(tiny_encoder, score_threshold=1.0, proposals="windows", proposal_options=FAST)(scene, emb)
    assert len(det) == 0 and det.data["logits"].shape == (0, 3)


def test_square_context_boxes():
    box = torch.tensor([[10.0, 20, 30, 60]])  # 20 x 40, centre (20, 40)
    assert torch.allclose(square_context_boxes(box, 0.0), torch.tensor([[0.0, 20, 40, 60]]))
    assert torch.allclose(square_context_boxes(box, 0.25), torch.tensor([[-10.0, 10, 50, 70]]))  # side 60


def test_config_validation(tiny_encoder):
    with pytest.raises(ValueError, match="scoring"):
        DetectConfig(scoring="pixels")
    with pytest.raises(ValueError, match="score_threshold"):
        DetectConfig(score_threshold=1.5)
    with pytest.raises(ValueError, match="nms_iou"):
        DetectConfig(nms_iou=0.0)
    with pytest.raises(ValueError, match="proposals must be one of .*windows"):  # checked by the config itself
        DetectHead(tiny_encoder, proposals="nope")


def test_parts_inside_a_larger_detection_are_removed(tiny_encoder):
    e = torch.eye(tiny_encoder.embed_dim)
    emb = make_emb(e[:2], e[2:3], names=["whole", "other"])
    boxes = torch.tensor([[0.0, 0, 100, 100], [10, 10, 50, 50], [60, 60, 90, 90]])
    feats = torch.stack([e[0], e[0], F.normalize(e[1] + 0.1 * e[0], dim=0)])  # box 2: another label, inside box 0
    keep_all = DetectHead(tiny_encoder, contained_fraction=None, class_agnostic_iou=None)
    det = keep_all.detections_from_features(boxes, feats, emb, (100, 100), (200, 200))
    assert len(det) == 3 and det.xyxy.max() == 200  # mapped to the original frame
    same = DetectHead(tiny_encoder, contained_fraction=0.6, class_agnostic_iou=None)
    det = same.detections_from_features(boxes, feats, emb, (100, 100), (100, 100))
    assert sorted(det.labels) == ["other", "whole"] and len(det) == 2  # the same-label part went
    anyl = DetectHead(tiny_encoder, contained_fraction=0.6, contained_any_label=True, class_agnostic_iou=None)
    det = anyl.detections_from_features(boxes, feats, emb, (100, 100), (100, 100))
    assert det.labels == ["whole"]


def test_region_won_by_an_own_negative_absorbs_parts_inside_it(tiny_encoder):
    """Query "blue square" alone on a blue cross: the cross's arm looks like a square, but it lies inside a
    region that the class's own negative ("blue cross") wins, so it is not reported."""
    from ovtools.prompts import ClassEmbeddings, ClassSpec, load_templates

    e = torch.eye(tiny_encoder.embed_dim)
    space = ClassSpace("q", (ClassSpec("blue square", negatives=("blue cross",)),))
    emb = ClassEmbeddings(space, e[:1], torch.stack([e[1], e[2]]), ("object", "blue cross"),
                          torch.ones(1, 2, dtype=torch.bool), load_templates("single"))
    boxes = torch.tensor([[0.0, 0, 100, 100], [10, 40, 40, 60], [150, 150, 190, 190]])
    arm = F.normalize(e[0] + 0.3 * e[2], dim=0)
    feats = torch.stack([e[2], arm, e[0]])  # the whole cross, its arm, a real square elsewhere
    plain = DetectHead(tiny_encoder, negatives_absorb_parts=False, class_agnostic_iou=None)
    det = plain.detections_from_features(boxes, feats, emb, (200, 200), (200, 200))
    assert len(det) == 2
    absorb = DetectHead(tiny_encoder, negatives_absorb_parts=True, class_agnostic_iou=None)
    det = absorb.detections_from_features(boxes, feats, emb, (200, 200), (200, 200))
    assert len(det) == 1 and det.xyxy[0].tolist() == [150, 150, 190, 190]


def test_loose_region_of_an_own_negative_does_not_absorb_a_true_object(tiny_encoder):
    """Query "blue square" alone: a loose box around a blue square and a blue cross beside it scores the own
    negative ("blue cross") above the label but a shared negative ("object") above both; it shows no cross, so
    the real square inside it stays reported (the bug: it was absorbed as a part of the "cross")."""
    from ovtools.prompts import ClassEmbeddings, ClassSpec, load_templates

    e = torch.eye(tiny_encoder.embed_dim)
    space = ClassSpace("q", (ClassSpec("blue square", negatives=("blue cross",)),))
    emb = ClassEmbeddings(space, e[:1], torch.stack([e[1], e[2]]), ("object", "blue cross"),
                          torch.ones(1, 2, dtype=torch.bool), load_templates("single"))
    boxes = torch.tensor([[0.0, 0, 120, 100], [10, 20, 60, 70]])
    loose = F.normalize(e[1] + 0.5 * e[2] + 0.2 * e[0], dim=0)
    feats = torch.stack([loose, e[0]])
    head = DetectHead(tiny_encoder, negatives_absorb_parts=True, class_agnostic_iou=None)
    det = head.detections_from_features(boxes, feats, emb, (200, 200), (200, 200))
    assert len(det) == 1 and det.xyxy[0].tolist() == [10, 20, 60, 70]
    # a region that does show the cross (its own negative beats "object" too) still absorbs
    feats = torch.stack([F.normalize(e[2] + 0.5 * e[1] + 0.2 * e[0], dim=0), F.normalize(e[0] + 0.3 * e[2], dim=0)])
    assert len(head.detections_from_features(boxes, feats, emb, (200, 200), (200, 200))) == 0
