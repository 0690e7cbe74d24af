"""Chunked 3D labelling: the same labels as scoring every point at once, without (M, D) float32 copies."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from ovtools.heads import segment3d
from ovtools.heads.scoring import open_set_scores
from ovtools.heads.segment3d import Segment3DHead, SceneFeatures
from ovtools.prompts import ClassSpace, EmbeddingCache, build_class_embeddings


@pytest.fixture(scope="module")
def scene_features():
    g = torch.Generator().manual_seed(0)
    m, d = 301, 64
    fused = F.normalize(torch.randn(m, d, generator=g), dim=1).half()
    count = torch.randint(0, 3, (m,), generator=g, dtype=torch.int32)
    fused[count == 0] = 0
    distilled = F.normalize(torch.randn(m, d, generator=g), dim=1).half()
    inverse = np.concatenate([np.arange(m), np.arange(0, m, 3)])  # an input cloud down-sampled to m voxels
    return SceneFeatures(SimpleNamespace(inverse=inverse), fused, count, distilled, 0.01, 2)


@pytest.fixture(scope="module")
def emb(tiny_encoder):
    space = ClassSpace.from_labels("red cube, blue sphere, green cone")
    return build_class_embeddings(tiny_encoder, space, "single", cache=EmbeddingCache(enabled=False))


@pytest.mark.parametrize("mode", ["fusion", "distill", "ensemble"])
def test_select_rows_equals_rows_of_select(scene_features, emb, mode):
    full = scene_features.select(mode, emb.classes, 50.0).float()
    for a, b in ((0, 7), (100, 301), (290, 400)):
        assert torch.equal(scene_features.select_rows(mode, emb.classes, 50.0, a, b), full[a:b])


@pytest.mark.parametrize("mode", ["fusion", "distill", "ensemble"])
def test_chunked_labels_equal_one_pass(tiny_encoder, scene_features, emb, mode, monkeypatch):
    head = Segment3DHead(tiny_encoder, distill_steps=300, mode=mode)
    feats = scene_features.select(mode, emb.classes, tiny_encoder.logit_scale).float()
    sc = open_set_scores(feats, emb, tiny_encoder.logit_scale)
    best = sc.confidence.argmax(1)
    ok = sc.reportable(0.0)[torch.arange(len(best)), best]
    if mode == "fusion":
        ok &= scene_features.count > 0
    expected = torch.where(ok, best, -1).numpy()[scene_features.scene.inverse]
    monkeypatch.setattr(segment3d, "LABEL_CHUNK", 16)  # 19 chunks, the last one partial
    labels = head.label(scene_features, emb)
    np.testing.assert_array_equal(labels.class_id, expected)
    np.testing.assert_allclose(labels.confidence, sc.confidence.max(1).values.numpy()[scene_features.scene.inverse],
                               rtol=1e-6)
    rel = head.relevancy(scene_features, emb)
    assert rel.shape == (len(scene_features.scene.inverse),) and ((rel >= 0) & (rel <= 1)).all()
