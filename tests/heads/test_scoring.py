"""Open-set scoring: labels against negatives (hand-built embeddings, exact values)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from ovtools.heads.scoring import open_set_scores
from ovtools.prompts import ClassEmbeddings, ClassSpace, load_templates


def make_emb(classes: torch.Tensor, negatives: torch.Tensor, mask: torch.Tensor | None = None,
             names: list[str] | None = None) -> ClassEmbeddings:
    """A ClassEmbeddings built by hand (rows are normalised here)."""
    c, k = classes.shape[0], negatives.shape[0]
    names = names or [f"class{i}" for i in range(max(c, 1))]
    mask = torch.ones(c, k, dtype=torch.bool) if mask is None else mask
    return ClassEmbeddings(ClassSpace.from_names(names), F.normalize(classes.float(), dim=-1),
                           F.normalize(negatives.float(), dim=-1), tuple(f"neg{i}" for i in range(k)), mask,
                           load_templates("single"))


def test_feature_equal_to_a_class_is_reported_and_absent_class_is_not():
    e = torch.eye(4)
    emb = make_emb(e[:2], e[2:3])  # classes 0, 1; negative "object" = axis 2
    feats = F.normalize(torch.stack([e[0], e[2], 0.6 * e[0] + 0.8 * e[2]]), dim=-1)
    s = open_set_scores(feats, emb, logit_scale=100.0)
    assert s.logits.shape == (3, 2) and s.negative_logits.shape == (3, 1)
    assert torch.allclose(s.logits[0], torch.tensor([100.0, 0.0]))
    # region 0 shows class 0: beats the negative, class 1 (absent) does not
    assert s.beats_negatives[0].tolist() == [True, False]
    assert s.confidence[0, 0] > 0.99 and s.confidence[0, 1] < 1e-6
    assert s.reportable(0.5)[0].tolist() == [True, False]
    # region 1 is the negative itself: nothing is reportable although class softmax sums to 1
    assert torch.allclose(s.class_probs[1].sum(), torch.tensor(1.0))
    assert not s.reportable(0.0)[1].any()
    # region 2 is closer to the negative (0.8) than to class 0 (0.6): not reported
    assert not s.beats_negatives[2].any()
    assert s.confidence[2, 0] < 0.5


def test_relevancy_is_lerf_min_pairwise_softmax():
    torch.manual_seed(0)
    cls, neg = torch.randn(3, 8), torch.randn(4, 8)
    mask = torch.tensor([[1, 1, 0, 0], [0, 1, 1, 1], [1, 0, 0, 1]], dtype=torch.bool)
    emb = make_emb(cls, neg, mask)
    feats = F.normalize(torch.randn(5, 8), dim=-1)
    s = open_set_scores(feats, emb, logit_scale=10.0)
    lc = 10.0 * feats @ emb.classes.T
    ln = 10.0 * feats @ emb.negatives.T
    for n in range(5):
        for c in range(3):
            pair = [torch.softmax(torch.stack([lc[n, c], ln[n, k]]), 0)[0] for k in range(4) if mask[c, k]]
            assert torch.isclose(s.relevancy[n, c], torch.stack(pair).min(), atol=1e-6)
            assert bool(s.beats_negatives[n, c]) == bool(all(lc[n, c] > ln[n, k] for k in range(4) if mask[c, k]))
    assert torch.allclose(s.confidence, s.class_probs * s.relevancy)
    assert torch.allclose(s.joint_probs.sum(1), torch.ones(5))
    assert torch.allclose(s.joint_probs, torch.cat([lc, ln], 1).softmax(1), atol=1e-6)


def test_negative_mask_only_applies_to_its_class():
    e = torch.eye(3)
    # negative 0 (= axis 0 direction, a bit off) applies to class 1 only
    emb = make_emb(torch.stack([e[0], e[1]]), (e[0] * 0.9 + e[1] * 0.1)[None],
                   torch.tensor([[False], [True]]))
    s = open_set_scores(e[:1], emb, logit_scale=100.0)
    assert s.beats_negatives[0].tolist() == [True, False]
    assert s.relevancy[0, 0] == 1.0  # no applicable negative


def test_empty_label_set_and_no_negatives():
    feats = F.normalize(torch.randn(4, 6), dim=-1)
    s = open_set_scores(feats, make_emb(torch.zeros(0, 6), torch.randn(2, 6)), 50.0)
    assert s.logits.shape == (4, 0) and s.confidence.shape == (4, 0) and s.reportable().shape == (4, 0)
    s = open_set_scores(feats, make_emb(torch.randn(3, 6), torch.zeros(0, 6)), 50.0)
    assert s.beats_negatives.all() and torch.allclose(s.relevancy, torch.ones(4, 3))
    assert torch.allclose(s.confidence, s.class_probs)


def test_bad_inputs_raise():
    emb = make_emb(torch.randn(2, 6), torch.randn(1, 6))
    with pytest.raises(ValueError, match="feature dim 5"):
        open_set_scores(torch.randn(3, 5), emb, 10.0)
    with pytest.raises(ValueError, match=r"\(N, D\)"):
        open_set_scores(torch.randn(6), emb, 10.0)
    with pytest.raises(TypeError):
        open_set_scores([[0.0] * 6], emb, 10.0)
    with pytest.raises(ValueError, match="logit_scale"):
        open_set_scores(torch.randn(3, 6), emb, 0.0)


def test_relevancy_equals_the_brute_force_masked_max():
    """The per-mask-row grouping gives exactly min_k sigmoid(l_c - n_k) over each class's own negatives."""
    from types import SimpleNamespace

    import torch

    from ovtools.heads.scoring import open_set_scores

    g = torch.Generator().manual_seed(0)
    f = torch.nn.functional.normalize(torch.randn(50, 16, generator=g), dim=1)
    cls = torch.nn.functional.normalize(torch.randn(7, 16, generator=g), dim=1)
    neg = torch.nn.functional.normalize(torch.randn(5, 16, generator=g), dim=1)
    mask = torch.rand(7, 5, generator=g) > 0.5
    mask[0] = False                  # a class with no negative: relevancy 1
    mask[1] = mask[2] = True         # two classes sharing one row
    s = open_set_scores(f, SimpleNamespace(classes=cls, negatives=neg, negative_mask=mask), 50.0)
    logits, nl = 50.0 * f @ cls.T, 50.0 * f @ neg.T
    for c in range(7):
        ks = mask[c].nonzero().flatten().tolist()
        want = torch.ones(50) if not ks else torch.stack([torch.sigmoid(logits[:, c] - nl[:, k]) for k in ks]).min(0).values
        torch.testing.assert_close(s.relevancy[:, c], want)
        assert torch.equal(s.beats_negatives[:, c], want > 0.5)


def test_best_label_per_feature_or_nothing():
    """best(): the label of highest confidence, -1 where it loses to a negative or is below the threshold."""
    emb = make_emb(torch.eye(4)[:2], torch.eye(4)[2:3])
    feats = F.normalize(torch.tensor([[1.0, 0, 0, 0], [0, 1.0, 0, 0], [0, 0, 1.0, 0], [0.5, 0.499, 0, 0]]), dim=-1)
    sc = open_set_scores(feats, emb, logit_scale=100.0)
    cid, conf = sc.best()
    assert cid.tolist() == [0, 1, -1, 0] and cid.dtype == torch.long
    assert torch.allclose(conf, sc.confidence.max(1).values)
    assert sc.best(threshold=0.99)[0].tolist() == [0, 1, -1, -1]  # the ambiguous one is below 0.99
    none = open_set_scores(feats, make_emb(torch.zeros(0, 4), torch.eye(4)[2:3]), 100.0).best()
    assert none[0].tolist() == [-1] * 4 and none[1].tolist() == [0.0] * 4
