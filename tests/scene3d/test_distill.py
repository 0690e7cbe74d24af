"""train_distill / DistillModel / ensemble_features: learning a position-dependent feature, determinism."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from ovtools.scene3d import DistillModel, ensemble_features, train_distill

SMALL = {"batch": 2048, "resolutions": (8, 16, 32), "hidden": 64}


def _toy(n=6000, d=16, seed=0):
    """Points in a 4 x 3 x 2 m box whose target feature is a smooth function of position."""
    rng = np.random.default_rng(seed)
    pts = (rng.random((n, 3)) * [4.0, 3.0, 2.0] - [1.0, 0.0, 0.5]).astype(np.float32)
    cols = rng.integers(0, 256, (n, 3), dtype=np.uint8)
    w = torch.randn(3, d // 2, generator=torch.Generator().manual_seed(1)) * 1.5
    p = torch.from_numpy(pts)
    target = F.normalize(torch.cat([torch.sin(p @ w), torch.cos(p @ w)], 1), dim=1).half()
    return pts, cols, target


@pytest.fixture(scope="module")
def toy_model():
    pts, cols, target = _toy()
    train = torch.from_numpy(np.random.default_rng(2).random(len(pts)) < 0.8)
    model = train_distill(pts, cols, target, seen=train, steps=200, seed=0, **SMALL)
    return pts, cols, target, train, model


def test_distillation_generalises_to_held_out_points(toy_model):
    pts, cols, target, train, model = toy_model
    held = ~train
    pred = model.predict(pts[held.numpy()], cols[held.numpy()])
    assert pred.dtype == torch.float16 and pred.shape == (int(held.sum()), 16)
    assert torch.allclose(pred.float().norm(dim=1), torch.ones(len(pred)), atol=2e-3)
    cos = (pred.float() * target[held].float()).sum(1)
    assert float(cos.mean()) > 0.9
    assert model.losses[-1] < model.losses[0] and len(model.losses) == 200


def test_distillation_is_deterministic_with_a_seed(toy_model):
    pts, cols, target, _, _ = toy_model
    sub = slice(0, 1500)
    a = train_distill(pts[sub], cols[sub], target[sub], steps=5, seed=3, **SMALL).predict(pts[sub], cols[sub])
    b = train_distill(pts[sub], cols[sub], target[sub], steps=5, seed=3, **SMALL).predict(pts[sub], cols[sub])
    c = train_distill(pts[sub], cols[sub], target[sub], steps=5, seed=4, **SMALL).predict(pts[sub], cols[sub])
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_seen_mask_default_and_errors():
    pts, cols, target = _toy(n=500)
    target[250:] = 0  # unseen rows: zero vectors, excluded by default
    model = train_distill(pts, None, target, steps=2, **SMALL)
    assert isinstance(model, DistillModel) and not model.use_color
    assert model.predict(pts).shape == (500, 16)
    with pytest.raises(ValueError, match="no seen point"):
        train_distill(pts, cols, target, seen=np.zeros(500, bool), steps=1)
    with pytest.raises(ValueError, match=r"target must have shape \(500, D\)"):
        train_distill(pts, cols, target[:10], steps=1)
    colored = train_distill(pts, cols, target, steps=1, **SMALL)
    with pytest.raises(ValueError, match="colors"):
        colored.predict(pts)


def test_ensemble_picks_the_more_confident_feature():
    classes = torch.eye(4)[:3]  # C = 3 classes in D = 4
    fused = torch.tensor([[0.9, 0.1, 0.0, 0.0],    # fused confident -> fused
                          [0.5, 0.5, 0.5, 0.5],    # distilled confident -> distilled
                          [0.0, 0.0, 0.0, 0.0],    # unseen -> distilled
                          [0.0, 0.0, 0.0, 1.0]])   # seen but scores 0 -> distilled (higher)
    distilled = torch.tensor([[0.5, 0.5, 0.5, 0.5],
                              [0.0, 0.95, 0.05, 0.0],
                              [0.0, 0.0, 0.1, 0.9],
                              [0.3, 0.3, 0.3, 0.8]])
    out = ensemble_features(fused.half(), distilled, classes)
    assert out.dtype == torch.float16 and out.shape == (4, 4)
    fn, dn = F.normalize(fused, dim=1), F.normalize(distilled, dim=1)
    expect = torch.stack([fn[0], dn[1], dn[2], dn[3]])
    assert torch.allclose(out.float(), expect, atol=1e-3)
    # an explicit seen mask overrides: row 0 marked unseen takes the distilled feature
    out2 = ensemble_features(fused, distilled, classes, seen=torch.tensor([False, True, True, True]))
    assert torch.allclose(out2[0].float(), dn[0], atol=1e-3)


def test_ensemble_softmax_score_and_errors():
    classes = torch.eye(3)
    fused = torch.tensor([[0.8, 0.7, 0.0]])      # max cos 0.75, but two classes tie-ish
    distilled = torch.tensor([[0.7, 0.0, 0.0]])  # max cos 1.0 after normalising
    assert torch.allclose(ensemble_features(fused, distilled, classes).float(), torch.tensor([[1.0, 0, 0]]))
    fused = torch.tensor([[0.9, 0.1, 0.0]])
    distilled = torch.tensor([[0.6, 0.55, 0.55]])
    # cosine: fused 0.99 > distilled 0.64; softmax at scale 100 agrees (fused clearly one class)
    assert torch.allclose(ensemble_features(fused, distilled, classes, logit_scale=100.0).float(),
                          F.normalize(fused, dim=1), atol=1e-3)
    with pytest.raises(ValueError, match="class_embeddings"):
        ensemble_features(fused, distilled, torch.zeros(0, 3))
    with pytest.raises(ValueError, match="same shape"):
        ensemble_features(fused, distilled[:, :2], classes)
    with pytest.raises(ValueError, match="logit_scale"):
        ensemble_features(fused, distilled, classes, logit_scale=0.0)


def test_progress_lines_during_a_long_distillation():
    """A long distillation says where it is (segment3d printed nothing for minutes before)."""
    pts, cols, target = _toy(n=2000)
    lines: list[str] = []
    train_distill(pts, cols, target, steps=20, seed=0, progress=lines.append, every=0.0, **SMALL)
    assert len(lines) == 20 and lines[-1].startswith("distilling: step 20/20, loss ")
