"""Cascade scoring: a dense pass ranks every proposal, crops re-score the best K (detect and segment)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from ovtools.heads import DetectConfig, DetectHead
from ovtools.heads.scoring import cascade_candidates, open_set_scores
from ovtools.heads.segment import SegmentConfig, SegmentHead

from .test_detect import FAST, emb, scene  # noqa: F401  (fixtures)
from .test_scoring import make_emb


def test_candidates_are_the_best_ranked_by_their_best_label_logit():
    g = torch.Generator().manual_seed(0)
    feats = F.normalize(torch.randn(40, 8, generator=g), dim=1)
    e = make_emb(F.normalize(torch.randn(3, 8, generator=g), dim=1), F.normalize(torch.randn(2, 8, generator=g), dim=1))
    best = open_set_scores(feats, e, 20.0).logits.max(1).values
    top = cascade_candidates(feats, e, 20.0, 5)
    assert top.tolist() == sorted(top.tolist()) and len(top) == 5
    assert best[top].min() >= best[np.setdiff1d(np.arange(40), top.numpy())].max()
    assert cascade_candidates(feats, e, 20.0, 100).tolist() == list(range(40))
    with pytest.raises(ValueError, match="k"):
        cascade_candidates(feats, e, 20.0, 0)


def test_candidates_with_nms_cover_objects_before_near_duplicates():
    # regions 0-2: one object (near-identical boxes) ranked 1st-3rd; 3 and 4: two other objects ranked lower
    boxes = torch.tensor([[0, 0, 10, 10], [0, 0, 10, 11], [1, 0, 10, 10], [50, 50, 60, 60], [80, 0, 90, 10.]])
    labels = F.normalize(torch.tensor([[1.0, 0, 0]]), dim=1)
    feats = F.normalize(torch.tensor([[1.0, 0.1, 0], [1, 0.2, 0], [1, 0.3, 0], [1, 0.4, 0], [1, 0.5, 0]]), dim=1)
    e = make_emb(labels, F.normalize(torch.tensor([[0, 0, 1.0]]), dim=1))
    assert cascade_candidates(feats, e, 20.0, 3).tolist() == [0, 1, 2]             # rank order only
    assert cascade_candidates(feats, e, 20.0, 3, boxes, 0.5).tolist() == [0, 3, 4]  # one per object first
    assert cascade_candidates(feats, e, 20.0, 4, boxes, 0.5).tolist() == [0, 1, 3, 4]  # then by rank
    assert cascade_candidates(feats, e, 20.0, 3, boxes, None).tolist() == [0, 1, 2]
    with pytest.raises(ValueError, match="boxes"):
        cascade_candidates(feats, e, 20.0, 3, boxes[:4], 0.5)


def test_candidates_with_mask_nms_cover_objects_before_near_duplicates():
    """Segmentation: the diversity step compares masks (nested / near-identical masks of one object)."""
    masks = torch.zeros(5, 64, 64, dtype=torch.bool)
    masks[0, :20, :20] = masks[1, :20, :21] = masks[2, :19, :20] = True  # one object, three near-copies
    masks[3, 40:60, 40:60] = True
    masks[4, 0:10, 50:60] = True
    labels = F.normalize(torch.tensor([[1.0, 0, 0]]), dim=1)
    feats = F.normalize(torch.tensor([[1.0, 0.1, 0], [1, 0.2, 0], [1, 0.3, 0], [1, 0.4, 0], [1, 0.5, 0]]), dim=1)
    e = make_emb(labels, F.normalize(torch.tensor([[0, 0, 1.0]]), dim=1))
    assert cascade_candidates(feats, e, 20.0, 3, nms_iou=0.5, masks=masks).tolist() == [0, 3, 4]
    assert cascade_candidates(feats, e, 20.0, 4, nms_iou=0.5, masks=masks).tolist() == [0, 1, 3, 4]
    assert cascade_candidates(feats, e, 20.0, 3, masks=masks).tolist() == [0, 1, 2]  # nms_iou None: rank order
    with pytest.raises(ValueError, match="masks"):
        cascade_candidates(feats, e, 20.0, 3, nms_iou=0.5, masks=masks[:4])


def test_detect_cascade_with_every_proposal_equals_crop(tiny_encoder, scene, emb):  # noqa: F811
    kw = dict(proposals="windows", proposal_options=FAST, score_threshold=0.0, class_agnostic_iou=None)
    crop = DetectHead(tiny_encoder, DetectConfig(scoring="crop", **kw))(scene, emb)
    full = DetectHead(tiny_encoder, DetectConfig(scoring="cascade", cascade_k=500, **kw))(scene, emb)
    assert len(crop) > 1
    np.testing.assert_array_equal(full.xyxy, crop.xyxy)
    np.testing.assert_array_equal(full.confidence, crop.confidence)
    head = DetectHead(tiny_encoder, DetectConfig(scoring="cascade", cascade_k=2, **kw))
    few = head(scene, emb)
    assert 1 <= len(few) <= 2
    boxes = head.propose(scene)
    top = cascade_candidates(head.dense_box_features(tiny_encoder.to_float(scene), boxes), emb,
                             tiny_encoder.logit_scale, 2, boxes, head.config.cascade_nms_iou)
    kept = {tuple(b) for b in boxes[top].tolist()}
    assert all(tuple(b) in kept for b in few.xyxy.tolist())  # only re-scored proposals are reported


def test_segment_cascade_with_every_mask_equals_crop(tiny_encoder, rgb_image):
    from ovtools.prompts import ClassSpace, EmbeddingCache, build_class_embeddings

    e = build_class_embeddings(tiny_encoder, ClassSpace.from_labels("red square, dog"),
                               cache=EmbeddingCache(enabled=False))
    e = make_emb(e.classes, -tiny_encoder.encode_images([rgb_image]), names=e.names)
    kw = dict(score_threshold=0.0, max_side=None)
    crop = SegmentHead(tiny_encoder, SegmentConfig(scoring="crop", **kw))(rgb_image, e)
    full = SegmentHead(tiny_encoder, SegmentConfig(scoring="cascade", cascade_k=300, **kw))(rgb_image, e)
    assert len(crop) > 0
    np.testing.assert_array_equal(full.mask, crop.mask)
    np.testing.assert_array_equal(full.confidence, crop.confidence)
    few = SegmentHead(tiny_encoder, SegmentConfig(scoring="cascade", cascade_k=1, **kw))(rgb_image, e)
    assert len(few) <= 1


def test_cascade_settings_are_checked(tiny_encoder):
    with pytest.raises(ValueError, match="cascade_k"):
        DetectConfig(scoring="cascade", cascade_k=0)
    with pytest.raises(ValueError, match="cascade_k"):
        SegmentConfig(scoring="cascade", cascade_k=0)
    with pytest.raises(ValueError, match="cascade_nms_iou"):
        DetectConfig(scoring="cascade", cascade_nms_iou=0.0)
    with pytest.raises(ValueError, match="cascade_nms_iou"):
        SegmentConfig(scoring="cascade", cascade_nms_iou=1.5)
    with pytest.raises(ValueError, match="scoring"):
        SegmentConfig(scoring="cascades")
